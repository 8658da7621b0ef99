/* tgate: command line, start-up, signals and shutdown. */
#include <event2/event.h>
#include <event2/thread.h>
#include <getopt.h>
#include <openssl/ssl.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include <curl/curl.h>

#include "tg_accesslog.h"
#include "tg_admin.h"
#include "tg_apikeys.h"
#include "tg_audit.h"
#include "tg_audit_verify.h"
#include "tg_authn.h"
#include "tg_authz.h"
#include "tg_callcount.h"
#include "tg_config.h"
#include "tg_explain.h"
#include "tg_gen.h"
#include "tg_keystore.h"
#include "tg_log.h"
#include "tg_reload.h"
#include "tg_tls.h"
#include "tg_worker.h"

static void usage(FILE *f) {
  fprintf(f, "usage: tgate -c FILE            run the gateway\n"
             "       tgate --check-config -c FILE   validate FILE (and the "
             "files it names)\n"
             "       tgate apikey new [--subject S] [--permission NS:ROLE]... "
             "[--expires DATE]\n"
             "                                  make an API key and print its "
             "api_keys_file entry\n"
             "       tgate explain -c FILE --method M [--namespace N] "
             "[--task-queue Q]\n"
             "             [--workflow-type W] [--token T | --api-key K | "
             "--cert PEM]\n"
             "                                  show how the policy decides a "
             "call, step by step\n"
             "       tgate audit verify FILE...      check an audit log's hash "
             "chain\n"
             "       tgate --version\n");
}

/* Writes s as a YAML double-quoted scalar: '"' and '\' escaped, control
 * characters as \xNN, other bytes (UTF-8) as they are. */
static void yaml_quoted(FILE *f, const char *s) {
  fputc('"', f);
  for (; *s; s++) {
    unsigned char c = (unsigned char)*s;
    if (c == '"' || c == '\\')
      fprintf(f, "\\%c", c);
    else if (c < 0x20 || c == 0x7f)
      fprintf(f, "\\x%02x", c);
    else
      fputc(c, f);
  }
  fputc('"', f);
}

/* tgate apikey new [--subject S] [--permission P]... [--expires DATE]
 * The entry is parsed back with the API keys file's own parser before it is
 * printed: what it shows is what tgate loads, and a bad --expires (or a
 * subject that is empty or not UTF-8) is refused. */
static int apikey_cmd(int argc, char **argv) {
  if (argc < 1 || strcmp(argv[0], "new") != 0) {
    usage(stderr);
    return 2;
  }
  const char *subject = "api-client", *expires = NULL;
  const char *perms[64];
  size_t nperms = 0;
  for (int i = 1; i < argc; i++) {
    if (i + 1 < argc && strcmp(argv[i], "--subject") == 0)
      subject = argv[++i];
    else if (i + 1 < argc && strcmp(argv[i], "--permission") == 0 &&
             nperms < 64)
      perms[nperms++] = argv[++i];
    else if (i + 1 < argc && strcmp(argv[i], "--expires") == 0)
      expires = argv[++i];
    else {
      usage(stderr);
      return 2;
    }
  }
  char key[TG_APIKEY_LEN + 1], hex[65];
  if (tg_apikey_generate(key, hex) != 0) {
    fprintf(stderr, "tgate: no random bytes available\n");
    return 1;
  }
  char *doc = NULL, *errors = NULL;
  size_t len = 0;
  tg_apikeys_file *kf = NULL;
  int rc = 1;
  FILE *m = open_memstream(&doc, &len);
  if (!m) {
    fprintf(stderr, "tgate: out of memory\n");
    goto end;
  }
  fprintf(m, "keys:\n  - sha256: \"%s\"\n    subject: ", hex);
  yaml_quoted(m, subject);
  fputs("\n    permissions: [", m);
  for (size_t i = 0; i < nperms; i++) {
    fputs(i ? ", " : "", m);
    yaml_quoted(m, perms[i]);
  }
  fputs("]\n", m);
  if (expires) {
    fputs("    expires: ", m);
    yaml_quoted(m, expires);
    fputc('\n', m);
  }
  if (fclose(m) != 0 || !doc) {
    fprintf(stderr, "tgate: out of memory\n");
    goto end;
  }
  rc = 2;
  if (tg_apikeys_file_parse(doc, len, "entry", &kf, &errors) != 0) {
    if (errors && strstr(errors, ".expires'"))
      fprintf(stderr, "tgate apikey new: --expires must be a UTC time such "
                      "as 2027-01-31T00:00:00Z or 2027-01-31\n");
    else
      fprintf(stderr, "tgate apikey new: this entry would not load:\n%s",
              errors ? errors : "");
    goto end;
  }
  int same = kf->n == 1 && strcmp(kf->v[0].subject, subject) == 0 &&
             kf->v[0].permissions.n == nperms;
  for (size_t i = 0; same && i < nperms; i++)
    same = strcmp(kf->v[0].permissions.v[i], perms[i]) == 0;
  if (!same) {
    fprintf(stderr, "tgate apikey new: the entry does not read back as "
                    "given\n");
    goto end;
  }
  printf("# API key (give it to the client; it is not stored anywhere):\n#   "
         "%s\n# Entry for authentication.api_keys_file (under keys:):\n%s",
         key, doc + strlen("keys:\n"));
  rc = 0;
end:
  OPENSSL_cleanse(key, sizeof key);
  tg_apikeys_file_free(kf);
  free(errors);
  free(doc);
  return rc;
}

static const char *env_get(const char *name) {
  return getenv(name);
}

static void signal_cb(evutil_socket_t sig, short what, void *arg) {
  tg_app *app = arg;
  if (sig == SIGUSR1) {
    char err[256];
    if (app->audit) {
      uint64_t seq;
      char head[65];
      tg_audit_head(app->audit, &seq, head);
      tg_info("audit chain head before rotation: entry %llu, %s",
              (unsigned long long)seq, head);
      if (tg_audit_reopen(app->audit, err, sizeof err) != 0)
        tg_err("SIGUSR1: audit: %s", err);
    }
    if (tg_accesslog_reopen(err, sizeof err) != 0)
      tg_err("SIGUSR1: %s", err);
    else
      tg_info("SIGUSR1: log files reopened");
    return;
  }
  if (sig == SIGHUP) {
    if (!atomic_load(&app->shutting_down))
      tg_reload_request(app->reload, "SIGHUP");
    return;
  }
  if (!atomic_exchange(&app->shutting_down, 1)) {
    tg_info("%s: stopping; calls in flight have %llu ms to finish",
            sig == SIGTERM ? "SIGTERM" : "SIGINT",
            (unsigned long long)app->gen->cfg->shutdown_grace_ms);
    for (uint32_t i = 0; i < app->nworkers; i++)
      tg_worker_shutdown(app->workers[i]);
  } else {
    tg_warn("second signal: closing every connection now");
    for (uint32_t i = 0; i < app->nworkers; i++)
      tg_worker_force(app->workers[i]);
  }
}

static void worker_exit_cb(evutil_socket_t fd, short what, void *arg) {
  tg_app *app = arg;
  if (atomic_load(&app->workers_running) == 0)
    event_base_loopexit(app->base, NULL);
}

static const char *addr_str(const tg_addr *a, char *buf, size_t len) {
  snprintf(buf, len, strchr(a->host, ':') ? "[%s]:%u" : "%s:%u", a->host,
           a->port);
  return buf;
}

/* Runs the gateway with cfg (taken over), loaded from path. */
static int run(tg_config *cfg, const char *path) {
  int rc = 1;
  tg_app app;
  memset(&app, 0, sizeof(app));
  tg_admin *admin = NULL;
  struct event *sigs[4] = {0};
  char err[8192], a1[300], a2[300];

  app.base = event_base_new();
  if (!app.base) {
    tg_config_free(cfg);
    goto end;
  }
  app.gen = tg_gen_new(cfg, 1, app.base, NULL, err, sizeof err);
  if (!app.gen) {
    tg_err("%s", err);
    goto end;
  }
  app.boot = tg_gen_ref(app.gen);
  app.callcount = tg_callcount_new();
  app.nslabels = tg_nslabels_new(cfg->metrics_max_namespaces);
  if (!app.callcount || !app.nslabels)
    goto end;
  if (cfg->audit_file) {
    app.audit =
        tg_audit_open(cfg->audit_file, cfg->audit_fail_closed, err, sizeof err);
    if (!app.audit) {
      tg_err("audit.file: %s", err);
      goto end;
    }
    if (err[0])
      tg_warn("audit.file: %s", err);
    char fields[256];
    snprintf(fields, sizeof fields, "{\"version\":\"%s\",\"pid\":%ld}",
             TG_VERSION, (long)getpid());
    tg_audit_log_keep(app.audit, "start", fields);
  }
  if (tg_accesslog_open(cfg->access_log, err, sizeof err) != 0) {
    tg_err("logging.access_log: %s", err);
    goto end;
  }
  app.reload = tg_reload_new(&app, path, env_get, err, sizeof err);
  if (!app.reload) {
    tg_err("%s", err);
    goto end;
  }
  if (cfg->authz_mode == TG_AUTHZ_SHADOW)
    tg_warn("authorization.mode is shadow: denials are logged, not enforced");
  if (!cfg->listen_tls)
    tg_warn("listen.tls is absent: serving plaintext h2c; credentials and "
            "calls cross the network unencrypted");
  if (!cfg->upstream_tls)
    tg_info("upstream.tls is absent: talking h2c to the frontend");

  app.nworkers = cfg->workers;
  if (app.nworkers == 0) {
    long n = sysconf(_SC_NPROCESSORS_ONLN);
    app.nworkers = n > 0 ? (uint32_t)n : 1;
  }
  app.workers = calloc(app.nworkers, sizeof(*app.workers));
  if (!app.workers)
    goto end;
  app.worker_exit_ev = event_new(app.base, -1, 0, worker_exit_cb, &app);
  if (!app.worker_exit_ev)
    goto end;

  for (uint32_t i = 0; i < app.nworkers; i++) {
    int fd =
        tg_worker_listen_socket(&cfg->listen_address, i == 0, err, sizeof(err));
    if (fd < 0) {
      tg_err("%s", err);
      goto end;
    }
    app.workers[i] = tg_worker_new(&app, (int)i, fd);
    if (!app.workers[i]) {
      tg_err("cannot create worker %u", i);
      goto end;
    }
  }
  if (cfg->admin_address) {
    admin = tg_admin_new(&app, cfg->admin_address, err, sizeof(err));
    if (!admin) {
      tg_err("%s", err);
      goto end;
    }
  }
  const int signums[4] = {SIGTERM, SIGINT, SIGHUP, SIGUSR1};
  for (int i = 0; i < 4; i++) {
    sigs[i] = evsignal_new(app.base, signums[i], signal_cb, &app);
    if (!sigs[i] || event_add(sigs[i], NULL) != 0)
      goto end;
  }
  for (uint32_t i = 0; i < app.nworkers; i++) {
    if (tg_worker_start(app.workers[i]) != 0) {
      tg_err("cannot start worker thread %u", i);
      for (uint32_t j = 0; j < i; j++)
        tg_worker_force(app.workers[j]);
      goto end;
    }
  }
  tg_info("tgate %s: listening on %s (%s), %u worker(s), upstream %s%s%s",
          TG_VERSION, addr_str(&cfg->listen_address, a1, sizeof(a1)),
          !cfg->listen_tls ? "h2c"
          : cfg->listen_tls->require_client_cert
              ? "TLS, client certificate required"
          : cfg->listen_tls->client_ca_file
              ? "TLS, client certificate verified if sent"
              : "TLS",
          app.nworkers, addr_str(&cfg->upstream_addresses[0], a2, sizeof(a2)),
          cfg->upstream_naddresses > 1 ? " (and more)" : "",
          cfg->upstream_tls ? " over TLS" : " over h2c");
  if (cfg->admin_address)
    tg_info("admin: http://%s/health/ready",
            addr_str(cfg->admin_address, a1, sizeof(a1)));
  event_base_dispatch(app.base);
  rc = 0;
end:
  for (uint32_t i = 0; app.workers && i < app.nworkers; i++)
    tg_worker_join_free(app.workers[i]);
  tg_info("stopped");
  tg_admin_free(admin);
  for (int i = 0; i < 4; i++)
    if (sigs[i])
      event_free(sigs[i]);
  tg_accesslog_close();
  if (app.worker_exit_ev)
    event_free(app.worker_exit_ev);
  free(app.workers);
  if (app.audit) {
    uint64_t seq;
    char head[65];
    tg_audit_log_keep(app.audit, "stop", "{}");
    tg_audit_head(app.audit, &seq, head);
    tg_info("audit chain head: entry %llu, %s", (unsigned long long)seq, head);
    tg_audit_close(app.audit); /* drains: no entry is lost */
  }
  tg_reload_free(app.reload);
  tg_callcount_free(app.callcount);
  tg_nslabels_free(app.nslabels);
  if (app.gen != app.boot)
    tg_gen_free(app.gen);
  tg_gen_free(app.boot);
  if (app.base)
    event_base_free(app.base);
  return rc;
}

int main(int argc, char **argv) {
  const char *file = NULL;
  if (argc >= 2 && strcmp(argv[1], "apikey") == 0)
    return apikey_cmd(argc - 2, argv + 2);
  if (argc >= 2 && strcmp(argv[1], "audit") == 0)
    return tg_audit_verify_main(argc - 2, argv + 2); /* "verify FILE..." */
  if (argc >= 2 && strcmp(argv[1], "explain") == 0) {
    curl_global_init(CURL_GLOBAL_DEFAULT);
    int rc = tg_explain_main(argc - 2, argv + 2);
    curl_global_cleanup();
    return rc;
  }
  int check = 0;
  static const struct option opts[] = {
      {"config", required_argument, NULL, 'c'},
      {"check-config", no_argument, NULL, 'C'},
      {"version", no_argument, NULL, 'V'},
      {"help", no_argument, NULL, 'h'},
      {NULL, 0, NULL, 0},
  };
  int ch;
  while ((ch = getopt_long(argc, argv, "c:hV", opts, NULL)) != -1) {
    switch (ch) {
    case 'c':
      file = optarg;
      break;
    case 'C':
      check = 1;
      break;
    case 'V':
      printf("tgate %s (nghttp2 %s, %s, libevent %s)\n", TG_VERSION,
             nghttp2_version(0)->version_str, OpenSSL_version(OPENSSL_VERSION),
             event_get_version());
      return 0;
    case 'h':
      usage(stdout);
      return 0;
    default:
      usage(stderr);
      return 2;
    }
  }
  if (!file || optind != argc) {
    usage(stderr);
    return 2;
  }
  tg_config *cfg = NULL;
  char *errors = NULL;
  curl_global_init(CURL_GLOBAL_DEFAULT);
  if (tg_config_load_file(file, &cfg, &errors) != 0) {
    fputs(errors ? errors : "tgate: cannot load configuration\n", stderr);
    fprintf(stderr, "tgate: configuration %s is invalid\n", file);
    free(errors);
    return 1;
  }
  free(errors);
  errors = NULL;
  if (tg_config_apply_env(cfg, env_get, &errors) != 0) {
    fputs(errors ? errors : "tgate: environment overrides are invalid\n",
          stderr);
    free(errors);
    tg_config_free(cfg);
    return 1;
  }
  if (check) {
    /* Everything a start (or a reload) builds, then the key sources, each
     * of which must give keys now. */
    char err[8192];
    struct event_base *base = event_base_new();
    int jwt = cfg->authn && cfg->authn->jwt;
    tg_gen *g = base ? tg_gen_new(cfg, 1, base, NULL, err, sizeof err) : NULL;
    int rv = g ? 0 : -1;
    if (!g)
      fprintf(stderr, "tgate: %s\n", base ? err : "no event loop");
    if (g && jwt &&
        tg_keystore_check(g->cfg->authn->jwt, err, sizeof err) != 0) {
      fprintf(stderr, "tgate: authentication.jwt: %s\n", err);
      rv = -1;
    }
    if (g)
      tg_gen_unref(g);
    tg_gen_free(g);
    if (base)
      event_base_free(base);
    if (rv != 0) {
      fprintf(stderr, "tgate: configuration %s is invalid\n", file);
      return 1;
    }
    printf("tgate: configuration %s is valid\n", file);
    return 0;
  }
  tg_log_set_level(cfg->log_level);
  signal(SIGPIPE, SIG_IGN);
  /* A file size limit (RLIMIT_FSIZE) makes a write fail with EFBIG, which
   * the audit and access logs handle, instead of killing the process. */
  signal(SIGXFSZ, SIG_IGN);
  if (evthread_use_pthreads() != 0) {
    fprintf(stderr, "tgate: libevent has no thread support\n");
    tg_config_free(cfg);
    return 1;
  }
  int rc = run(cfg, file);
  curl_global_cleanup();
  libevent_global_shutdown();
  return rc;
}
