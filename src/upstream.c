#include "tg_upstream.h"

#include <arpa/inet.h>
#include <event2/buffer.h>
#include <event2/bufferevent.h>
#include <event2/bufferevent_ssl.h>
#include <event2/dns.h>
#include <event2/util.h>
#include <netinet/in.h>
#include <netinet/tcp.h>
#include <openssl/asn1.h>
#include <openssl/x509.h>
#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <time.h>

#include "tg_clock.h"
#include "tg_conn.h"
#include "tg_healthcheck.h"
#include "tg_log.h"
#include "tg_relay.h"
#include "tg_tls.h"
#include "tg_worker.h"

#define BACKOFF_MIN_MS 100
#define BACKOFF_MAX_MS 10000
/* A call waiting for a frontend in backoff triggers an attempt anyway when
 * the last one is this old: after a long outage, calls find the frontend
 * back within a second instead of at the end of a 10 s backoff. */
#define DEMAND_RETRY_MS 1000
/* A HealthCheckResponse is a few bytes; a longer answer is not one. */
#define HC_BODY_MAX 512
/* Resolved addresses kept per name. */
#define MAX_ADDRS 16

/* Per-address counters, one set per configured address for the whole
 * process, updated by every worker's pool and read by /metrics. */
typedef struct tg_upstat {
  struct tg_upstat *next;
  char name[300];
  int refs;          /* targets using it; under stat_lock */
  atomic_int takers; /* targets (one per pool) taking new calls */
  atomic_llong streams;
  atomic_uint_least64_t checks_ok, checks_fail, ejections, dns_ok, dns_fail;
  /* notAfter (unix seconds) of the certificate the frontend presented on
   * the latest TLS connection to it; 0: none yet */
  atomic_llong cert_not_after;
} tg_upstat;

static pthread_mutex_t stat_lock = PTHREAD_MUTEX_INITIALIZER;
static tg_upstat *stat_list;

typedef struct tg_upaddr {
  struct sockaddr_storage ss;
  socklen_t len;
} tg_upaddr;

/* A target's health check: at most one in flight, on one of its
 * connections. The stream's user data is &target->hc, which is how the
 * session callbacks tell it from a relay. */
typedef struct tg_hcheck {
  tg_h2conn *conn; /* NULL when none is in flight */
  int32_t sid;
  size_t req_off;
  int http_status, grpc_status;
  size_t body_len; /* HC_BODY_MAX + 1: too long */
  uint8_t body[HC_BODY_MAX];
  uint32_t ok_run, fail_run; /* results in a row */
  int answered;              /* a check has completed at least once */
  struct event *tick_ev, *timeout_ev;
} tg_hcheck;

struct tg_uptarget {
  tg_uppool *pool;
  const tg_addr *addr;
  char name[300];
  tg_upstat *stat;
  struct tg_conn_list conns;
  uint32_t nconns, nconnecting, nready;
  uint32_t failures; /* connection attempts failed in a row */
  uint64_t backoff_until_ms;
  uint64_t last_attempt_ms; /* when open_conn last started a connection */
  struct event *retry_ev;
  /* Takes no new calls: not yet admitted, or failing (see tg_upstream.h). */
  int ejected;
  /* What this target adds to app->upstream_ready and to its tg_upstat. */
  int counted_ready, counted_taker;
  long long counted_streams;
  tg_hcheck hc;
  /* An IP literal is parsed once; a name is resolved (evdns) at start,
   * before reconnecting after a failure, and every dns_refresh_interval. */
  int literal;
  tg_upaddr addrs[MAX_ADDRS];
  size_t naddrs, cur_addr;
  struct evdns_getaddrinfo_request *dns_req;
  int resolving;  /* a lookup is under way */
  int in_resolve; /* inside start_resolve: an answer there is synchronous */
  struct event *dns_ev;
};

struct tg_uppool {
  tg_worker *w;
  tg_uptarget *targets;
  size_t ntargets, rr;
  struct tg_relay_queue pending;
  struct evdns_base *dns;
  int shutting_down;
  int nready;
  int checks; /* health checks on */
  int panic;  /* no target takes calls: every connected one is used */
  int panic_warned;
  /* scratch for the balancing choice, one entry per target */
  uint64_t *load;
  unsigned char *eligible;
  tg_h2conn **slot;
  uint8_t hc_req[TG_HC_REQUEST_MAX];
  size_t hc_req_len;
  char hc_timeout[24];
};

static uint64_t backoff_ms(uint32_t failures) {
  uint64_t ms = BACKOFF_MIN_MS;
  for (uint32_t i = 1; i < failures && ms < BACKOFF_MAX_MS; i++)
    ms *= 2;
  if (ms > BACKOFF_MAX_MS)
    ms = BACKOFF_MAX_MS;
  /* up to 20% jitter so workers and gateways do not reconnect in step */
  return ms + (uint64_t)(rand() % (int)(ms / 5 + 1));
}

int tg_up_pick(const uint64_t *load, const unsigned char *eligible, size_t n,
               size_t start) {
  int best = -1;
  for (size_t k = 0; k < n; k++) {
    size_t i = (start + k) % n;
    if (eligible[i] && (best < 0 || load[i] < load[best]))
      best = (int)i;
  }
  return best;
}

/* ---- the process-wide counters ---- */

static tg_upstat *stat_ref(const char *name) {
  tg_upstat *s;
  pthread_mutex_lock(&stat_lock);
  for (s = stat_list; s; s = s->next)
    if (strcmp(s->name, name) == 0)
      break;
  if (!s && (s = calloc(1, sizeof(*s))) != NULL) {
    snprintf(s->name, sizeof(s->name), "%s", name);
    s->next = stat_list;
    stat_list = s;
  }
  if (s)
    s->refs++;
  pthread_mutex_unlock(&stat_lock);
  return s;
}

static void stat_unref(tg_upstat *s) {
  if (!s)
    return;
  pthread_mutex_lock(&stat_lock);
  if (--s->refs == 0) {
    tg_upstat **pp = &stat_list;
    while (*pp != s)
      pp = &(*pp)->next;
    *pp = s->next;
    free(s);
  }
  pthread_mutex_unlock(&stat_lock);
}

#define LOAD(x) atomic_load_explicit(&(x), memory_order_relaxed)
#define BUMP(x) atomic_fetch_add_explicit(&(x), 1, memory_order_relaxed)

void tg_upstream_metrics(struct evbuffer *b) {
  tg_upstat *s;
  pthread_mutex_lock(&stat_lock);
  if (!stat_list)
    goto done;
  evbuffer_add_printf(b, "# HELP tgate_upstream_healthy 1 when every worker "
                         "sends new calls to the frontend address.\n"
                         "# TYPE tgate_upstream_healthy gauge\n");
  for (s = stat_list; s; s = s->next)
    evbuffer_add_printf(b, "tgate_upstream_healthy{address=\"%s\"} %d\n",
                        s->name, LOAD(s->takers) >= s->refs);
  evbuffer_add_printf(b, "# HELP tgate_upstream_streams_outstanding Streams "
                         "open to the frontend address.\n"
                         "# TYPE tgate_upstream_streams_outstanding gauge\n");
  for (s = stat_list; s; s = s->next)
    evbuffer_add_printf(
        b, "tgate_upstream_streams_outstanding{address=\"%s\"} %lld\n", s->name,
        (long long)LOAD(s->streams));
  evbuffer_add_printf(b, "# TYPE tgate_upstream_health_checks_total counter\n");
  for (s = stat_list; s; s = s->next)
    evbuffer_add_printf(
        b,
        "tgate_upstream_health_checks_total{address=\"%s\",result=\"ok\"} "
        "%llu\n"
        "tgate_upstream_health_checks_total{address=\"%s\",result=\"fail\"} "
        "%llu\n",
        s->name, (unsigned long long)LOAD(s->checks_ok), s->name,
        (unsigned long long)LOAD(s->checks_fail));
  evbuffer_add_printf(b, "# HELP tgate_upstream_ejections_total Times a "
                         "worker stopped sending new calls to the address.\n"
                         "# TYPE tgate_upstream_ejections_total counter\n");
  for (s = stat_list; s; s = s->next)
    evbuffer_add_printf(b,
                        "tgate_upstream_ejections_total{address=\"%s\"} %llu\n",
                        s->name, (unsigned long long)LOAD(s->ejections));
  evbuffer_add_printf(b, "# TYPE tgate_upstream_dns_refreshes_total counter\n");
  for (s = stat_list; s; s = s->next)
    evbuffer_add_printf(
        b,
        "tgate_upstream_dns_refreshes_total{address=\"%s\",result=\"ok\"} "
        "%llu\n"
        "tgate_upstream_dns_refreshes_total{address=\"%s\",result=\"fail\"} "
        "%llu\n",
        s->name, (unsigned long long)LOAD(s->dns_ok), s->name,
        (unsigned long long)LOAD(s->dns_fail));
  int any = 0;
  for (s = stat_list; s; s = s->next) {
    long long na = LOAD(s->cert_not_after);
    if (!na)
      continue;
    if (!any++)
      evbuffer_add_printf(
          b, "# HELP tgate_upstream_certificate_expiry_seconds Seconds until "
             "the certificate the frontend presented last expires.\n"
             "# TYPE tgate_upstream_certificate_expiry_seconds gauge\n");
    evbuffer_add_printf(
        b, "tgate_upstream_certificate_expiry_seconds{address=\"%s\"} %lld\n",
        s->name, na - (long long)time(NULL));
  }
done:
  pthread_mutex_unlock(&stat_lock);
}

/* ---- target state ---- */

static int takes_calls(const tg_uptarget *t) {
  return !t->ejected && t->nready > 0;
}

static int eligible(const tg_uptarget *t) {
  return t->pool->panic || !t->ejected;
}

static uint32_t live_conns(const tg_uptarget *t) {
  uint32_t n = 0;
  tg_h2conn *c;
  LIST_FOREACH(c, &t->conns, link) {
    if (c->state != TG_CS_DRAINING && !c->closing)
      n++;
  }
  return n;
}

static uint64_t target_load(const tg_uptarget *t) {
  uint64_t n = 0;
  tg_h2conn *c;
  LIST_FOREACH(c, &t->conns, link) {
    n += c->nstreams;
  }
  return n;
}

static void update_panic(tg_uppool *p) {
  int any = 0, answered = 1;
  for (size_t i = 0; i < p->ntargets; i++) {
    any |= takes_calls(&p->targets[i]);
    if (p->targets[i].nready > 0 && !p->targets[i].hc.answered)
      answered = 0;
  }
  p->panic = !any;
  if (!p->panic && p->panic_warned) {
    p->panic_warned = 0;
    tg_info("worker %d: an upstream frontend is healthy again; calls go to "
            "healthy frontends only",
            p->w->id);
  }
  /* Worth a warning once frontends are connected and were checked (at start
   * they are not yet; when none is connected, calls fail anyway). */
  if (p->panic && !p->panic_warned && p->checks && p->nready > 0 && answered &&
      !p->shutting_down) {
    p->panic_warned = 1;
    tg_warn("worker %d: no upstream frontend passes its health check; calls "
            "go to every connected one (fail-open)",
            p->w->id);
  }
}

/* Brings the shared counts in line with the target's state. */
static void sync_counts(tg_uptarget *t) {
  tg_uppool *p = t->pool;
  int ready = t->ejected ? 0 : (int)t->nready;
  if (ready != t->counted_ready) {
    atomic_fetch_add(&p->w->app->upstream_ready, ready - t->counted_ready);
    t->counted_ready = ready;
  }
  int taker = takes_calls(t);
  if (taker != t->counted_taker) {
    atomic_fetch_add(&t->stat->takers, taker - t->counted_taker);
    t->counted_taker = taker;
  }
  update_panic(p);
}

static void sync_streams(tg_uptarget *t) {
  long long n = (long long)target_load(t);
  if (n != t->counted_streams) {
    atomic_fetch_add_explicit(&t->stat->streams, n - t->counted_streams,
                              memory_order_relaxed);
    t->counted_streams = n;
  }
}

static void set_ready(tg_h2conn *c, int ready) {
  tg_uptarget *t = c->target;
  int was = c->state == TG_CS_READY;
  if (was == ready)
    return;
  t->pool->nready += ready ? 1 : -1;
  if (ready)
    t->nready++;
  else
    t->nready--;
  sync_counts(t);
}

static void eject(tg_uptarget *t, const char *why) {
  tg_uppool *p = t->pool;
  if (t->ejected || p->shutting_down)
    return;
  t->ejected = 1;
  t->hc.ok_run = 0;
  BUMP(t->stat->ejections);
  tg_warn("upstream %s: ejected by worker %d (%s); no new calls until it %s",
          t->name, p->w->id, why,
          p->checks ? "passes a health check" : "connects again");
  sync_counts(t);
}

static void readmit(tg_uptarget *t, const char *how) {
  tg_uppool *p = t->pool;
  if (!t->ejected || p->shutting_down)
    return;
  t->ejected = 0;
  tg_info("upstream %s: %s; worker %d sends it calls", t->name, how, p->w->id);
  sync_counts(t);
  tg_uppool_kick(p);
}

/* ---- connections ---- */

static void retry_cb(evutil_socket_t fd, short what, void *arg);
static void start_resolve(tg_uptarget *t);

static void schedule_retry(tg_uptarget *t, uint64_t delay_ms) {
  struct timeval tv;
  tv = tg_ms_tv(delay_ms);
  event_add(t->retry_ev, &tv);
}

static tg_h2conn *open_conn(tg_uptarget *t) {
  tg_uppool *p = t->pool;
  tg_worker *w = p->w;
  if (t->naddrs == 0) {
    /* The answer connects; it may have come at once (a hosts entry). */
    start_resolve(t);
    return t->nconnecting > 0 ? LIST_FIRST(&t->conns) : NULL;
  }
  const tg_upaddr *a = &t->addrs[t->cur_addr % t->naddrs];
  t->last_attempt_ms = tg_mono_ms();
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
  tv = tg_ms_tv(w->cfg->upstream_connect_timeout_ms);
  bufferevent_set_timeouts(bev, &tv, &tv);
  if (tg_log_enabled(TG_LOG_DEBUG)) {
    char ip[INET6_ADDRSTRLEN] = "?";
    const struct sockaddr *sa = (const struct sockaddr *)&a->ss;
    if (sa->sa_family == AF_INET)
      inet_ntop(AF_INET, &((const struct sockaddr_in *)sa)->sin_addr, ip,
                sizeof(ip));
    else
      inet_ntop(AF_INET6, &((const struct sockaddr_in6 *)sa)->sin6_addr, ip,
                sizeof(ip));
    tg_debug("upstream %s: connecting to %s", t->name, ip);
  }
  if (bufferevent_socket_connect(bev, (const struct sockaddr *)&a->ss,
                                 (int)a->len) != 0) {
    snprintf(c->reason, sizeof(c->reason), "%s",
             evutil_socket_error_to_string(EVUTIL_SOCKET_ERROR()));
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

/* A connection attempt (or the name resolution before it) failed. */
static void connect_failed(tg_uptarget *t, const char *reason) {
  tg_uppool *p = t->pool;
  t->failures++;
  atomic_fetch_add_explicit(&p->w->stats.upstream_connect_failures, 1,
                            memory_order_relaxed);
  uint64_t delay = backoff_ms(t->failures);
  t->backoff_until_ms = tg_mono_ms() + delay;
  /* A frontend that stays away is reported on the first failure and every
   * tenth after it, not every few seconds per worker. */
  tg_log(
      t->failures == 1 || t->failures % 10 == 0 ? TG_LOG_WARN : TG_LOG_DEBUG,
      "upstream %s: connection failed (%s; %u in a row); next try in %llu ms",
      t->name, reason, t->failures, (unsigned long long)delay);
  /* The next attempt tries the name's next address. */
  if (t->naddrs > 1)
    t->cur_addr = (t->cur_addr + 1) % t->naddrs;
  if (t->nready == 0)
    eject(t, "cannot connect");
}

static void retry_cb(evutil_socket_t fd, short what, void *arg) {
  tg_uptarget *t = arg;
  if (t->pool->shutting_down || live_conns(t) > 0)
    return;
  /* After a failure a name is looked up again: the frontend may have
   * moved. The answer opens the connection. */
  if (!t->literal && t->failures > 0)
    start_resolve(t);
  else
    open_conn(t);
}

/* A READY connection of t with a free stream slot, the least busy one. */
static tg_h2conn *best_conn(tg_uptarget *t) {
  tg_h2conn *c, *best = NULL;
  LIST_FOREACH(c, &t->conns, link) {
    if (c->state != TG_CS_READY || c->closing)
      continue;
    uint32_t max = nghttp2_session_get_remote_settings(
        c->session, NGHTTP2_SETTINGS_MAX_CONCURRENT_STREAMS);
    if (c->nstreams < max && (!best || c->nstreams < best->nstreams))
      best = c;
  }
  return best;
}

/* The connection for a new call: on the eligible target with the fewest
 * streams in flight that has a free slot, ties round-robin. */
static tg_h2conn *find_slot(tg_uppool *p) {
  for (size_t i = 0; i < p->ntargets; i++) {
    tg_uptarget *t = &p->targets[i];
    p->slot[i] = eligible(t) ? best_conn(t) : NULL;
    p->eligible[i] = p->slot[i] != NULL;
    p->load[i] = target_load(t);
  }
  int k = tg_up_pick(p->load, p->eligible, p->ntargets, p->rr);
  if (k < 0)
    return NULL;
  p->rr = ((size_t)k + 1) % p->ntargets;
  return p->slot[k];
}

/* Makes sure a queued call will get a slot: a connection (or a name
 * lookup) on the way, or a full one that will free a slot. Returns 0 when
 * nothing can serve. */
static int ensure_progress(tg_uppool *p) {
  uint64_t now = tg_mono_ms();
  int full_ready = 0;
  for (size_t i = 0; i < p->ntargets; i++) {
    tg_uptarget *t = &p->targets[i];
    if (!eligible(t))
      continue;
    if (t->nconnecting > 0 || (t->resolving && t->naddrs == 0))
      return 1;
    if (t->nready > 0)
      full_ready = 1;
  }
  if (p->shutting_down)
    return full_ready;
  for (size_t i = 0; i < p->ntargets; i++) {
    tg_uptarget *t = &p->targets[(p->rr + i) % p->ntargets];
    if (!eligible(t) || (t->backoff_until_ms > now &&
                         now - t->last_attempt_ms < DEMAND_RETRY_MS))
      continue;
    if (live_conns(t) >= p->w->cfg->upstream_max_connections)
      continue;
    if (open_conn(t) || t->resolving)
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

/* Puts r on c. Returns 0, or -1 when c cannot take a stream any more (it is
 * then drained). */
static int forward(tg_relay *r, tg_h2conn *c) {
  if (tg_relay_forward(r, c) == 0) {
    sync_streams(c->target);
    return 0;
  }
  set_ready(c, 0);
  c->state = TG_CS_DRAINING;
  return -1;
}

/* No new calls on c; it closes once its streams are done. */
static void drain_conn(tg_h2conn *c) {
  set_ready(c, 0);
  c->state = TG_CS_DRAINING;
  if (c->nstreams == 0) {
    nghttp2_submit_goaway(c->session, NGHTTP2_FLAG_NONE, 0, NGHTTP2_NO_ERROR,
                          NULL, 0);
    c->closing = 1;
  }
  tg_conn_schedule_flush(c);
}

void tg_up_note_reset(tg_h2conn *c) {
  uint64_t now = tg_mono_ms();
  if (c->rst_at_ms == 0) {
    c->rst_tokens = TG_UP_RST_BURST;
  } else {
    uint64_t add = (now - c->rst_at_ms) * TG_UP_RST_RATE / 1000;
    if (add == 0) {
      now = c->rst_at_ms; /* keep the fraction of a token for later */
    } else {
      uint64_t n = c->rst_tokens + add;
      c->rst_tokens = n > TG_UP_RST_BURST ? TG_UP_RST_BURST : (uint32_t)n;
    }
  }
  c->rst_at_ms = now;
  if (c->rst_tokens > 0) {
    c->rst_tokens--;
    return;
  }
  tg_uptarget *t = c->target;
  if (c->state != TG_CS_READY || c->closing)
    return;
  uint32_t draining = 0;
  tg_h2conn *o;
  LIST_FOREACH(o, &t->conns, link) {
    if (o->state == TG_CS_DRAINING && !o->closing)
      draining++;
  }
  if (draining >= TG_UP_RST_MAX_DRAINING)
    return;
  tg_info("upstream %s: %u calls cancelled on one connection in quick "
          "succession; new calls go to a fresh connection",
          t->name, (unsigned)TG_UP_RST_BURST);
  atomic_fetch_add_explicit(&c->w->stats.upstream_rotations, 1,
                            memory_order_relaxed);
  drain_conn(c);
  tg_uppool_kick(t->pool);
}

void tg_uppool_kick(tg_uppool *p) {
  tg_relay *r;
  while ((r = TAILQ_FIRST(&p->pending)) != NULL) {
    tg_h2conn *c = find_slot(p);
    if (!c)
      break;
    tg_uppool_unqueue(p, r);
    if (forward(r, c) != 0) {
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
    if (forward(r, c) == 0)
      return;
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
  tv = tg_ms_tv(p->w->cfg->upstream_connect_timeout_ms);
  event_add(r->pend_timer, &tv);
  if (!ensure_progress(p)) {
    tg_uppool_unqueue(p, r);
    tg_relay_up_failed(r, "no upstream frontend reachable");
  }
}

/* ---- name resolution ---- */

static int addr_eq(const struct sockaddr *a, const struct sockaddr *b) {
  if (a->sa_family != b->sa_family)
    return 0;
  if (a->sa_family == AF_INET) {
    const struct sockaddr_in *x = (const void *)a, *y = (const void *)b;
    return x->sin_port == y->sin_port &&
           x->sin_addr.s_addr == y->sin_addr.s_addr;
  }
  if (a->sa_family == AF_INET6) {
    const struct sockaddr_in6 *x = (const void *)a, *y = (const void *)b;
    return x->sin6_port == y->sin6_port &&
           memcmp(&x->sin6_addr, &y->sin6_addr, sizeof(x->sin6_addr)) == 0;
  }
  return 0;
}

static int addr_in(const struct sockaddr *a, const tg_upaddr *set, size_t n) {
  for (size_t i = 0; i < n; i++)
    if (addr_eq(a, (const struct sockaddr *)&set[i].ss))
      return 1;
  return 0;
}

static void addr_list(const tg_upaddr *set, size_t n, char *out, size_t len) {
  size_t o = 0;
  out[0] = '\0';
  for (size_t i = 0; i < n && o + 1 < len; i++) {
    char ip[INET6_ADDRSTRLEN];
    const struct sockaddr *sa = (const struct sockaddr *)&set[i].ss;
    const void *src =
        sa->sa_family == AF_INET
            ? (const void *)&((const struct sockaddr_in *)sa)->sin_addr
            : (const void *)&((const struct sockaddr_in6 *)sa)->sin6_addr;
    if (!inet_ntop(sa->sa_family, src, ip, sizeof(ip)))
      snprintf(ip, sizeof(ip), "?");
    int k = snprintf(out + o, len - o, "%s%s", i ? ", " : "", ip);
    if (k < 0)
      break;
    o += (size_t)k;
  }
}

/* Drains t's connections to addresses its name no longer has. */
static void drain_stale(tg_uptarget *t) {
  tg_h2conn *c;
  LIST_FOREACH(c, &t->conns, link) {
    struct sockaddr_storage ss;
    socklen_t len = sizeof(ss);
    if (c->state != TG_CS_READY || c->closing ||
        getpeername(bufferevent_getfd(c->bev), (struct sockaddr *)&ss, &len) !=
            0 ||
        addr_in((const struct sockaddr *)&ss, t->addrs, t->naddrs))
      continue;
    tg_info("upstream %s: its connection to an address the name no longer "
            "has drains (%u stream(s) on it)",
            t->name, c->nstreams);
    drain_conn(c);
  }
}

static void dns_cb(int result, struct evutil_addrinfo *res, void *arg) {
  if (result == EVUTIL_EAI_CANCEL) {
    /* the pool is being freed: arg may be gone */
    if (res)
      evutil_freeaddrinfo(res);
    return;
  }
  tg_uptarget *t = arg;
  tg_uppool *p = t->pool;
  tg_upaddr got[MAX_ADDRS];
  size_t n = 0;
  t->dns_req = NULL;
  t->resolving = 0;
  for (struct evutil_addrinfo *ai = res; ai && n < MAX_ADDRS;
       ai = ai->ai_next) {
    if ((ai->ai_family != AF_INET && ai->ai_family != AF_INET6) ||
        ai->ai_addrlen > sizeof(got[n].ss) || addr_in(ai->ai_addr, got, n))
      continue;
    memset(&got[n].ss, 0, sizeof(got[n].ss));
    memcpy(&got[n].ss, ai->ai_addr, ai->ai_addrlen);
    got[n].len = (socklen_t)ai->ai_addrlen;
    n++;
  }
  if (res)
    evutil_freeaddrinfo(res);
  if (p->shutting_down)
    return;
  if (n == 0) {
    BUMP(t->stat->dns_fail);
    const char *why = result ? evutil_gai_strerror(result) : "no address";
    if (t->naddrs > 0) {
      tg_log(TG_LOG_INFO,
             "upstream %s: cannot resolve (%s); keeping %zu known "
             "address(es)",
             t->name, why, t->naddrs);
      return;
    }
    char reason[160];
    snprintf(reason, sizeof(reason), "cannot resolve: %s", why);
    connect_failed(t, reason);
    if (live_conns(t) == 0)
      schedule_retry(t, t->backoff_until_ms - tg_mono_ms());
    /* calls waiting for this lookup may have nowhere else to go */
    if (!t->in_resolve && !TAILQ_EMPTY(&p->pending))
      tg_uppool_kick(p);
    return;
  }
  BUMP(t->stat->dns_ok);
  int changed = n != t->naddrs;
  for (size_t i = 0; i < n && !changed; i++)
    changed =
        !addr_in((const struct sockaddr *)&got[i].ss, t->addrs, t->naddrs);
  if (changed) {
    char was[256], now[256];
    addr_list(t->addrs, t->naddrs, was, sizeof(was));
    addr_list(got, n, now, sizeof(now));
    tg_log(t->naddrs ? TG_LOG_INFO : TG_LOG_DEBUG,
           "upstream %s: resolves to %s%s%s%s", t->name, now,
           t->naddrs ? " (was " : "", was, t->naddrs ? ")" : "");
    /* keep connecting where the last connection succeeded, if still there */
    size_t cur = 0;
    if (t->naddrs > 0) {
      const struct sockaddr *sa =
          (const struct sockaddr *)&t->addrs[t->cur_addr % t->naddrs].ss;
      for (size_t i = 0; i < n; i++)
        if (addr_eq(sa, (const struct sockaddr *)&got[i].ss))
          cur = i;
    }
    memcpy(t->addrs, got, n * sizeof(got[0]));
    t->naddrs = n;
    t->cur_addr = cur;
  }
  /* every time, for a connection that raced with a change */
  drain_stale(t);
  if (live_conns(t) == 0 && t->backoff_until_ms <= tg_mono_ms()) {
    open_conn(t);
    if (!t->in_resolve && !TAILQ_EMPTY(&p->pending))
      tg_uppool_kick(p);
  }
}

static void start_resolve(tg_uptarget *t) {
  tg_uppool *p = t->pool;
  if (t->literal || t->resolving || p->shutting_down)
    return;
  struct evutil_addrinfo hints;
  memset(&hints, 0, sizeof(hints));
  hints.ai_family = AF_UNSPEC;
  hints.ai_socktype = SOCK_STREAM;
  hints.ai_protocol = IPPROTO_TCP;
  char port[8];
  snprintf(port, sizeof(port), "%u", t->addr->port);
  t->resolving = 1;
  t->in_resolve = 1;
  if (!p->dns) {
    /* no resolver could be set up: the system's, which blocks */
    struct evutil_addrinfo *res = NULL;
    int rv = evutil_getaddrinfo(t->addr->host, port, &hints, &res);
    dns_cb(rv, res, t);
  } else {
    struct evdns_getaddrinfo_request *req =
        evdns_getaddrinfo(p->dns, t->addr->host, port, &hints, dns_cb, t);
    /* The answer may have come already (a hosts entry): dns_cb then ran. */
    if (t->resolving)
      t->dns_req = req;
  }
  t->in_resolve = 0;
}

static void dns_tick(evutil_socket_t fd, short what, void *arg) {
  start_resolve(arg);
}

/* ---- health checks ---- */

static void hc_schedule(tg_uptarget *t, uint64_t ms) {
  struct timeval tv;
  if (!t->pool->checks || t->pool->shutting_down)
    return;
  tv = tg_ms_tv(ms);
  evtimer_add(t->hc.tick_ev, &tv);
}

/* Takes one check's result: counts, ejects or readmits, plans the next. */
static void hc_result(tg_uptarget *t, int ok, const char *why) {
  tg_uppool *p = t->pool;
  const tg_config *cfg = p->w->cfg;
  if (p->shutting_down)
    return;
  t->hc.answered = 1;
  if (ok) {
    BUMP(t->stat->checks_ok);
    t->hc.fail_run = 0;
    t->hc.ok_run++;
    if (t->ejected && t->hc.ok_run >= cfg->upstream_hc_healthy_threshold)
      readmit(t, "health check passed");
  } else {
    BUMP(t->stat->checks_fail);
    t->hc.ok_run = 0;
    t->hc.fail_run++;
    tg_log(t->ejected && t->hc.fail_run > 1 ? TG_LOG_DEBUG : TG_LOG_INFO,
           "upstream %s: health check failed (worker %d): %s (%u in a row)",
           t->name, p->w->id, why, t->hc.fail_run);
    if (t->hc.fail_run >= cfg->upstream_hc_unhealthy_threshold)
      eject(t, why);
    update_panic(p);
  }
  /* An ejected target is checked again after a backoff that grows with
   * its failures, up to the interval. */
  uint64_t next = cfg->upstream_hc_interval_ms;
  if (t->ejected) {
    uint64_t b = backoff_ms(t->hc.fail_run + 1);
    if (b < next)
      next = b;
  }
  hc_schedule(t, next);
}

static int hc_current(const tg_uptarget *t, const tg_h2conn *c, int32_t sid) {
  return t->hc.conn == c && t->hc.sid == sid;
}

static ssize_t hc_read_cb(nghttp2_session *session, int32_t stream_id,
                          uint8_t *buf, size_t length, uint32_t *flags,
                          nghttp2_data_source *source, void *user_data) {
  tg_uptarget *t = source->ptr;
  tg_uppool *p = t->pool;
  size_t n = 0;
  if (hc_current(t, user_data, stream_id)) {
    n = p->hc_req_len - t->hc.req_off;
    if (n > length)
      n = length;
    memcpy(buf, p->hc_req + t->hc.req_off, n);
    t->hc.req_off += n;
    if (t->hc.req_off < p->hc_req_len)
      return (ssize_t)n;
  }
  *flags |= NGHTTP2_DATA_FLAG_EOF;
  return (ssize_t)n;
}

static void hc_tick(evutil_socket_t fd, short what, void *arg) {
  tg_uptarget *t = arg;
  tg_uppool *p = t->pool;
  const tg_config *cfg = p->w->cfg;
  if (p->shutting_down || t->hc.conn)
    return;
  tg_h2conn *c = best_conn(t);
  if (!c) {
    /* nothing to check on now; a new connection asks for a check */
    hc_schedule(t, cfg->upstream_hc_interval_ms);
    return;
  }
#define NV(n, v)                                                               \
  {(uint8_t *)(n), (uint8_t *)(v), sizeof(n) - 1, strlen(v),                   \
   NGHTTP2_NV_FLAG_NONE}
  nghttp2_nv nv[] = {
      NV(":method", "POST"),
      NV(":scheme", c->ssl ? "https" : "http"),
      NV(":path", TG_HC_PATH),
      NV(":authority", t->name),
      NV("content-type", "application/grpc"),
      NV("te", "trailers"),
      NV("grpc-timeout", p->hc_timeout),
      NV("user-agent", "tgate/" TG_VERSION),
  };
#undef NV
  nghttp2_data_provider prd = {.source.ptr = t, .read_callback = hc_read_cb};
  int32_t sid = nghttp2_submit_request(
      c->session, NULL, nv, sizeof(nv) / sizeof(nv[0]), &prd, &t->hc);
  if (sid < 0) {
    hc_result(t, 0, nghttp2_strerror(sid));
    return;
  }
  t->hc.conn = c;
  t->hc.sid = sid;
  t->hc.req_off = 0;
  t->hc.http_status = 0;
  t->hc.grpc_status = -1;
  t->hc.body_len = 0;
  c->nstreams++;
  sync_streams(t);
  struct timeval tv;
  tv = tg_ms_tv(cfg->upstream_hc_timeout_ms);
  evtimer_add(t->hc.timeout_ev, &tv);
  tg_conn_schedule_flush(c);
}

static void hc_timeout_cb(evutil_socket_t fd, short what, void *arg) {
  tg_uptarget *t = arg;
  tg_h2conn *c = t->hc.conn;
  if (!c)
    return;
  /* Given up: the stream is reset; its close only gives back its slot. */
  nghttp2_submit_rst_stream(c->session, NGHTTP2_FLAG_NONE, t->hc.sid,
                            NGHTTP2_CANCEL);
  tg_conn_schedule_flush(c);
  t->hc.conn = NULL;
  hc_result(t, 0, "timed out");
}

static int parse_status(const uint8_t *v, size_t len) {
  int n = 0;
  if (len == 0 || len > 3)
    return 0;
  for (size_t i = 0; i < len; i++) {
    if (v[i] < '0' || v[i] > '9')
      return 0;
    n = n * 10 + (v[i] - '0');
  }
  return n;
}

static void hc_header(tg_uptarget *t, const uint8_t *name, size_t namelen,
                      const uint8_t *value, size_t valuelen) {
  if (namelen == 7 && memcmp(name, ":status", 7) == 0)
    t->hc.http_status = parse_status(value, valuelen);
  else if (namelen == 11 && memcmp(name, "grpc-status", 11) == 0)
    t->hc.grpc_status = valuelen ? parse_status(value, valuelen) : -1;
}

static void hc_data(tg_uptarget *t, const uint8_t *data, size_t len) {
  if (t->hc.body_len + len > HC_BODY_MAX) {
    t->hc.body_len = HC_BODY_MAX + 1;
    return;
  }
  memcpy(t->hc.body + t->hc.body_len, data, len);
  t->hc.body_len += len;
}

static void hc_closed(tg_uptarget *t, uint32_t error_code) {
  char why[160];
  int ok = 0;
  evtimer_del(t->hc.timeout_ev);
  t->hc.conn = NULL;
  if (error_code == NGHTTP2_REFUSED_STREAM) {
    /* not processed (the frontend is going away): ask again elsewhere */
    hc_schedule(t, 0);
    return;
  }
  if (error_code != NGHTTP2_NO_ERROR)
    snprintf(why, sizeof(why), "stream reset (%s)",
             nghttp2_http2_strerror(error_code));
  else if (t->hc.body_len > HC_BODY_MAX)
    snprintf(why, sizeof(why), "response too long");
  else
    ok = tg_hc_verdict(t->hc.http_status, t->hc.grpc_status, t->hc.body,
                       t->hc.body_len, why, sizeof(why));
  hc_result(t, ok, why);
}

/* ---- the upstream HTTP/2 client session ---- */

static void on_first_settings(tg_h2conn *c);

static int on_header(nghttp2_session *session, const nghttp2_frame *frame,
                     const uint8_t *name, size_t namelen, const uint8_t *value,
                     size_t valuelen, uint8_t flags, void *user_data) {
  tg_h2conn *c = user_data;
  if (frame->hd.type != NGHTTP2_HEADERS)
    return 0;
  void *ud = nghttp2_session_get_stream_user_data(session, frame->hd.stream_id);
  if (!ud)
    return 0;
  if (ud == &c->target->hc) {
    if (hc_current(c->target, c, frame->hd.stream_id))
      hc_header(c->target, name, namelen, value, valuelen);
    return 0;
  }
  return tg_relay_up_header(ud, frame->headers.cat == NGHTTP2_HCAT_HEADERS,
                            name, namelen, value, valuelen, flags);
}

static int on_frame_recv(nghttp2_session *session, const nghttp2_frame *frame,
                         void *user_data) {
  tg_h2conn *c = user_data;
  tg_uptarget *t = c->target;
  tg_uppool *p = t->pool;
  if (frame->hd.type == NGHTTP2_GOAWAY) {
    tg_info("upstream %s: GOAWAY received (code %u)", c->peer,
            frame->goaway.error_code);
    set_ready(c, 0);
    c->state = TG_CS_DRAINING;
    /* A frontend closing connections (max age, restart) is not failing:
     * a new connection replaces this one. */
    if (!p->shutting_down && live_conns(t) == 0)
      open_conn(t);
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
  void *ud = nghttp2_session_get_stream_user_data(session, frame->hd.stream_id);
  if (!ud || ud == &t->hc)
    return 0;
  int end_stream = (frame->hd.flags & NGHTTP2_FLAG_END_STREAM) != 0;
  if (frame->hd.type == NGHTTP2_HEADERS)
    return tg_relay_up_headers_done(
        ud, frame->headers.cat == NGHTTP2_HCAT_HEADERS, end_stream);
  if (frame->hd.type == NGHTTP2_DATA && end_stream)
    return tg_relay_up_eof(ud);
  return 0;
}

static int on_data_chunk(nghttp2_session *session, uint8_t flags,
                         int32_t stream_id, const uint8_t *data, size_t len,
                         void *user_data) {
  tg_h2conn *c = user_data;
  void *ud = nghttp2_session_get_stream_user_data(session, stream_id);
  if (!ud || ud == &c->target->hc) {
    if (ud && hc_current(c->target, c, stream_id))
      hc_data(c->target, data, len);
    nghttp2_session_consume(session, stream_id, len);
    return 0;
  }
  return tg_relay_up_data(ud, data, len);
}

static int on_stream_close(nghttp2_session *session, int32_t stream_id,
                           uint32_t error_code, void *user_data) {
  tg_h2conn *c = user_data;
  tg_uptarget *t = c->target;
  tg_uppool *p = t->pool;
  void *ud = nghttp2_session_get_stream_user_data(session, stream_id);
  if (ud == &t->hc) {
    if (c->nstreams)
      c->nstreams--;
    if (hc_current(t, c, stream_id))
      hc_closed(t, error_code);
  } else if (ud) {
    tg_relay_up_closed(ud, error_code);
  }
  sync_streams(t);
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
  int rv = nghttp2_session_client_new3(&c->session, cbs, c, opt,
                                       tg_slab_mem(&c->w->slab));
  nghttp2_option_del(opt);
  nghttp2_session_callbacks_del(cbs);
  if (rv != 0)
    return -1;
  nghttp2_settings_entry iv[] = {
      {NGHTTP2_SETTINGS_ENABLE_PUSH, 0},
      {NGHTTP2_SETTINGS_INITIAL_WINDOW_SIZE, TG_STREAM_WINDOW},
      {NGHTTP2_SETTINGS_MAX_HEADER_LIST_SIZE, 64 * 1024},
      {NGHTTP2_SETTINGS_NO_RFC7540_PRIORITIES, 1},
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
  tg_uppool *p = t->pool;
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
  if (!p->checks)
    readmit(t, "connected");
  else if (t->ejected && !t->hc.conn)
    hc_schedule(t, 0);
  else if (!evtimer_pending(t->hc.tick_ev, NULL))
    hc_schedule(t, p->w->cfg->upstream_hc_interval_ms);
  tg_uppool_kick(p);
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
    X509 *peer = SSL_get0_peer_certificate(c->ssl);
    struct tm tm;
    if (peer && c->target->stat &&
        ASN1_TIME_to_tm(X509_get0_notAfter(peer), &tm) == 1)
      atomic_store_explicit(&c->target->stat->cert_not_after,
                            (long long)timegm(&tm), memory_order_relaxed);
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
  /* READY and not closed by tgate: the frontend went away under it */
  int lost = c->state == TG_CS_READY && !c->closing;
  c->closing = 1;
  set_ready(c, 0);
  c->state = TG_CS_DRAINING;
  t->nconns--;
  if (t->hc.conn == c) {
    evtimer_del(t->hc.timeout_ev);
    t->hc.conn = NULL;
    hc_result(t, 0, "connection closed");
  }
  if (was_connecting) {
    t->nconnecting--;
    connect_failed(t, c->reason[0] ? c->reason : "no HTTP/2 settings");
    why = "upstream frontend unreachable";
  } else if (lost && (p->checks || t->nready == 0)) {
    eject(t, "connection lost");
    if (t->nready > 0)
      hc_schedule(t, 0);
  }
  tg_relay *r;
  while ((r = LIST_FIRST(&c->relays)) != NULL)
    tg_relay_up_failed(r, why);
  c->nstreams = 0;
  sync_streams(t);
  if (!p->shutting_down && live_conns(t) == 0) {
    uint64_t now = tg_mono_ms();
    schedule_retry(t,
                   t->backoff_until_ms > now ? t->backoff_until_ms - now : 0);
  }
  if (!TAILQ_EMPTY(&p->pending))
    tg_uppool_kick(p);
}

/* ---- pool life ---- */

/* Parses an IP literal host into t's only address. 0, or -1 for a name. */
static int literal_addr(tg_uptarget *t) {
  tg_upaddr *a = &t->addrs[0];
  memset(a, 0, sizeof(*a));
  struct sockaddr_in *v4 = (struct sockaddr_in *)&a->ss;
  struct sockaddr_in6 *v6 = (struct sockaddr_in6 *)&a->ss;
  if (inet_pton(AF_INET, t->addr->host, &v4->sin_addr) == 1) {
    v4->sin_family = AF_INET;
    v4->sin_port = htons(t->addr->port);
    a->len = sizeof(*v4);
  } else if (inet_pton(AF_INET6, t->addr->host, &v6->sin6_addr) == 1) {
    v6->sin6_family = AF_INET6;
    v6->sin6_port = htons(t->addr->port);
    a->len = sizeof(*v6);
  } else {
    return -1;
  }
  t->naddrs = 1;
  t->literal = 1;
  return 0;
}

static struct evdns_base *dns_new(tg_worker *w) {
  const char *conf = w->cfg->upstream_resolv_conf;
  struct evdns_base *dns =
      evdns_base_new(w->base, conf ? 0 : EVDNS_BASE_INITIALIZE_NAMESERVERS);
  if (!dns) {
    tg_warn("no DNS resolver could be set up; upstream names are resolved "
            "by the system, blocking");
    return NULL;
  }
  if (conf) {
    int rv = evdns_base_resolv_conf_parse(dns, DNS_OPTIONS_ALL, conf);
    if (rv != 0)
      tg_warn("upstream.resolv_conf %s: %s", conf,
              rv == 1   ? "cannot open"
              : rv == 6 ? "no nameserver listed; using 127.0.0.1"
                        : "cannot read");
  }
  return dns;
}

tg_uppool *tg_uppool_new(tg_worker *w) {
  const tg_config *cfg = w->cfg;
  tg_uppool *p = calloc(1, sizeof(*p));
  if (!p)
    return NULL;
  p->w = w;
  TAILQ_INIT(&p->pending);
  /* every target starts ejected, so none takes calls yet */
  p->panic = 1;
  p->checks = cfg->upstream_hc_enabled < 0 ? cfg->upstream_naddresses > 1
                                           : cfg->upstream_hc_enabled;
  int n = tg_hc_encode_request(cfg->upstream_hc_service, p->hc_req,
                               sizeof(p->hc_req));
  if (n < 0)
    goto fail;
  p->hc_req_len = (size_t)n;
  snprintf(p->hc_timeout, sizeof(p->hc_timeout), "%llum",
           (unsigned long long)cfg->upstream_hc_timeout_ms);
  p->targets = calloc(cfg->upstream_naddresses, sizeof(*p->targets));
  p->load = calloc(cfg->upstream_naddresses, sizeof(*p->load));
  p->eligible = calloc(cfg->upstream_naddresses, sizeof(*p->eligible));
  p->slot = calloc(cfg->upstream_naddresses, sizeof(*p->slot));
  if (!p->targets || !p->load || !p->eligible || !p->slot)
    goto fail;
  p->ntargets = cfg->upstream_naddresses;
  int names = 0;
  for (size_t i = 0; i < p->ntargets; i++) {
    tg_uptarget *t = &p->targets[i];
    t->pool = p;
    t->addr = &cfg->upstream_addresses[i];
    LIST_INIT(&t->conns);
    /* Admitted by its first passing check (or first connection). */
    t->ejected = 1;
    if (strchr(t->addr->host, ':'))
      snprintf(t->name, sizeof(t->name), "[%s]:%u", t->addr->host,
               t->addr->port);
    else
      snprintf(t->name, sizeof(t->name), "%s:%u", t->addr->host, t->addr->port);
    t->stat = stat_ref(t->name);
    t->retry_ev = evtimer_new(w->base, retry_cb, t);
    t->hc.tick_ev = evtimer_new(w->base, hc_tick, t);
    t->hc.timeout_ev = evtimer_new(w->base, hc_timeout_cb, t);
    if (!t->stat || !t->retry_ev || !t->hc.tick_ev || !t->hc.timeout_ev)
      goto fail;
    if (literal_addr(t) == 0)
      continue;
    names = 1;
    if (cfg->upstream_dns_refresh_ms > 0 &&
        !(t->dns_ev = event_new(w->base, -1, EV_PERSIST, dns_tick, t)))
      goto fail;
  }
  if (names)
    p->dns = dns_new(w);
  return p;
fail:
  tg_uppool_free(p);
  return NULL;
}

void tg_uppool_start(tg_uppool *p) {
  struct timeval tv;
  tv = tg_ms_tv(p->w->cfg->upstream_dns_refresh_ms);
  for (size_t i = 0; i < p->ntargets; i++) {
    tg_uptarget *t = &p->targets[i];
    if (t->dns_ev)
      event_add(t->dns_ev, &tv);
    open_conn(t);
  }
}

int tg_uppool_ready(const tg_uppool *p) {
  return p->nready;
}

void tg_uppool_shutdown(tg_uppool *p) {
  p->shutting_down = 1;
  for (size_t i = 0; i < p->ntargets; i++) {
    tg_uptarget *t = &p->targets[i];
    event_del(t->retry_ev);
    evtimer_del(t->hc.tick_ev);
    evtimer_del(t->hc.timeout_ev);
    if (t->dns_ev)
      event_del(t->dns_ev);
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
    if (t->dns_req) {
      evdns_getaddrinfo_cancel(t->dns_req);
      t->dns_req = NULL;
    }
    tg_h2conn *c;
    while ((c = LIST_FIRST(&t->conns)) != NULL) {
      c->closing = 1;
      tg_conn_free(c);
    }
    if (t->retry_ev)
      event_free(t->retry_ev);
    if (t->hc.tick_ev)
      event_free(t->hc.tick_ev);
    if (t->hc.timeout_ev)
      event_free(t->hc.timeout_ev);
    if (t->dns_ev)
      event_free(t->dns_ev);
    if (t->stat) {
      t->ejected = 1;
      sync_counts(t);
      sync_streams(t);
      stat_unref(t->stat);
    }
  }
  free(p->targets);
  free(p->load);
  free(p->eligible);
  free(p->slot);
  if (p->dns)
    evdns_base_free(p->dns, 0);
  free(p);
}
