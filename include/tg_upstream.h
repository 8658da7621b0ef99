/*
 * tg_upstream: a worker's pool of HTTP/2 client connections to the Temporal
 * frontends (h2c or TLS with ALPN h2), one "target" per configured address.
 *
 * Connections
 * - At start one connection per address is opened and kept (reconnected with
 *   exponential backoff, 100 ms doubling to 10 s with jitter, after
 *   failures). A connection takes calls once the frontend's first SETTINGS
 *   have arrived. When every usable connection is at the frontend's
 *   MAX_CONCURRENT_STREAMS, a new one is opened (up to max_connections per
 *   address, draining ones not counted) and the call waits for it.
 * - A frontend's GOAWAY drains its connection (calls on it finish, none are
 *   added) and a replacement is opened at once: that is not a failure.
 * - Cancellations: frontends (and proxies before them) count the
 *   RST_STREAMs a connection sends and close one that sends too many
 *   (rapid-reset defences: nghttp2 allows a burst of 1000, then 33/s).
 *   Clients' cancellations are always passed on, but a connection that
 *   has sent TG_UP_RST_BURST of them faster than TG_UP_RST_RATE per second
 *   is rotated: drained (its calls finish) while new calls go to a fresh
 *   connection, so the frontend never closes a connection carrying other
 *   clients' calls. At most TG_UP_RST_MAX_DRAINING connections per address
 *   are draining for this reason at once; beyond that they are kept.
 * - A call that cannot be placed (nothing reachable, or no slot within
 *   connect_timeout) is answered UNAVAILABLE (14) at once.
 *
 * Balancing: a new call goes to the target with the fewest streams in
 * flight (calls and health checks, on all its connections) among those that
 * take calls and have a free slot, ties broken round-robin; within the
 * target, to its least busy connection (tg_up_pick is the choice).
 *
 * Health and ejection: a target that takes no new calls is "ejected"; calls
 * already on it are never cancelled by that. Every target starts ejected
 * (fail-open, below, serves the first calls until one is admitted).
 * - With health checks (upstream.health_check; on by default when there are
 *   two or more addresses) tgate sends grpc.health.v1.Health/Check for the
 *   configured service on one of the target's connections every interval
 *   (a stream of its own; skipped while every connection is full). The
 *   answer must be SERVING within the timeout. A target is admitted by
 *   healthy_threshold passing checks in a row and ejected by
 *   unhealthy_threshold failing ones, by losing a connection it had not
 *   closed itself (no GOAWAY), or by failing to connect while it has no
 *   working connection. An ejected target is checked again after a backoff
 *   (100 ms doubled for each failed check in a row, with jitter, at most the
 *   interval) and comes back once it passes healthy_threshold checks in a
 *   row; a frontend's REFUSED_STREAM (it is going away) is not a result.
 * - Without health checks a target is admitted when a connection becomes
 *   READY and ejected when its last working connection is lost or a
 *   connection attempt fails while it has none.
 * - Fail-open: when no target takes calls (all ejected) every target with a
 *   READY connection is used, rather than refusing everything (Envoy's
 *   panic threshold at 100%).
 *
 * Names: an IP literal is never resolved. A host name is resolved with evdns
 * (asynchronously; /etc/hosts, then the nameservers of upstream.resolv_conf
 * or /etc/resolv.conf) at start, before reconnecting after a failure, and
 * every dns_refresh_interval. New connections go to the address the last
 * one succeeded on while it is still listed, else to the next; connections
 * to an address the name no longer has drain (no new calls, closed when
 * idle). A failed lookup keeps the addresses already known.
 *
 * Readiness: app->upstream_ready counts READY connections of targets that
 * take calls (all workers), so /health/ready fails when every frontend is
 * ejected even though calls still flow fail-open.
 *
 * Metrics: per configured address, process-wide (all workers' pools add to
 * one set of atomic counters; tg_upstream_metrics reads them):
 *   tgate_upstream_healthy{address}            1 when every worker sends it
 *                                              new calls
 *   tgate_upstream_streams_outstanding{address}
 *   tgate_upstream_health_checks_total{address,result="ok|fail"}
 *   tgate_upstream_ejections_total{address}
 *   tgate_upstream_dns_refreshes_total{address,result="ok|fail"}
 *
 * Threads: the pool and its functions belong to the owning worker's thread,
 * except tg_upstream_metrics and tg_up_pick, which any thread may call.
 */
#ifndef TG_UPSTREAM_H
#define TG_UPSTREAM_H
#include <event2/buffer.h>

#include "tg_types.h"

tg_uppool *tg_uppool_new(tg_worker *w); /* NULL on no memory */
void tg_uppool_start(tg_uppool *p);
/* Forwards r now, queues it, or answers it with UNAVAILABLE. */
void tg_uppool_submit(tg_uppool *p, tg_relay *r);
/* Removes a queued relay (its client went away). */
void tg_uppool_unqueue(tg_uppool *p, tg_relay *r);
/* Stream slots may have opened: place queued relays. */
void tg_uppool_kick(tg_uppool *p);
/* No new connections, checks or lookups; idle connections close. Calls in
 * flight continue. */
void tg_uppool_shutdown(tg_uppool *p);
/* Number of connections currently READY. */
int tg_uppool_ready(const tg_uppool *p);
void tg_uppool_free(tg_uppool *p);

#define TG_UP_RST_BURST 500
#define TG_UP_RST_RATE 25
#define TG_UP_RST_MAX_DRAINING 16

/* tgate is sending RST_STREAM on upstream connection c: counts it against
 * c's budget and rotates c when the budget is spent (see above). */
void tg_up_note_reset(tg_h2conn *c);

/* Hooks for tg_conn: the upstream socket connected (TLS done), and the
 * connection is being freed (why: for logs and for the calls on it). */
void tg_up_on_connected(tg_h2conn *c);
void tg_up_teardown(tg_h2conn *c, const char *why);

/* Appends the per-address metrics above (Prometheus text format, with their
 * # HELP and # TYPE lines) to b; nothing when no pool exists. Any thread. */
void tg_upstream_metrics(struct evbuffer *b);

/* The balancing choice, a pure function: among n candidates the index of
 * an eligible one (eligible[i] != 0) with the smallest load[i], ties going
 * to the first at or after start, wrapping around. -1 when none is
 * eligible. */
int tg_up_pick(const uint64_t *load, const unsigned char *eligible, size_t n,
               size_t start);
#endif
