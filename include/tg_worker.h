/*
 * tg_worker: one thread with its own event loop, its own SO_REUSEPORT
 * listener, its downstream connections and its own upstream pool. Workers
 * share nothing on the hot path but the read-only generation (tg_gen:
 * configuration, TLS contexts, authenticator, authorizer); they talk to the
 * main thread only through tg_app's atomics and event_active() (libevent is set
 * up for threads).
 *
 * Shutdown (tg_worker_shutdown, from any thread): stop accepting, send
 * GOAWAY on every downstream connection, let calls in flight finish until
 * the grace period ends, then close everything and leave the loop.
 */
#ifndef TG_WORKER_H
#define TG_WORKER_H
#include <pthread.h>
#include <stdatomic.h>
#include <time.h>

#include "tg_authn.h"
#include "tg_gen.h"
#include "tg_metrics.h"
#include "tg_slab.h"
#include "tg_types.h"

struct tg_app {
  tg_gen *boot; /* the generation tgate started with, kept to the end:
                   workers' fixed settings (w->cfg) point into it */
  tg_gen *gen;  /* main thread: the current generation */
  struct tg_reload *reload;
  struct tg_audit *audit;         /* NULL without audit.file */
  struct tg_callcount *callcount; /* calls in flight per subject */
  struct tg_nslabels *nslabels;   /* namespace labels of /metrics */
  atomic_int conns;               /* client connections open, all workers */
  struct event_base *base;        /* main thread: signals, admin */
  tg_worker **workers;
  uint32_t nworkers;
  /* upstream connections in READY state to frontends that take calls (not
   * ejected), all workers */
  atomic_int upstream_ready;
  atomic_int workers_running;
  atomic_int shutting_down;
  struct event
      *worker_exit_ev; /* activated by a worker when it leaves its loop */
};

/* Counters a worker updates and the admin thread reads for /metrics
 * (relaxed atomics: each is exact on its own, the set is not a snapshot). */
#define TG_STATUS_BUCKETS 18 /* grpc-status 0..16, and 17: none (reset) */
typedef struct tg_worker_stats {
  atomic_uint_least64_t calls[TG_DECISION_COUNT];
  atomic_uint_least64_t limited[TG_LIMIT_COUNT]; /* refusals by TG_LIMIT_* */
  atomic_uint_least64_t status[TG_STATUS_BUCKETS];
  atomic_uint_least64_t bytes_in, bytes_out;
  atomic_uint_least64_t conns_accepted, upstream_connect_failures;
  /* upstream connections drained for sending many RST_STREAMs */
  atomic_uint_least64_t upstream_rotations;
  tg_authn_counters authn;
  atomic_int conns_open, streams_open;
  struct tg_callstats *calls_by; /* by method, namespace, decision, status */
  tg_hist added;                 /* tgate's own time per forwarded call */
  tg_hist *upstream;             /* the frontend's time, by method index + 1 */
} tg_worker_stats;

struct tg_worker {
  int id;
  tg_app *app;
  /* Settings fixed at start (listen, upstream): app->boot's configuration.
   * Everything a reload may change is read from gen (or a call's gen). */
  const tg_config *cfg;
  tg_gen *gen;           /* the current generation (a reference) */
  tg_authn_local *authn; /* token cache for gen->authn; NULL without */
  pthread_mutex_t next_mu;
  tg_gen *next_gen; /* handed over by tg_worker_set_gen, taken by gen_ev */
  struct event *gen_ev;
  struct event *accept_ev; /* resumes accepting after a failure */
  time_t accept_warned_at;
  uint64_t accept_failures;
  struct event_base *base;
  int listen_fd;
  struct evconnlistener *listener;
  tg_uppool *pool;
  tg_relay *spare_relays; /* ended calls' relays, for reuse */
  tg_slab slab;           /* nghttp2's memory for this worker's sessions */
  uint32_t nspare_relays;
  struct tg_conn_list downconns;
  uint32_t ndown;
  tg_worker_stats stats;
  struct event *shutdown_ev, *force_ev, *grace_ev;
  struct event *trim_ev; /* tg_conn_trim over downconns, periodically */
  int shutting_down;
  pthread_t thread;
  uint64_t reads; /* read events handled (busy polling sees activity) */
};

/* Each worker's accept queue (the kernel caps it at net.core.somaxconn,
 * 4096 by default). When it is full the kernel drops new SYNs and the final
 * ACKs of handshakes, and each of those clients waits for a retransmit (1 s,
 * then 3 s, 7 s...): a fleet of workers reconnecting at once, after a
 * restart or a network blip, must fit in it. */
#define TG_LISTEN_BACKLOG 4096

/* How long accepting pauses after accept() failed (EMFILE...). */
#define TG_ACCEPT_PAUSE_MS 100

/* Creates worker id with a bound, listening socket fd (taken over). */
tg_worker *tg_worker_new(tg_app *app, int id, int listen_fd);
int tg_worker_start(tg_worker *w);     /* starts the thread; 0 or -1 */
void tg_worker_shutdown(tg_worker *w); /* any thread: graceful */
void tg_worker_force(tg_worker *w);    /* any thread: close everything now */
/* Any thread (the main one, on reload): new calls on w use g from w's next
 * loop iteration on; calls in flight keep theirs. Takes a reference. */
void tg_worker_set_gen(tg_worker *w, tg_gen *g);
void tg_worker_join_free(tg_worker *w);

/* Called by the connection module when a downstream connection is freed. */
void tg_worker_down_closed(tg_worker *w);

/* Opens a listening socket on addr with SO_REUSEPORT. With first set, it
 * first checks that no other process listens there (a plain bind): the
 * workers of one tgate share the port, nobody else does. Returns the fd or
 * -1 with a reason in err. Blocking (name resolution); call at start only. */
int tg_worker_listen_socket(const tg_addr *addr, int first, char *err,
                            size_t errlen);
#endif
