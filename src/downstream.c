#include "tg_downstream.h"

#include <arpa/inet.h>
#include <event2/buffer.h>
#include <event2/bufferevent.h>
#include <event2/bufferevent_ssl.h>
#include <netinet/in.h>
#include <netinet/tcp.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "tg_conn.h"
#include "tg_log.h"
#include "tg_relay.h"
#include "tg_tls.h"
#include "tg_worker.h"

static const char preface[] = NGHTTP2_CLIENT_MAGIC;
#define PREFACE_LEN (sizeof(preface) - 1)

static const char http1_refusal[] =
    "HTTP/1.1 505 HTTP Version Not Supported\r\n"
    "Content-Type: text/plain\r\n"
    "Connection: close\r\n"
    "Content-Length: 42\r\n"
    "\r\n"
    "tgate speaks HTTP/2 (gRPC) only; use h2.\r\n";

static void format_peer(const struct sockaddr *sa, char *out, size_t outlen) {
  char host[INET6_ADDRSTRLEN] = "?";
  int port = 0;
  if (sa->sa_family == AF_INET) {
    const struct sockaddr_in *s = (const struct sockaddr_in *)sa;
    inet_ntop(AF_INET, &s->sin_addr, host, sizeof(host));
    port = ntohs(s->sin_port);
    snprintf(out, outlen, "%s:%d", host, port);
  } else if (sa->sa_family == AF_INET6) {
    const struct sockaddr_in6 *s = (const struct sockaddr_in6 *)sa;
    inet_ntop(AF_INET6, &s->sin6_addr, host, sizeof(host));
    port = ntohs(s->sin6_port);
    snprintf(out, outlen, "[%s]:%d", host, port);
  } else {
    snprintf(out, outlen, "unix");
  }
}

static int on_begin_headers(nghttp2_session *session,
                            const nghttp2_frame *frame, void *user_data) {
  tg_h2conn *c = user_data;
  if (frame->hd.type != NGHTTP2_HEADERS ||
      frame->headers.cat != NGHTTP2_HCAT_REQUEST)
    return 0;
  tg_relay *r = tg_relay_new(c, frame->hd.stream_id);
  if (!r)
    return NGHTTP2_ERR_TEMPORAL_CALLBACK_FAILURE;
  nghttp2_session_set_stream_user_data(session, frame->hd.stream_id, r);
  c->hdr_sid = frame->hd.stream_id;
  c->hdr_relay = r;
  return 0;
}

static int on_header(nghttp2_session *session, const nghttp2_frame *frame,
                     const uint8_t *name, size_t namelen, const uint8_t *value,
                     size_t valuelen, uint8_t flags, void *user_data) {
  tg_h2conn *c = user_data;
  tg_relay *r =
      c->hdr_relay && c->hdr_sid == frame->hd.stream_id
          ? c->hdr_relay
          : nghttp2_session_get_stream_user_data(session, frame->hd.stream_id);
  if (!r || frame->hd.type != NGHTTP2_HEADERS)
    return 0;
  return tg_relay_down_header(r, name, namelen, value, valuelen, flags);
}

static int on_frame_recv(nghttp2_session *session, const nghttp2_frame *frame,
                         void *user_data) {
  if (frame->hd.stream_id == 0)
    return 0;
  tg_relay *r =
      nghttp2_session_get_stream_user_data(session, frame->hd.stream_id);
  if (!r)
    return 0;
  int end_stream = (frame->hd.flags & NGHTTP2_FLAG_END_STREAM) != 0;
  switch (frame->hd.type) {
  case NGHTTP2_HEADERS:
    if (frame->headers.cat == NGHTTP2_HCAT_REQUEST)
      return tg_relay_down_headers_done(r, end_stream);
    if (end_stream)
      return tg_relay_down_trailers_done(r);
    return 0;
  case NGHTTP2_DATA:
    if (end_stream)
      return tg_relay_down_eof(r);
    return 0;
  default:
    return 0;
  }
}

static int on_data_chunk(nghttp2_session *session, uint8_t flags,
                         int32_t stream_id, const uint8_t *data, size_t len,
                         void *user_data) {
  tg_relay *r = nghttp2_session_get_stream_user_data(session, stream_id);
  if (!r) {
    nghttp2_session_consume(session, stream_id, len);
    return 0;
  }
  return tg_relay_down_data(r, data, len);
}

static int on_stream_close(nghttp2_session *session, int32_t stream_id,
                           uint32_t error_code, void *user_data) {
  tg_relay *r = nghttp2_session_get_stream_user_data(session, stream_id);
  if (r)
    tg_relay_down_closed(r, error_code);
  return 0;
}

/* nghttp2 copies the callbacks into each session; the set is built per
 * session so no global state outlives the workers. */
/* A call answered locally while the client was still sending gets
 * RST_STREAM(NO_ERROR) once the response is out (RFC 9113 8.1), so the client
 * stops sending a body no one will read. Submitting the reset together with
 * the response would make nghttp2 drop the response. */
static int on_frame_send(nghttp2_session *session, const nghttp2_frame *frame,
                         void *user_data) {
  if (frame->hd.type != NGHTTP2_HEADERS)
    return 0;
  tg_relay *r =
      nghttp2_session_get_stream_user_data(session, frame->hd.stream_id);
  if (r && frame->headers.cat == NGHTTP2_HCAT_RESPONSE)
    tg_relay_down_resp_sent(r);
  if (!(frame->hd.flags & NGHTTP2_FLAG_END_STREAM))
    return 0;
  if (r && r->state == TG_RS_LOCAL && !r->req_eof)
    nghttp2_submit_rst_stream(session, NGHTTP2_FLAG_NONE, frame->hd.stream_id,
                              NGHTTP2_NO_ERROR);
  return 0;
}

static nghttp2_session_callbacks *server_callbacks(void) {
  nghttp2_session_callbacks *cbs;
  if (nghttp2_session_callbacks_new(&cbs) != 0)
    return NULL;
  nghttp2_session_callbacks_set_on_begin_headers_callback(cbs,
                                                          on_begin_headers);
  nghttp2_session_callbacks_set_on_header_callback(cbs, on_header);
  nghttp2_session_callbacks_set_on_frame_recv_callback(cbs, on_frame_recv);
  nghttp2_session_callbacks_set_on_data_chunk_recv_callback(cbs, on_data_chunk);
  nghttp2_session_callbacks_set_on_stream_close_callback(cbs, on_stream_close);
  nghttp2_session_callbacks_set_on_frame_send_callback(cbs, on_frame_send);
  return cbs;
}

static int start_session(tg_h2conn *c) {
  nghttp2_session_callbacks *cbs = server_callbacks();
  nghttp2_option *opt = NULL;
  if (!cbs)
    return -1;
  if (nghttp2_option_new(&opt) != 0) {
    nghttp2_session_callbacks_del(cbs);
    return -1;
  }
  nghttp2_option_set_no_auto_window_update(opt, 1);
  nghttp2_option_set_no_closed_streams(opt, 1);
  /* The one slot block nghttp2 allocates as the session is made is its
   * output buffer (tg_conn_trim). */
  c->w->slab.capture = &c->outbuf;
  int rv = nghttp2_session_server_new3(&c->session, cbs, c, opt,
                                       tg_slab_mem(&c->w->slab));
  c->w->slab.capture = NULL;
  nghttp2_option_del(opt);
  nghttp2_session_callbacks_del(cbs);
  if (rv != 0)
    return -1;
  nghttp2_settings_entry iv[] = {
      {NGHTTP2_SETTINGS_MAX_CONCURRENT_STREAMS,
       c->w->gen->cfg->max_concurrent_streams},
      {NGHTTP2_SETTINGS_INITIAL_WINDOW_SIZE, TG_STREAM_WINDOW},
      {NGHTTP2_SETTINGS_MAX_HEADER_LIST_SIZE,
       c->w->gen->cfg->max_header_list_size},
      {NGHTTP2_SETTINGS_NO_RFC7540_PRIORITIES, 1},
  };
  if (nghttp2_submit_settings(c->session, NGHTTP2_FLAG_NONE, iv,
                              sizeof(iv) / sizeof(iv[0])) != 0 ||
      nghttp2_session_set_local_window_size(c->session, NGHTTP2_FLAG_NONE, 0,
                                            TG_CONN_WINDOW) != 0)
    return -1;
  return 0;
}

int tg_down_check_preface(tg_h2conn *c) {
  struct evbuffer *in = bufferevent_get_input(c->bev);
  size_t len = evbuffer_get_length(in);
  size_t n = len < PREFACE_LEN ? len : PREFACE_LEN;
  char buf[PREFACE_LEN];
  evbuffer_copyout(in, buf, n);
  if (memcmp(buf, preface, n) != 0) {
    tg_info("client %s: not an HTTP/2 client (no h2 preface); refused",
            c->peer);
    c->state = TG_CS_REFUSING;
    evbuffer_drain(in, len);
    /* Bytes that look like an HTTP/1 request get a readable answer. */
    if (n >= 4 && (memcmp(buf, "GET ", 4) == 0 || memcmp(buf, "POST", 4) == 0 ||
                   memcmp(buf, "HEAD", 4) == 0 || memcmp(buf, "PUT ", 4) == 0 ||
                   memcmp(buf, "OPTI", 4) == 0 || memcmp(buf, "DELE", 4) == 0 ||
                   memcmp(buf, "PATC", 4) == 0 || memcmp(buf, "CONN", 4) == 0))
      tg_conn_write(c, (const uint8_t *)http1_refusal,
                    sizeof(http1_refusal) - 1);
    c->closing = 1;
    return -1;
  }
  if (n < PREFACE_LEN)
    return 0;
  if (start_session(c) != 0) {
    tg_err("client %s: cannot start HTTP/2 session (out of memory)", c->peer);
    c->closing = 1;
    return -1;
  }
  c->state = TG_CS_READY;
  if (c->over_limit) {
    /* Its first call learns why (RESOURCE_EXHAUSTED), then it is closed;
     * one that makes none goes at the handshake timeout. */
    nghttp2_submit_shutdown_notice(c->session);
    return 1;
  }
  /* The handshake is over: a call may now wait as long as it likes (long
   * polls); the connection has no idle timeout shorter than its calls. */
  bufferevent_set_timeouts(c->bev, NULL, NULL);
  if (c->w->shutting_down)
    tg_down_goaway(c);
  return 1;
}

void tg_down_on_connected(tg_h2conn *c) {
  const unsigned char *alpn = NULL;
  unsigned int alpnlen = 0;
  SSL_get0_alpn_selected(c->ssl, &alpn, &alpnlen);
  if (tg_log_enabled(TG_LOG_DEBUG)) {
    char subject[256];
    tg_tls_peer_subject(c->ssl, subject, sizeof(subject));
    tg_debug("client %s: TLS %s, ALPN %.*s, certificate %s", c->peer,
             SSL_get_version(c->ssl), (int)alpnlen,
             alpn ? (const char *)alpn : "", subject);
  }
  c->state = TG_CS_PREFACE;
  /* Bytes may have arrived together with the end of the handshake. */
  if (evbuffer_get_length(bufferevent_get_input(c->bev)) > 0)
    tg_conn_recv(c);
}

void tg_down_teardown(tg_h2conn *c) {
  tg_relay *r;
  while ((r = LIST_FIRST(&c->relays)) != NULL)
    tg_relay_down_closed(r, NGHTTP2_CANCEL);
}

void tg_down_goaway(tg_h2conn *c) {
  if (!c->session) {
    c->closing = 1;
    tg_conn_schedule_flush(c);
    return;
  }
  if (c->state == TG_CS_DRAINING)
    return;
  c->state = TG_CS_DRAINING;
  nghttp2_submit_goaway(c->session, NGHTTP2_FLAG_NONE,
                        nghttp2_session_get_last_proc_stream_id(c->session),
                        NGHTTP2_NO_ERROR, NULL, 0);
  /* nghttp2 stops wanting to read once GOAWAY is out and no stream is
   * open, so the connection closes by itself when its calls are done. */
  tg_conn_schedule_flush(c);
}

int tg_down_accept(tg_worker *w, int fd, const struct sockaddr *sa, int salen) {
  (void)salen;
  /* Beyond limits.max_connections a connection is served only to tell its
   * first call why; beyond twice the limit it is closed at once (a flood
   * must not cost handshakes). */
  uint32_t max = w->gen->cfg->max_connections;
  uint32_t open = (uint32_t)atomic_load(&w->app->conns);
  if (max && open >= 2 * (uint64_t)max) {
    atomic_fetch_add_explicit(&w->stats.limited[TG_LIMIT_CONNECTIONS], 1,
                              memory_order_relaxed);
    close(fd);
    return -1;
  }
  tg_h2conn *c = tg_conn_new(w, TG_CONN_DOWN);
  if (!c) {
    close(fd);
    return -1;
  }
  format_peer(sa, c->peer, sizeof(c->peer));
  int one = 1;
  setsockopt(fd, IPPROTO_TCP, TCP_NODELAY, &one, sizeof(one));
  struct bufferevent *bev;
  if (w->gen->server_ctx) {
    c->ssl = SSL_new(w->gen->server_ctx);
    if (!c->ssl)
      goto fail;
    bev = bufferevent_openssl_socket_new(
        w->base, fd, c->ssl, BUFFEREVENT_SSL_ACCEPTING, BEV_OPT_CLOSE_ON_FREE);
  } else {
    bev = bufferevent_socket_new(w->base, fd, BEV_OPT_CLOSE_ON_FREE);
    c->state = TG_CS_PREFACE;
  }
  if (!bev)
    goto fail;
  LIST_INSERT_HEAD(&w->downconns, c, link);
  w->ndown++;
  atomic_fetch_add(&w->app->conns, 1);
  if (max && open >= max) {
    c->over_limit = 1;
    tg_info("client %s: over limits.max_connections (%u); its calls are "
            "refused",
            c->peer, max);
  }
  atomic_fetch_add_explicit(&w->stats.conns_open, 1, memory_order_relaxed);
  atomic_fetch_add_explicit(&w->stats.conns_accepted, 1, memory_order_relaxed);
  tg_conn_attach_bev(c, bev);
  struct timeval tv = {TG_HANDSHAKE_TIMEOUT_S, 0};
  bufferevent_set_timeouts(bev, &tv, NULL);
  return 0;
fail:
  if (c->ssl)
    SSL_free(c->ssl);
  event_free(c->flush_ev);
  free(c);
  close(fd);
  return -1;
}
