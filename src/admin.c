#include "tg_admin.h"

#include <event2/buffer.h>
#include <event2/http.h>
#include <stddef.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include <openssl/asn1.h>
#include <openssl/ssl.h>
#include <openssl/x509.h>

#include "tg_audit.h"
#include "tg_authn.h"
#include "tg_keystore.h"
#include "tg_upstream.h"
#include "tg_worker.h"

struct tg_admin {
  tg_app *app;
  struct evhttp *http;
};

static void reply(struct evhttp_request *req, int code, const char *reason,
                  const char *body) {
  struct evbuffer *b = evbuffer_new();
  if (!b) {
    evhttp_send_error(req, 500, NULL);
    return;
  }
  evbuffer_add_printf(b, "%s\n", body);
  evhttp_add_header(evhttp_request_get_output_headers(req), "Content-Type",
                    "text/plain; charset=utf-8");
  evhttp_add_header(evhttp_request_get_output_headers(req), "Cache-Control",
                    "no-store");
  evhttp_send_reply(req, code, reason, b);
  evbuffer_free(b);
}

static uint64_t sum(tg_app *app, size_t off) {
  uint64_t n = 0;
  for (uint32_t i = 0; i < app->nworkers; i++) {
    if (!app->workers[i])
      continue;
    const atomic_uint_least64_t *c =
        (const atomic_uint_least64_t *)((const char *)&app->workers[i]->stats +
                                        off);
    n += atomic_load_explicit(c, memory_order_relaxed);
  }
  return n;
}

static int64_t sum_int(tg_app *app, size_t off) {
  int64_t n = 0;
  for (uint32_t i = 0; i < app->nworkers; i++)
    if (app->workers[i])
      n += atomic_load_explicit(
          (const atomic_int *)((const char *)&app->workers[i]->stats + off),
          memory_order_relaxed);
  return n;
}

/* Seconds until the certificate of ctx expires (negative: expired). */
static int cert_seconds_left(SSL_CTX *ctx, double *out) {
  X509 *x = ctx ? SSL_CTX_get0_certificate(ctx) : NULL;
  int days, secs;
  if (!x || !ASN1_TIME_diff(&days, &secs, NULL, X509_get0_notAfter(x)))
    return -1;
  *out = (double)days * 86400.0 + secs;
  return 0;
}

#define STAT(field) offsetof(tg_worker_stats, field)

/* Prometheus text format, version 0.0.4. */
static void metrics(struct evhttp_request *req, tg_app *app) {
  static const char *const decisions[] = {
      "none",    "allowed",     "shadow_denied", "denied", "unauthenticated",
      "invalid", "unavailable", "local"};
  struct evbuffer *b = evbuffer_new();
  if (!b) {
    evhttp_send_error(req, 500, NULL);
    return;
  }
  evbuffer_add_printf(b, "# HELP tgate_calls_total Calls by tgate's decision.\n"
                         "# TYPE tgate_calls_total counter\n");
  for (int d = 1; d < 8; d++)
    evbuffer_add_printf(
        b, "tgate_calls_total{decision=\"%s\"} %llu\n", decisions[d],
        (unsigned long long)sum(
            app, STAT(calls) + (size_t)d * sizeof(atomic_uint_least64_t)));
  evbuffer_add_printf(b, "# HELP tgate_calls_by_status_total Calls by final "
                         "grpc-status (\"none\": reset).\n"
                         "# TYPE tgate_calls_by_status_total counter\n");
  for (int st = 0; st < TG_STATUS_BUCKETS; st++) {
    uint64_t n =
        sum(app, STAT(status) + (size_t)st * sizeof(atomic_uint_least64_t));
    if (st == TG_STATUS_BUCKETS - 1)
      evbuffer_add_printf(
          b, "tgate_calls_by_status_total{grpc_status=\"none\"} %llu\n",
          (unsigned long long)n);
    else
      evbuffer_add_printf(
          b, "tgate_calls_by_status_total{grpc_status=\"%d\"} %llu\n", st,
          (unsigned long long)n);
  }
  evbuffer_add_printf(
      b,
      "# TYPE tgate_request_bytes_total counter\ntgate_request_bytes_total "
      "%llu\n"
      "# TYPE tgate_response_bytes_total counter\ntgate_response_bytes_total "
      "%llu\n"
      "# TYPE tgate_connections_accepted_total counter\n"
      "tgate_connections_accepted_total %llu\n"
      "# TYPE tgate_connections_open gauge\ntgate_connections_open %lld\n"
      "# TYPE tgate_streams_open gauge\ntgate_streams_open %lld\n"
      "# TYPE tgate_upstream_connect_failures_total counter\n"
      "tgate_upstream_connect_failures_total %llu\n"
      "# TYPE tgate_upstream_connections_ready gauge\n"
      "tgate_upstream_connections_ready %d\n",
      (unsigned long long)sum(app, STAT(bytes_in)),
      (unsigned long long)sum(app, STAT(bytes_out)),
      (unsigned long long)sum(app, STAT(conns_accepted)),
      (long long)sum_int(app, STAT(conns_open)),
      (long long)sum_int(app, STAT(streams_open)),
      (unsigned long long)sum(app, STAT(upstream_connect_failures)),
      atomic_load(&app->upstream_ready));
  if (app->authn) {
    tg_authn_local_stats t = {0}, w;
    for (uint32_t i = 0; i < app->nworkers; i++) {
      if (!app->workers[i] || !app->workers[i]->authn)
        continue;
      tg_authn_local_stats_get(app->workers[i]->authn, &w);
      t.cache_hits += w.cache_hits;
      t.cache_misses += w.cache_misses;
      t.verified += w.verified;
      t.rejected += w.rejected;
    }
    evbuffer_add_printf(
        b,
        "# TYPE tgate_token_cache_hits_total counter\n"
        "tgate_token_cache_hits_total %llu\n"
        "# TYPE tgate_token_cache_misses_total counter\n"
        "tgate_token_cache_misses_total %llu\n"
        "# TYPE tgate_tokens_verified_total counter\n"
        "tgate_tokens_verified_total %llu\n"
        "# TYPE tgate_authentication_rejected_total counter\n"
        "tgate_authentication_rejected_total %llu\n",
        (unsigned long long)t.cache_hits, (unsigned long long)t.cache_misses,
        (unsigned long long)t.verified, (unsigned long long)t.rejected);
  }
  if (app->keystore) {
    tg_keystore_stats ks;
    tg_keystore_stats_get(app->keystore, &ks);
    evbuffer_add_printf(
        b,
        "# TYPE tgate_jwks_refreshes_total counter\ntgate_jwks_refreshes_total "
        "%llu\n"
        "# TYPE tgate_jwks_failures_total counter\ntgate_jwks_failures_total "
        "%llu\n"
        "# TYPE tgate_jwks_keys gauge\ntgate_jwks_keys %zu\n"
        "# HELP tgate_jwks_age_seconds Age of the key set in use (-1: none).\n"
        "# TYPE tgate_jwks_age_seconds gauge\ntgate_jwks_age_seconds %lld\n",
        (unsigned long long)ks.refreshes, (unsigned long long)ks.failures,
        ks.nkeys, ks.loaded_at ? (long long)(time(NULL) - ks.loaded_at) : -1LL);
  }
  tg_upstream_metrics(b);
  double left;
  evbuffer_add_printf(b, "# HELP tgate_certificate_expiry_seconds Seconds "
                         "until a certificate tgate presents expires.\n"
                         "# TYPE tgate_certificate_expiry_seconds gauge\n");
  if (cert_seconds_left(app->server_ctx, &left) == 0)
    evbuffer_add_printf(
        b, "tgate_certificate_expiry_seconds{role=\"server\"} %.0f\n", left);
  if (cert_seconds_left(app->client_ctx, &left) == 0)
    evbuffer_add_printf(
        b, "tgate_certificate_expiry_seconds{role=\"upstream_client\"} %.0f\n",
        left);
  evhttp_add_header(evhttp_request_get_output_headers(req), "Content-Type",
                    "text/plain; version=0.0.4; charset=utf-8");
  evhttp_send_reply(req, 200, "OK", b);
  evbuffer_free(b);
}

static void handle(struct evhttp_request *req, void *arg) {
  tg_admin *a = arg;
  const char *path = evhttp_uri_get_path(evhttp_request_get_evhttp_uri(req));
  if (!path)
    path = "/";
  int is_live = strcmp(path, "/health/live") == 0;
  int is_ready = strcmp(path, "/health/ready") == 0;
  if (strcmp(path, "/metrics") == 0 &&
      evhttp_request_get_command(req) == EVHTTP_REQ_GET) {
    metrics(req, a->app);
    return;
  }
  if (!is_live && !is_ready) {
    reply(req, 404, "Not Found", "not found");
    return;
  }
  enum evhttp_cmd_type cmd = evhttp_request_get_command(req);
  if (cmd != EVHTTP_REQ_GET && cmd != EVHTTP_REQ_HEAD) {
    evhttp_add_header(evhttp_request_get_output_headers(req), "Allow",
                      "GET, HEAD");
    reply(req, 405, "Method Not Allowed", "method not allowed");
    return;
  }
  if (is_live) {
    reply(req, 200, "OK", "live");
    return;
  }
  if (atomic_load(&a->app->shutting_down)) {
    reply(req, 503, "Service Unavailable", "not ready: shutting down");
    return;
  }
  if (a->app->keystore) {
    tg_keystore_stats ks;
    tg_keystore_stats_get(a->app->keystore, &ks);
    if (ks.nkeys == 0) {
      reply(req, 503, "Service Unavailable",
            "not ready: no JWT verification key has been loaded yet");
      return;
    }
  }
  if (a->app->audit && a->app->cfg->audit_fail_closed &&
      !tg_audit_healthy(a->app->audit)) {
    reply(req, 503, "Service Unavailable",
          "not ready: the audit log cannot be written (fail_closed)");
    return;
  }
  int up = atomic_load(&a->app->upstream_ready);
  if (up <= 0) {
    reply(req, 503, "Service Unavailable",
          "not ready: no upstream frontend connection is up");
    return;
  }
  char body[96];
  snprintf(body, sizeof(body), "ready: %d upstream connection(s) up", up);
  reply(req, 200, "OK", body);
}

tg_admin *tg_admin_new(tg_app *app, const tg_addr *addr, char *err,
                       size_t errlen) {
  tg_admin *a = calloc(1, sizeof(*a));
  if (!a) {
    snprintf(err, errlen, "out of memory");
    return NULL;
  }
  a->app = app;
  a->http = evhttp_new(app->base);
  if (!a->http) {
    snprintf(err, errlen, "cannot create admin HTTP server");
    goto fail;
  }
  evhttp_set_allowed_methods(a->http, EVHTTP_REQ_GET | EVHTTP_REQ_HEAD |
                                          EVHTTP_REQ_POST | EVHTTP_REQ_PUT |
                                          EVHTTP_REQ_DELETE);
  evhttp_set_max_headers_size(a->http, 16 * 1024);
  evhttp_set_max_body_size(a->http, 1024);
  evhttp_set_timeout(a->http, 10);
  evhttp_set_gencb(a->http, handle, a);
  if (!evhttp_bind_socket_with_handle(a->http, addr->host, addr->port)) {
    snprintf(err, errlen, "cannot listen on admin address %s:%u", addr->host,
             addr->port);
    goto fail;
  }
  return a;
fail:
  tg_admin_free(a);
  return NULL;
}

void tg_admin_free(tg_admin *a) {
  if (!a)
    return;
  if (a->http)
    evhttp_free(a->http);
  free(a);
}
