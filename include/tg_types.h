/*
 * tg_types: the structures shared by the connection, relay, upstream-pool and
 * worker modules (types only; their functions live in tg_conn.h, tg_relay.h,
 * tg_upstream.h and tg_worker.h, so those headers never include each other in
 * a loop).
 *
 * Ownership, in one picture:
 *   tg_worker (one thread, one event_base)
 *     +-- downstream tg_h2conn list (accepted client connections)
 *     +-- tg_uppool -> tg_uptarget[] -> upstream tg_h2conn list
 *   tg_relay: one gRPC call; linked into its downstream connection's list
 *   and, once forwarded, its upstream connection's list. It is freed when
 *   both of its streams are closed (or their connections are gone).
 * Everything here belongs to exactly one worker thread.
 */
#ifndef TG_TYPES_H
#define TG_TYPES_H
#include <event2/event.h>
#include <nghttp2/nghttp2.h>
#include <openssl/ssl.h>
#include <stdint.h>
#include <sys/queue.h>

#include "tg_bytequeue.h"
#include "tg_claims.h"
#include "tg_config.h"
#include "tg_grpc.h"
#include "tg_hdrs.h"
#include "tg_slab.h"

typedef struct tg_app tg_app;
typedef struct tg_worker tg_worker;
typedef struct tg_h2conn tg_h2conn;
typedef struct tg_relay tg_relay;
typedef struct tg_uppool tg_uppool;
typedef struct tg_uptarget tg_uptarget;

LIST_HEAD(tg_relay_list, tg_relay);
LIST_HEAD(tg_conn_list, tg_h2conn);
TAILQ_HEAD(tg_relay_queue, tg_relay);

typedef enum tg_conn_kind { TG_CONN_DOWN, TG_CONN_UP } tg_conn_kind;

typedef enum tg_conn_state {
  TG_CS_HANDSHAKE, /* TCP/TLS connecting or handshaking */
  TG_CS_PREFACE,   /* downstream: waiting for the HTTP/2 client preface */
  TG_CS_READY,     /* HTTP/2 session running */
  TG_CS_DRAINING,  /* GOAWAY sent or received: no new streams */
  TG_CS_REFUSING,  /* downstream: answering an HTTP/1.x client, then closing */
} tg_conn_state;

struct tg_h2conn {
  tg_conn_kind kind;
  tg_conn_state state;
  tg_worker *w;
  nghttp2_session *session; /* NULL until the HTTP/2 session starts */
  struct bufferevent *bev;  /* owns the socket and, for TLS, the SSL */
  SSL *ssl;                 /* borrowed from bev; NULL for plaintext */
  struct event *flush_ev;   /* deferred session_send / close */
  struct tg_relay_list relays;
  tg_slab_ref outbuf;
  /* downstream: the relay of the stream whose header block is being read
   * (on_header would otherwise look it up by id per field); cleared when
   * that relay leaves the connection */
  int32_t hdr_sid;
  struct tg_relay *hdr_relay;
  LIST_ENTRY(tg_h2conn) link; /* in worker->downconns or target->conns */
  uint32_t nstreams;          /* upstream: streams we opened and not closed */
  /* upstream: RST_STREAMs tgate may still send before the connection is
   * rotated (a token bucket, see tg_up_note_reset), refilled as of
   * rst_at_ms (0: not used yet, full) */
  uint32_t rst_tokens;
  uint64_t rst_at_ms;
  unsigned flush_pending : 1;
  unsigned closing : 1; /* close once the output is written */
  unsigned in_recv : 1; /* inside nghttp2_session_mem_recv */
  /* downstream: accepted beyond limits.max_connections: its calls are
   * answered RESOURCE_EXHAUSTED and it is sent GOAWAY */
  unsigned over_limit : 1;
  unsigned kill : 1; /* close at the next flush, output or not */
  /* downstream: nghttp2's output buffer (a slot block of the worker's
   * slab, recorded as the session was created; NULL in sanitizer builds),
   * which frames were written to since its pages were last given back,
   * and since the last trim sweep (tg_conn_trim) */
  unsigned outbuf_dirty : 1;
  unsigned outbuf_recent : 1;
  /* downstream: calls allowed while a read is being processed, forwarded
   * once it is (so a call the same read cancels never reaches the
   * frontend) */
  struct tg_relay_queue to_forward;
  /* downstream: response bytes received for its calls and not yet taken
   * by it (bounded by TG_CONN_MAX_UNREAD) */
  size_t resp_buffered;
  uint8_t preface_seen;     /* downstream: bytes of the preface matched */
  tg_uptarget *target;      /* upstream only */
  tg_claims *peer_claims;   /* downstream: the TLS peer's claims, mapped
                               at the connection's first call ... */
  uint64_t peer_claims_gen; /* ... under this generation (again after a
                               reload) */
  struct event *timer;      /* handshake / connect timeout */
  struct event *rd_ev;      /* direct reads once READY */
  /* TLS, direct: SSL_read wanted to write first; reads resume when the
   * socket is writable (one-shot) */
  struct event *rd_wait_ev;
  char reason[256]; /* why the socket ended, when it did */
  char peer[300];   /* "ip:port" or "host:port" for logs */
};

/* What tgate decided about a call (the access log's "decision"). */
enum {
  TG_DECISION_NONE = 0, /* not decided: the client left first */
  TG_DECISION_ALLOWED,
  TG_DECISION_SHADOW_DENIED,
  TG_DECISION_DENIED,
  TG_DECISION_UNAUTHENTICATED,
  TG_DECISION_INVALID,
  TG_DECISION_UNAVAILABLE,
  TG_DECISION_LOCAL,
  TG_DECISION_LIMITED, /* refused by a limit (RESOURCE_EXHAUSTED) */
  TG_DECISION_COUNT
};

/* The limits a call or connection can be refused by (metrics labels). */
enum {
  TG_LIMIT_CONNECTIONS,
  TG_LIMIT_HEADER_LIST,
  TG_LIMIT_MESSAGE_SIZE,
  TG_LIMIT_CALLS_PER_SUBJECT,
  TG_LIMIT_COUNT
};

typedef enum tg_relay_state {
  TG_RS_HEADERS,    /* request headers arriving */
  TG_RS_HOLD,       /* waiting for the first message before deciding */
  TG_RS_PENDING,    /* allowed; waiting for an upstream stream slot */
  TG_RS_FORWARDING, /* upstream stream open */
  TG_RS_LOCAL,      /* answered locally; request body discarded */
} tg_relay_state;

struct tg_relay {
  tg_worker *w;
  tg_relay *next_spare; /* in the worker's list of spares */
  struct tg_gen *gen;   /* the generation the call started under (a reference,
                           taken when its headers are complete); NULL before */
  tg_relay_state state;
  tg_h2conn *down; /* NULL once the downstream stream or connection is gone */
  int32_t down_sid;
  tg_h2conn *up; /* NULL until forwarded, and once the upstream is gone */
  int32_t up_sid;
  LIST_ENTRY(tg_relay) down_link, up_link;
  TAILQ_ENTRY(tg_relay) pend_link;
  TAILQ_ENTRY(tg_relay) fwd_link; /* in its client connection's to_forward */
  struct event *pend_timer;

  tg_hdrs req_hdrs, req_trailers, resp_hdrs, resp_trailers;
  tg_claims claims; /* who the caller is (empty without authentication) */

  /* for the access log */
  uint64_t t_start_ns; /* monotonic, when the request headers began */
  /* monotonic, 0 until it happened: the decision to forward, the upstream
   * request HEADERS sent, the upstream response HEADERS received, the
   * downstream response HEADERS sent, the upstream stream ended */
  uint64_t t_decide_ns, t_up_sent_ns, t_up_resp_ns, t_down_resp_ns, t_up_end_ns;
  int decision;      /* TG_DECISION_* */
  int local_status;  /* grpc-status tgate answered with, or -1 */
  uint32_t rst_code; /* the client's stream ended with this reset code */
  char reason[160];
  char ns[128];
  char peer[64];
  tg_bytequeue req_body, resp_body;
  size_t
      req_preconsumed; /* request bytes already credited back to the client */
  size_t resp_preconsumed; /* response bytes already credited to the upstream */
  size_t req_bytes, resp_bytes;
  size_t req_limit; /* request bytes allowed (one message once decided) */
  tg_grpc_scanner req_scan; /* bounds every request message's size */

  unsigned req_hdrs_done : 1;
  unsigned req_eof : 1;
  unsigned resp_hdrs_done : 1;
  unsigned resp_hdrs_sent : 1;
  unsigned resp_eof : 1;
  unsigned down_open : 1;
  unsigned up_open : 1;
  unsigned pending : 1;
  unsigned hdrs_too_big : 1;    /* request headers beyond the limit: dropped */
  unsigned subject_counted : 1; /* in app->callcount until freed */
  unsigned up_hdrs_sent : 1;    /* the upstream request HEADERS went out */
  unsigned fwd_queued : 1;      /* allowed, in down->to_forward */
  unsigned up_cancel : 1;       /* reset upstream once they have */
};
#endif
