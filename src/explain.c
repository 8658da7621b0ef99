#include "tg_explain.h"

#include <event2/event.h>
#include <openssl/pem.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "tg_authn.h"
#include "tg_config.h"
#include "tg_keystore.h"
#include "tg_methods.h"
#include "tg_policy.h"

/* At most this many --task-queue (--workflow-type) values: one more than
 * a live call keeps, so that the overflow can be explained too. */
#define EXPLAIN_MAX_NAMES (TG_NAMES_MAX + 1)

typedef struct explain_names {
  const char *v[EXPLAIN_MAX_NAMES];
  size_t n;
} explain_names;

typedef struct explain_args {
  const char *config, *method, *ns;
  explain_names task_queues, workflow_types;
  const char *token, *api_key, *cert;
} explain_args;

static int add_name(explain_names *l, const char *v) {
  if (l->n == EXPLAIN_MAX_NAMES)
    return -1;
  l->v[l->n++] = v;
  return 0;
}

static int parse_args(int argc, char **argv, explain_args *a) {
  memset(a, 0, sizeof *a);
  if (argc % 2)
    return -1;
  for (int i = 0; i + 1 < argc; i += 2) {
    const char *k = argv[i];
    const char *v = argv[i + 1];
    if (!strcmp(k, "--task-queue")) {
      if (add_name(&a->task_queues, v) != 0)
        return -1;
      continue;
    }
    if (!strcmp(k, "--workflow-type")) {
      if (add_name(&a->workflow_types, v) != 0)
        return -1;
      continue;
    }
    const char **slot = !strcmp(k, "-c") || !strcmp(k, "--config") ? &a->config
                        : !strcmp(k, "--method")                   ? &a->method
                        : !strcmp(k, "--namespace")                ? &a->ns
                        : !strcmp(k, "--token")                    ? &a->token
                        : !strcmp(k, "--api-key")                  ? &a->api_key
                        : !strcmp(k, "--cert")                     ? &a->cert
                                                                   : NULL;
    if (!slot)
      return -1;
    *slot = v;
  }
  int creds = !!a->token + !!a->api_key + !!a->cert;
  return a->config && a->method && creds <= 1 ? 0 : -1;
}

/* Full path, "Service/Method" or a bare name unique in the table; for a
 * family entry's service (AdminService), "Service/Method" is made the full
 * path, which *path then holds (in buf). *path is m's path otherwise. */
static const tg_method *find_method(const char *name, char *buf, size_t len,
                                    const char **path) {
  const tg_method *m = tg_method_find(name, strlen(name));
  *path = name;
  if (m)
    return m;
  const tg_method *found = NULL;
  size_t n = strlen(name);
  for (size_t i = 0; i < tg_methods_count(); i++) {
    const tg_method *c = tg_method_at(i);
    size_t cl = strlen(c->name);
    const char *slash = strrchr(c->name, '/');
    if (c->family && n >= cl && !strncmp(name, c->name, cl - 1)) {
      snprintf(buf, len, "%.*s%s", (int)(c->path_len - 1), c->path,
               name + cl - 1);
      *path = buf;
      return tg_method_find(buf, strlen(buf));
    }
    if (!strcmp(c->name, name) ||
        (slash && !strcmp(slash + 1, name) && cl > n)) {
      if (found && found != c)
        return NULL; /* ambiguous */
      found = c;
    }
  }
  if (found)
    *path = found->path;
  return found;
}

/* The values a live call would hold: distinct ones, at most TG_NAMES_MAX
 * (beyond: overflow). */
static tg_names names_of(const explain_names *l, tg_slice *v) {
  tg_names x = {v, 0, 0};
  for (size_t i = 0; i < l->n; i++) {
    size_t len = strlen(l->v[i]), k;
    for (k = 0; k < x.n; k++)
      if (v[k].len == len && !memcmp(v[k].p, l->v[i], len))
        break;
    if (k < x.n)
      continue;
    if (x.n == TG_NAMES_MAX) {
      x.overflow = 1;
      break;
    }
    v[x.n].p = (const uint8_t *)l->v[i];
    v[x.n].len = len;
    x.n++;
  }
  return x;
}

static void print_line(void *arg, const char *line) {
  (void)arg;
  printf("  %s\n", line);
}

static void print_roles(uint8_t r, char *out, size_t len) {
  snprintf(out, len, "%s%s%s%s%s", r & 8 ? "admin " : "", r & 4 ? "write " : "",
           r & 2 ? "read " : "", r & 1 ? "worker " : "", r ? "" : "none");
}

/* Waits (bounded) for the key store's first load. */
static void wait_for_keys(struct event_base *base, tg_keystore *ks) {
  time_t end = time(NULL) + 15;
  tg_keystore_stats st;
  do {
    struct timeval tv = {0, 50000};
    event_base_loopexit(base, &tv);
    event_base_dispatch(base);
    tg_keystore_stats_get(ks, &st);
  } while (st.refreshes == 0 && time(NULL) < end);
}

int tg_explain_main(int argc, char **argv) {
  explain_args a;
  tg_config *cfg = NULL;
  char *errors = NULL, err[512], roles[64];
  struct event_base *base = NULL;
  tg_keystore *ks = NULL;
  tg_authn *authn = NULL;
  tg_authn_local *local = NULL;
  tg_authn_counters counters = {0};
  tg_policy *policy = NULL;
  tg_claims claims;
  tg_hdrs h;
  int rc = 2;

  tg_claims_init(&claims);
  tg_hdrs_init(&h);
  if (parse_args(argc, argv, &a) != 0) {
    fprintf(stderr, "usage: tgate explain -c FILE --method M [--namespace N] "
                    "[--task-queue Q]... [--workflow-type W]... [--token T | "
                    "--api-key K | --cert PEM]\n");
    return 2;
  }
  if (tg_config_load_file(a.config, &cfg, &errors) != 0) {
    fputs(errors ? errors : "cannot load the configuration\n", stderr);
    goto end;
  }
  char pathbuf[512];
  const char *path;
  const tg_method *m = find_method(a.method, pathbuf, sizeof pathbuf, &path);
  printf("method: %s\n", path);
  if (m)
    printf("  scope %s, needs %s%s%s\n",
           m->scope == TG_SCOPE_CLUSTER ? "cluster" : "namespace",
           m->required == 8   ? "admin"
           : m->required == 4 ? "write"
                              : "read",
           m->worker ? ", a worker call" : "",
           m->family ? " (as every method of its service)" : "");
  else
    printf("  unknown method (not in tgate's table): always denied\n");

  if (cfg->authn) {
    if (cfg->authn->jwt && a.token) {
      base = event_base_new();
      if (!base || !(ks = tg_keystore_new(base, cfg->authn->jwt, NULL, err,
                                          sizeof err))) {
        fprintf(stderr, "tgate: authentication.jwt: %s\n",
                base ? err : "no event loop");
        goto end;
      }
      wait_for_keys(base, ks);
    }
    if (!(authn = tg_authn_new(cfg, ks, err, sizeof err)) ||
        !(local = tg_authn_local_new(authn, &counters))) {
      fprintf(stderr, "tgate: %s\n", authn ? "out of memory" : err);
      goto end;
    }
    tg_claims peer;
    tg_claims_init(&peer);
    if (a.cert) {
      FILE *f = fopen(a.cert, "r");
      X509 *x = f ? PEM_read_X509(f, NULL, NULL, NULL) : NULL;
      if (f)
        fclose(f);
      if (!x) {
        fprintf(stderr, "tgate: %s: not a PEM certificate\n", a.cert);
        goto end;
      }
      printf("credential: client certificate %s (assumed verified by the "
             "TLS handshake)\n",
             a.cert);
      tg_authn_cert_claims(authn, x, &peer);
      X509_free(x);
    }
    char bearer[16384];
    const char *cred = a.token ? a.token : a.api_key;
    if (cred) {
      printf("credential: %s\n", a.token ? "bearer token" : "API key");
      snprintf(bearer, sizeof bearer, "Bearer %s", cred);
      tg_hdrs_add_str(&h, cfg->authn->token_header, bearer);
    }
    const char *reason = "";
    int r = tg_authn_call(authn, local, &h, NULL, a.cert ? &peer : NULL,
                          (int64_t)time(NULL), &claims, &reason);
    tg_claims_clear(&peer);
    if (r != TG_AUTHN_OK) {
      printf("authentication: %s (status %d): %s\n",
             r == TG_AUTHN_UNAVAILABLE ? "unavailable" : "unauthenticated", r,
             reason);
      printf("decision: DENY (the call never reaches authorization)\n");
      rc = 1;
      goto end;
    }
  } else {
    printf("authentication: none configured; the call has no claims\n");
  }
  print_roles(claims.system, roles, sizeof roles);
  printf("claims: subject %s, credentials 0x%x, system role %s\n",
         claims.subject ? claims.subject : "-", claims.kinds, roles);
  for (size_t i = 0; i < claims.nns; i++) {
    print_roles(claims.ns[i].role, roles, sizeof roles);
    printf("  namespace %s: %s\n", claims.ns[i].ns, roles);
  }

  if (!(policy = tg_policy_new(cfg, err, sizeof err))) {
    fprintf(stderr, "tgate: authorization: %s\n", err);
    goto end;
  }
  /* The request a live call would make: what its message cannot carry is
   * not part of it. */
  tg_authz_request rq;
  tg_slice tqs[TG_NAMES_MAX], wts[TG_NAMES_MAX];
  memset(&rq, 0, sizeof rq);
  rq.method = m;
  rq.path = path;
  rq.path_len = strlen(path);
  rq.claims = &claims;
  if (a.ns && m && !m->ns.len)
    printf("note: --namespace ignored: the request of %s has no namespace "
           "(cluster scope)\n",
           m->name);
  else if (a.ns)
    rq.ns = (tg_slice){(const uint8_t *)a.ns, strlen(a.ns)};
  if (a.task_queues.n && m && !m->ntask_queues)
    printf("note: --task-queue ignored: the request of %s names no task "
           "queue (allow rules' task_queues do not restrict it, deny rules' "
           "do not match it)\n",
           m->name);
  else
    rq.task_queues = names_of(&a.task_queues, tqs);
  if (a.workflow_types.n && m && !m->nworkflow_types)
    printf("note: --workflow-type ignored: the request of %s names no "
           "workflow type (allow rules' workflow_types do not restrict it, "
           "deny rules' do not match it)\n",
           m->name);
  else
    rq.workflow_types = names_of(&a.workflow_types, wts);
  if (rq.task_queues.overflow || rq.workflow_types.overflow)
    printf("note: more than %d distinct task queues or workflow types, as "
           "a live call would read them: allow rules naming that list do not "
           "match, deny rules do\n",
           TG_NAMES_MAX);
  printf("policy (mode %s):\n", cfg->authz_mode == TG_AUTHZ_ENFORCE  ? "enforce"
                                : cfg->authz_mode == TG_AUTHZ_SHADOW ? "shadow"
                                                                     : "off");
  tg_authz_verdict v;
  tg_policy_decide(policy, &rq, &v, print_line, NULL);
  printf("decision: %s: %s\n", v.allow ? "ALLOW" : "DENY", v.reason);
  if (cfg->authz_mode == TG_AUTHZ_OFF)
    printf("note: authorization.mode is off, so a live call would pass\n");
  rc = v.allow ? 0 : 1;
end:
  tg_claims_clear(&claims);
  tg_hdrs_clear(&h);
  tg_policy_free(policy);
  tg_authn_local_free(local);
  tg_authn_free(authn);
  tg_keystore_free(ks);
  if (base)
    event_base_free(base);
  tg_config_free(cfg);
  free(errors);
  return rc;
}
