/*
 * tg_upstream: a worker's pool of HTTP/2 client connections to the Temporal
 * frontend addresses (h2c or TLS with ALPN h2).
 *
 * - At start one connection per address is opened and kept (reconnected with
 *   exponential backoff, 100 ms doubling to 10 s, after failures).
 * - A call goes to the first READY connection, round-robin over addresses,
 *   with a free stream slot under the peer's MAX_CONCURRENT_STREAMS; when
 *   every connection is full a new one is opened (up to max_connections per
 *   address) and the call waits for it.
 * - A call that cannot be placed (every address failing, or no slot within
 *   connect_timeout) is answered UNAVAILABLE (14) at once.
 * - Address names are resolved asynchronously (evdns); nothing blocks.
 * All functions run on the owning worker's thread.
 */
#ifndef TG_UPSTREAM_H
#define TG_UPSTREAM_H
#include "tg_types.h"

tg_uppool *tg_uppool_new(tg_worker *w); /* NULL on no memory */
void tg_uppool_start(tg_uppool *p);
/* Forwards r now, queues it, or answers it with UNAVAILABLE. */
void tg_uppool_submit(tg_uppool *p, tg_relay *r);
/* Removes a queued relay (its client went away). */
void tg_uppool_unqueue(tg_uppool *p, tg_relay *r);
/* Stream slots may have opened: place queued relays. */
void tg_uppool_kick(tg_uppool *p);
/* No new connections; idle ones close. Calls in flight continue. */
void tg_uppool_shutdown(tg_uppool *p);
/* Number of connections currently READY. */
int tg_uppool_ready(const tg_uppool *p);
void tg_uppool_free(tg_uppool *p);

/* Hooks for tg_conn: the upstream socket connected (TLS done), and the
 * connection is being freed (why: for logs and for the calls on it). */
void tg_up_on_connected(tg_h2conn *c);
void tg_up_teardown(tg_h2conn *c, const char *why);
#endif
