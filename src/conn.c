#include "tg_conn.h"

#include <errno.h>
#include <event2/buffer.h>
#include <event2/bufferevent.h>
#include <event2/bufferevent_ssl.h>
#include <limits.h>
#include <openssl/err.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>

#include "tg_downstream.h"
#include "tg_log.h"
#include "tg_relay.h"
#include "tg_upstream.h"
#include "tg_worker.h"

static void flush_cb(evutil_socket_t fd, short what, void *arg) {
  tg_h2conn *c = arg;
  c->flush_pending = 0;
  tg_conn_flush(c);
}

tg_h2conn *tg_conn_new(tg_worker *w, tg_conn_kind kind) {
  tg_h2conn *c = calloc(1, sizeof(*c));
  if (!c)
    return NULL;
  c->kind = kind;
  c->w = w;
  c->state = TG_CS_HANDSHAKE;
  LIST_INIT(&c->relays);
  TAILQ_INIT(&c->to_forward);
  c->flush_ev = event_new(w->base, -1, 0, flush_cb, c);
  if (!c->flush_ev) {
    free(c);
    return NULL;
  }
  return c;
}

void tg_conn_schedule_flush(tg_h2conn *c) {
  if (c->flush_pending)
    return;
  c->flush_pending = 1;
  event_active(c->flush_ev, EV_WRITE, 0);
}

void tg_conn_close(tg_h2conn *c) {
  c->closing = 1;
  tg_conn_schedule_flush(c);
}

/* Writes len bytes to the peer. Once the connection reads directly (READY)
 * and nothing is queued, they are written at once: send() on a plaintext
 * socket, SSL_write() (record by record, partial writes on) on TLS, with
 * no copy into an evbuffer and no EPOLLOUT round. What the socket does not
 * take goes to the bufferevent, which sends it when it can: for TLS that is
 * also the retry OpenSSL requires after WANT_WRITE, with the same bytes
 * first (the SSL accepts a moved buffer). */
int tg_conn_write(tg_h2conn *c, const uint8_t *data, size_t len) {
  struct evbuffer *out = bufferevent_get_output(c->bev);
  if (c->rd_ev && evbuffer_get_length(out) == 0) {
    if (!c->ssl) {
      ssize_t w = send(bufferevent_getfd(c->bev), data, len,
                       MSG_NOSIGNAL | MSG_DONTWAIT);
      /* On an error the bufferevent meets it again and reports it. */
      if (w > 0) {
        data += w;
        len -= (size_t)w;
      }
    } else {
      while (len > 0) {
        ERR_clear_error();
        int w = SSL_write(c->ssl, data, len > INT_MAX ? INT_MAX : (int)len);
        if (w <= 0)
          break; /* the bufferevent retries, or meets the error again */
        data += w;
        len -= (size_t)w;
      }
    }
    if (len == 0)
      return 0;
  }
  return bufferevent_write(c->bev, data, len);
}

int tg_conn_flush(tg_h2conn *c) {
  struct evbuffer *out = bufferevent_get_output(c->bev);
  if (c->kill) {
    tg_conn_free(c);
    return -1;
  }
  if (c->session) {
    /* Frames are gathered and written together: one send (one TLS record)
     * per flush rather than one per frame. */
    uint8_t stage[TG_CONN_STAGE];
    size_t staged = 0;
    while (evbuffer_get_length(out) + staged < TG_CONN_OUTBUF_HIGH) {
      const uint8_t *data;
      ssize_t n = nghttp2_session_mem_send(c->session, &data);
      if (n < 0) {
        tg_warn("%s %s: HTTP/2 send failed: %s",
                c->kind == TG_CONN_DOWN ? "client" : "upstream", c->peer,
                nghttp2_strerror((int)n));
        tg_conn_free(c);
        return -1;
      }
      if (n == 0)
        break;
      c->outbuf_dirty = c->outbuf_recent = 1;
      if (staged + (size_t)n > sizeof stage) {
        if (tg_conn_write(c, stage, staged) != 0)
          goto fail;
        staged = 0;
      }
      if ((size_t)n > sizeof stage) {
        if (tg_conn_write(c, data, (size_t)n) != 0)
          goto fail;
      } else {
        memcpy(stage + staged, data, (size_t)n);
        staged += (size_t)n;
      }
    }
    if (staged && tg_conn_write(c, stage, staged) != 0)
      goto fail;
    if (!nghttp2_session_want_read(c->session) &&
        !nghttp2_session_want_write(c->session))
      c->closing = 1;
  }
  if (c->closing && evbuffer_get_length(out) == 0) {
    tg_conn_free(c);
    return -1;
  }
  return 0;
fail:
  tg_conn_free(c);
  return -1;
}

void tg_conn_trim(tg_h2conn *c) {
  if (c->outbuf_recent) { /* wait for an interval without frames */
    c->outbuf_recent = 0;
    return;
  }
  /* The frame buffer holds nothing that is still to be sent once nghttp2
   * has no frame under way (want_write covers the one being sent), so its
   * contents may become zeros; the next frame is written over them. */
  if (!c->outbuf_dirty || !c->outbuf.p || !c->session || c->closing ||
      c->kill || nghttp2_session_want_write(c->session) ||
      !nghttp2_session_want_read(c->session))
    return;
  tg_slab_discard(&c->w->slab, &c->outbuf);
  c->outbuf_dirty = 0;
}

/* Feeds len received bytes to the session. 0, or -1 when c was freed. */
static int feed(tg_h2conn *c, const uint8_t *data, size_t len) {
  c->in_recv = 1;
  ssize_t rv = nghttp2_session_mem_recv(c->session, data, len);
  c->in_recv = 0;
  if (rv < 0) {
    tg_info("%s %s: HTTP/2 error: %s",
            c->kind == TG_CONN_DOWN ? "client" : "upstream", c->peer,
            nghttp2_strerror((int)rv));
    tg_conn_free(c);
    return -1;
  }
  return 0;
}

/* What follows a read: calls allowed during it go upstream, and what the
 * session has to say goes out. */
static int after_read(tg_h2conn *c) {
  if (c->kind == TG_CONN_DOWN)
    tg_relay_forward_queued(c);
  return tg_conn_flush(c);
}

static void conn_lost(tg_h2conn *c, const char *why) {
  snprintf(c->reason, sizeof c->reason, "%s", why);
  if (c->kind == TG_CONN_DOWN)
    tg_debug("client %s: %s", c->peer, c->reason);
  else
    tg_warn("upstream %s: %s", c->peer, c->reason);
  tg_conn_free(c);
}

static void direct_read_cb(evutil_socket_t fd, short what, void *arg);

/* SSL_read wants to write first (a post-handshake message to answer while
 * the socket's send buffer is full): reads stop until the socket is
 * writable, instead of spinning on a readable socket. */
static void rd_wait_cb(evutil_socket_t fd, short what, void *arg) {
  tg_h2conn *c = arg;
  if (event_add(c->rd_ev, NULL) != 0) {
    conn_lost(c, "cannot resume reading");
    return;
  }
  direct_read_cb(fd, EV_READ, c);
}

static int tls_wait_writable(tg_h2conn *c, evutil_socket_t fd) {
  if (!c->rd_wait_ev)
    c->rd_wait_ev = event_new(c->w->base, fd, EV_WRITE, rd_wait_cb, c);
  if (!c->rd_wait_ev || event_add(c->rd_wait_ev, NULL) != 0)
    return -1;
  event_del(c->rd_ev);
  return 0;
}

/* A READY connection is read straight into the stack and fed to nghttp2:
 * recv() for plaintext, SSL_read() for TLS (no FIONREAD ioctl, no evbuffer
 * chain per read, no 4 KiB slices as libevent's TLS bufferevent reads). */
static void direct_read_cb(evutil_socket_t fd, short what, void *arg) {
  tg_h2conn *c = arg;
  c->w->reads++;
  uint8_t buf[TG_CONN_READ_CHUNK];
  /* TLS yields a record (<= 16 KiB) per SSL_read: more reads per event */
  int reads = c->ssl ? 4 * TG_CONN_READS_PER_EVENT : TG_CONN_READS_PER_EVENT;
  for (int i = 0; i < reads; i++) {
    if (c->ssl) {
      ERR_clear_error();
      int n = SSL_read(c->ssl, buf, sizeof buf);
      if (n > 0) {
        if (feed(c, buf, (size_t)n) != 0)
          return;
        continue;
      }
      int e = SSL_get_error(c->ssl, n);
      if (e == SSL_ERROR_WANT_READ)
        break;
      if (e == SSL_ERROR_WANT_WRITE) {
        if (tls_wait_writable(c, fd) != 0) {
          conn_lost(c, "cannot wait for the socket");
          return;
        }
        break;
      }
      char why[160];
      unsigned long err = ERR_peek_error();
      if (e == SSL_ERROR_ZERO_RETURN)
        snprintf(why, sizeof why, "closed by peer");
      else if (err) {
        char ebuf[120];
        ERR_error_string_n(err, ebuf, sizeof ebuf);
        snprintf(why, sizeof why, "TLS: %s", ebuf);
      } else if (e == SSL_ERROR_SYSCALL && n < 0 && errno != 0)
        snprintf(why, sizeof why, "%s", strerror(errno));
      else
        snprintf(why, sizeof why, "closed by peer");
      ERR_clear_error();
      conn_lost(c, why);
      return;
    }
    ssize_t n = recv(fd, buf, sizeof buf, 0);
    if (n > 0) {
      if (feed(c, buf, (size_t)n) != 0)
        return;
      if ((size_t)n < sizeof buf)
        break;
      continue;
    }
    if (n < 0 && errno == EINTR)
      continue;
    if (n < 0 && (errno == EAGAIN || errno == EWOULDBLOCK))
      break;
    conn_lost(c, n == 0 ? "closed by peer" : strerror(errno));
    return;
  }
  /* Reads stopped at the per-event bound with a record still decrypted in
   * the SSL: the socket may not be readable again, so come back. */
  if (c->ssl && SSL_has_pending(c->ssl))
    event_active(c->rd_ev, EV_READ, 0);
  after_read(c);
}

/* Moves c to direct reads (and writes) once it is READY. TLS: the
 * bufferevent has read everything the SSL had (it reads until WANT_READ);
 * one direct read is run at once in case anything is left. */
static void maybe_read_direct(tg_h2conn *c) {
  if (c->rd_ev || c->state != TG_CS_READY || c->over_limit || !c->session)
    return;
  evutil_socket_t fd = bufferevent_getfd(c->bev);
  struct event *ev =
      event_new(c->w->base, fd, EV_READ | EV_PERSIST, direct_read_cb, c);
  if (!ev || event_add(ev, NULL) != 0) {
    if (ev)
      event_free(ev);
    return; /* the bufferevent keeps reading */
  }
  bufferevent_disable(c->bev, EV_READ);
  c->rd_ev = ev;
  if (c->ssl) {
    SSL_set_mode(c->ssl, SSL_MODE_ENABLE_PARTIAL_WRITE |
                             SSL_MODE_ACCEPT_MOVING_WRITE_BUFFER);
    event_active(ev, EV_READ, 0);
  }
}

int tg_conn_recv(tg_h2conn *c) {
  struct evbuffer *in = bufferevent_get_input(c->bev);
  if (c->state == TG_CS_REFUSING) {
    evbuffer_drain(in, evbuffer_get_length(in));
    return 0;
  }
  if (c->state == TG_CS_PREFACE) {
    int rv = tg_down_check_preface(c);
    if (rv <= 0)
      return tg_conn_flush(c);
  }
  if (!c->session)
    return 0;
  size_t len;
  while ((len = evbuffer_get_contiguous_space(in)) > 0) {
    const uint8_t *data = evbuffer_pullup(in, (ssize_t)len);
    if (feed(c, data, len) != 0)
      return -1;
    evbuffer_drain(in, len);
  }
  if (after_read(c) != 0)
    return -1;
  maybe_read_direct(c);
  return 0;
}

void tg_conn_free(tg_h2conn *c) {
  if (c->kind == TG_CONN_DOWN)
    tg_down_teardown(c);
  else
    tg_up_teardown(c, c->closing ? "upstream connection closed"
                                 : "upstream connection lost");
  LIST_REMOVE(c, link);
  if (c->session)
    nghttp2_session_del(c->session);
  if (c->bev)
    bufferevent_free(c->bev);
  if (c->timer)
    event_free(c->timer);
  if (c->rd_ev)
    event_free(c->rd_ev);
  if (c->rd_wait_ev)
    event_free(c->rd_wait_ev);
  if (c->peer_claims) {
    tg_claims_clear(c->peer_claims);
    free(c->peer_claims);
  }
  event_free(c->flush_ev);
  tg_worker *w = c->w;
  tg_conn_kind kind = c->kind;
  free(c);
  if (kind == TG_CONN_DOWN)
    tg_worker_down_closed(w);
}

static void read_cb(struct bufferevent *bev, void *arg) {
  ((tg_h2conn *)arg)->w->reads++;
  tg_conn_recv(arg);
}

static void write_cb(struct bufferevent *bev, void *arg) {
  tg_conn_flush(arg);
}

static void describe_error(tg_h2conn *c, short events, char *out,
                           size_t outlen) {
  unsigned long e = 0;
  if (c->ssl)
    e = bufferevent_get_openssl_error(c->bev);
  if (e) {
    char buf[160];
    ERR_error_string_n(e, buf, sizeof(buf));
    snprintf(out, outlen, "TLS: %s", buf);
  } else if (events & BEV_EVENT_TIMEOUT) {
    snprintf(out, outlen, "timed out");
  } else if (events & BEV_EVENT_EOF) {
    snprintf(out, outlen, "closed by peer");
  } else {
    int err = EVUTIL_SOCKET_ERROR();
    snprintf(out, outlen, "%s",
             err ? evutil_socket_error_to_string(err) : "error");
  }
}

static void event_cb(struct bufferevent *bev, short events, void *arg) {
  tg_h2conn *c = arg;
  if (events & BEV_EVENT_CONNECTED) {
    if (c->kind == TG_CONN_DOWN)
      tg_down_on_connected(c);
    else
      tg_up_on_connected(c);
    return;
  }
  if (events & (BEV_EVENT_EOF | BEV_EVENT_ERROR | BEV_EVENT_TIMEOUT)) {
    char *why = c->reason;
    describe_error(c, events, c->reason, sizeof(c->reason));
    if (c->kind == TG_CONN_DOWN) {
      if (c->state == TG_CS_HANDSHAKE || c->state == TG_CS_PREFACE)
        tg_info("client %s: connection refused during handshake: %s", c->peer,
                why);
      else
        tg_debug("client %s: %s", c->peer, why);
    } else if (c->state == TG_CS_HANDSHAKE) {
      tg_debug("upstream %s: %s", c->peer, why);
    } else {
      tg_warn("upstream %s: %s", c->peer, why);
    }
    tg_conn_free(c);
  }
}

void tg_conn_attach_bev(tg_h2conn *c, struct bufferevent *bev) {
  c->bev = bev;
  bufferevent_setcb(bev, read_cb, write_cb, event_cb, c);
  bufferevent_setwatermark(bev, EV_WRITE, TG_CONN_OUTBUF_HIGH / 4, 0);
  bufferevent_enable(bev, EV_READ | EV_WRITE);
}
