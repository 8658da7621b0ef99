/*
 * tg_worker: one thread with its own event loop, its own SO_REUSEPORT
 * listener, its downstream connections and its own upstream pool. Workers
 * share nothing on the hot path but the read-only configuration and TLS
 * contexts; they talk to the main thread only through tg_app's atomics and
 * event_active() (libevent is set up for threads).
 *
 * Shutdown (tg_worker_shutdown, from any thread): stop accepting, send
 * GOAWAY on every downstream connection, let calls in flight finish until
 * the grace period ends, then close everything and leave the loop.
 */
#ifndef TG_WORKER_H
#define TG_WORKER_H
#include <pthread.h>
#include <stdatomic.h>

#include "tg_authn.h"
#include "tg_keystore.h"
#include "tg_types.h"

struct tg_app {
  const tg_config *cfg;
  SSL_CTX *server_ctx;     /* NULL for h2c */
  SSL_CTX *client_ctx;     /* NULL for h2c upstream */
  tg_keystore *keystore;   /* JWT keys; NULL without authentication.jwt */
  tg_authn *authn;         /* NULL without an authentication section */
  struct tg_authz *authz;  /* always set; in mode off it allows all */
  struct tg_audit *audit;  /* NULL without audit.file */
  struct event_base *base; /* main thread: signals, admin */
  tg_worker **workers;
  uint32_t nworkers;
  atomic_int
      upstream_ready; /* upstream connections in READY state, all workers */
  atomic_int workers_running;
  atomic_int shutting_down;
  struct event
      *worker_exit_ev; /* activated by a worker when it leaves its loop */
};

/* Counters a worker updates and the admin thread reads for /metrics
 * (relaxed atomics: each is exact on its own, the set is not a snapshot). */
#define TG_STATUS_BUCKETS 18 /* grpc-status 0..16, and 17: none (reset) */
typedef struct tg_worker_stats {
  atomic_uint_least64_t calls[8]; /* by TG_DECISION_* */
  atomic_uint_least64_t status[TG_STATUS_BUCKETS];
  atomic_uint_least64_t bytes_in, bytes_out;
  atomic_uint_least64_t conns_accepted, upstream_connect_failures;
  atomic_uint_least64_t token_cache_hits, token_cache_misses;
  atomic_int conns_open, streams_open;
} tg_worker_stats;

struct tg_worker {
  int id;
  tg_app *app;
  const tg_config *cfg;
  struct event_base *base;
  int listen_fd;
  struct evconnlistener *listener;
  tg_uppool *pool;
  tg_authn_local *authn; /* this worker's token cache; NULL without authn */
  struct tg_conn_list downconns;
  uint32_t ndown;
  tg_worker_stats stats;
  struct event *shutdown_ev, *force_ev, *grace_ev;
  int shutting_down;
  pthread_t thread;
};

/* Creates worker id with a bound, listening socket fd (taken over). */
tg_worker *tg_worker_new(tg_app *app, int id, int listen_fd);
int tg_worker_start(tg_worker *w);     /* starts the thread; 0 or -1 */
void tg_worker_shutdown(tg_worker *w); /* any thread: graceful */
void tg_worker_force(tg_worker *w);    /* any thread: close everything now */
void tg_worker_join_free(tg_worker *w);

/* Called by the connection module when a downstream connection is freed. */
void tg_worker_down_closed(tg_worker *w);

/* Opens a listening socket on addr with SO_REUSEPORT. Returns the fd or -1
 * with a reason in err. Blocking (name resolution); call at start only. */
int tg_worker_listen_socket(const tg_addr *addr, char *err, size_t errlen);
#endif
