#include "tg_reload.h"

#include <errno.h>
#include <jansson.h>
#include <openssl/evp.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <time.h>

#include "tg_audit.h"
#include "tg_authn.h"
#include "tg_authz.h"
#include "tg_clock.h"
#include "tg_log.h"

#define PENDING_POLL_MS 50
#define GC_INTERVAL_S 1

typedef struct watched {
  char *path;
  int exists;
  struct stat st;
} watched;

struct tg_reload {
  tg_app *app;
  char *path;
  const char *(*getenv_fn)(const char *);
  uint64_t watch_ms;
  struct event *watch_ev, *pending_ev, *gc_ev;
  watched *files;
  size_t nfiles;
  int dirty; /* a watched file changed at the last poll */
  tg_gen *pending;
  uint64_t pending_deadline_ms;
  char pending_why[128];
  tg_gen **retired;
  size_t nretired, capretired;
  uint64_t next_id;
  tg_reload_stats stats;
};

/* ---- the watch ---- */

static void watch_clear(tg_reload *rl) {
  for (size_t i = 0; i < rl->nfiles; i++)
    free(rl->files[i].path);
  free(rl->files);
  rl->files = NULL;
  rl->nfiles = 0;
}

static void watch_add(tg_reload *rl, const char *path, size_t len) {
  if (!path || !len)
    return;
  for (size_t i = 0; i < rl->nfiles; i++)
    if (strlen(rl->files[i].path) == len &&
        memcmp(rl->files[i].path, path, len) == 0)
      return;
  watched *f = realloc(rl->files, (rl->nfiles + 1) * sizeof *f);
  if (!f)
    return;
  rl->files = f;
  memset(&f[rl->nfiles], 0, sizeof *f);
  if ((f[rl->nfiles].path = strndup(path, len)) != NULL)
    rl->nfiles++;
}

static void watch_add_str(tg_reload *rl, const char *path) {
  if (path)
    watch_add(rl, path, strlen(path));
}

/* Fills in st; returns whether the file is there. */
static int probe(const char *path, struct stat *st) {
  memset(st, 0, sizeof *st);
  return stat(path, st) == 0;
}

static int same(const watched *f, int exists, const struct stat *st) {
  return f->exists == exists &&
         (!exists ||
          (f->st.st_dev == st->st_dev && f->st.st_ino == st->st_ino &&
           f->st.st_size == st->st_size &&
           f->st.st_mtim.tv_sec == st->st_mtim.tv_sec &&
           f->st.st_mtim.tv_nsec == st->st_mtim.tv_nsec &&
           f->st.st_ctim.tv_sec == st->st_ctim.tv_sec &&
           f->st.st_ctim.tv_nsec == st->st_ctim.tv_nsec));
}

/* The files cfg names, and their state now. */
static void watch_build(tg_reload *rl, const tg_config *cfg) {
  watch_clear(rl);
  watch_add_str(rl, rl->path);
  if (cfg->listen_tls) {
    watch_add_str(rl, cfg->listen_tls->cert_file);
    watch_add_str(rl, cfg->listen_tls->key_file);
    watch_add_str(rl, cfg->listen_tls->client_ca_file);
  }
  watch_add_str(rl, cfg->upstream_token_file);
  if (cfg->upstream_tls) {
    watch_add_str(rl, cfg->upstream_tls->ca_file);
    watch_add_str(rl, cfg->upstream_tls->cert_file);
    watch_add_str(rl, cfg->upstream_tls->key_file);
  }
  if (cfg->authn) {
    watch_add_str(rl, cfg->authn->api_keys_file);
    const tg_jwt_cfg *j = cfg->authn->jwt;
    if (j)
      watch_add_str(rl, j->ca_file);
    for (size_t i = 0; j && i < j->key_sources.n; i++) {
      const char *u = j->key_sources.v[i];
      if (strncmp(u, "file:", 5) == 0) {
        watch_add_str(rl, u + 5);
      } else if (strncmp(u, "pem:", 4) == 0) {
        const char *hash = strrchr(u + 4, '#');
        watch_add(rl, u + 4, hash ? (size_t)(hash - (u + 4)) : strlen(u + 4));
      }
    }
  }
  for (size_t i = 0; i < rl->nfiles; i++)
    rl->files[i].exists = probe(rl->files[i].path, &rl->files[i].st);
  rl->dirty = 0;
}

static void watch_arm(tg_reload *rl, uint64_t ms) {
  rl->watch_ms = ms;
  event_del(rl->watch_ev);
  if (ms) {
    struct timeval tv = tg_ms_tv(ms);
    event_add(rl->watch_ev, &tv);
  }
}

/* Reloads one interval after the last change seen, so that a file being
 * written is read once it is complete. */
static void watch_cb(evutil_socket_t fd, short what, void *arg) {
  tg_reload *rl = arg;
  const char *changed = NULL;
  for (size_t i = 0; i < rl->nfiles; i++) {
    struct stat st;
    int exists = probe(rl->files[i].path, &st);
    if (!same(&rl->files[i], exists, &st)) {
      rl->files[i].exists = exists;
      rl->files[i].st = st;
      changed = rl->files[i].path;
    }
  }
  if (changed) {
    tg_debug("reload: %s changed", changed);
    rl->dirty = 1;
  } else if (rl->dirty) {
    rl->dirty = 0;
    tg_reload_request(rl, "a watched file changed");
  }
}

/* ---- generations ---- */

static void retire(tg_reload *rl, tg_gen *g) {
  if (rl->nretired == rl->capretired) {
    size_t cap = rl->capretired ? rl->capretired * 2 : 8;
    tg_gen **v = realloc(rl->retired, cap * sizeof *v);
    if (!v) {
      tg_err("reload: out of memory; configuration %llu is kept in memory",
             (unsigned long long)g->id);
      tg_gen_unref(g);
      return;
    }
    rl->retired = v;
    rl->capretired = cap;
  }
  rl->retired[rl->nretired++] = g;
  tg_gen_unref(g);
}

/* Frees the generations nothing refers to any more. The start-up one stays
 * (workers' fixed settings point into its configuration), stripped down to
 * that configuration. */
static void gc(tg_reload *rl) {
  for (size_t i = 0; i < rl->nretired;) {
    tg_gen *g = rl->retired[i];
    int boot = g == rl->app->boot;
    if (tg_gen_refs(g) != (boot ? 1u : 0u)) {
      i++;
      continue;
    }
    if (boot)
      tg_gen_strip(g);
    else
      tg_gen_free(g);
    rl->retired[i] = rl->retired[--rl->nretired];
  }
}

static void gc_cb(evutil_socket_t fd, short what, void *arg) {
  gc(arg);
}

static size_t nkeys(const tg_gen *g) {
  if (!g || !g->keystore)
    return 0;
  tg_keystore_stats ks;
  tg_keystore_stats_get(g->keystore, &ks);
  return ks.nkeys;
}

/* The SHA-256 of the configuration file, in hex, or "" when unreadable. */
static void file_sha256(const char *path, char hex[65]) {
  hex[0] = '\0';
  FILE *f = fopen(path, "rb");
  if (!f)
    return;
  EVP_MD_CTX *md = EVP_MD_CTX_new();
  unsigned char buf[8192], dig[32];
  unsigned int dlen = 0;
  size_t n;
  int ok = md && EVP_DigestInit_ex(md, EVP_sha256(), NULL);
  while (ok && (n = fread(buf, 1, sizeof buf, f)) > 0)
    ok = EVP_DigestUpdate(md, buf, n);
  ok = ok && !ferror(f) && EVP_DigestFinal_ex(md, dig, &dlen) && dlen == 32;
  EVP_MD_CTX_free(md);
  fclose(f);
  for (unsigned i = 0; ok && i < 32; i++)
    snprintf(hex + 2 * i, 3, "%02x", dig[i]);
}

static void audit_reload(tg_reload *rl, const char *result, const char *why,
                         uint64_t id, const char *reason) {
  if (!rl->app->audit)
    return;
  char hex[65];
  file_sha256(rl->path, hex);
  json_t *o = json_pack("{s:s, s:s, s:s, s:I, s:s}", "result", result,
                        "trigger", why, "file", rl->path, "generation",
                        (json_int_t)id, "config_sha256", hex);
  if (o && reason)
    json_object_set_new(o, "reason", json_string(reason));
  char *fields = o ? json_dumps(o, JSON_COMPACT | JSON_PRESERVE_ORDER) : NULL;
  json_decref(o);
  if (fields)
    tg_audit_log_keep(rl->app->audit, "config_reload", fields);
  free(fields);
}

static void refused(tg_reload *rl, const char *why, const char *errors) {
  rl->stats.failed++;
  rl->stats.last_failure = (int64_t)time(NULL);
  rl->stats.last_ok = 0;
  /* One log line per problem (configuration errors come one per line). */
  const char *p = errors;
  while (p && *p) {
    const char *nl = strchr(p, '\n');
    size_t len = nl ? (size_t)(nl - p) : strlen(p);
    if (len)
      tg_err("reload refused: %.*s", (int)len, p);
    p = nl ? nl + 1 : NULL;
  }
  tg_err("reload (%s) refused: configuration %llu stays in use", why,
         (unsigned long long)rl->app->gen->id);
  audit_reload(rl, "refused", why, rl->app->gen->id, errors);
  /* Do not retry until a file changes again. */
  watch_build(rl, rl->app->gen->cfg);
}

static void commit(tg_reload *rl, tg_gen *g, const char *why) {
  tg_app *app = rl->app;
  tg_gen *old = app->gen;
  app->gen = g;
  for (uint32_t i = 0; i < app->nworkers; i++)
    if (app->workers[i])
      tg_worker_set_gen(app->workers[i], g);
  retire(rl, old);
  tg_log_set_level(g->cfg->log_level);
  rl->stats.succeeded++;
  rl->stats.last_success = (int64_t)time(NULL);
  rl->stats.last_ok = 1;
  rl->stats.generation = g->id;
  tg_info("reload (%s): configuration %llu from %s is in use for new calls",
          why, (unsigned long long)g->id, rl->path);
  if (g->cfg->authz_mode == TG_AUTHZ_SHADOW)
    tg_warn("authorization.mode is shadow: denials are logged, not enforced");
  audit_reload(rl, "applied", why, g->id, NULL);
  watch_build(rl, g->cfg);
  if (g->cfg->reload_watch_ms != rl->watch_ms)
    watch_arm(rl, g->cfg->reload_watch_ms);
  gc(rl);
}

static void drop_pending(tg_reload *rl) {
  if (!rl->pending)
    return;
  event_del(rl->pending_ev);
  tg_gen_unref(rl->pending);
  tg_gen_free(rl->pending);
  rl->pending = NULL;
}

static void pending_cb(evutil_socket_t fd, short what, void *arg) {
  tg_reload *rl = arg;
  tg_gen *g = rl->pending;
  if (!g)
    return;
  if (nkeys(g) > 0) {
    rl->pending = NULL;
    commit(rl, g, rl->pending_why);
    return;
  }
  if (tg_mono_ms() >= rl->pending_deadline_ms) {
    drop_pending(rl);
    char msg[160];
    snprintf(msg, sizeof msg,
             "authentication.jwt: no key source of the new configuration gave "
             "a key within %d s",
             TG_RELOAD_KEY_WAIT_MS / 1000);
    refused(rl, rl->pending_why, msg);
    return;
  }
  struct timeval tv = tg_ms_tv(PENDING_POLL_MS);
  event_add(rl->pending_ev, &tv);
}

void tg_reload_request(tg_reload *rl, const char *why) {
  tg_app *app = rl->app;
  tg_config *cfg = NULL;
  char *errors = NULL;
  char err[8192];
  if (rl->pending) {
    tg_info("reload (%s): abandoning the reload still waiting for keys", why);
    drop_pending(rl);
  }
  tg_info("reload (%s): reading %s", why, rl->path);
  if (tg_config_load_file(rl->path, &cfg, &errors) != 0 ||
      tg_config_apply_env(cfg, rl->getenv_fn, &errors) != 0) {
    refused(rl, why, errors ? errors : "cannot load the configuration");
    free(errors);
    tg_config_free(cfg);
    return;
  }
  free(errors);
  if (tg_gen_restart_only(app->gen->cfg, cfg, err, sizeof err) != 0) {
    tg_config_free(cfg);
    refused(rl, why, err);
    return;
  }
  tg_gen *g =
      tg_gen_new(cfg, rl->next_id, app->base, app->gen, err, sizeof err);
  if (!g) {
    refused(rl, why, err);
    return;
  }
  rl->next_id++;
  if (g->keystore && nkeys(g) == 0 && nkeys(app->gen) > 0) {
    tg_info("reload (%s): waiting for the new JWT key sources", why);
    rl->pending = g;
    rl->pending_deadline_ms = tg_mono_ms() + TG_RELOAD_KEY_WAIT_MS;
    snprintf(rl->pending_why, sizeof rl->pending_why, "%s", why);
    struct timeval tv = tg_ms_tv(PENDING_POLL_MS);
    event_add(rl->pending_ev, &tv);
    return;
  }
  commit(rl, g, why);
}

tg_reload *tg_reload_new(tg_app *app, const char *path,
                         const char *(*getenv_fn)(const char *), char *err,
                         size_t errlen) {
  tg_reload *rl = calloc(1, sizeof *rl);
  if (!rl || !(rl->path = strdup(path))) {
    free(rl);
    snprintf(err, errlen, "out of memory");
    return NULL;
  }
  rl->app = app;
  rl->getenv_fn = getenv_fn;
  rl->next_id = app->gen->id + 1;
  rl->stats.generation = app->gen->id;
  rl->watch_ev = event_new(app->base, -1, EV_PERSIST, watch_cb, rl);
  rl->pending_ev = evtimer_new(app->base, pending_cb, rl);
  rl->gc_ev = event_new(app->base, -1, EV_PERSIST, gc_cb, rl);
  struct timeval tv = {GC_INTERVAL_S, 0};
  if (!rl->watch_ev || !rl->pending_ev || !rl->gc_ev ||
      event_add(rl->gc_ev, &tv) != 0) {
    snprintf(err, errlen, "cannot set up the reload timers");
    tg_reload_free(rl);
    return NULL;
  }
  watch_build(rl, app->gen->cfg);
  watch_arm(rl, app->gen->cfg->reload_watch_ms);
  return rl;
}

void tg_reload_stats_get(const tg_reload *rl, tg_reload_stats *out) {
  *out = rl->stats;
}

void tg_reload_free(tg_reload *rl) {
  if (!rl)
    return;
  drop_pending(rl);
  for (size_t i = 0; i < rl->nretired; i++)
    if (rl->retired[i] != rl->app->boot)
      tg_gen_free(rl->retired[i]);
  free(rl->retired);
  if (rl->watch_ev)
    event_free(rl->watch_ev);
  if (rl->pending_ev)
    event_free(rl->pending_ev);
  if (rl->gc_ev)
    event_free(rl->gc_ev);
  watch_clear(rl);
  free(rl->path);
  free(rl);
}
