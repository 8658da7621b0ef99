/*
 * idle_conns: opens many idle mTLS HTTP/2 connections to a gateway, for
 * measuring the memory an idle connection costs it (not a test).
 *
 * Each connection does a full TLS handshake (ALPN h2, a client certificate,
 * the server's certificate verified against the CA), sends the HTTP/2
 * connection preface and an empty SETTINGS frame, waits for the server's
 * SETTINGS and acknowledges it, and then stays idle: it only reads (and
 * ignores) whatever the server sends later.
 *
 * Usage: idle_conns -p PORT -n COUNT (-a CA -c CERT -k KEY | -x)
 *                   [-i IN_FLIGHT] [-t SETUP_TIMEOUT_S] [-H HOLD_S]
 * -x: h2c (no TLS), to tell what TLS adds to a connection's cost.
 * Connects to 127.0.0.1:PORT, at most IN_FLIGHT (default 100) handshakes at
 * a time. Once every connection is ready or failed (or SETUP_TIMEOUT_S,
 * default 120, passed) it prints one line to stdout:
 *   ready R failed F [timeout]
 * and holds the connections until SIGTERM/SIGINT or HOLD_S (default 300)
 * seconds, then prints "closed_by_server N" (connections the server closed
 * while idle) and exits 0 (1 when not every connection became ready).
 */
#include <errno.h>
#include <event2/event.h>
#include <netinet/in.h>
#include <netinet/tcp.h>
#include <openssl/err.h>
#include <openssl/ssl.h>
#include <signal.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <unistd.h>

enum conn_state { CS_HANDSHAKE, CS_PREFACE, CS_WAIT_SETTINGS, CS_IDLE };

typedef struct conn {
  int fd;
  SSL *ssl;
  struct event *rev, *wev;
  enum conn_state state;
  uint8_t out[64]; /* pending bytes to write (preface, SETTINGS ACK) */
  size_t outlen;
  uint8_t hdr[9]; /* the frame header being read */
  size_t hdrlen;
  uint32_t skip; /* payload bytes of the current frame still to skip */
} conn;

static struct event_base *base;
static SSL_CTX *ctx;
static struct sockaddr_in addr;
static int total, in_flight_max = 100, plain;
static int started, in_flight, ready, failed, closed_by_server, reported;

static const uint8_t preface[] = "PRI * HTTP/2.0\r\n\r\nSM\r\n\r\n"
                                 "\x00\x00\x00\x04\x00\x00\x00\x00\x00";
#define PREFACE_LEN (24 + 9)
static const uint8_t settings_ack[] = "\x00\x00\x00\x04\x01\x00\x00\x00\x00";

static void start_more(void);

static void report(int timed_out) {
  if (reported)
    return;
  reported = 1;
  printf("ready %d failed %d%s\n", ready, failed, timed_out ? " timeout" : "");
  fflush(stdout);
}

static void conn_free(conn *c) {
  if (c->rev)
    event_free(c->rev);
  if (c->wev)
    event_free(c->wev);
  SSL_free(c->ssl);
  if (c->fd >= 0)
    close(c->fd);
  free(c);
}

/* A connection that failed during setup, or that the server closed. */
static void conn_drop(conn *c) {
  if (c->state == CS_IDLE) {
    closed_by_server++;
  } else {
    failed++;
    in_flight--;
  }
  conn_free(c);
  start_more();
}

/* Waits for what OpenSSL asked for. 0, or -1 on a real error. */
static int want(conn *c, int rv) {
  switch (SSL_get_error(c->ssl, rv)) {
  case SSL_ERROR_WANT_READ:
    return event_add(c->rev, NULL);
  case SSL_ERROR_WANT_WRITE:
    return event_add(c->wev, NULL);
  default:
    return -1;
  }
}

/* Reads frame headers and skips payloads; acknowledges the server's
 * SETTINGS. 0, or -1 when the connection is over. */
static int parse(conn *c, const uint8_t *p, size_t n) {
  while (n) {
    if (c->skip) {
      size_t k = c->skip < n ? c->skip : n;
      c->skip -= (uint32_t)k;
      p += k;
      n -= k;
      continue;
    }
    size_t k = 9 - c->hdrlen < n ? 9 - c->hdrlen : n;
    memcpy(c->hdr + c->hdrlen, p, k);
    c->hdrlen += k;
    p += k;
    n -= k;
    if (c->hdrlen < 9)
      break;
    c->hdrlen = 0;
    c->skip = (uint32_t)c->hdr[0] << 16 | (uint32_t)c->hdr[1] << 8 | c->hdr[2];
    uint8_t type = c->hdr[3], flags = c->hdr[4];
    if (type == 7) /* GOAWAY */
      return -1;
    if (type == 4 && !(flags & 1) && c->outlen + 9 <= sizeof c->out) {
      memcpy(c->out + c->outlen, settings_ack, 9);
      c->outlen += 9;
    }
  }
  return 0;
}

/* Writes c->out. 1 when all written, 0 when waiting, -1 on error. */
static int write_out(conn *c) {
  if (!c->outlen)
    return 1;
  if (!c->ssl) {
    ssize_t w = write(c->fd, c->out, c->outlen);
    if (w > 0) {
      memmove(c->out, c->out + w, c->outlen - (size_t)w);
      c->outlen -= (size_t)w;
      if (!c->outlen)
        return 1;
      return event_add(c->wev, NULL) == 0 ? 0 : -1;
    }
    if (w < 0 && (errno == EAGAIN || errno == EWOULDBLOCK))
      return event_add(c->wev, NULL) == 0 ? 0 : -1;
    return -1;
  }
  int rv = SSL_write(c->ssl, c->out, (int)c->outlen);
  if (rv > 0) {
    c->outlen = 0;
    return 1;
  }
  return want(c, rv) == 0 ? 0 : -1;
}

/* Reads what is there: > 0 bytes, 0 when waiting, -1 when over. */
static int read_in(conn *c, uint8_t *buf, size_t len) {
  if (!c->ssl) {
    ssize_t r = read(c->fd, buf, len);
    if (r > 0)
      return (int)r;
    if (r < 0 && (errno == EAGAIN || errno == EWOULDBLOCK))
      return 0;
    return -1;
  }
  int rv = SSL_read(c->ssl, buf, (int)len);
  if (rv > 0)
    return rv;
  int e = SSL_get_error(c->ssl, rv);
  if (e == SSL_ERROR_WANT_READ)
    return 0;
  if (e == SSL_ERROR_WANT_WRITE)
    return event_add(c->wev, NULL) == 0 ? 0 : -1;
  return -1;
}

static void step(conn *c) {
  static uint8_t buf[16384];
  int rv;
  if (c->state == CS_HANDSHAKE && !c->ssl) {
    memcpy(c->out, preface, PREFACE_LEN);
    c->outlen = PREFACE_LEN;
    c->state = CS_PREFACE;
  }
  if (c->state == CS_HANDSHAKE) {
    rv = SSL_do_handshake(c->ssl);
    if (rv != 1) {
      if (want(c, rv) != 0)
        conn_drop(c);
      return;
    }
    const unsigned char *alpn = NULL;
    unsigned int alpn_len = 0;
    SSL_get0_alpn_selected(c->ssl, &alpn, &alpn_len);
    if (alpn_len != 2 || memcmp(alpn, "h2", 2) != 0) {
      conn_drop(c);
      return;
    }
    memcpy(c->out, preface, PREFACE_LEN);
    c->outlen = PREFACE_LEN;
    c->state = CS_PREFACE;
  }
  if (c->state == CS_PREFACE) {
    rv = write_out(c);
    if (rv < 0)
      conn_drop(c);
    if (rv <= 0)
      return;
    c->state = CS_WAIT_SETTINGS;
  }
  for (;;) {
    rv = read_in(c, buf, sizeof buf);
    if (rv == 0)
      break;
    if (rv < 0 || parse(c, buf, (size_t)rv) != 0) {
      conn_drop(c);
      return;
    }
  }
  int had_ack = c->outlen > 0;
  rv = write_out(c);
  if (rv < 0) {
    conn_drop(c);
    return;
  }
  if (rv == 1 && had_ack && c->state == CS_WAIT_SETTINGS) {
    c->state = CS_IDLE;
    ready++;
    in_flight--;
    start_more();
  }
  event_add(c->rev, NULL);
}

static void on_event(evutil_socket_t fd, short what, void *arg) {
  step(arg);
}

static int start_one(void) {
  conn *c = calloc(1, sizeof *c);
  if (!c)
    return -1;
  c->fd = socket(AF_INET, SOCK_STREAM | SOCK_NONBLOCK | SOCK_CLOEXEC, 0);
  if (c->fd < 0)
    goto fail;
  int one = 1;
  setsockopt(c->fd, IPPROTO_TCP, TCP_NODELAY, &one, sizeof one);
  if (connect(c->fd, (struct sockaddr *)&addr, sizeof addr) != 0 &&
      errno != EINPROGRESS)
    goto fail;
  c->rev = event_new(base, c->fd, EV_READ, on_event, c);
  c->wev = event_new(base, c->fd, EV_WRITE, on_event, c);
  if (!c->rev || !c->wev)
    goto fail;
  if (!plain) {
    c->ssl = SSL_new(ctx);
    if (!c->ssl || SSL_set_fd(c->ssl, c->fd) != 1 ||
        SSL_set_tlsext_host_name(c->ssl, "localhost") != 1)
      goto fail;
    SSL_set_connect_state(c->ssl);
  }
  c->state = CS_HANDSHAKE;
  in_flight++;
  step(c);
  return 0;
fail:
  fprintf(stderr, "idle_conns: connection %d: %s\n", started,
          errno ? strerror(errno) : "setup failed");
  conn_free(c);
  return -1;
}

static void start_more(void) {
  while (started < total && in_flight < in_flight_max) {
    started++;
    if (start_one() != 0)
      failed++;
  }
  if (started == total && in_flight == 0)
    report(0);
}

static void on_timeout(evutil_socket_t fd, short what, void *arg) {
  report(1);
}

static void on_stop(evutil_socket_t fd, short what, void *arg) {
  event_base_loopbreak(base);
}

int main(int argc, char **argv) {
  int port = 0, opt, setup_s = 120, hold_s = 300;
  const char *ca = NULL, *cert = NULL, *key = NULL;
  while ((opt = getopt(argc, argv, "p:n:a:c:k:i:t:H:x")) != -1) {
    switch (opt) {
    case 'p':
      port = atoi(optarg);
      break;
    case 'n':
      total = atoi(optarg);
      break;
    case 'a':
      ca = optarg;
      break;
    case 'c':
      cert = optarg;
      break;
    case 'k':
      key = optarg;
      break;
    case 'i':
      in_flight_max = atoi(optarg);
      break;
    case 't':
      setup_s = atoi(optarg);
      break;
    case 'H':
      hold_s = atoi(optarg);
      break;
    case 'x':
      plain = 1;
      break;
    default:
      goto usage;
    }
  }
  if (port <= 0 || port > 65535 || total <= 0 ||
      (!plain && (!ca || !cert || !key)) || in_flight_max <= 0)
    goto usage;
  signal(SIGPIPE, SIG_IGN);
  addr.sin_family = AF_INET;
  addr.sin_port = htons((uint16_t)port);
  addr.sin_addr.s_addr = htonl(INADDR_LOOPBACK);

  static const unsigned char alpn[] = "\x02h2";
  if (!plain) {
    ctx = SSL_CTX_new(TLS_client_method());
    if (!ctx || SSL_CTX_load_verify_locations(ctx, ca, NULL) != 1 ||
        SSL_CTX_use_certificate_chain_file(ctx, cert) != 1 ||
        SSL_CTX_use_PrivateKey_file(ctx, key, SSL_FILETYPE_PEM) != 1 ||
        SSL_CTX_set_alpn_protos(ctx, alpn, 3) != 0) {
      ERR_print_errors_fp(stderr);
      return 2;
    }
    SSL_CTX_set_verify(ctx, SSL_VERIFY_PEER, NULL);
    SSL_CTX_set_mode(ctx, SSL_MODE_RELEASE_BUFFERS);
    SSL_CTX_set_session_cache_mode(ctx, SSL_SESS_CACHE_OFF);
  }

  base = event_base_new();
  if (!base)
    return 2;
  struct timeval setup_tv = {setup_s, 0}, hold_tv = {setup_s + hold_s, 0};
  struct event *tmo = evtimer_new(base, on_timeout, NULL);
  struct event *hold = evtimer_new(base, on_stop, NULL);
  struct event *sterm = evsignal_new(base, SIGTERM, on_stop, NULL);
  struct event *sint = evsignal_new(base, SIGINT, on_stop, NULL);
  evtimer_add(tmo, &setup_tv);
  evtimer_add(hold, &hold_tv);
  event_add(sterm, NULL);
  event_add(sint, NULL);
  start_more();
  event_base_dispatch(base);
  report(1);
  printf("closed_by_server %d\n", closed_by_server);
  fflush(stdout);
  /* The process exits: the kernel closes the sockets. */
  return ready == total ? 0 : 1;
usage:
  fprintf(stderr, "usage: idle_conns -p PORT -n COUNT (-a CA -c CERT -k KEY "
                  "| -x) [-i IN_FLIGHT] [-t SETUP_S] [-H HOLD_S]\n");
  return 2;
}
