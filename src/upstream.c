#include "tg_upstream.h"

#include <event2/buffer.h>
#include <event2/bufferevent.h>
#include <event2/bufferevent_ssl.h>
#include <event2/dns.h>
#include <netinet/in.h>
#include <netinet/tcp.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "tg_conn.h"
#include "tg_log.h"
#include "tg_relay.h"
#include "tg_tls.h"
#include "tg_worker.h"

#define BACKOFF_MIN_MS 100
#define BACKOFF_MAX_MS 10000

struct tg_uptarget {
  tg_uppool *pool;
  const tg_addr *addr;
  char name[300];
  struct tg_conn_list conns;
  uint32_t nconns, nconnecting;
  uint32_t failures;
  uint64_t backoff_until_ms;
  struct event *retry_ev;
};

struct tg_uppool {
  tg_worker *w;
  tg_uptarget *targets;
  size_t ntargets, rr;
  struct tg_relay_queue pending;
  struct evdns_base *dns;
  int shutting_down;
  int nready;
};

static uint64_t now_ms(void) {
  struct timespec ts;
  clock_gettime(CLOCK_MONOTONIC, &ts);
  return (uint64_t)ts.tv_sec * 1000 + (uint64_t)ts.tv_nsec / 1000000;
}

static void ms_to_tv(uint64_t ms, struct timeval *tv) {
  tv->tv_sec = (time_t)(ms / 1000);
  tv->tv_usec = (suseconds_t)(ms % 1000) * 1000;
}

static void set_ready(tg_h2conn *c, int ready) {
  tg_uppool *p = c->target->pool;
  int was = c->state == TG_CS_READY;
  if (was == ready)
    return;
  p->nready += ready ? 1 : -1;
  atomic_fetch_add(&p->w->app->upstream_ready, ready ? 1 : -1);
}

static void retry_cb(evutil_socket_t fd, short what, void *arg);

static void schedule_retry(tg_uptarget *t, uint64_t delay_ms) {
  struct timeval tv;
  ms_to_tv(delay_ms, &tv);
  event_add(t->retry_ev, &tv);
}

static uint64_t backoff_ms(uint32_t failures) {
  uint64_t ms = BACKOFF_MIN_MS;
  for (uint32_t i = 1; i < failures && ms < BACKOFF_MAX_MS; i++)
    ms *= 2;
  if (ms > BACKOFF_MAX_MS)
    ms = BACKOFF_MAX_MS;
  /* up to 20% jitter so workers and gateways do not reconnect in step */
  return ms + (uint64_t)(rand() % (int)(ms / 5 + 1));
}

static tg_h2conn *open_conn(tg_uptarget *t) {
  tg_uppool *p = t->pool;
  tg_worker *w = p->w;
  tg_h2conn *c = tg_conn_new(w, TG_CONN_UP);
  if (!c)
    return NULL;
  c->target = t;
  snprintf(c->peer, sizeof(c->peer), "%s", t->name);
  struct bufferevent *bev;
  if (w->gen->client_ctx) {
    const tg_upstream_tls *tls = w->cfg->upstream_tls;
    const char *name = tls->server_name ? tls->server_name : t->addr->host;
    c->ssl = tg_tls_client_ssl_new(w->gen->client_ctx, name);
    if (!c->ssl)
      goto fail;
    bev = bufferevent_openssl_socket_new(
        w->base, -1, c->ssl, BUFFEREVENT_SSL_CONNECTING, BEV_OPT_CLOSE_ON_FREE);
  } else {
    bev = bufferevent_socket_new(w->base, -1, BEV_OPT_CLOSE_ON_FREE);
  }
  if (!bev)
    goto fail;
  LIST_INSERT_HEAD(&t->conns, c, link);
  t->nconns++;
  t->nconnecting++;
  tg_conn_attach_bev(c, bev);
  struct timeval tv;
  ms_to_tv(w->cfg->upstream_connect_timeout_ms, &tv);
  bufferevent_set_timeouts(bev, &tv, &tv);
  tg_debug("upstream %s: connecting", t->name);
  if (bufferevent_socket_connect_hostname(bev, p->dns, AF_UNSPEC, t->addr->host,
                                          t->addr->port) != 0) {
    tg_warn("upstream %s: cannot connect", t->name);
    tg_conn_free(c);
    return NULL;
  }
  return c;
fail:
  if (c->ssl)
    SSL_free(c->ssl);
  event_free(c->flush_ev);
  free(c);
  return NULL;
}

static void retry_cb(evutil_socket_t fd, short what, void *arg) {
  tg_uptarget *t = arg;
  if (t->pool->shutting_down || t->nconns > 0)
    return;
  open_conn(t);
}

/* A READY connection with a free stream slot, round-robin over targets. */
static tg_h2conn *find_slot(tg_uppool *p) {
  for (size_t i = 0; i < p->ntargets; i++) {
    tg_uptarget *t = &p->targets[(p->rr + i) % p->ntargets];
    tg_h2conn *c;
    LIST_FOREACH(c, &t->conns, link) {
      if (c->state != TG_CS_READY || c->closing)
        continue;
      uint32_t max = nghttp2_session_get_remote_settings(
          c->session, NGHTTP2_SETTINGS_MAX_CONCURRENT_STREAMS);
      if (c->nstreams < max) {
        p->rr = (p->rr + i + 1) % p->ntargets;
        return c;
      }
    }
  }
  return NULL;
}

/* Makes sure a queued call will get a slot: a connection on the way, or a
 * full one that will free a slot. Returns 0 when nothing can serve. */
static int ensure_progress(tg_uppool *p) {
  uint64_t now = now_ms();
  int full_ready = 0;
  for (size_t i = 0; i < p->ntargets; i++) {
    tg_uptarget *t = &p->targets[i];
    if (t->nconnecting > 0)
      return 1;
    if (p->nready > 0)
      full_ready = 1;
  }
  if (p->shutting_down)
    return full_ready;
  for (size_t i = 0; i < p->ntargets; i++) {
    tg_uptarget *t = &p->targets[(p->rr + i) % p->ntargets];
    if (t->backoff_until_ms > now)
      continue;
    if (t->nconns >= p->w->cfg->upstream_max_connections)
      continue;
    if (open_conn(t))
      return 1;
  }
  return full_ready;
}

static void pend_timeout_cb(evutil_socket_t fd, short what, void *arg) {
  tg_relay *r = arg;
  tg_uppool_unqueue(r->w->pool, r);
  tg_relay_up_failed(r, "no upstream stream available in time");
}

void tg_uppool_unqueue(tg_uppool *p, tg_relay *r) {
  if (!r->pending)
    return;
  TAILQ_REMOVE(&p->pending, r, pend_link);
  r->pending = 0;
  if (r->pend_timer)
    event_del(r->pend_timer);
}

static void fail_all_pending(tg_uppool *p, const char *why) {
  tg_relay *r;
  while ((r = TAILQ_FIRST(&p->pending)) != NULL) {
    tg_uppool_unqueue(p, r);
    tg_relay_up_failed(r, why);
  }
}

void tg_uppool_kick(tg_uppool *p) {
  tg_relay *r;
  while ((r = TAILQ_FIRST(&p->pending)) != NULL) {
    tg_h2conn *c = find_slot(p);
    if (!c)
      break;
    tg_uppool_unqueue(p, r);
    if (tg_relay_forward(r, c) != 0) {
      set_ready(c, 0);
      c->state = TG_CS_DRAINING;
      TAILQ_INSERT_HEAD(&p->pending, r, pend_link);
      r->pending = 1;
    }
  }
  if (!TAILQ_EMPTY(&p->pending) && !ensure_progress(p))
    fail_all_pending(p, "no upstream frontend reachable");
}

void tg_uppool_submit(tg_uppool *p, tg_relay *r) {
  tg_h2conn *c;
  while ((c = find_slot(p)) != NULL) {
    if (tg_relay_forward(r, c) == 0)
      return;
    set_ready(c, 0);
    c->state = TG_CS_DRAINING;
  }
  if (!r->pend_timer) {
    r->pend_timer = evtimer_new(p->w->base, pend_timeout_cb, r);
    if (!r->pend_timer) {
      tg_relay_up_failed(r, "out of memory");
      return;
    }
  }
  TAILQ_INSERT_TAIL(&p->pending, r, pend_link);
  r->pending = 1;
  struct timeval tv;
  ms_to_tv(p->w->cfg->upstream_connect_timeout_ms, &tv);
  event_add(r->pend_timer, &tv);
  if (!ensure_progress(p)) {
    tg_uppool_unqueue(p, r);
    tg_relay_up_failed(r, "no upstream frontend reachable");
  }
}

/* ---- the upstream HTTP/2 client session ---- */

static void on_first_settings(tg_h2conn *c);

static int on_header(nghttp2_session *session, const nghttp2_frame *frame,
                     const uint8_t *name, size_t namelen, const uint8_t *value,
                     size_t valuelen, uint8_t flags, void *user_data) {
  if (frame->hd.type != NGHTTP2_HEADERS)
    return 0;
  tg_relay *r =
      nghttp2_session_get_stream_user_data(session, frame->hd.stream_id);
  if (!r)
    return 0;
  return tg_relay_up_header(r, frame->headers.cat == NGHTTP2_HCAT_HEADERS, name,
                            namelen, value, valuelen, flags);
}

static int on_frame_recv(nghttp2_session *session, const nghttp2_frame *frame,
                         void *user_data) {
  tg_h2conn *c = user_data;
  tg_uppool *p = c->target->pool;
  if (frame->hd.type == NGHTTP2_GOAWAY) {
    tg_info("upstream %s: GOAWAY received (code %u)", c->peer,
            frame->goaway.error_code);
    set_ready(c, 0);
    c->state = TG_CS_DRAINING;
    tg_uppool_kick(p);
    return 0;
  }
  if (frame->hd.type == NGHTTP2_SETTINGS) {
    if (frame->hd.flags & NGHTTP2_FLAG_ACK)
      return 0;
    if (c->state == TG_CS_HANDSHAKE)
      on_first_settings(c);
    else
      tg_uppool_kick(p);
    return 0;
  }
  if (frame->hd.stream_id == 0)
    return 0;
  tg_relay *r =
      nghttp2_session_get_stream_user_data(session, frame->hd.stream_id);
  if (!r)
    return 0;
  int end_stream = (frame->hd.flags & NGHTTP2_FLAG_END_STREAM) != 0;
  if (frame->hd.type == NGHTTP2_HEADERS)
    return tg_relay_up_headers_done(
        r, frame->headers.cat == NGHTTP2_HCAT_HEADERS, end_stream);
  if (frame->hd.type == NGHTTP2_DATA && end_stream)
    return tg_relay_up_eof(r);
  return 0;
}

static int on_data_chunk(nghttp2_session *session, uint8_t flags,
                         int32_t stream_id, const uint8_t *data, size_t len,
                         void *user_data) {
  tg_relay *r = nghttp2_session_get_stream_user_data(session, stream_id);
  if (!r) {
    nghttp2_session_consume(session, stream_id, len);
    return 0;
  }
  return tg_relay_up_data(r, data, len);
}

static int on_stream_close(nghttp2_session *session, int32_t stream_id,
                           uint32_t error_code, void *user_data) {
  tg_h2conn *c = user_data;
  tg_relay *r = nghttp2_session_get_stream_user_data(session, stream_id);
  if (r)
    tg_relay_up_closed(r, error_code);
  tg_uppool *p = c->target->pool;
  if (c->nstreams == 0 && (c->state == TG_CS_DRAINING || p->shutting_down)) {
    if (c->state != TG_CS_DRAINING) {
      set_ready(c, 0);
      c->state = TG_CS_DRAINING;
    }
    nghttp2_submit_goaway(session, NGHTTP2_FLAG_NONE, 0, NGHTTP2_NO_ERROR, NULL,
                          0);
    c->closing = 1;
  }
  tg_uppool_kick(p);
  return 0;
}

static int on_frame_send(nghttp2_session *session, const nghttp2_frame *frame,
                         void *user_data) {
  if (frame->hd.type != NGHTTP2_HEADERS ||
      frame->headers.cat != NGHTTP2_HCAT_REQUEST)
    return 0;
  tg_relay *r =
      nghttp2_session_get_stream_user_data(session, frame->hd.stream_id);
  if (r)
    tg_relay_up_headers_sent(r);
  return 0;
}

static int start_session(tg_h2conn *c) {
  nghttp2_session_callbacks *cbs;
  nghttp2_option *opt;
  if (nghttp2_session_callbacks_new(&cbs) != 0)
    return -1;
  if (nghttp2_option_new(&opt) != 0) {
    nghttp2_session_callbacks_del(cbs);
    return -1;
  }
  nghttp2_session_callbacks_set_on_header_callback(cbs, on_header);
  nghttp2_session_callbacks_set_on_frame_recv_callback(cbs, on_frame_recv);
  nghttp2_session_callbacks_set_on_data_chunk_recv_callback(cbs, on_data_chunk);
  nghttp2_session_callbacks_set_on_stream_close_callback(cbs, on_stream_close);
  nghttp2_session_callbacks_set_on_frame_send_callback(cbs, on_frame_send);
  nghttp2_option_set_no_auto_window_update(opt, 1);
  int rv = nghttp2_session_client_new2(&c->session, cbs, c, opt);
  nghttp2_option_del(opt);
  nghttp2_session_callbacks_del(cbs);
  if (rv != 0)
    return -1;
  nghttp2_settings_entry iv[] = {
      {NGHTTP2_SETTINGS_ENABLE_PUSH, 0},
      {NGHTTP2_SETTINGS_INITIAL_WINDOW_SIZE, TG_STREAM_WINDOW},
      {NGHTTP2_SETTINGS_MAX_HEADER_LIST_SIZE, 64 * 1024},
  };
  if (nghttp2_submit_settings(c->session, NGHTTP2_FLAG_NONE, iv,
                              sizeof(iv) / sizeof(iv[0])) != 0 ||
      nghttp2_session_set_local_window_size(c->session, NGHTTP2_FLAG_NONE, 0,
                                            TG_CONN_WINDOW) != 0)
    return -1;
  return 0;
}

/* The frontend's first SETTINGS frame: its stream limit is known now, so the
 * connection may take calls (before it, a guess could overrun the limit and
 * get streams refused). */
static void on_first_settings(tg_h2conn *c) {
  tg_uptarget *t = c->target;
  bufferevent_set_timeouts(c->bev, NULL, NULL);
  t->nconnecting--;
  t->failures = 0;
  t->backoff_until_ms = 0;
  set_ready(c, 1);
  c->state = TG_CS_READY;
  uint32_t max = nghttp2_session_get_remote_settings(
      c->session, NGHTTP2_SETTINGS_MAX_CONCURRENT_STREAMS);
  if (max >= (1u << 31) - 1)
    tg_info("upstream %s: connected%s, no stream limit", c->peer,
            c->ssl ? " (TLS)" : " (h2c)");
  else
    tg_info("upstream %s: connected%s, %u concurrent streams allowed", c->peer,
            c->ssl ? " (TLS)" : " (h2c)", max);
  tg_uppool_kick(t->pool);
}

void tg_up_on_connected(tg_h2conn *c) {
  if (c->ssl) {
    const unsigned char *alpn = NULL;
    unsigned int alpnlen = 0;
    SSL_get0_alpn_selected(c->ssl, &alpn, &alpnlen);
    if (alpnlen != 2 || memcmp(alpn, "h2", 2) != 0) {
      tg_warn("upstream %s: TLS peer did not negotiate ALPN h2", c->peer);
      tg_conn_free(c);
      return;
    }
  }
  int one = 1;
  evutil_socket_t fd = bufferevent_getfd(c->bev);
  setsockopt(fd, IPPROTO_TCP, TCP_NODELAY, &one, sizeof(one));
  if (start_session(c) != 0) {
    tg_err("upstream %s: cannot start HTTP/2 session", c->peer);
    tg_conn_free(c);
    return;
  }
  /* Still TG_CS_HANDSHAKE, under connect_timeout, until the frontend's
   * SETTINGS arrive (on_first_settings). */
  tg_conn_flush(c);
}

void tg_up_teardown(tg_h2conn *c, const char *why) {
  tg_uptarget *t = c->target;
  tg_uppool *p = t->pool;
  int was_connecting = c->state == TG_CS_HANDSHAKE;
  c->closing = 1;
  set_ready(c, 0);
  c->state = TG_CS_DRAINING;
  t->nconns--;
  if (was_connecting) {
    t->nconnecting--;
    t->failures++;
    atomic_fetch_add_explicit(&p->w->stats.upstream_connect_failures, 1,
                              memory_order_relaxed);
    uint64_t delay = backoff_ms(t->failures);
    t->backoff_until_ms = now_ms() + delay;
    /* A frontend that stays away is reported on the first failure and every
     * tenth after it, not every few seconds per worker. */
    tg_log(
        t->failures == 1 || t->failures % 10 == 0 ? TG_LOG_WARN : TG_LOG_DEBUG,
        "upstream %s: connection failed (%s; %u in a row); next try in %llu ms",
        t->name, c->reason[0] ? c->reason : "no HTTP/2 settings", t->failures,
        (unsigned long long)delay);
    why = "upstream frontend unreachable";
  }
  tg_relay *r;
  while ((r = LIST_FIRST(&c->relays)) != NULL)
    tg_relay_up_failed(r, why);
  if (!p->shutting_down && t->nconns == 0)
    schedule_retry(t, was_connecting ? t->backoff_until_ms - now_ms() : 0);
  if (!TAILQ_EMPTY(&p->pending))
    tg_uppool_kick(p);
}

/* ---- pool life ---- */

tg_uppool *tg_uppool_new(tg_worker *w) {
  const tg_config *cfg = w->cfg;
  tg_uppool *p = calloc(1, sizeof(*p));
  if (!p)
    return NULL;
  p->w = w;
  TAILQ_INIT(&p->pending);
  p->targets = calloc(cfg->upstream_naddresses, sizeof(*p->targets));
  if (!p->targets)
    goto fail;
  p->ntargets = cfg->upstream_naddresses;
  for (size_t i = 0; i < p->ntargets; i++) {
    tg_uptarget *t = &p->targets[i];
    t->pool = p;
    t->addr = &cfg->upstream_addresses[i];
    LIST_INIT(&t->conns);
    if (strchr(t->addr->host, ':'))
      snprintf(t->name, sizeof(t->name), "[%s]:%u", t->addr->host,
               t->addr->port);
    else
      snprintf(t->name, sizeof(t->name), "%s:%u", t->addr->host, t->addr->port);
    t->retry_ev = evtimer_new(w->base, retry_cb, t);
    if (!t->retry_ev)
      goto fail;
  }
  p->dns = evdns_base_new(w->base, EVDNS_BASE_INITIALIZE_NAMESERVERS);
  if (!p->dns)
    tg_warn("no DNS resolver configured; upstream names resolve via /etc/hosts "
            "only");
  return p;
fail:
  tg_uppool_free(p);
  return NULL;
}

void tg_uppool_start(tg_uppool *p) {
  for (size_t i = 0; i < p->ntargets; i++)
    open_conn(&p->targets[i]);
}

int tg_uppool_ready(const tg_uppool *p) {
  return p->nready;
}

void tg_uppool_shutdown(tg_uppool *p) {
  p->shutting_down = 1;
  for (size_t i = 0; i < p->ntargets; i++) {
    tg_uptarget *t = &p->targets[i];
    event_del(t->retry_ev);
    tg_h2conn *c;
    LIST_FOREACH(c, &t->conns, link) {
      if (c->nstreams == 0)
        tg_conn_close(c);
    }
  }
}

void tg_uppool_free(tg_uppool *p) {
  if (!p)
    return;
  p->shutting_down = 1;
  fail_all_pending(p, "gateway shutting down");
  for (size_t i = 0; p->targets && i < p->ntargets; i++) {
    tg_uptarget *t = &p->targets[i];
    tg_h2conn *c;
    while ((c = LIST_FIRST(&t->conns)) != NULL) {
      c->closing = 1;
      tg_conn_free(c);
    }
    if (t->retry_ev)
      event_free(t->retry_ev);
  }
  free(p->targets);
  if (p->dns)
    evdns_base_free(p->dns, 0);
  free(p);
}
