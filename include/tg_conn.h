/*
 * tg_conn: what downstream and upstream HTTP/2 connections share: the
 * nghttp2 session pump over a libevent bufferevent, deferred flushing and
 * teardown.
 *
 * Re-entrancy rule: nghttp2 forbids calling a session's send/recv or
 * deleting it from inside its own callbacks. Code that reacts to one session
 * (a relay moving bytes between the two) therefore never sends on the other
 * directly: it calls tg_conn_schedule_flush(), and the write happens from the
 * connection's own event. Likewise tg_conn_close() only marks the connection;
 * it is freed from a top-level event callback.
 *
 * Flow control: sessions are created with automatic WINDOW_UPDATE disabled;
 * received DATA is credited back (nghttp2_session_consume) only when the
 * relay has handed it to the other side, so a slow reader slows the writer.
 * Exception: an upstream connection's own window is credited as response
 * DATA arrives (only its streams' windows wait for the client), so one
 * client that does not read cannot stall the calls of others sharing it;
 * a client connection with more than TG_CONN_MAX_UNREAD unread is closed.
 * Output is pumped only while the socket's output buffer is below
 * TG_CONN_OUTBUF_HIGH.
 *
 * Writes: the frames of one flush are gathered (TG_CONN_STAGE) and written
 * together; worker loops use epoll's changelist, so arming and disarming
 * EPOLLOUT in one pass costs no epoll_ctl. Once a connection is READY it
 * bypasses its bufferevent: reads go straight from recv()/SSL_read() into
 * nghttp2 (no ioctl, no evbuffer), writes straight to send()/SSL_write()
 * while nothing is queued; only what the socket does not take (and for
 * TLS, OpenSSL's retry after WANT_WRITE) goes through the bufferevent.
 * Handshakes and the connection preface use the bufferevent throughout.
 */
#ifndef TG_CONN_H
#define TG_CONN_H
#include "tg_types.h"

#define TG_CONN_OUTBUF_HIGH (64 * 1024)
/* Direct reads (READY): bytes per recv()/SSL_read(), reads per event
 * (four times as many for TLS, whose reads return a record each). */
#define TG_CONN_READ_CHUNK (32 * 1024)
#define TG_CONN_READS_PER_EVENT 4
/* Bytes of frames gathered on the stack before a write. */
#define TG_CONN_STAGE (32 * 1024)
#define TG_STREAM_WINDOW (256 * 1024)
/* Response bytes a client connection may leave unread (in tgate's buffers)
 * before it is closed: 256 full stream windows. */
#define TG_CONN_MAX_UNREAD (64u * 1024 * 1024)
#define TG_CONN_WINDOW (64 * 1024 * 1024)

/* Allocates a connection of the given kind for worker w, with its flush
 * event. The bufferevent is attached by the caller. NULL on no memory. */
tg_h2conn *tg_conn_new(tg_worker *w, tg_conn_kind kind);

/* Writes what the session has to send, as far as the output buffer allows;
 * closes the connection when neither side wants more. Call only from
 * top-level callbacks of this connection. Returns -1 when c was freed. */
int tg_conn_flush(tg_h2conn *c);

/* Sends len bytes on c: at once when c is READY and nothing is queued (the
 * rest through the bufferevent). 0 or -1 (no memory). Never frees c. */
int tg_conn_write(tg_h2conn *c, const uint8_t *data, size_t len);

/* Arranges for tg_conn_flush(c) to run soon from c's own event. */
void tg_conn_schedule_flush(tg_h2conn *c);

/* Feeds received bytes from the bufferevent's input to the session.
 * Returns -1 when c was freed. */
int tg_conn_recv(tg_h2conn *c);

/* Marks c for closing once its output is written; safe anywhere. */
void tg_conn_close(tg_h2conn *c);

/* Frees c now: notifies every relay on it, frees the session and socket and
 * unlinks it from its owner. Only from top-level callbacks. */
void tg_conn_free(tg_h2conn *c);

/* Gives back the pages of c's output buffer (nghttp2's 16 KiB frame buffer,
 * one page of which an idle connection keeps written) when c wrote no frame
 * since the previous call and has nothing to write: for a periodic sweep
 * over a worker's client connections. Only from top-level callbacks. */
#define TG_CONN_TRIM_INTERVAL_MS 1000
void tg_conn_trim(tg_h2conn *c);

/* Installs the bufferevent callbacks that drive c (read, write, events). */
void tg_conn_attach_bev(tg_h2conn *c, struct bufferevent *bev);
#endif
