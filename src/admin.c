#include "tg_admin.h"

#include <event2/buffer.h>
#include <event2/http.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "tg_worker.h"

struct tg_admin {
  tg_app *app;
  struct evhttp *http;
};

static void reply(struct evhttp_request *req, int code, const char *reason,
                  const char *body) {
  struct evbuffer *b = evbuffer_new();
  if (!b) {
    evhttp_send_error(req, 500, NULL);
    return;
  }
  evbuffer_add_printf(b, "%s\n", body);
  evhttp_add_header(evhttp_request_get_output_headers(req), "Content-Type",
                    "text/plain; charset=utf-8");
  evhttp_add_header(evhttp_request_get_output_headers(req), "Cache-Control",
                    "no-store");
  evhttp_send_reply(req, code, reason, b);
  evbuffer_free(b);
}

static void handle(struct evhttp_request *req, void *arg) {
  tg_admin *a = arg;
  const char *path = evhttp_uri_get_path(evhttp_request_get_evhttp_uri(req));
  if (!path)
    path = "/";
  int is_live = strcmp(path, "/health/live") == 0;
  int is_ready = strcmp(path, "/health/ready") == 0;
  if (!is_live && !is_ready) {
    reply(req, 404, "Not Found", "not found");
    return;
  }
  enum evhttp_cmd_type cmd = evhttp_request_get_command(req);
  if (cmd != EVHTTP_REQ_GET && cmd != EVHTTP_REQ_HEAD) {
    evhttp_add_header(evhttp_request_get_output_headers(req), "Allow",
                      "GET, HEAD");
    reply(req, 405, "Method Not Allowed", "method not allowed");
    return;
  }
  if (is_live) {
    reply(req, 200, "OK", "live");
    return;
  }
  if (atomic_load(&a->app->shutting_down)) {
    reply(req, 503, "Service Unavailable", "not ready: shutting down");
    return;
  }
  if (a->app->keystore) {
    tg_keystore_stats ks;
    tg_keystore_stats_get(a->app->keystore, &ks);
    if (ks.nkeys == 0) {
      reply(req, 503, "Service Unavailable",
            "not ready: no JWT verification key has been loaded yet");
      return;
    }
  }
  int up = atomic_load(&a->app->upstream_ready);
  if (up <= 0) {
    reply(req, 503, "Service Unavailable",
          "not ready: no upstream frontend connection is up");
    return;
  }
  char body[96];
  snprintf(body, sizeof(body), "ready: %d upstream connection(s) up", up);
  reply(req, 200, "OK", body);
}

tg_admin *tg_admin_new(tg_app *app, const tg_addr *addr, char *err,
                       size_t errlen) {
  tg_admin *a = calloc(1, sizeof(*a));
  if (!a) {
    snprintf(err, errlen, "out of memory");
    return NULL;
  }
  a->app = app;
  a->http = evhttp_new(app->base);
  if (!a->http) {
    snprintf(err, errlen, "cannot create admin HTTP server");
    goto fail;
  }
  evhttp_set_allowed_methods(a->http, EVHTTP_REQ_GET | EVHTTP_REQ_HEAD |
                                          EVHTTP_REQ_POST | EVHTTP_REQ_PUT |
                                          EVHTTP_REQ_DELETE);
  evhttp_set_max_headers_size(a->http, 16 * 1024);
  evhttp_set_max_body_size(a->http, 1024);
  evhttp_set_timeout(a->http, 10);
  evhttp_set_gencb(a->http, handle, a);
  if (!evhttp_bind_socket_with_handle(a->http, addr->host, addr->port)) {
    snprintf(err, errlen, "cannot listen on admin address %s:%u", addr->host,
             addr->port);
    goto fail;
  }
  return a;
fail:
  tg_admin_free(a);
  return NULL;
}

void tg_admin_free(tg_admin *a) {
  if (!a)
    return;
  if (a->http)
    evhttp_free(a->http);
  free(a);
}
