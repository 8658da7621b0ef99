#include "tg_relay.h"

#include <event2/buffer.h>
#include <jansson.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "tg_accesslog.h"
#include "tg_audit.h"
#include "tg_authn.h"
#include "tg_authz.h"
#include "tg_callcount.h"
#include "tg_clock.h"
#include "tg_conn.h"
#include "tg_downstream.h"
#include "tg_gen.h"
#include "tg_grpc.h"
#include "tg_log.h"
#include "tg_methods.h"
#include "tg_metrics.h"
#include "tg_upstream.h"
#include "tg_worker.h"

/* Copies src into dst of size bytes, cut to fit: snprintf's "%.*s" without
 * the formatting engine, for the per-call fields. */
static void copy_str(char *dst, size_t size, const char *src) {
  size_t n = strnlen(src, size - 1);
  memcpy(dst, src, n);
  dst[n] = '\0';
}

/* A relay from the worker's spares (its buffers kept from an earlier call),
 * or a new one. Every field but the buffers is zero. */
static tg_relay *relay_alloc(tg_worker *w) {
  tg_relay *r = w->spare_relays;
  if (r) {
    w->spare_relays = r->next_spare;
    w->nspare_relays--;
    r->next_spare = NULL;
    return r;
  }
  return calloc(1, sizeof(*r));
}

/* Frees r for good (its buffers too). */
static void relay_destroy(tg_relay *r) {
  if (r->pend_timer)
    event_free(r->pend_timer);
  tg_bytequeue_free(&r->req_body);
  tg_bytequeue_free(&r->resp_body);
  tg_hdrs_clear(&r->req_hdrs);
  tg_hdrs_clear(&r->req_trailers);
  tg_hdrs_clear(&r->resp_hdrs);
  tg_hdrs_clear(&r->resp_trailers);
  free(r);
}

void tg_relay_free_spares(tg_worker *w) {
  tg_relay *r;
  while ((r = w->spare_relays) != NULL) {
    w->spare_relays = r->next_spare;
    relay_destroy(r);
  }
  w->nspare_relays = 0;
}

tg_relay *tg_relay_new(tg_h2conn *down, int32_t sid) {
  tg_relay *r = relay_alloc(down->w);
  if (!r)
    return NULL;
  r->w = down->w;
  r->down = down;
  r->down_sid = sid;
  r->down_open = 1;
  tg_claims_init(&r->claims);
  r->req_limit = SIZE_MAX;
  r->local_status = -1;
  copy_str(r->peer, sizeof r->peer, down->peer);
  r->t_start_ns = tg_mono_ns();
  LIST_INSERT_HEAD(&down->relays, r, down_link);
  atomic_fetch_add_explicit(&r->w->stats.streams_open, 1, memory_order_relaxed);
  return r;
}

const char *tg_relay_decision_name(int d) {
  static const char *const names[TG_DECISION_COUNT] = {
      "none",    "allowed",     "shadow_denied", "denied", "unauthenticated",
      "invalid", "unavailable", "local",         "limited"};
  return names[d >= 0 && d < TG_DECISION_COUNT ? d : 0];
}

/* The call's final grpc-status: what tgate answered, or the upstream's
 * trailers (or trailers-only headers); -1 when there is none. */
static int final_status(const tg_relay *r) {
  if (r->local_status >= 0)
    return r->local_status;
  size_t len;
  const char *v = tg_hdrs_get(&r->resp_trailers, "grpc-status", &len);
  if (!v)
    v = tg_hdrs_get(&r->resp_hdrs, "grpc-status", &len);
  if (!v || len == 0 || len > 3)
    return -1;
  int n = 0;
  for (size_t i = 0; i < len; i++) {
    if (v[i] < '0' || v[i] > '9')
      return -1;
    n = n * 10 + (v[i] - '0');
  }
  return n;
}

static void access_log(const tg_relay *r) {
  static const char *const kinds[] = {"client_cert", "jwt", "api_key",
                                      "plugin"};
  struct timespec ts;
  clock_gettime(CLOCK_MONOTONIC, &ts);
  uint64_t now = (uint64_t)ts.tv_sec * 1000000000u + (uint64_t)ts.tv_nsec;
  struct timespec wall;
  clock_gettime(CLOCK_REALTIME, &wall);
  struct tm tm;
  gmtime_r(&wall.tv_sec, &tm);
  char when[40];
  size_t n = strftime(when, sizeof when, "%Y-%m-%dT%H:%M:%S", &tm);
  snprintf(when + n, sizeof when - n, ".%03ldZ", wall.tv_nsec / 1000000);
  size_t plen = 0;
  const char *path = tg_hdrs_get(&r->req_hdrs, ":path", &plen);
  json_t *creds = json_array();
  for (unsigned i = 0; i < 4; i++)
    if (r->claims.kinds & (1u << i))
      json_array_append_new(creds, json_string(kinds[i]));
  int status = final_status(r);
  json_t *o = json_pack(
      "{s:s, s:s, s:s?, s:o, s:s%, s:s, s:s, s:s, s:o, s:f, s:I, s:I}", "time",
      when, "peer", r->peer, "subject", r->claims.subject, "credentials", creds,
      "method", path ? path : "", plen, "namespace", r->ns, "decision",
      tg_relay_decision_name(r->decision), "reason", r->reason, "grpc_status",
      status >= 0 ? json_integer(status) : json_null(), "duration_ms",
      (double)(now - r->t_start_ns) / 1e6, "bytes_in", (json_int_t)r->req_bytes,
      "bytes_out", (json_int_t)r->resp_bytes);
  if (!o)
    return;
  if (r->rst_code)
    json_object_set_new(o, "reset", json_integer(r->rst_code));
  char *line = json_dumps(o, JSON_COMPACT | JSON_PRESERVE_ORDER);
  if (line) {
    size_t len = strlen(line);
    line[len] = '\n'; /* json_dumps' NUL becomes the newline */
    tg_accesslog_write(line, len + 1);
    free(line);
  }
  json_decref(o);
}

static void count_call(const tg_relay *r) {
  tg_worker_stats *st = &r->w->stats;
  int status = final_status(r);
  int decision = r->decision < TG_DECISION_COUNT ? r->decision : 0;
  uint32_t sbucket =
      status >= 0 && status <= 16 ? (uint32_t)status : TG_STATUS_BUCKETS - 1;
  atomic_fetch_add_explicit(&st->calls[decision], 1, memory_order_relaxed);
  atomic_fetch_add_explicit(&st->status[sbucket], 1, memory_order_relaxed);
  atomic_fetch_add_explicit(&st->bytes_in, r->req_bytes, memory_order_relaxed);
  atomic_fetch_add_explicit(&st->bytes_out, r->resp_bytes,
                            memory_order_relaxed);
  atomic_fetch_sub_explicit(&st->streams_open, 1, memory_order_relaxed);

  size_t plen = 0;
  const char *path = tg_hdrs_get(&r->req_hdrs, ":path", &plen);
  const tg_method *m = path ? tg_method_find(path, plen) : NULL;
  uint32_t midx = m ? (uint32_t)(m - tg_method_at(0)) + 1 : 0;
  /* Only calls let through may give a namespace a label of its own. */
  int may_add =
      decision == TG_DECISION_ALLOWED || decision == TG_DECISION_SHADOW_DENIED;
  uint32_t slot =
      tg_nslabels_slot(r->w->app->nslabels, r->ns, strlen(r->ns), may_add);
  tg_callstats_add(st->calls_by, midx, slot, (uint32_t)decision, sbucket);
  if (r->t_decide_ns && r->t_up_sent_ns && r->t_up_resp_ns &&
      r->t_down_resp_ns && r->t_up_sent_ns >= r->t_decide_ns &&
      r->t_down_resp_ns >= r->t_up_resp_ns)
    tg_hist_observe(&st->added, &tg_hist_added,
                    (r->t_up_sent_ns - r->t_decide_ns) +
                        (r->t_down_resp_ns - r->t_up_resp_ns));
  if (r->t_up_sent_ns && r->t_up_end_ns >= r->t_up_sent_ns)
    tg_hist_observe(&st->upstream[midx], &tg_hist_upstream,
                    r->t_up_end_ns - r->t_up_sent_ns);
}

static void relay_free(tg_relay *r) {
  count_call(r);
  if (tg_accesslog_enabled())
    access_log(r);
  if (r->subject_counted)
    tg_callcount_release(r->w->app->callcount, r->claims.subject);
  tg_claims_clear(&r->claims);
  tg_gen_unref(r->gen);
  tg_worker *w = r->w;
  if (w->nspare_relays >= TG_RELAY_SPARES) {
    relay_destroy(r);
    return;
  }
  /* Kept for the worker's next call, buffers and timer included (allocation
   * was a sixth of the time per call). */
  tg_bytequeue req_body = r->req_body, resp_body = r->resp_body;
  struct event *pend_timer = r->pend_timer;
  tg_hdrs hdrs[4] = {r->req_hdrs, r->req_trailers, r->resp_hdrs,
                     r->resp_trailers};
  tg_bytequeue_reset(&req_body);
  tg_bytequeue_reset(&resp_body);
  if (pend_timer)
    event_del(pend_timer);
  for (int i = 0; i < 4; i++)
    tg_hdrs_reset(&hdrs[i]);
  memset(r, 0, sizeof *r);
  r->req_body = req_body;
  r->resp_body = resp_body;
  r->pend_timer = pend_timer;
  r->req_hdrs = hdrs[0];
  r->req_trailers = hdrs[1];
  r->resp_hdrs = hdrs[2];
  r->resp_trailers = hdrs[3];
  r->next_spare = w->spare_relays;
  w->spare_relays = r;
  w->nspare_relays++;
}

static void maybe_free(tg_relay *r) {
  if (!r->down_open && !r->up_open && !r->pending && !r->fwd_queued)
    relay_free(r);
}

void tg_relay_forward_queued(tg_h2conn *d) {
  tg_relay *r;
  while ((r = TAILQ_FIRST(&d->to_forward)) != NULL) {
    TAILQ_REMOVE(&d->to_forward, r, fwd_link);
    r->fwd_queued = 0;
    if (r->state == TG_RS_PENDING && r->down_open)
      tg_uppool_submit(r->w->pool, r);
    else
      maybe_free(r);
  }
}

/* Hop-by-hop fields never cross the gateway (RFC 9113 8.2.2); nghttp2 already
 * refuses most of them on receipt, this keeps the rule in one place. */
static int is_hop_by_hop(const nghttp2_nv *nv) {
  const char *n = (const char *)nv->name;
  switch (nv->namelen) { /* by length first: most fields match none */
  case 2:
    if (memcmp(n, "te", 2) == 0)
      return !(nv->valuelen == 8 && memcmp(nv->value, "trailers", 8) == 0);
    return 0;
  case 7:
    return memcmp(n, "upgrade", 7) == 0;
  case 10:
    return memcmp(n, "connection", 10) == 0 || memcmp(n, "keep-alive", 10) == 0;
  case 16:
    return memcmp(n, "proxy-connection", 16) == 0;
  case 17:
    return memcmp(n, "transfer-encoding", 17) == 0;
  default:
    return 0;
  }
}

/* Builds the forwarded view of h in place: hop-by-hop fields removed.
 * Returns the count, or -1 when memory runs out. */
static ssize_t forward_nv(tg_hdrs *h, nghttp2_nv **out) {
  nghttp2_nv *nv = tg_hdrs_nv(h);
  if (!nv)
    return -1;
  size_t n = 0;
  for (size_t i = 0; i < h->n; i++)
    if (!is_hop_by_hop(&nv[i]))
      nv[n++] = nv[i];
  *out = nv;
  return (ssize_t)n;
}

static int name_is(const nghttp2_nv *nv, const char *name) {
  size_t n = name ? strlen(name) : 0;
  return n && nv->namelen == n && memcmp(nv->name, name, n) == 0;
}

/* Is the client's field nv (a request header or trailer) kept from the
 * upstream? A client may not speak for tgate: temporal-principal-* and the
 * subject header tgate sets are dropped; the client's credential headers
 * (token_header and api_key_header) are dropped when forward_authorization
 * is strip or when tgate presents its own (upstream.credentials, which
 * also replaces any field of that name). */
static int request_field_dropped(const tg_relay *r, const nghttp2_nv *nv) {
  const tg_gen *g = r->gen;
  const tg_config *cfg = g->cfg;
  const char *token_header =
      cfg->authn ? cfg->authn->token_header : "authorization";
  const char *key_header = cfg->authn ? cfg->authn->api_key_header : NULL;
  int drop_creds =
      cfg->forward_authorization == TG_FWD_AUTH_STRIP || g->upstream_cred;
  if (nv->namelen >= 19 && memcmp(nv->name, "temporal-principal-", 19) == 0)
    return 1;
  if (name_is(nv, cfg->subject_header))
    return 1;
  if (g->upstream_cred && name_is(nv, g->upstream_cred_header))
    return 1;
  return drop_creds && (name_is(nv, token_header) || name_is(nv, key_header));
}

/* The request headers that go upstream: besides hop-by-hop fields, those
 * request_field_dropped refuses; the verified subject and tgate's
 * credentials are appended. Returns the count or -1. */
static ssize_t request_nv(tg_relay *r, nghttp2_nv **out) {
  const tg_gen *g = r->gen;
  const tg_config *cfg = g->cfg;
  size_t ours = 0; /* fields appended here: the last ones */
  if (r->claims.subject && cfg->subject_header) {
    if (tg_hdrs_add(&r->req_hdrs, (const uint8_t *)cfg->subject_header,
                    strlen(cfg->subject_header),
                    (const uint8_t *)r->claims.subject,
                    strlen(r->claims.subject), NGHTTP2_NV_FLAG_NONE) != 0)
      return -1;
    ours++;
  }
  if (g->upstream_cred) {
    if (tg_hdrs_add(&r->req_hdrs, (const uint8_t *)g->upstream_cred_header,
                    strlen(g->upstream_cred_header),
                    (const uint8_t *)g->upstream_cred, strlen(g->upstream_cred),
                    NGHTTP2_NV_FLAG_NO_INDEX) != 0)
      return -1;
    ours++;
  }
  nghttp2_nv *nv;
  ssize_t n = forward_nv(&r->req_hdrs, &nv);
  if (n < 0)
    return -1;
  size_t k = 0;
  for (size_t i = 0; i < (size_t)n; i++) {
    if (i + ours < (size_t)n && request_field_dropped(r, &nv[i]))
      continue;
    nv[k++] = nv[i];
  }
  *out = nv;
  return (ssize_t)k;
}

/* Credits n bytes taken from body back to the connection they came from,
 * less what was credited in advance: the stream's window and, unless
 * stream_only (responses: their connection window was credited on
 * arrival), the connection's. */
static void credit(tg_h2conn *from, int32_t sid, size_t *preconsumed, size_t n,
                   int stream_only) {
  size_t pre = n < *preconsumed ? n : *preconsumed;
  *preconsumed -= pre;
  n -= pre;
  if (n && from && from->session) {
    if (stream_only)
      nghttp2_session_consume_stream(from->session, sid, n);
    else
      nghttp2_session_consume(from->session, sid, n);
    tg_conn_schedule_flush(from);
  }
}

/* The trailers that follow a body: hop-by-hop fields removed and, for the
 * request's (req not NULL), what request_field_dropped refuses. Returns
 * the count or -1. */
static ssize_t trailers_nv(tg_hdrs *trailers, const tg_relay *req,
                           nghttp2_nv **out) {
  ssize_t n = forward_nv(trailers, out);
  if (n < 0 || !req)
    return n;
  size_t k = 0;
  for (size_t i = 0; i < (size_t)n; i++)
    if (!request_field_dropped(req, &(*out)[i]))
      (*out)[k++] = (*out)[i];
  return (ssize_t)k;
}

static ssize_t body_read(nghttp2_session *session, int32_t stream_id,
                         uint8_t *buf, size_t length, uint32_t *flags,
                         tg_bytequeue *body, int eof, tg_hdrs *trailers,
                         const tg_relay *req, tg_h2conn *from, int32_t from_sid,
                         size_t *preconsumed, int stream_only) {
  size_t avail = tg_bytequeue_len(body);
  size_t n = avail < length ? avail : length;
  if (n) {
    tg_bytequeue_take(body, buf, n);
    credit(from, from_sid, preconsumed, n, stream_only);
  }
  if (n == avail && eof) {
    *flags |= NGHTTP2_DATA_FLAG_EOF;
    if (trailers->n) {
      nghttp2_nv *nv;
      ssize_t cnt = trailers_nv(trailers, req, &nv);
      if (cnt < 0)
        return NGHTTP2_ERR_TEMPORAL_CALLBACK_FAILURE;
      *flags |= NGHTTP2_DATA_FLAG_NO_END_STREAM;
      if (nghttp2_submit_trailer(session, stream_id, nv, (size_t)cnt) != 0)
        return NGHTTP2_ERR_TEMPORAL_CALLBACK_FAILURE;
    }
    return (ssize_t)n;
  }
  if (n == 0)
    return NGHTTP2_ERR_DEFERRED;
  return (ssize_t)n;
}

static ssize_t req_read_cb(nghttp2_session *session, int32_t stream_id,
                           uint8_t *buf, size_t length, uint32_t *flags,
                           nghttp2_data_source *source, void *user_data) {
  tg_relay *r = source->ptr;
  if (r->up_cancel)
    return NGHTTP2_ERR_DEFERRED; /* the reset follows the HEADERS */
  ssize_t n = body_read(session, stream_id, buf, length, flags, &r->req_body,
                        r->req_eof, &r->req_trailers, r, r->down, r->down_sid,
                        &r->req_preconsumed, 0);
  return n;
}

static ssize_t resp_read_cb(nghttp2_session *session, int32_t stream_id,
                            uint8_t *buf, size_t length, uint32_t *flags,
                            nghttp2_data_source *source, void *user_data) {
  tg_relay *r = source->ptr;
  ssize_t n = body_read(session, stream_id, buf, length, flags, &r->resp_body,
                        r->resp_eof, &r->resp_trailers, NULL, r->up, r->up_sid,
                        &r->resp_preconsumed, 1);
  if (n > 0) {
    r->resp_bytes += (size_t)n;
    if (r->down)
      r->down->resp_buffered -= (size_t)n;
  }
  return n;
}

/* Request body bytes no one has credited yet. */
static size_t req_uncredited(const tg_relay *r) {
  size_t len = tg_bytequeue_len(&r->req_body);
  return len > r->req_preconsumed ? len - r->req_preconsumed : 0;
}

void tg_relay_reply(tg_relay *r, int grpc_status, const char *msg) {
  tg_h2conn *d = r->down;
  if (r->local_status < 0 && !r->resp_hdrs_sent)
    r->local_status = grpc_status;
  if (r->pending)
    tg_uppool_unqueue(r->w->pool, r);
  r->state = TG_RS_LOCAL;
  if (!d || !r->down_open || r->resp_hdrs_sent)
    return;
  tg_hdrs h;
  tg_hdrs_init(&h);
  nghttp2_nv *nv;
  if (tg_grpc_trailers_only(&h, grpc_status, msg) != 0 ||
      !(nv = tg_hdrs_nv(&h))) {
    nghttp2_submit_rst_stream(d->session, NGHTTP2_FLAG_NONE, r->down_sid,
                              NGHTTP2_INTERNAL_ERROR);
  } else {
    nghttp2_submit_response(d->session, r->down_sid, nv, h.n, NULL);
    r->resp_hdrs_sent = 1;
    /* The rest of the request body is discarded as it comes; the reset that
     * stops it follows the response (tg_downstream's on_frame_send). */
    size_t unc = req_uncredited(r);
    if (unc)
      nghttp2_session_consume(d->session, r->down_sid, unc);
  }
  tg_bytequeue_drain(&r->req_body, tg_bytequeue_len(&r->req_body));
  r->req_preconsumed = 0;
  tg_hdrs_clear(&h);
  tg_conn_schedule_flush(d);
}

/* Cancels the upstream stream. Its HEADERS may still wait in nghttp2's
 * queue: a RST_STREAM would then go out first, for a stream the frontend
 * never saw, and a frontend answers that with a connection error (GOAWAY
 * PROTOCOL_ERROR) that kills every call on the connection. The reset waits
 * for the HEADERS instead (tg_relay_up_headers_sent). */
static void cancel_up(tg_relay *r) {
  if (!r->up_open || !r->up)
    return;
  if (!r->up_hdrs_sent) {
    r->up_cancel = 1;
    return;
  }
  tg_h2conn *u = r->up;
  nghttp2_submit_rst_stream(u->session, NGHTTP2_FLAG_NONE, r->up_sid,
                            NGHTTP2_CANCEL);
  tg_conn_schedule_flush(u);
  tg_up_note_reset(u);
}

void tg_relay_up_headers_sent(tg_relay *r) {
  r->up_hdrs_sent = 1;
  r->t_up_sent_ns = tg_mono_ns();
  if (r->up_cancel) {
    r->up_cancel = 0;
    cancel_up(r);
  }
}

/* Ends a call tgate will not let go on: cancels it upstream if it was
 * forwarded, then answers it with status (or, once response headers went
 * out, resets it with rst). */
static void stop_call(tg_relay *r, int status, uint32_t rst, const char *msg) {
  cancel_up(r);
  if (!r->resp_hdrs_sent) {
    tg_relay_reply(r, status, msg);
  } else if (r->down && r->down_open) {
    r->state = TG_RS_LOCAL;
    nghttp2_submit_rst_stream(r->down->session, NGHTTP2_FLAG_NONE, r->down_sid,
                              rst);
    tg_conn_schedule_flush(r->down);
  }
}

/* Answers r with RESOURCE_EXHAUSTED for limit (a TG_LIMIT_*) and counts
 * it. */
static void refuse_limit(tg_relay *r, int limit, const char *msg) {
  atomic_fetch_add_explicit(&r->w->stats.limited[limit], 1,
                            memory_order_relaxed);
  r->decision = TG_DECISION_LIMITED;
  copy_str(r->reason, sizeof r->reason, msg);
  tg_info("client %s: call refused: %s", r->peer, msg);
  stop_call(r, TG_GRPC_RESOURCE_EXHAUSTED, NGHTTP2_ENHANCE_YOUR_CALM, msg);
}

void tg_relay_down_resp_sent(tg_relay *r) {
  if (!r->t_down_resp_ns)
    r->t_down_resp_ns = tg_mono_ns();
}

int tg_relay_down_header(tg_relay *r, const uint8_t *name, size_t namelen,
                         const uint8_t *value, size_t valuelen, uint8_t flags) {
  tg_hdrs *h = r->req_hdrs_done ? &r->req_trailers : &r->req_hdrs;
  if (r->hdrs_too_big)
    return 0;
  if (tg_hdrs_size(h) + namelen + valuelen + 32 >
      r->w->gen->cfg->max_header_list_size) {
    if (r->req_hdrs_done)
      return NGHTTP2_ERR_TEMPORAL_CALLBACK_FAILURE; /* trailers: reset */
    /* The rest is dropped as it comes; the call is answered at its end. */
    r->hdrs_too_big = 1;
    return 0;
  }
  if (tg_hdrs_add(h, name, namelen, value, valuelen,
                  flags & NGHTTP2_NV_FLAG_NO_INDEX) != 0)
    return NGHTTP2_ERR_TEMPORAL_CALLBACK_FAILURE;
  return 0;
}

static void submit_http_status(tg_relay *r, const char *status) {
  nghttp2_nv nv[] = {
      {(uint8_t *)":status", (uint8_t *)status, 7, 3, NGHTTP2_NV_FLAG_NONE},
  };
  r->state = TG_RS_LOCAL;
  nghttp2_submit_response(r->down->session, r->down_sid, nv, 1, NULL);
  r->resp_hdrs_sent = 1;
}

/* Authenticates the call once its headers are complete. Returns 0, or -1
 * when the call was answered (UNAUTHENTICATED / UNAVAILABLE). */
static int authenticate(tg_relay *r, const char *path, size_t plen) {
  const tg_gen *g = r->gen;
  tg_h2conn *d = r->down;
  const char *reason = "not authenticated";
  if (!g->authn || tg_authn_is_exempt(g->authn, path, plen))
    return 0;
  if (d->ssl && (!d->peer_claims || d->peer_claims_gen != g->id)) {
    if (d->peer_claims) {
      tg_claims_clear(d->peer_claims);
    } else if (!(d->peer_claims = malloc(sizeof *d->peer_claims))) {
      tg_relay_reply(r, TG_GRPC_UNAVAILABLE, "out of memory");
      return -1;
    }
    tg_claims_init(d->peer_claims);
    d->peer_claims_gen = 0;
    if (tg_authn_peer_claims(g->authn, d->ssl, d->peer_claims) != 0) {
      tg_relay_reply(r, TG_GRPC_UNAVAILABLE, "out of memory");
      return -1;
    }
    d->peer_claims_gen = g->id;
  }
  int rv =
      tg_authn_call(g->authn, r->w->authn, &r->req_hdrs, d->ssl, d->peer_claims,
                    (int64_t)time(NULL), &r->claims, &reason);
  if (rv == TG_AUTHN_OK) {
    tg_debug("client %s: %.*s: authenticated as %s (credentials 0x%x, %zu "
             "namespace role(s), system role %u)",
             d->peer, (int)plen, path,
             r->claims.subject ? r->claims.subject : "-", r->claims.kinds,
             r->claims.nns, r->claims.system);
    return 0;
  }
  tg_info("client %s: %.*s: %s: %s", d->peer, (int)plen, path,
          rv == TG_AUTHN_UNAVAILABLE ? "unavailable" : "unauthenticated",
          reason);
  r->decision = rv == TG_AUTHN_UNAVAILABLE ? TG_DECISION_UNAVAILABLE
                                           : TG_DECISION_UNAUTHENTICATED;
  copy_str(r->reason, sizeof r->reason, reason);
  tg_relay_reply(r, rv, reason);
  return -1;
}

/* Records a decision in the audit log. Returns the log's answer (negative:
 * refused, which in fail_closed mode must stop an allowed call). */
static int audit(const tg_relay *r, const char *event, const char *path,
                 size_t plen, int status, const char *reason, const char *ns) {
  tg_audit *a = r->w->app->audit;
  if (!a)
    return 0;
  json_t *o =
      json_pack("{s:s?, s:s%, s:s, s:s, s:i, s:s}", "subject",
                r->claims.subject, "method", path, plen, "namespace", ns,
                "peer", r->peer, "grpc_status", status, "reason", reason);
  if (!o)
    return TG_AUDIT_REFUSED;
  char *fields = json_dumps(o, JSON_COMPACT | JSON_PRESERVE_ORDER);
  json_decref(o);
  if (!fields)
    return TG_AUDIT_REFUSED;
  /* A denial happens whatever the log's state: it is kept (written when
   * the log can be); an allow that cannot be recorded is refused. */
  int rv = strcmp(event, "deny") == 0 ? tg_audit_log_keep(a, event, fields)
                                      : tg_audit_log(a, event, fields);
  free(fields);
  return rv;
}

/* Asks the authorizer; acts on ALLOW and DENY. extra: request bytes
 * already received after the first message. */
static void decide(tg_relay *r, const uint8_t *msg, size_t msglen,
                   int compressed, int have_msg, size_t extra) {
  tg_call_info call = {0};
  size_t plen = 0;
  call.headers = &r->req_hdrs;
  call.path = tg_hdrs_get(&r->req_hdrs, ":path", &plen);
  if (!call.path)
    call.path = "";
  if (!have_msg && authenticate(r, call.path, plen) != 0)
    return;
  call.claims = &r->claims;
  call.path_len = plen;
  call.msg = msg;
  call.msg_len = msglen;
  call.msg_compressed = compressed;
  call.have_msg = have_msg;
  call.body_extra = extra;
  call.terse_allow = !(tg_accesslog_enabled() || tg_log_enabled(TG_LOG_DEBUG) ||
                       r->gen->cfg->audit_include_allows ||
                       r->gen->cfg->authz_mode == TG_AUTHZ_SHADOW);
  tg_verdict v;
  tg_authz_result res = tg_authz_decide(r->gen->authz, &call, &v);
  const char *peer = r->down ? r->down->peer : "?";
  switch (res) {
  case TG_AUTHZ_ALLOW:
    if (v.shadow_denied)
      tg_warn("client %s: %.*s: shadow mode, would deny: %s (subject %s)", peer,
              (int)plen, call.path, v.reason,
              r->claims.subject ? r->claims.subject : "-");
    else if (v.reason[0])
      tg_debug("client %s: %.*s: %s", peer, (int)plen, call.path, v.reason);
    r->decision =
        v.shadow_denied ? TG_DECISION_SHADOW_DENIED : TG_DECISION_ALLOWED;
    copy_str(r->reason, sizeof r->reason, v.reason);
    copy_str(r->ns, sizeof r->ns, v.ns);
    if ((v.shadow_denied || r->gen->cfg->audit_include_allows) &&
        audit(r, v.shadow_denied ? "shadow_deny" : "allow", call.path, plen, 0,
              v.reason, v.ns) < 0 &&
        r->gen->cfg->audit_fail_closed) {
      tg_err("client %s: %.*s: the audit log refused the entry; call refused "
             "(audit.on_write_failure: fail_closed)",
             peer, (int)plen, call.path);
      r->decision = TG_DECISION_UNAVAILABLE;
      tg_relay_reply(r, TG_GRPC_UNAVAILABLE, "audit log unavailable");
      return;
    }
    if (r->gen->cfg->max_calls_per_subject && r->claims.subject) {
      int cc = tg_callcount_acquire(r->w->app->callcount, r->claims.subject,
                                    r->gen->cfg->max_calls_per_subject);
      if (cc != 0) {
        refuse_limit(r, TG_LIMIT_CALLS_PER_SUBJECT,
                     cc > 0 ? "too many calls in flight for this identity"
                            : "out of memory");
        return;
      }
      r->subject_counted = 1;
    }
    /* A unary call carries one message: nothing past it may follow. */
    r->req_limit = have_msg && msg ? TG_GRPC_PREFIX_LEN + msglen : SIZE_MAX;
    r->t_decide_ns = tg_mono_ns();
    r->state = TG_RS_PENDING;
    if (r->down && r->down->in_recv) {
      /* Forwarded once this read is processed: if the same read cancels
       * the call (HEADERS and RST_STREAM in one packet: rapid reset), the
       * frontend never sees it. */
      TAILQ_INSERT_TAIL(&r->down->to_forward, r, fwd_link);
      r->fwd_queued = 1;
      return;
    }
    tg_uppool_submit(r->w->pool, r);
    return;
  case TG_AUTHZ_NEED_MESSAGE:
    if (!have_msg) {
      r->state = TG_RS_HOLD;
      return;
    }
    v.grpc_status = TG_GRPC_INTERNAL;
    v.message = "authorization undecided";
    snprintf(v.reason, sizeof v.reason, "authorization undecided");
    break;
  case TG_AUTHZ_DENY:
    break;
  }
  tg_info("client %s: %.*s: status %d: %s (subject %s)", peer, (int)plen,
          call.path, v.grpc_status, v.reason,
          r->claims.subject ? r->claims.subject : "-");
  r->decision = v.grpc_status == TG_GRPC_PERMISSION_DENIED ? TG_DECISION_DENIED
                : v.grpc_status == TG_GRPC_INVALID_ARGUMENT
                    ? TG_DECISION_INVALID
                : v.grpc_status == TG_GRPC_UNAVAILABLE ? TG_DECISION_UNAVAILABLE
                                                       : TG_DECISION_LOCAL;
  copy_str(r->reason, sizeof r->reason, v.reason);
  copy_str(r->ns, sizeof r->ns, v.ns);
  audit(r, "deny", call.path, plen, v.grpc_status, v.reason, v.ns);
  tg_relay_reply(r, v.grpc_status, v.message);
}

/* In HOLD: decides once the first message is complete or the request ended. */
static void hold_check(tg_relay *r) {
  size_t len = tg_bytequeue_len(&r->req_body);
  uint8_t prefix[TG_GRPC_PREFIX_LEN];
  int compressed = 0;
  uint32_t msglen = 0;
  int rv = 0;
  if (len >= TG_GRPC_PREFIX_LEN) {
    memcpy(prefix, tg_bytequeue_data(&r->req_body), sizeof(prefix));
    rv = tg_grpc_read_prefix(prefix, sizeof(prefix), &compressed, &msglen);
  }
  if (rv < 0) {
    tg_relay_reply(r, TG_GRPC_INVALID_ARGUMENT,
                   "malformed gRPC message prefix");
    return;
  }
  if (rv == 1 && msglen > r->gen->cfg->max_message_bytes) {
    tg_relay_reply(r, TG_GRPC_RESOURCE_EXHAUSTED,
                   "request message larger than the gateway's limit");
    return;
  }
  if (rv == 1 && len >= TG_GRPC_PREFIX_LEN + (size_t)msglen) {
    const uint8_t *p = tg_bytequeue_data(&r->req_body);
    decide(r, p + TG_GRPC_PREFIX_LEN, msglen, compressed, 1,
           len - TG_GRPC_PREFIX_LEN - msglen);
  } else if (r->req_eof) {
    if (len > 0)
      tg_relay_reply(r, TG_GRPC_INVALID_ARGUMENT, "truncated request message");
    else
      decide(r, NULL, 0, 0, 1, 0);
  }
}

int tg_relay_down_headers_done(tg_relay *r, int end_stream) {
  size_t mlen = 0, ctlen = 0;
  r->req_hdrs_done = 1;
  /* The call starts now: it keeps this configuration to its end, and its
   * authentication uses the worker's token cache of the same one. */
  if (!r->gen)
    r->gen = tg_gen_ref(r->w->gen);
  if (r->down->over_limit) {
    refuse_limit(r, TG_LIMIT_CONNECTIONS,
                 "the gateway has too many connections; try again later");
    tg_down_goaway(r->down);
    return 0;
  }
  if (r->hdrs_too_big) {
    refuse_limit(r, TG_LIMIT_HEADER_LIST,
                 "request header list larger than the gateway's limit");
    return 0;
  }
  if (end_stream)
    r->req_eof = 1;
  const char *method = tg_hdrs_get(&r->req_hdrs, ":method", &mlen);
  const char *ct = tg_hdrs_get(&r->req_hdrs, "content-type", &ctlen);
  if (!method || mlen != 4 || memcmp(method, "POST", 4) != 0) {
    submit_http_status(r, "405");
    tg_conn_schedule_flush(r->down);
    return 0;
  }
  if (!ct || !tg_grpc_is_content_type(ct, ctlen)) {
    submit_http_status(r, "415");
    tg_conn_schedule_flush(r->down);
    return 0;
  }
  decide(r, NULL, 0, 0, 0, 0);
  return 0;
}

int tg_relay_down_trailers_done(tg_relay *r) {
  return tg_relay_down_eof(r);
}

static void resume_up(tg_relay *r) {
  if (r->state == TG_RS_FORWARDING && r->up && r->up_open) {
    nghttp2_session_resume_data(r->up->session, r->up_sid);
    tg_conn_schedule_flush(r->up);
  }
}

int tg_relay_down_data(tg_relay *r, const uint8_t *data, size_t len) {
  r->req_bytes += len;
  if (r->state == TG_RS_LOCAL) {
    nghttp2_session_consume(r->down->session, r->down_sid, len);
    return 0;
  }
  uint32_t msglen = 0;
  int sc = tg_grpc_scan(&r->req_scan, data, len, r->gen->cfg->max_message_size,
                        &msglen);
  if (sc != 0) {
    nghttp2_session_consume(r->down->session, r->down_sid, len);
    if (sc > 0) {
      char msg[128];
      snprintf(msg, sizeof msg,
               "request message of %u bytes larger than the gateway's limit",
               msglen);
      refuse_limit(r, TG_LIMIT_MESSAGE_SIZE, msg);
    } else {
      r->decision = TG_DECISION_INVALID;
      snprintf(r->reason, sizeof r->reason, "malformed gRPC message prefix");
      stop_call(r, TG_GRPC_INVALID_ARGUMENT, NGHTTP2_PROTOCOL_ERROR,
                "malformed gRPC message prefix");
    }
    return 0;
  }
  if (tg_bytequeue_add(&r->req_body, data, len) != 0)
    return NGHTTP2_ERR_TEMPORAL_CALLBACK_FAILURE;
  if (r->req_bytes > r->req_limit) {
    /* A second message on a unary call: it never reaches the upstream. */
    tg_info("client %s: more than one request message on a unary call; "
            "cancelled",
            r->down->peer);
    tg_bytequeue_drain(&r->req_body, tg_bytequeue_len(&r->req_body));
    nghttp2_session_consume(r->down->session, r->down_sid, len);
    stop_call(r, TG_GRPC_INVALID_ARGUMENT, NGHTTP2_PROTOCOL_ERROR,
              "more than one request message on a unary call");
    return 0;
  }
  if (r->state == TG_RS_HOLD) {
    if (tg_bytequeue_len(&r->req_body) >
        (size_t)r->gen->cfg->max_message_bytes + TG_GRPC_PREFIX_LEN) {
      tg_relay_reply(r, TG_GRPC_RESOURCE_EXHAUSTED,
                     "request message larger than the gateway's limit");
      return 0;
    }
    /* Credit now: the first message may be larger than the stream window. */
    nghttp2_session_consume(r->down->session, r->down_sid, len);
    r->req_preconsumed += len;
    hold_check(r);
    return 0;
  }
  resume_up(r);
  return 0;
}

int tg_relay_down_eof(tg_relay *r) {
  r->req_eof = 1;
  if (r->state == TG_RS_HOLD)
    hold_check(r);
  else
    resume_up(r);
  return 0;
}

void tg_relay_down_closed(tg_relay *r, uint32_t error_code) {
  tg_h2conn *d = r->down;
  if (!r->down_open)
    return;
  r->rst_code = error_code;
  r->down_open = 0;
  LIST_REMOVE(r, down_link);
  if (d && d->hdr_relay == r)
    d->hdr_relay = NULL;
  if (d)
    d->resp_buffered -= tg_bytequeue_len(&r->resp_body);
  if (d && d->session) {
    size_t unc = req_uncredited(r);
    if (unc)
      nghttp2_session_consume_connection(d->session, unc);
  }
  if (r->fwd_queued && d) {
    TAILQ_REMOVE(&d->to_forward, r, fwd_link);
    r->fwd_queued = 0;
  }
  r->down = NULL;
  if (r->pending)
    tg_uppool_unqueue(r->w->pool, r);
  /* The client is gone or cancelled: the upstream call is cancelled too. */
  cancel_up(r);
  if (error_code != NGHTTP2_NO_ERROR)
    tg_debug("stream %d from %s closed by client (code %u)", r->down_sid,
             d ? d->peer : "?", error_code);
  maybe_free(r);
}

int tg_relay_forward(tg_relay *r, tg_h2conn *up) {
  nghttp2_nv *nv;
  ssize_t n = request_nv(r, &nv);
  if (n < 0)
    return -1;
  nghttp2_data_provider prd = {.source.ptr = r, .read_callback = req_read_cb};
  int body = !(r->req_eof && tg_bytequeue_len(&r->req_body) == 0 &&
               r->req_trailers.n == 0);
  int32_t sid = nghttp2_submit_request(up->session, NULL, nv, (size_t)n,
                                       body ? &prd : NULL, r);
  if (sid < 0) {
    tg_debug("upstream %s refused a new stream: %s", up->peer,
             nghttp2_strerror(sid));
    return -1;
  }
  r->up = up;
  r->up_sid = sid;
  r->up_open = 1;
  r->state = TG_RS_FORWARDING;
  up->nstreams++;
  LIST_INSERT_HEAD(&up->relays, r, up_link);
  tg_conn_schedule_flush(up);
  return 0;
}

int tg_relay_up_header(tg_relay *r, int trailer, const uint8_t *name,
                       size_t namelen, const uint8_t *value, size_t valuelen,
                       uint8_t flags) {
  tg_hdrs *h = trailer ? &r->resp_trailers : &r->resp_hdrs;
  if (tg_hdrs_size(h) + namelen + valuelen + 32 > TG_RELAY_MAX_HEADER_LIST)
    return NGHTTP2_ERR_TEMPORAL_CALLBACK_FAILURE;
  if (tg_hdrs_add(h, name, namelen, value, valuelen,
                  flags & NGHTTP2_NV_FLAG_NO_INDEX) != 0)
    return NGHTTP2_ERR_TEMPORAL_CALLBACK_FAILURE;
  return 0;
}

static void resume_down(tg_relay *r) {
  if (r->down && r->down_open && r->resp_hdrs_sent) {
    nghttp2_session_resume_data(r->down->session, r->down_sid);
    tg_conn_schedule_flush(r->down);
  }
}

int tg_relay_up_headers_done(tg_relay *r, int trailer, int end_stream) {
  if (trailer) {
    r->t_up_end_ns = tg_mono_ns();
    r->resp_eof = 1;
    resume_down(r);
    return 0;
  }
  size_t slen = 0;
  const char *status = tg_hdrs_get(&r->resp_hdrs, ":status", &slen);
  if (status && slen == 3 && status[0] == '1') {
    tg_hdrs_clear(&r->resp_hdrs); /* interim response: wait for the final one */
    return 0;
  }
  r->resp_hdrs_done = 1;
  r->t_up_resp_ns = tg_mono_ns();
  if (end_stream)
    r->t_up_end_ns = r->t_up_resp_ns;
  if (end_stream)
    r->resp_eof = 1;
  if (!r->down || !r->down_open || r->state != TG_RS_FORWARDING)
    return 0;
  nghttp2_nv *nv;
  ssize_t n = forward_nv(&r->resp_hdrs, &nv);
  if (n < 0)
    return NGHTTP2_ERR_TEMPORAL_CALLBACK_FAILURE;
  nghttp2_data_provider prd = {.source.ptr = r, .read_callback = resp_read_cb};
  int rv = nghttp2_submit_response(r->down->session, r->down_sid, nv, (size_t)n,
                                   end_stream ? NULL : &prd);
  if (rv != 0) {
    tg_warn("cannot submit response on stream %d: %s", r->down_sid,
            nghttp2_strerror(rv));
    nghttp2_submit_rst_stream(r->down->session, NGHTTP2_FLAG_NONE, r->down_sid,
                              NGHTTP2_INTERNAL_ERROR);
  }
  r->resp_hdrs_sent = 1;
  tg_conn_schedule_flush(r->down);
  return 0;
}

int tg_relay_up_data(tg_relay *r, const uint8_t *data, size_t len) {
  if (!r->down_open) {
    nghttp2_session_consume(r->up->session, r->up_sid, len);
    return 0;
  }
  if (tg_bytequeue_add(&r->resp_body, data, len) != 0)
    return NGHTTP2_ERR_TEMPORAL_CALLBACK_FAILURE;
  /* The upstream connection is shared: its window is credited now, so a
   * client that does not read holds back only its own streams (each by its
   * stream window), never everyone's calls on this connection. What one
   * client connection may leave unread is bounded instead. */
  nghttp2_session_consume_connection(r->up->session, len);
  tg_h2conn *d = r->down;
  d->resp_buffered += len;
  if (d->resp_buffered > TG_CONN_MAX_UNREAD && !d->kill) {
    tg_warn("client %s: more than %u MiB of responses it does not read; "
            "closing the connection",
            d->peer, TG_CONN_MAX_UNREAD >> 20);
    d->kill = 1;
    tg_conn_schedule_flush(d);
    return 0;
  }
  resume_down(r);
  return 0;
}

int tg_relay_up_eof(tg_relay *r) {
  if (!r->t_up_end_ns)
    r->t_up_end_ns = tg_mono_ns();
  r->resp_eof = 1;
  resume_down(r);
  return 0;
}

/* Unlinks r from its upstream connection (whose window was credited for
 * every response byte on arrival). */
static void up_unlink(tg_relay *r) {
  tg_h2conn *u = r->up;
  r->up_open = 0;
  LIST_REMOVE(r, up_link);
  if (u && u->nstreams)
    u->nstreams--;
  r->up = NULL;
}

void tg_relay_up_closed(tg_relay *r, uint32_t error_code) {
  if (!r->up_open)
    return;
  if (!r->t_up_end_ns)
    r->t_up_end_ns = tg_mono_ns();
  up_unlink(r);
  if (r->down && r->down_open) {
    if (error_code == NGHTTP2_NO_ERROR && r->resp_eof) {
      /* normal end: the client side finishes from resp_body */
    } else if (error_code == NGHTTP2_NO_ERROR) {
      nghttp2_submit_rst_stream(r->down->session, NGHTTP2_FLAG_NONE,
                                r->down_sid, NGHTTP2_INTERNAL_ERROR);
      tg_conn_schedule_flush(r->down);
    } else {
      /* The upstream reset the stream: so does the gateway, with its code
       * (REFUSED_STREAM lets the client retry transparently). */
      nghttp2_submit_rst_stream(r->down->session, NGHTTP2_FLAG_NONE,
                                r->down_sid, error_code);
      tg_conn_schedule_flush(r->down);
    }
  }
  maybe_free(r);
}

void tg_relay_up_failed(tg_relay *r, const char *why) {
  if (r->up_open)
    up_unlink(r);
  if (r->down && r->down_open && !r->resp_eof) {
    if (!r->resp_hdrs_sent) {
      tg_relay_reply(r, TG_GRPC_UNAVAILABLE, why);
    } else {
      tg_hdrs_clear(&r->resp_trailers);
      if (tg_grpc_trailers(&r->resp_trailers, TG_GRPC_UNAVAILABLE, why) != 0) {
        nghttp2_submit_rst_stream(r->down->session, NGHTTP2_FLAG_NONE,
                                  r->down_sid, NGHTTP2_INTERNAL_ERROR);
        tg_conn_schedule_flush(r->down);
      } else {
        r->resp_eof = 1;
        resume_down(r);
      }
    }
  }
  maybe_free(r);
}
