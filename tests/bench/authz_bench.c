/*
 * authz_bench: authorizations per second on one core, through tgate's own
 * code (not a test). Each authorization is what the relay does for a call:
 * tg_authn_call() with the worker's tg_authn_local (its token cache), then
 * tg_authz_decide() twice: once on the headers (NEED_MESSAGE) and once with
 * the first message (ALLOW), with the relay's terse_allow (no access log,
 * no debug log, no audit of allows: allow reasons are not formatted).
 *
 * Usage: authz_bench DIR [SECONDS [RUN]]
 *   DIR is what tests/bench/bodies.js wrote: jwt-rs.pub.pem, jwt-es.pub.pem,
 *   token.txt, tokens-rs256.txt, tokens-es256.txt, describe.bin, start.bin.
 * Runs, each for about SECONDS (default 2) of CPU time:
 *   cached_describe, cached_start: one repeated token (a cache hit), the
 *     DescribeNamespace / ~1 KiB StartWorkflowExecution request;
 *   fresh_rs256, fresh_es256: every call a different token (a signature
 *     verification and a cache insert); a pass over the token list uses a
 *     new tg_authn_local, so no token is ever a cache hit.
 * RUN, when given, does only the run of that name (for profiling).
 * Prints one JSON object: per run, calls, CPU seconds and calls per CPU
 * second. Exits 1 when anything is not allowed.
 */
#include <errno.h>
#include <event2/event.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "tg_accesslog.h"
#include "tg_authn.h"
#include "tg_authz.h"
#include "tg_config.h"
#include "tg_hdrs.h"
#include "tg_keystore.h"
#include "tg_log.h"

#define DESCRIBE_PATH                                                          \
  "/temporal.api.workflowservice.v1.WorkflowService/DescribeNamespace"
#define START_PATH                                                             \
  "/temporal.api.workflowservice.v1.WorkflowService/StartWorkflowExecution"

/* The same policy as scripts/bench.sh gives the gateway. */
static const char config_fmt[] =
    "listen:\n"
    "  address: \"127.0.0.1:1\"\n"
    "upstream:\n"
    "  addresses: [\"127.0.0.1:2\"]\n"
    "workers: 1\n"
    "authentication:\n"
    "  require: [jwt]\n"
    "  jwt:\n"
    "    key_sources: [\"pem:%s/jwt-rs.pub.pem#bench-rs\",\n"
    "                  \"pem:%s/jwt-es.pub.pem#bench-es\"]\n"
    "    issuer: \"https://issuer.bench.local\"\n"
    "    audience: temporal\n"
    "authorization:\n"
    "  mode: enforce\n"
    "  disabled_methods: [\"WorkflowService/TerminateWorkflowExecution\"]\n"
    "  rules:\n"
    "    - effect: deny\n"
    "      methods: [\"@admin\"]\n"
    "      namespaces: [\"prod-*\"]\n"
    "    - effect: allow\n"
    "      methods: [\"@worker\"]\n"
    "      namespaces: [\"bench\"]\n"
    "      subjects: [\"bench-worker-*\"]\n"
    "      task_queues: [\"bench-*\"]\n"
    "    - effect: deny\n"
    "      methods: [\"WorkflowService/StartWorkflowExecution\"]\n"
    "      namespaces: [\"bench\"]\n"
    "      workflow_types: [\"Forbidden*\"]\n"
    "logging:\n"
    "  level: warn\n";

typedef struct bench {
  tg_authn *authn;
  tg_authz *authz;
  tg_authn_counters *counters;
  int terse_allow; /* as the relay sets it: nobody reads allow reasons */
  const char *path;
  const uint8_t *msg; /* the first message, without the 5-byte prefix */
  size_t msg_len;
} bench;

typedef struct result {
  const char *name;
  uint64_t calls;
  double cpu_s;
} result;

static double cpu_now(void) {
  struct timespec ts;
  clock_gettime(CLOCK_PROCESS_CPUTIME_ID, &ts);
  return (double)ts.tv_sec + (double)ts.tv_nsec / 1e9;
}

/* Reads a whole file into a NUL-terminated heap buffer; NULL on failure. */
static char *slurp(const char *dir, const char *name, size_t *len) {
  char path[4096];
  snprintf(path, sizeof path, "%s/%s", dir, name);
  FILE *f = fopen(path, "rb");
  char *buf = NULL;
  size_t cap = 0, n = 0;
  if (!f) {
    fprintf(stderr, "authz_bench: %s: %s\n", path, strerror(errno));
    return NULL;
  }
  for (;;) {
    if (n + 65536 + 1 > cap) {
      cap = cap ? cap * 2 : 131072;
      char *p = realloc(buf, cap);
      if (!p)
        goto fail;
      buf = p;
    }
    size_t r = fread(buf + n, 1, cap - n - 1, f);
    n += r;
    if (r == 0)
      break;
  }
  if (ferror(f))
    goto fail;
  fclose(f);
  buf[n] = '\0';
  *len = n;
  return buf;
fail:
  fprintf(stderr, "authz_bench: cannot read %s\n", path);
  fclose(f);
  free(buf);
  return NULL;
}

/* Builds the request headers of a gRPC call carrying token (len bytes). */
static int make_headers(tg_hdrs *h, const char *path, const char *token,
                        size_t len) {
  char bearer[8192];
  if (len + 8 > sizeof bearer)
    return -1;
  memcpy(bearer, "Bearer ", 7);
  memcpy(bearer + 7, token, len);
  bearer[7 + len] = '\0';
  tg_hdrs_init(h);
  if (tg_hdrs_add_str(h, ":method", "POST") ||
      tg_hdrs_add_str(h, ":scheme", "http") ||
      tg_hdrs_add_str(h, ":path", path) ||
      tg_hdrs_add_str(h, ":authority", "127.0.0.1:7233") ||
      tg_hdrs_add_str(h, "content-type", "application/grpc") ||
      tg_hdrs_add_str(h, "te", "trailers") ||
      tg_hdrs_add_str(h, "authorization", bearer))
    return -1;
  return 0;
}

/* One call, as the relay makes it. 0 when allowed. */
static int authorize(const bench *b, tg_authn_local *l, const tg_hdrs *h,
                     int64_t now) {
  tg_claims c;
  const char *reason = "";
  tg_claims_init(&c);
  int rv = -1;
  if (tg_authn_call(b->authn, l, h, NULL, NULL, now, &c, &reason) !=
      TG_AUTHN_OK) {
    fprintf(stderr, "authz_bench: not authenticated: %s\n", reason);
    goto end;
  }
  tg_call_info call = {.headers = h,
                       .path = b->path,
                       .path_len = strlen(b->path),
                       .claims = &c,
                       .terse_allow = b->terse_allow};
  tg_verdict v;
  if (tg_authz_decide(b->authz, &call, &v) != TG_AUTHZ_NEED_MESSAGE) {
    fprintf(stderr, "authz_bench: headers-only ask did not wait for the "
                    "message\n");
    goto end;
  }
  call.msg = b->msg;
  call.msg_len = b->msg_len;
  call.have_msg = 1;
  if (tg_authz_decide(b->authz, &call, &v) != TG_AUTHZ_ALLOW) {
    fprintf(stderr, "authz_bench: denied: %s\n", v.reason);
    goto end;
  }
  rv = 0;
end:
  tg_claims_clear(&c);
  return rv;
}

/* A repeated token: after the first call every one is a cache hit. */
static int run_cached(const bench *b, const char *token, size_t len,
                      double seconds, result *r) {
  tg_hdrs h;
  tg_authn_local *l = tg_authn_local_new(b->authn, b->counters);
  int rv = -1;
  if (!l || make_headers(&h, b->path, token, len) != 0)
    goto end;
  int64_t now = (int64_t)time(NULL);
  if (authorize(b, l, &h, now) != 0)
    goto end;
  double t0 = cpu_now(), t1 = t0;
  uint64_t n = 0;
  while (t1 - t0 < seconds) {
    for (int i = 0; i < 8192; i++)
      if (authorize(b, l, &h, now) != 0)
        goto end;
    n += 8192;
    t1 = cpu_now();
  }
  r->calls = n;
  r->cpu_s = t1 - t0;
  rv = 0;
end:
  tg_hdrs_clear(&h);
  tg_authn_local_free(l);
  return rv;
}

/* Every call a different token; each pass over them with an empty cache. */
static int run_fresh(const bench *b, char *tokens, double seconds, result *r) {
  size_t ntok = 0, cap = 0;
  tg_hdrs *hs = NULL;
  int rv = -1;
  for (char *line = strtok(tokens, "\n"); line; line = strtok(NULL, "\n")) {
    if (ntok == cap) {
      cap = cap ? cap * 2 : 1024;
      tg_hdrs *p = realloc(hs, cap * sizeof *hs);
      if (!p)
        goto end;
      hs = p;
    }
    if (make_headers(&hs[ntok], b->path, line, strlen(line)) != 0)
      goto end;
    ntok++;
  }
  if (ntok == 0) {
    fprintf(stderr, "authz_bench: no tokens\n");
    goto end;
  }
  int64_t now = (int64_t)time(NULL);
  double spent = 0;
  uint64_t n = 0;
  while (spent < seconds) {
    tg_authn_local *l = tg_authn_local_new(b->authn, b->counters);
    if (!l)
      goto end;
    double t0 = cpu_now();
    for (size_t i = 0; i < ntok; i++)
      if (authorize(b, l, &hs[i], now) != 0) {
        tg_authn_local_free(l);
        goto end;
      }
    spent += cpu_now() - t0;
    n += ntok;
    tg_authn_local_free(l);
  }
  r->calls = n;
  r->cpu_s = spent;
  rv = 0;
end:
  for (size_t i = 0; i < ntok; i++)
    tg_hdrs_clear(&hs[i]);
  free(hs);
  return rv;
}

int main(int argc, char **argv) {
  if (argc < 2) {
    fprintf(stderr, "usage: authz_bench DIR [SECONDS [RUN]]\n");
    return 2;
  }
  const char *dir = argv[1];
  double seconds = argc > 2 ? atof(argv[2]) : 2.0;
  if (seconds <= 0)
    seconds = 2.0;
  const char *only = argc > 3 ? argv[3] : NULL;
  int rc = 1;
  char *cfgtext = NULL, *errors = NULL, *token = NULL, *rs = NULL, *es = NULL;
  char *describe = NULL, *start = NULL, err[512];
  size_t len, toklen, dlen, slen;
  tg_config *cfg = NULL;
  struct event_base *base = NULL;
  tg_keystore *ks = NULL;
  bench b = {0};
  tg_authn_counters counters = {0};
  result res[4] = {{.name = "cached_describe"},
                   {.name = "cached_start"},
                   {.name = "fresh_rs256"},
                   {.name = "fresh_es256"}};

  tg_log_set_level(TG_LOG_WARN);
  len = sizeof config_fmt + 2 * strlen(dir);
  if (!(cfgtext = malloc(len)))
    goto end;
  snprintf(cfgtext, len, config_fmt, dir, dir);
  if (tg_config_parse(cfgtext, strlen(cfgtext), "authz_bench", &cfg, &errors) !=
      0) {
    fprintf(stderr, "authz_bench: config: %s", errors ? errors : "?\n");
    goto end;
  }
  if (!(token = slurp(dir, "token.txt", &toklen)) ||
      !(rs = slurp(dir, "tokens-rs256.txt", &len)) ||
      !(es = slurp(dir, "tokens-es256.txt", &len)) ||
      !(describe = slurp(dir, "describe.bin", &dlen)) ||
      !(start = slurp(dir, "start.bin", &slen)))
    goto end;
  while (toklen && (token[toklen - 1] == '\n' || token[toklen - 1] == '\r'))
    token[--toklen] = '\0';
  if (dlen < 5 || slen < 5) {
    fprintf(stderr, "authz_bench: bodies too short\n");
    goto end;
  }

  base = event_base_new();
  if (!base ||
      !(ks = tg_keystore_new(base, cfg->authn->jwt, NULL, err, sizeof err))) {
    fprintf(stderr, "authz_bench: keystore: %s\n", base ? err : "no loop");
    goto end;
  }
  /* PEM sources are read at once; run the loop briefly in case they are
   * published from it. */
  for (int i = 0; i < 100; i++) {
    uint64_t gen;
    tg_keyset *k = tg_keystore_get(ks, &gen);
    if (k) {
      tg_keyset_unref(k);
      break;
    }
    struct timeval tv = {0, 50000};
    event_base_loopexit(base, &tv);
    event_base_dispatch(base);
  }
  b.counters = &counters;
  b.terse_allow =
      !(tg_accesslog_enabled() || tg_log_enabled(TG_LOG_DEBUG) ||
        cfg->audit_include_allows || cfg->authz_mode == TG_AUTHZ_SHADOW);
  if (!(b.authn = tg_authn_new(cfg, ks, err, sizeof err)) ||
      !(b.authz = tg_authz_new(cfg, err, sizeof err))) {
    fprintf(stderr, "authz_bench: %s\n", err);
    goto end;
  }

  for (int i = 0; i < 4; i++) {
    int describe_body = i != 1;
    b.path = describe_body ? DESCRIBE_PATH : START_PATH;
    b.msg = (const uint8_t *)(describe_body ? describe : start) + 5;
    b.msg_len = (describe_body ? dlen : slen) - 5;
    if (only && strcmp(only, res[i].name) != 0)
      continue;
    if (i < 2 ? run_cached(&b, token, toklen, seconds, &res[i])
              : run_fresh(&b, i == 2 ? rs : es, seconds, &res[i]))
      goto end;
  }

  printf("{");
  for (int i = 0, first = 1; i < 4; i++) {
    if (res[i].calls == 0)
      continue;
    printf("%s\"%s\":{\"calls\":%llu,\"cpu_s\":%.4f,\"per_s\":%.1f}",
           first ? "" : ",", res[i].name, (unsigned long long)res[i].calls,
           res[i].cpu_s, (double)res[i].calls / res[i].cpu_s);
    first = 0;
  }
  printf("}\n");
  rc = 0;
end:
  tg_authz_free(b.authz);
  tg_authn_free(b.authn);
  tg_keystore_free(ks);
  if (base)
    event_base_free(base);
  tg_config_free(cfg);
  free(errors);
  free(cfgtext);
  free(token);
  free(rs);
  free(es);
  free(describe);
  free(start);
  return rc;
}
