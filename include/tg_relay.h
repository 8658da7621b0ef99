/*
 * tg_relay: one gRPC call relayed from a downstream stream to an upstream
 * stream, and its answer back.
 *
 * Life of a call:
 *   HEADERS --(authz: allow)--> PENDING --(stream slot)--> FORWARDING
 *      |  \--(need message)--> HOLD --(first message; allow)--^
 *      \--(deny / bad request / no upstream)--> LOCAL (answered here)
 * While in HEADERS, HOLD and PENDING nothing reaches the upstream; request
 * bytes wait in req_body. In HOLD they are credited back to the client (up to
 * authorization.max_message_bytes) so a first message larger than the stream
 * window can arrive; otherwise credit is given only as the upstream takes
 * the bytes. Once a call is allowed on its first message, no further request
 * bytes may follow (Temporal's calls are unary): more cancel the call.
 *
 * The tg_relay_down_* functions are called from the downstream session's
 * callbacks, the tg_relay_up_* ones from the upstream session's. They return
 * 0, or an nghttp2 callback error code to return from the callback.
 * A relay frees itself when both of its streams are closed.
 */
#ifndef TG_RELAY_H
#define TG_RELAY_H
#include "tg_types.h"

/* Response header lists from the frontend (request ones: the configured
 * limits.max_header_list_size). */
#define TG_RELAY_MAX_HEADER_LIST (64 * 1024)

/* Relays a worker keeps for reuse after their calls end (enough for a
 * busy worker's calls in flight: below that, relays and their buffers are
 * allocated and freed per call, which halved throughput at 2048 streams);
 * none in sanitizer builds, so that a use after the end of a call is still
 * caught. */
#if defined(__SANITIZE_ADDRESS__)
#define TG_RELAY_SPARES 0
#elif defined(__has_feature)
#if __has_feature(address_sanitizer)
#define TG_RELAY_SPARES 0
#endif
#endif
#ifndef TG_RELAY_SPARES
#define TG_RELAY_SPARES 2048
#endif

tg_relay *tg_relay_new(tg_h2conn *down, int32_t sid);
/* Frees the worker's spare relays (at its end). */
void tg_relay_free_spares(tg_worker *w);

/* "allowed", "denied", ... for a TG_DECISION_* (logs and metrics). */
const char *tg_relay_decision_name(int decision);

int tg_relay_down_header(tg_relay *r, const uint8_t *name, size_t namelen,
                         const uint8_t *value, size_t valuelen, uint8_t flags);
int tg_relay_down_headers_done(tg_relay *r, int end_stream);
int tg_relay_down_trailers_done(tg_relay *r);
int tg_relay_down_data(tg_relay *r, const uint8_t *data, size_t len);
int tg_relay_down_eof(tg_relay *r);
/* The downstream stream closed (error_code from RST_STREAM, or 0), or its
 * connection is gone (error_code NGHTTP2_CANCEL). Unlinks r from down. */
void tg_relay_down_closed(tg_relay *r, uint32_t error_code);

/* Forwards the calls allowed while d's last read was processed. */
void tg_relay_forward_queued(tg_h2conn *d);
/* The downstream response HEADERS were sent (for the latency metrics). */
void tg_relay_down_resp_sent(tg_relay *r);
/* The upstream request HEADERS were sent (a deferred cancel goes now). */
void tg_relay_up_headers_sent(tg_relay *r);
int tg_relay_up_header(tg_relay *r, int trailer, const uint8_t *name,
                       size_t namelen, const uint8_t *value, size_t valuelen,
                       uint8_t flags);
int tg_relay_up_headers_done(tg_relay *r, int trailer, int end_stream);
int tg_relay_up_data(tg_relay *r, const uint8_t *data, size_t len);
int tg_relay_up_eof(tg_relay *r);
/* The upstream stream closed with error_code (0: normally). */
void tg_relay_up_closed(tg_relay *r, uint32_t error_code);
/* The upstream connection failed under r, or none could be had: the client
 * gets UNAVAILABLE (trailers-only, or trailers if the answer had begun). */
void tg_relay_up_failed(tg_relay *r, const char *why);

/* Opens the upstream stream on up. Returns 0, or -1 when up cannot take a
 * new stream (the caller tries elsewhere). */
int tg_relay_forward(tg_relay *r, tg_h2conn *up);

/* Answers the call locally with a trailers-only gRPC status. */
void tg_relay_reply(tg_relay *r, int grpc_status, const char *msg);
#endif
