/*
 * fast_upstream: a minimal h2c gRPC server for benchmarks (not a test).
 *
 * Every request is answered with HTTP 200, content-type application/grpc,
 * one length-prefixed message and the trailers grpc-status: 0. The message
 * is a valid response for the method: a DescribeNamespaceResponse for
 * .../DescribeNamespace, a StartWorkflowExecutionResponse for
 * .../StartWorkflowExecution, an empty message (valid for any type) for
 * anything else. Answered calls (trailers sent) are counted per :path and
 * served as JSON by `GET /count` on a second, plain HTTP/1 port, so a
 * benchmark can prove how many calls really reached the upstream.
 *
 * Usage: fast_upstream -p H2C_PORT -s STATS_PORT [-m MAX_STREAMS]
 * Listens on 127.0.0.1 only. Single thread; nothing is allocated per call
 * beyond what nghttp2 allocates for a stream. SIGINT/SIGTERM end it.
 */
#include <errno.h>
#include <event2/buffer.h>
#include <event2/event.h>
#include <event2/http.h>
#include <event2/listener.h>
#include <netinet/in.h>
#include <netinet/tcp.h>
#include <nghttp2/nghttp2.h>
#include <signal.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <unistd.h>

#define MAX_PATHS 64
#define MAX_PATH_LEN 256
#define OUT_CHUNK 65536

/* temporal.api.workflowservice.v1.DescribeNamespaceResponse{namespace_info:
 * {name: "bench", state: REGISTERED, id: "5f3c1a2e-..."}} */
static const uint8_t describe_resp[] = {
    0x00, 0x00, 0x00, 0x00, 0x31, 0x0a, 0x2f, 0x0a, 0x05, 'b', 'e',
    'n',  'c',  'h',  0x10, 0x01, 0x32, 0x24, '5',  'f',  '3', 'c',
    '1',  'a',  '2',  'e',  '-',  '0',  '0',  '0',  '0',  '-', '4',
    '0',  '0',  '0',  '-',  '8',  '0',  '0',  '0',  '-',  '0', '0',
    '0',  '0',  '0',  '0',  '0',  '0',  '0',  '0',  '0',  '1'};

/* StartWorkflowExecutionResponse{run_id: "01964d2c-...", started: true} */
static const uint8_t start_resp[] = {
    0x00, 0x00, 0x00, 0x00, 0x28, 0x0a, 0x24, '0',  '1', '9', '6', '4',
    'd',  '2',  'c',  '-',  '7',  'b',  '5',  'e',  '-', '7', 'c', '3',
    'a',  '-',  '9',  'e',  '0',  'f',  '-',  '3',  'b', '2', 'a', '1',
    'c',  '0',  'd',  '9',  'e',  '8',  'f',  0x18, 0x01};

static const uint8_t empty_resp[] = {0x00, 0x00, 0x00, 0x00, 0x00};

typedef struct path_ent {
  char name[MAX_PATH_LEN];
  size_t len;
  const uint8_t *resp;
  size_t resp_len;
  uint64_t count;
} path_ent;

static path_ent paths[MAX_PATHS];
static size_t npaths;
static uint64_t other_count; /* calls whose :path did not fit the table */
static uint64_t conns_total;
static uint32_t max_streams = 10000;

typedef struct conn {
  int fd;
  struct event *rev, *wev;
  nghttp2_session *s;
  uint8_t *out;
  size_t outlen, outoff, outcap;
} conn;

static int ends_with(const char *s, size_t len, const char *suffix) {
  size_t n = strlen(suffix);
  return len >= n && memcmp(s + len - n, suffix, n) == 0;
}

/* The table index of path, added when new; MAX_PATHS (counted as "other")
 * when the table is full. */
static int path_index(const uint8_t *p, size_t len) {
  for (size_t i = 0; i < npaths; i++)
    if (paths[i].len == len && memcmp(paths[i].name, p, len) == 0)
      return (int)i;
  if (npaths == MAX_PATHS || len >= MAX_PATH_LEN)
    return MAX_PATHS;
  path_ent *e = &paths[npaths];
  memcpy(e->name, p, len);
  e->name[len] = '\0';
  e->len = len;
  if (ends_with(e->name, len, "/DescribeNamespace")) {
    e->resp = describe_resp;
    e->resp_len = sizeof describe_resp;
  } else if (ends_with(e->name, len, "/StartWorkflowExecution")) {
    e->resp = start_resp;
    e->resp_len = sizeof start_resp;
  } else {
    e->resp = empty_resp;
    e->resp_len = sizeof empty_resp;
  }
  return (int)npaths++;
}

/* Stream user data packs (path index + 1) in the low 16 bits and the bytes
 * of the response already sent above them, so no per-stream struct. */
static uintptr_t stream_ud(nghttp2_session *s, int32_t sid) {
  return (uintptr_t)nghttp2_session_get_stream_user_data(s, sid);
}

static ssize_t read_body(nghttp2_session *s, int32_t sid, uint8_t *buf,
                         size_t length, uint32_t *flags,
                         nghttp2_data_source *src, void *user_data) {
  uintptr_t ud = stream_ud(s, sid);
  int idx = (int)(ud & 0xffff) - 1;
  size_t off = ud >> 16;
  const uint8_t *resp = idx < (int)npaths ? paths[idx].resp : empty_resp;
  size_t total = idx < (int)npaths ? paths[idx].resp_len : sizeof empty_resp;
  size_t n = total - off < length ? total - off : length;
  memcpy(buf, resp + off, n);
  off += n;
  if (off < total) {
    nghttp2_session_set_stream_user_data(s, sid,
                                         (void *)((ud & 0xffff) | (off << 16)));
    return (ssize_t)n;
  }
  static const nghttp2_nv trailers[] = {
      {(uint8_t *)"grpc-status", (uint8_t *)"0", 11, 1, NGHTTP2_NV_FLAG_NONE}};
  *flags |= NGHTTP2_DATA_FLAG_EOF | NGHTTP2_DATA_FLAG_NO_END_STREAM;
  if (nghttp2_submit_trailer(s, sid, trailers, 1) != 0)
    return NGHTTP2_ERR_TEMPORAL_CALLBACK_FAILURE;
  return (ssize_t)n;
}

static int respond(nghttp2_session *s, int32_t sid) {
  static const nghttp2_nv hdrs[] = {
      {(uint8_t *)":status", (uint8_t *)"200", 7, 3, NGHTTP2_NV_FLAG_NONE},
      {(uint8_t *)"content-type", (uint8_t *)"application/grpc", 12, 16,
       NGHTTP2_NV_FLAG_NONE},
  };
  nghttp2_data_provider dp = {.source = {.ptr = NULL},
                              .read_callback = read_body};
  return nghttp2_submit_response(s, sid, hdrs, 2, &dp);
}

static int on_header(nghttp2_session *s, const nghttp2_frame *f,
                     const uint8_t *name, size_t namelen, const uint8_t *value,
                     size_t valuelen, uint8_t flags, void *user_data) {
  if (f->hd.type != NGHTTP2_HEADERS || f->headers.cat != NGHTTP2_HCAT_REQUEST)
    return 0;
  if (namelen == 5 && memcmp(name, ":path", 5) == 0) {
    int idx = path_index(value, valuelen);
    nghttp2_session_set_stream_user_data(s, f->hd.stream_id,
                                         (void *)(uintptr_t)(idx + 1));
  }
  return 0;
}

static int on_frame_recv(nghttp2_session *s, const nghttp2_frame *f,
                         void *user_data) {
  if ((f->hd.type == NGHTTP2_HEADERS || f->hd.type == NGHTTP2_DATA) &&
      (f->hd.flags & NGHTTP2_FLAG_END_STREAM) &&
      nghttp2_session_get_stream_user_data(s, f->hd.stream_id) != NULL)
    return respond(s, f->hd.stream_id) == 0
               ? 0
               : NGHTTP2_ERR_TEMPORAL_CALLBACK_FAILURE;
  return 0;
}

static int on_frame_send(nghttp2_session *s, const nghttp2_frame *f,
                         void *user_data) {
  if (f->hd.type != NGHTTP2_HEADERS || f->headers.cat != NGHTTP2_HCAT_HEADERS ||
      !(f->hd.flags & NGHTTP2_FLAG_END_STREAM))
    return 0;
  int idx = (int)(stream_ud(s, f->hd.stream_id) & 0xffff) - 1;
  if (idx >= 0 && idx < (int)npaths)
    paths[idx].count++;
  else
    other_count++;
  return 0;
}

static void conn_free(conn *c) {
  event_free(c->rev);
  event_free(c->wev);
  nghttp2_session_del(c->s);
  close(c->fd);
  free(c->out);
  free(c);
}

/* Moves nghttp2's pending output into c->out and writes it. 0, or -1 when
 * the connection is done (error, or both sides finished). */
static int flush(conn *c) {
  for (;;) {
    if (c->outoff == c->outlen) {
      c->outoff = c->outlen = 0;
      while (c->outlen < OUT_CHUNK) {
        const uint8_t *d;
        ssize_t n = nghttp2_session_mem_send(c->s, &d);
        if (n < 0)
          return -1;
        if (n == 0)
          break;
        if (c->outlen + (size_t)n > c->outcap) {
          size_t cap = c->outcap * 2;
          while (cap < c->outlen + (size_t)n)
            cap *= 2;
          uint8_t *p = realloc(c->out, cap);
          if (!p)
            return -1;
          c->out = p;
          c->outcap = cap;
        }
        memcpy(c->out + c->outlen, d, (size_t)n);
        c->outlen += (size_t)n;
      }
      if (c->outlen == 0)
        break;
    }
    ssize_t w = write(c->fd, c->out + c->outoff, c->outlen - c->outoff);
    if (w < 0 && (errno == EAGAIN || errno == EWOULDBLOCK)) {
      event_add(c->wev, NULL);
      return 0;
    }
    if (w < 0)
      return errno == EINTR ? 0 : -1;
    c->outoff += (size_t)w;
  }
  if (!nghttp2_session_want_read(c->s) && !nghttp2_session_want_write(c->s))
    return -1;
  return 0;
}

static void on_read(evutil_socket_t fd, short what, void *arg) {
  static uint8_t buf[65536];
  conn *c = arg;
  for (int i = 0; i < 16; i++) {
    ssize_t n = read(fd, buf, sizeof buf);
    if (n == 0)
      goto close;
    if (n < 0) {
      if (errno == EAGAIN || errno == EWOULDBLOCK)
        break;
      if (errno == EINTR)
        continue;
      goto close;
    }
    if (nghttp2_session_mem_recv(c->s, buf, (size_t)n) < 0)
      goto close;
    if ((size_t)n < sizeof buf)
      break;
  }
  if (flush(c) == 0)
    return;
close:
  conn_free(c);
}

static void on_write(evutil_socket_t fd, short what, void *arg) {
  conn *c = arg;
  if (flush(c) != 0)
    conn_free(c);
}

static nghttp2_session_callbacks *callbacks;

static void on_accept(struct evconnlistener *l, evutil_socket_t fd,
                      struct sockaddr *sa, int salen, void *arg) {
  struct event_base *base = arg;
  int one = 1;
  setsockopt(fd, IPPROTO_TCP, TCP_NODELAY, &one, sizeof one);
  conn *c = calloc(1, sizeof *c);
  if (!c) {
    close(fd);
    return;
  }
  c->fd = fd;
  c->outcap = OUT_CHUNK + 16384;
  c->out = malloc(c->outcap);
  c->rev = event_new(base, fd, EV_READ | EV_PERSIST, on_read, c);
  c->wev = event_new(base, fd, EV_WRITE, on_write, c);
  if (!c->out || !c->rev || !c->wev ||
      nghttp2_session_server_new(&c->s, callbacks, c) != 0)
    goto fail;
  nghttp2_settings_entry iv[] = {
      {NGHTTP2_SETTINGS_MAX_CONCURRENT_STREAMS, max_streams},
      {NGHTTP2_SETTINGS_INITIAL_WINDOW_SIZE, 1 << 20},
  };
  if (nghttp2_submit_settings(c->s, NGHTTP2_FLAG_NONE, iv, 2) != 0 ||
      nghttp2_session_set_local_window_size(c->s, NGHTTP2_FLAG_NONE, 0,
                                            1 << 24) != 0 ||
      event_add(c->rev, NULL) != 0 || flush(c) != 0)
    goto fail;
  conns_total++;
  return;
fail:
  if (c->s)
    conn_free(c);
  else {
    if (c->rev)
      event_free(c->rev);
    if (c->wev)
      event_free(c->wev);
    free(c->out);
    free(c);
    close(fd);
  }
}

/* GET /count: {"total":N,"other":N,"connections":N,"paths":{...}} */
static void on_count(struct evhttp_request *req, void *arg) {
  struct evbuffer *b = evbuffer_new();
  uint64_t total = other_count;
  for (size_t i = 0; i < npaths; i++)
    total += paths[i].count;
  evbuffer_add_printf(b,
                      "{\"total\":%llu,\"other\":%llu,\"connections\":%llu,"
                      "\"paths\":{",
                      (unsigned long long)total,
                      (unsigned long long)other_count,
                      (unsigned long long)conns_total);
  for (size_t i = 0; i < npaths; i++) {
    /* Paths come from clients: only printable ASCII without '"' or '\\'
     * is echoed as is. */
    evbuffer_add_printf(b, "%s\"", i ? "," : "");
    for (size_t k = 0; k < paths[i].len; k++) {
      unsigned char ch = (unsigned char)paths[i].name[k];
      if (ch < 0x20 || ch > 0x7e || ch == '"' || ch == '\\')
        evbuffer_add_printf(b, "\\u%04x", ch);
      else
        evbuffer_add(b, &ch, 1);
    }
    evbuffer_add_printf(b, "\":%llu", (unsigned long long)paths[i].count);
  }
  evbuffer_add_printf(b, "}}\n");
  evhttp_add_header(evhttp_request_get_output_headers(req), "Content-Type",
                    "application/json");
  evhttp_send_reply(req, 200, "OK", b);
  evbuffer_free(b);
}

static void on_signal(evutil_socket_t sig, short what, void *arg) {
  event_base_loopbreak(arg);
}

int main(int argc, char **argv) {
  int port = 0, stats_port = 0, opt;
  while ((opt = getopt(argc, argv, "p:s:m:")) != -1) {
    switch (opt) {
    case 'p':
      port = atoi(optarg);
      break;
    case 's':
      stats_port = atoi(optarg);
      break;
    case 'm':
      max_streams = (uint32_t)strtoul(optarg, NULL, 10);
      break;
    default:
      fprintf(stderr, "usage: %s -p H2C_PORT -s STATS_PORT [-m MAX]\n",
              argv[0]);
      return 2;
    }
  }
  if (port <= 0 || port > 65535 || stats_port <= 0 || stats_port > 65535) {
    fprintf(stderr, "usage: %s -p H2C_PORT -s STATS_PORT [-m MAX]\n", argv[0]);
    return 2;
  }
  signal(SIGPIPE, SIG_IGN);
  struct event_base *base = event_base_new();
  if (!base || nghttp2_session_callbacks_new(&callbacks) != 0)
    return 1;
  nghttp2_session_callbacks_set_on_header_callback(callbacks, on_header);
  nghttp2_session_callbacks_set_on_frame_recv_callback(callbacks,
                                                       on_frame_recv);
  nghttp2_session_callbacks_set_on_frame_send_callback(callbacks,
                                                       on_frame_send);

  struct sockaddr_in sin = {.sin_family = AF_INET,
                            .sin_port = htons((uint16_t)port),
                            .sin_addr.s_addr = htonl(INADDR_LOOPBACK)};
  struct evconnlistener *l = evconnlistener_new_bind(
      base, on_accept, base, LEV_OPT_REUSEABLE | LEV_OPT_CLOSE_ON_FREE, 1024,
      (struct sockaddr *)&sin, sizeof sin);
  if (!l) {
    fprintf(stderr, "fast_upstream: cannot listen on 127.0.0.1:%d: %s\n", port,
            strerror(errno));
    return 1;
  }
  struct evhttp *http = evhttp_new(base);
  if (!http || evhttp_bind_socket(http, "127.0.0.1", (uint16_t)stats_port)) {
    fprintf(stderr, "fast_upstream: cannot listen on 127.0.0.1:%d\n",
            stats_port);
    return 1;
  }
  evhttp_set_cb(http, "/count", on_count, NULL);
  struct event *sint = evsignal_new(base, SIGINT, on_signal, base);
  struct event *sterm = evsignal_new(base, SIGTERM, on_signal, base);
  event_add(sint, NULL);
  event_add(sterm, NULL);
  fprintf(stderr, "fast_upstream: h2c on 127.0.0.1:%d, GET /count on %d\n",
          port, stats_port);
  event_base_dispatch(base);
  event_free(sint);
  event_free(sterm);
  evhttp_free(http);
  evconnlistener_free(l);
  nghttp2_session_callbacks_del(callbacks);
  event_base_free(base);
  return 0;
}
