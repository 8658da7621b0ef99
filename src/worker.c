#include "tg_worker.h"

#include <errno.h>
#include <event2/listener.h>
#include <event2/thread.h>
#include <netdb.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

#include "tg_clock.h"
#include "tg_conn.h"
#include "tg_downstream.h"
#include "tg_log.h"
#include "tg_methods.h"
#include "tg_relay.h"
#include "tg_upstream.h"

int tg_worker_listen_socket(const tg_addr *addr, int first, char *err,
                            size_t errlen) {
  struct addrinfo hints = {0}, *res = NULL;
  char port[8];
  snprintf(port, sizeof(port), "%u", addr->port);
  hints.ai_family = AF_UNSPEC;
  hints.ai_socktype = SOCK_STREAM;
  hints.ai_flags = AI_PASSIVE;
  int rv = getaddrinfo(addr->host, port, &hints, &res);
  if (rv != 0) {
    snprintf(err, errlen, "cannot resolve %s: %s", addr->host,
             gai_strerror(rv));
    return -1;
  }
  int fd = -1;
  for (struct addrinfo *ai = res; ai; ai = ai->ai_next) {
    fd = socket(ai->ai_family, ai->ai_socktype | SOCK_CLOEXEC, ai->ai_protocol);
    if (fd < 0)
      continue;
    int one = 1;
    setsockopt(fd, SOL_SOCKET, SO_REUSEADDR, &one, sizeof(one));
    if (ai->ai_family == AF_INET6)
      setsockopt(fd, IPPROTO_IPV6, IPV6_V6ONLY, &one, sizeof(one));
    /* The first socket is bound once without SO_REUSEPORT: a port some
     * other process listens on (another tgate, with SO_REUSEPORT too) is
     * then refused instead of silently shared with it. */
    if (first && bind(fd, ai->ai_addr, ai->ai_addrlen) != 0) {
      snprintf(err, errlen, "cannot listen on %s:%u: %s", addr->host,
               addr->port, strerror(errno));
      close(fd);
      fd = -1;
      continue;
    }
    if (first) {
      close(fd);
      fd = socket(ai->ai_family, ai->ai_socktype | SOCK_CLOEXEC,
                  ai->ai_protocol);
      if (fd < 0)
        continue;
      setsockopt(fd, SOL_SOCKET, SO_REUSEADDR, &one, sizeof(one));
      if (ai->ai_family == AF_INET6)
        setsockopt(fd, IPPROTO_IPV6, IPV6_V6ONLY, &one, sizeof(one));
    }
    setsockopt(fd, SOL_SOCKET, SO_REUSEPORT, &one, sizeof(one));
    if (bind(fd, ai->ai_addr, ai->ai_addrlen) == 0 &&
        listen(fd, TG_LISTEN_BACKLOG) == 0)
      break;
    snprintf(err, errlen, "cannot listen on %s:%u: %s", addr->host, addr->port,
             strerror(errno));
    close(fd);
    fd = -1;
  }
  freeaddrinfo(res);
  if (fd >= 0)
    evutil_make_socket_nonblocking(fd);
  return fd;
}

static void accept_cb(struct evconnlistener *l, evutil_socket_t fd,
                      struct sockaddr *sa, int salen, void *arg) {
  tg_worker *w = arg;
  evutil_make_socket_nonblocking(fd);
  tg_down_accept(w, fd, sa, salen);
}

static void accept_resume_cb(evutil_socket_t fd, short what, void *arg) {
  tg_worker *w = arg;
  if (w->listener && !w->shutting_down)
    evconnlistener_enable(w->listener);
}

/* EMFILE and friends: the connection waits in the backlog, so retrying at
 * once would spin. The listener pauses TG_ACCEPT_PAUSE_MS (connections
 * already open are served meanwhile) and the warning is logged at most once
 * a second, with the count of failures since. */
static void accept_error_cb(struct evconnlistener *l, void *arg) {
  tg_worker *w = arg;
  int err = EVUTIL_SOCKET_ERROR();
  time_t now = time(NULL);
  w->accept_failures++;
  if (now != w->accept_warned_at) {
    tg_warn("worker %d: accept failed: %s (%llu time(s) since the last "
            "warning); pausing new connections for %d ms",
            w->id, evutil_socket_error_to_string(err),
            (unsigned long long)w->accept_failures, TG_ACCEPT_PAUSE_MS);
    w->accept_warned_at = now;
    w->accept_failures = 0;
  }
  evconnlistener_disable(l);
  struct timeval tv = tg_ms_tv(TG_ACCEPT_PAUSE_MS);
  event_add(w->accept_ev, &tv);
}

/* Idle client connections give back their output buffer's pages. */
static void trim_cb(evutil_socket_t fd, short what, void *arg) {
  tg_worker *w = arg;
  tg_h2conn *c;
  LIST_FOREACH(c, &w->downconns, link) {
    tg_conn_trim(c);
  }
}

static void finish(tg_worker *w) {
  event_base_loopexit(w->base, NULL);
}

static void maybe_done(tg_worker *w) {
  if (w->shutting_down && w->ndown == 0) {
    tg_uppool_shutdown(w->pool);
    finish(w);
  }
}

void tg_worker_down_closed(tg_worker *w) {
  w->ndown--;
  atomic_fetch_sub_explicit(&w->stats.conns_open, 1, memory_order_relaxed);
  atomic_fetch_sub(&w->app->conns, 1);
  maybe_done(w);
}

static void force_cb(evutil_socket_t fd, short what, void *arg) {
  tg_worker *w = arg;
  tg_h2conn *c;
  if (w->listener) {
    evconnlistener_free(w->listener);
    w->listener = NULL;
  }
  w->shutting_down = 1;
  while ((c = LIST_FIRST(&w->downconns)) != NULL)
    tg_conn_free(c);
  finish(w);
}

static void shutdown_cb(evutil_socket_t fd, short what, void *arg) {
  tg_worker *w = arg;
  if (w->shutting_down)
    return;
  w->shutting_down = 1;
  if (w->listener) {
    evconnlistener_free(w->listener);
    w->listener = NULL;
  }
  tg_h2conn *c, *next;
  for (c = LIST_FIRST(&w->downconns); c; c = next) {
    next = LIST_NEXT(c, link);
    tg_down_goaway(c);
  }
  uint64_t grace = w->gen->cfg->shutdown_grace_ms;
  struct timeval tv = tg_ms_tv(grace);
  event_add(w->grace_ev, &tv);
  maybe_done(w);
}

static void grace_cb(evutil_socket_t fd, short what, void *arg) {
  tg_worker *w = arg;
  if (w->ndown)
    tg_warn("worker %d: grace period over; closing %u connection(s) with calls "
            "in flight",
            w->id, w->ndown);
  force_cb(fd, what, arg);
}

/* Makes g this worker's generation: a token cache for its authenticator
 * (the old cache's entries were mapped under the old rules), then the
 * swap. 0, or -1 (no memory: the old generation stays). */
static int adopt(tg_worker *w, tg_gen *g) {
  tg_authn_local *l = NULL;
  if (g->authn && !(l = tg_authn_local_new(g->authn, &w->stats.authn)))
    return -1;
  tg_authn_local_free(w->authn);
  w->authn = l;
  tg_gen_unref(w->gen);
  w->gen = tg_gen_ref(g);
  return 0;
}

static void gen_cb(evutil_socket_t fd, short what, void *arg) {
  tg_worker *w = arg;
  pthread_mutex_lock(&w->next_mu);
  tg_gen *g = w->next_gen;
  w->next_gen = NULL;
  pthread_mutex_unlock(&w->next_mu);
  if (!g)
    return;
  if (adopt(w, g) != 0)
    tg_err("worker %d: out of memory adopting configuration %llu; keeping "
           "%llu",
           w->id, (unsigned long long)g->id, (unsigned long long)w->gen->id);
  tg_gen_unref(g);
}

void tg_worker_set_gen(tg_worker *w, tg_gen *g) {
  pthread_mutex_lock(&w->next_mu);
  tg_gen *old = w->next_gen;
  w->next_gen = tg_gen_ref(g);
  pthread_mutex_unlock(&w->next_mu);
  tg_gen_unref(old);
  event_active(w->gen_ev, EV_READ, 0);
}

tg_worker *tg_worker_new(tg_app *app, int id, int listen_fd) {
  tg_worker *w = calloc(1, sizeof(*w));
  if (!w) {
    close(listen_fd);
    return NULL;
  }
  w->id = id;
  w->app = app;
  w->cfg = app->boot->cfg;
  w->listen_fd = listen_fd;
  pthread_mutex_init(&w->next_mu, NULL);
  tg_slab_init(&w->slab);
  LIST_INIT(&w->downconns);
  /* The changelist folds an EPOLLOUT armed and disarmed within one loop
   * pass (a TLS bufferevent does that on every write) into no syscall. */
  struct event_config *ec = event_config_new();
  if (ec)
    event_config_set_flag(ec, EVENT_BASE_FLAG_EPOLL_USE_CHANGELIST);
  w->base = ec ? event_base_new_with_config(ec) : NULL;
  if (ec)
    event_config_free(ec);
  if (!w->base)
    goto fail;
  w->shutdown_ev = event_new(w->base, -1, 0, shutdown_cb, w);
  w->force_ev = event_new(w->base, -1, 0, force_cb, w);
  w->grace_ev = evtimer_new(w->base, grace_cb, w);
  w->gen_ev = event_new(w->base, -1, 0, gen_cb, w);
  w->accept_ev = evtimer_new(w->base, accept_resume_cb, w);
  w->trim_ev = event_new(w->base, -1, EV_PERSIST, trim_cb, w);
  if (!w->shutdown_ev || !w->force_ev || !w->grace_ev || !w->gen_ev ||
      !w->accept_ev || !w->trim_ev)
    goto fail;
  struct timeval trim_every = tg_ms_tv(TG_CONN_TRIM_INTERVAL_MS);
  if (event_add(w->trim_ev, &trim_every) != 0)
    goto fail;
  /* backlog 0: the socket listens already (-1 would listen() again with
   * libevent's default of 128) */
  w->listener = evconnlistener_new(
      w->base, accept_cb, w, LEV_OPT_CLOSE_ON_FREE | LEV_OPT_CLOSE_ON_EXEC, 0,
      listen_fd);
  if (!w->listener)
    goto fail;
  w->listen_fd = -1;
  evconnlistener_set_error_cb(w->listener, accept_error_cb);
  w->pool = tg_uppool_new(w);
  if (!w->pool)
    goto fail;
  w->stats.calls_by = tg_callstats_new();
  w->stats.upstream = calloc(tg_methods_count() + 1, sizeof(tg_hist));
  if (!w->stats.calls_by || !w->stats.upstream)
    goto fail;
  if (adopt(w, app->gen) != 0)
    goto fail;
  return w;
fail:
  if (w->listen_fd >= 0)
    close(w->listen_fd);
  w->listen_fd = -1;
  tg_worker_join_free(w);
  return NULL;
}

/* One pass of the event loop with flags; -1 once the loop is to end (no
 * events left, an error, or loopexit/loopbreak). */
static int loop_pass(tg_worker *w, int flags) {
  return event_base_loop(w->base, flags) != 0 || event_base_got_exit(w->base) ||
                 event_base_got_break(w->base)
             ? -1
             : 0;
}

/* The worker's event loop. With busy_poll, after events that read
 * something the loop keeps polling without sleeping until busy_poll has
 * passed with no read: the answer to a call just forwarded, or the next
 * call of a client that just got one, is then taken at once instead of
 * after the thread was woken up again (tens of microseconds on a virtual
 * machine). An idle worker, long polls held included, sleeps as usual;
 * under load epoll always has events, so the polling costs nothing there. */
static void run_loop(tg_worker *w) {
  for (;;) {
    uint64_t r0 = w->reads;
    if (loop_pass(w, EVLOOP_ONCE) != 0)
      return;
    uint64_t us = w->gen->cfg->busy_poll_us;
    if (!us || w->reads == r0)
      continue;
    uint64_t window = us * 1000, last = tg_mono_ns(), now = last;
    while (now - last < window) {
      r0 = w->reads;
      if (loop_pass(w, EVLOOP_NONBLOCK) != 0)
        return;
      now = tg_mono_ns();
      if (w->reads != r0)
        last = now;
    }
  }
}

static void *worker_main(void *arg) {
  tg_worker *w = arg;
  tg_uppool_start(w->pool);
  run_loop(w);
  /* Whatever is left (grace period over, or forced) goes now. */
  tg_h2conn *c;
  while ((c = LIST_FIRST(&w->downconns)) != NULL)
    tg_conn_free(c);
  tg_uppool_free(w->pool);
  w->pool = NULL;
  tg_relay_free_spares(w);
  /* Let bufferevents' deferred frees run, then give back nghttp2's kept
   * blocks (every session is gone). */
  event_base_loop(w->base, EVLOOP_NONBLOCK);
  tg_slab_clear(&w->slab);
  atomic_fetch_sub(&w->app->workers_running, 1);
  event_active(w->app->worker_exit_ev, EV_READ, 0);
  return NULL;
}

int tg_worker_start(tg_worker *w) {
  atomic_fetch_add(&w->app->workers_running, 1);
  if (pthread_create(&w->thread, NULL, worker_main, w) != 0) {
    atomic_fetch_sub(&w->app->workers_running, 1);
    return -1;
  }
  return 0;
}

void tg_worker_shutdown(tg_worker *w) {
  event_active(w->shutdown_ev, EV_READ, 0);
}

void tg_worker_force(tg_worker *w) {
  event_active(w->force_ev, EV_READ, 0);
}

void tg_worker_join_free(tg_worker *w) {
  if (!w)
    return;
  if (w->thread)
    pthread_join(w->thread, NULL);
  if (w->listener)
    evconnlistener_free(w->listener);
  if (w->pool)
    tg_uppool_free(w->pool);
  tg_relay_free_spares(w);
  tg_slab_clear(&w->slab);
  tg_authn_local_free(w->authn);
  tg_callstats_free(w->stats.calls_by);
  free(w->stats.upstream);
  tg_gen_unref(w->gen);
  tg_gen_unref(w->next_gen);
  if (w->gen_ev)
    event_free(w->gen_ev);
  if (w->accept_ev)
    event_free(w->accept_ev);
  if (w->trim_ev)
    event_free(w->trim_ev);
  pthread_mutex_destroy(&w->next_mu);
  if (w->shutdown_ev)
    event_free(w->shutdown_ev);
  if (w->force_ev)
    event_free(w->force_ev);
  if (w->grace_ev)
    event_free(w->grace_ev);
  if (w->base)
    event_base_free(w->base);
  free(w);
}
