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
#include "tg_methods.h"
#include "tg_metrics.h"
#include "tg_relay.h"
#include "tg_reload.h"
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

/* A Prometheus label value: backslash, double quote and newline escaped. */
static void label(struct evbuffer *b, const char *v) {
  for (; *v; v++) {
    if (*v == '\\' || *v == '"')
      evbuffer_add_printf(b, "\\%c", *v);
    else if (*v == '\n')
      evbuffer_add(b, "\\n", 2);
    else
      evbuffer_add(b, v, 1);
  }
}

/* service="...",method="..." of a method index + 1 (0: unknown) into buf
 * (method paths are known names: nothing to escape). */
static const char *method_labels(char *buf, size_t len, uint32_t midx) {
  const tg_method *m = midx ? tg_method_at(midx - 1) : NULL;
  const char *p = m ? m->path + 1 : NULL;
  const char *slash = p ? strrchr(p, '/') : NULL;
  if (!slash)
    snprintf(buf, len, "service=\"unknown\",method=\"unknown\"");
  else
    snprintf(buf, len, "service=\"%.*s\",method=\"%s\"", (int)(slash - p), p,
             slash + 1);
  return buf;
}

static void calls_by(struct evbuffer *b, tg_app *app) {
  tg_callstat *v = NULL;
  size_t len = 0, cap = 0;
  for (uint32_t i = 0; i < app->nworkers; i++)
    if (app->workers[i] && tg_callstats_collect(app->workers[i]->stats.calls_by,
                                                &v, &len, &cap) != 0)
      break;
  len = tg_callstats_merge(v, len);
  evbuffer_add_printf(
      b, "# HELP tgate_grpc_calls_total Calls by gRPC service and method, "
         "namespace (\"other\" beyond admin.metrics_max_namespaces), "
         "decision and final grpc-status (\"none\": reset).\n"
         "# TYPE tgate_grpc_calls_total counter\n");
  for (size_t i = 0; i < len; i++) {
    char ml[256];
    evbuffer_add_printf(b, "tgate_grpc_calls_total{%s,namespace=\"",
                        method_labels(ml, sizeof ml, v[i].method));
    label(b, tg_nslabels_name(app->nslabels, v[i].ns_slot));
    if (v[i].status >= TG_STATUS_BUCKETS - 1)
      evbuffer_add_printf(b, "\",decision=\"%s\",grpc_status=\"none\"} %llu\n",
                          tg_relay_decision_name((int)v[i].decision),
                          (unsigned long long)v[i].n);
    else
      evbuffer_add_printf(b, "\",decision=\"%s\",grpc_status=\"%u\"} %llu\n",
                          tg_relay_decision_name((int)v[i].decision),
                          v[i].status, (unsigned long long)v[i].n);
  }
  free(v);
}

/* One histogram series: the sum of the nh histograms hs (one per worker);
 * nothing while it counted nothing. */
static void histogram(struct evbuffer *b, const char *name,
                      const tg_hist_spec *spec, const tg_hist *const *hs,
                      size_t nh, const char *labels) {
  uint64_t bucket[TG_HIST_MAX_BUCKETS + 1] = {0}, sum = 0, count = 0;
  for (size_t i = 0; i < nh; i++) {
    for (size_t k = 0; k <= spec->n; k++)
      bucket[k] +=
          atomic_load_explicit(&hs[i]->bucket[k], memory_order_relaxed);
    sum += atomic_load_explicit(&hs[i]->sum_ns, memory_order_relaxed);
    count += atomic_load_explicit(&hs[i]->count, memory_order_relaxed);
  }
  if (!count)
    return;
  uint64_t cum = 0;
  for (size_t k = 0; k <= spec->n; k++) {
    cum += bucket[k];
    if (k < spec->n)
      evbuffer_add_printf(b, "%s_bucket{%s%sle=\"%g\"} %llu\n", name, labels,
                          *labels ? "," : "", (double)spec->le_ns[k] / 1e9,
                          (unsigned long long)cum);
    else
      evbuffer_add_printf(b, "%s_bucket{%s%sle=\"+Inf\"} %llu\n", name, labels,
                          *labels ? "," : "", (unsigned long long)cum);
  }
  const char *o = *labels ? "{" : "", *c = *labels ? "}" : "";
  evbuffer_add_printf(b, "%s_sum%s%s%s %.9f\n%s_count%s%s%s %llu\n", name, o,
                      labels, c, (double)sum / 1e9, name, o, labels, c,
                      (unsigned long long)count);
}

static void latencies(struct evbuffer *b, tg_app *app) {
  const tg_hist *hs[256];
  size_t nh = 0;
  for (uint32_t i = 0; i < app->nworkers && nh < 256; i++)
    if (app->workers[i])
      hs[nh++] = &app->workers[i]->stats.added;
  evbuffer_add_printf(
      b, "# HELP tgate_added_latency_seconds Time tgate itself adds to a "
         "forwarded call: from the decision to the request leaving for the "
         "frontend, plus from the frontend's response headers to them "
         "leaving for the client.\n"
         "# TYPE tgate_added_latency_seconds histogram\n");
  histogram(b, "tgate_added_latency_seconds", &tg_hist_added, hs, nh, "");
  evbuffer_add_printf(
      b, "# HELP tgate_upstream_latency_seconds Time from a call's request "
         "leaving for the frontend to the end of its response, by method.\n"
         "# TYPE tgate_upstream_latency_seconds histogram\n");
  size_t nm = tg_methods_count() + 1;
  for (size_t m = 0; m < nm; m++) {
    nh = 0;
    for (uint32_t i = 0; i < app->nworkers && nh < 256; i++)
      if (app->workers[i])
        hs[nh++] = &app->workers[i]->stats.upstream[m];
    char labels[256];
    method_labels(labels, sizeof labels, (uint32_t)m);
    histogram(b, "tgate_upstream_latency_seconds", &tg_hist_upstream, hs, nh,
              labels);
  }
}

/* Prometheus text format, version 0.0.4. */
static void metrics(struct evhttp_request *req, tg_app *app) {
  struct evbuffer *b = evbuffer_new();
  if (!b) {
    evhttp_send_error(req, 500, NULL);
    return;
  }
  evbuffer_add_printf(b, "# HELP tgate_calls_total Calls by tgate's decision.\n"
                         "# TYPE tgate_calls_total counter\n");
  for (int d = 1; d < TG_DECISION_COUNT; d++)
    evbuffer_add_printf(
        b, "tgate_calls_total{decision=\"%s\"} %llu\n",
        tg_relay_decision_name(d),
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
      "# TYPE tgate_upstream_reset_rotations_total counter\n"
      "tgate_upstream_reset_rotations_total %llu\n"
      "# TYPE tgate_upstream_connections_ready gauge\n"
      "tgate_upstream_connections_ready %d\n",
      (unsigned long long)sum(app, STAT(bytes_in)),
      (unsigned long long)sum(app, STAT(bytes_out)),
      (unsigned long long)sum(app, STAT(conns_accepted)),
      (long long)sum_int(app, STAT(conns_open)),
      (long long)sum_int(app, STAT(streams_open)),
      (unsigned long long)sum(app, STAT(upstream_connect_failures)),
      (unsigned long long)sum(app, STAT(upstream_rotations)),
      atomic_load(&app->upstream_ready));
  if (app->gen->authn) {
    evbuffer_add_printf(b,
                        "# TYPE tgate_token_cache_hits_total counter\n"
                        "tgate_token_cache_hits_total %llu\n"
                        "# TYPE tgate_token_cache_misses_total counter\n"
                        "tgate_token_cache_misses_total %llu\n"
                        "# TYPE tgate_tokens_verified_total counter\n"
                        "tgate_tokens_verified_total %llu\n"
                        "# TYPE tgate_authentication_rejected_total counter\n"
                        "tgate_authentication_rejected_total %llu\n",
                        (unsigned long long)sum(app, STAT(authn.cache_hits)),
                        (unsigned long long)sum(app, STAT(authn.cache_misses)),
                        (unsigned long long)sum(app, STAT(authn.verified)),
                        (unsigned long long)sum(app, STAT(authn.rejected)));
  }
  if (app->gen->keystore) {
    tg_keystore_stats ks;
    tg_keystore_stats_get(app->gen->keystore, &ks);
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
  if (cert_seconds_left(app->gen->server_ctx, &left) == 0)
    evbuffer_add_printf(
        b, "tgate_certificate_expiry_seconds{role=\"server\"} %.0f\n", left);
  if (cert_seconds_left(app->gen->client_ctx, &left) == 0)
    evbuffer_add_printf(
        b, "tgate_certificate_expiry_seconds{role=\"upstream_client\"} %.0f\n",
        left);
  calls_by(b, app);
  latencies(b, app);
  static const char *const limits[TG_LIMIT_COUNT] = {
      "connections", "header_list_size", "message_size", "calls_per_subject"};
  evbuffer_add_printf(b, "# HELP tgate_limit_refusals_total Calls (and "
                         "connections) refused by a limit.\n"
                         "# TYPE tgate_limit_refusals_total counter\n");
  for (int l = 0; l < TG_LIMIT_COUNT; l++)
    evbuffer_add_printf(
        b, "tgate_limit_refusals_total{limit=\"%s\"} %llu\n", limits[l],
        (unsigned long long)sum(
            app, STAT(limited) + (size_t)l * sizeof(atomic_uint_least64_t)));
  tg_reload_stats rs;
  tg_reload_stats_get(app->reload, &rs);
  evbuffer_add_printf(
      b,
      "# HELP tgate_config_reloads_total Configuration reloads by result.\n"
      "# TYPE tgate_config_reloads_total counter\n"
      "tgate_config_reloads_total{result=\"success\"} %llu\n"
      "tgate_config_reloads_total{result=\"failure\"} %llu\n"
      "# HELP tgate_config_last_reload_successful Whether the last reload "
      "succeeded (1 before any).\n"
      "# TYPE tgate_config_last_reload_successful gauge\n"
      "tgate_config_last_reload_successful %d\n"
      "# HELP tgate_config_last_reload_success_timestamp_seconds When the "
      "configuration in use was loaded (0: the one tgate started with).\n"
      "# TYPE tgate_config_last_reload_success_timestamp_seconds gauge\n"
      "tgate_config_last_reload_success_timestamp_seconds %lld\n"
      "# HELP tgate_config_generation The configuration in use (1 at "
      "start, +1 per attempted reload that built).\n"
      "# TYPE tgate_config_generation gauge\n"
      "tgate_config_generation %llu\n",
      (unsigned long long)rs.succeeded, (unsigned long long)rs.failed,
      rs.failed == 0 && rs.succeeded == 0 ? 1 : rs.last_ok,
      (long long)rs.last_success, (unsigned long long)rs.generation);
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
  if (a->app->gen->keystore) {
    tg_keystore_stats ks;
    tg_keystore_stats_get(a->app->gen->keystore, &ks);
    if (ks.nkeys == 0) {
      reply(req, 503, "Service Unavailable",
            "not ready: no JWT verification key has been loaded yet");
      return;
    }
  }
  if (a->app->audit && a->app->gen->cfg->audit_fail_closed &&
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
