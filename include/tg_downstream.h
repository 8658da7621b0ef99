/*
 * tg_downstream: client-facing connections: accept, TLS handshake (ALPN h2),
 * HTTP/2 preface check (an HTTP/1.x client gets "505 HTTP Version Not
 * Supported" and is closed), the HTTP/2 server session whose callbacks feed
 * tg_relay, and graceful GOAWAY.
 * All functions run on the owning worker's thread.
 */
#ifndef TG_DOWNSTREAM_H
#define TG_DOWNSTREAM_H
#include <sys/socket.h>

#include "tg_types.h"

#define TG_HANDSHAKE_TIMEOUT_S 10

/* Takes over fd. Returns 0, or -1 (fd closed). */
int tg_down_accept(tg_worker *w, int fd, const struct sockaddr *sa, int salen);

/* Hooks for tg_conn. */
void tg_down_on_connected(tg_h2conn *c);
/* Checks the client preface in the input. Returns 1 when the session has
 * started, 0 when more bytes are needed, -1 when the client is refused. */
int tg_down_check_preface(tg_h2conn *c);
void tg_down_teardown(tg_h2conn *c);

/* Sends GOAWAY (last stream processed) so the client stops opening streams;
 * the connection closes when its streams are done. */
void tg_down_goaway(tg_h2conn *c);
#endif
