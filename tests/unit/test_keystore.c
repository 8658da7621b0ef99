/* Unit tests for tg_keystore: which http:// hosts count as loopback, and
 * key sources loaded on a real event loop (files on disk, a JWKS served
 * over HTTP by an evhttp server on the same loop). */
#include "tg_keystore.h"
#include "tg_test.h"
#include "tg_testutil.h"

#include "tg_log.h"

#include <arpa/inet.h>
#include <curl/curl.h>
#include <event2/buffer.h>
#include <event2/event.h>
#include <event2/http.h>
#include <netinet/in.h>
#include <openssl/bn.h>
#include <openssl/core_names.h>
#include <openssl/evp.h>
#include <openssl/pem.h>
#include <openssl/x509.h>
#include <stdarg.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <sys/socket.h>
#include <unistd.h>

static char dir[] = "/tmp/tgate-test-keystore-XXXXXX";

static void write_file(const char *path, const char *text) {
  FILE *f = fopen(path, "w");
  if (f) {
    fputs(text, f);
    fclose(f);
  }
}

static void b64url32(const uint8_t in[32], char out[44]) {
  static const char a[] =
      "ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789-_";
  size_t i = 0;
  char *o = out;
  for (; i + 3 <= 32; i += 3) {
    uint32_t v = (uint32_t)in[i] << 16 | (uint32_t)in[i + 1] << 8 | in[i + 2];
    *o++ = a[v >> 18];
    *o++ = a[(v >> 12) & 63];
    *o++ = a[(v >> 6) & 63];
    *o++ = a[v & 63];
  }
  uint32_t v = (uint32_t)in[i] << 8 | in[i + 1];
  *o++ = a[v >> 10];
  *o++ = a[(v >> 4) & 63];
  *o++ = a[(v & 15) << 2];
  *o = '\0';
}

/* The JWKS of one fresh P-256 key with id kid. */
static char *fresh_jwks(const char *kid) {
  EVP_PKEY *k = EVP_PKEY_Q_keygen(NULL, NULL, "EC", "P-256");
  BIGNUM *x = NULL, *y = NULL;
  uint8_t bx[32], by[32];
  char hx[44], hy[44];
  EVP_PKEY_get_bn_param(k, OSSL_PKEY_PARAM_EC_PUB_X, &x);
  EVP_PKEY_get_bn_param(k, OSSL_PKEY_PARAM_EC_PUB_Y, &y);
  BN_bn2binpad(x, bx, 32);
  BN_bn2binpad(y, by, 32);
  b64url32(bx, hx);
  b64url32(by, hy);
  BN_free(x);
  BN_free(y);
  EVP_PKEY_free(k);
  return xprintf("{\"keys\":[{\"kty\":\"EC\",\"crv\":\"P-256\",\"kid\":\"%s\","
                 "\"x\":\"%s\",\"y\":\"%s\"}]}",
                 kid, hx, hy);
}

static void run_for(struct event_base *base, long ms) {
  struct timeval tv = {ms / 1000, (ms % 1000) * 1000};
  event_base_loopexit(base, &tv);
  event_base_dispatch(base);
}

static int has_kid(tg_keystore *ks, const char *kid) {
  tg_keyset *set = tg_keystore_get(ks, NULL);
  int found = set && tg_keyset_find(set, kid, strlen(kid)) != NULL;
  tg_keyset_unref(set);
  return found;
}

TG_TEST(loopback_hosts) {
  TG_CHECK(tg_keystore_is_loopback_url("http://127.0.0.1/jwks"));
  TG_CHECK(tg_keystore_is_loopback_url("http://127.0.0.1:8080/jwks"));
  TG_CHECK(tg_keystore_is_loopback_url("http://127.1.2.3:1/x"));
  TG_CHECK(tg_keystore_is_loopback_url("http://127.255.255.255/x"));
  TG_CHECK(tg_keystore_is_loopback_url("http://localhost:9/jwks"));
  TG_CHECK(tg_keystore_is_loopback_url("http://LocalHost/jwks"));
  TG_CHECK(tg_keystore_is_loopback_url("http://[::1]:8080/jwks"));
}

TG_TEST(names_and_addresses_that_are_not_loopback) {
  TG_CHECK(!tg_keystore_is_loopback_url("http://127.attacker.invalid/jwks"));
  TG_CHECK(!tg_keystore_is_loopback_url("http://127.0.0.1.nip.io/jwks"));
  TG_CHECK(!tg_keystore_is_loopback_url("http://127.example/jwks"));
  TG_CHECK(!tg_keystore_is_loopback_url("http://128.0.0.1/jwks"));
  TG_CHECK(!tg_keystore_is_loopback_url("http://10.0.0.1/jwks"));
  TG_CHECK(!tg_keystore_is_loopback_url("http://localhost.attacker.invalid/"));
  TG_CHECK(!tg_keystore_is_loopback_url("http://127.0.0.1@evil.invalid/"));
  TG_CHECK(!tg_keystore_is_loopback_url("http://[::2]/jwks"));
  TG_CHECK(!tg_keystore_is_loopback_url("http://[::ffff:8.8.8.8]/jwks"));
  TG_CHECK(!tg_keystore_is_loopback_url("http:///jwks"));
  TG_CHECK(!tg_keystore_is_loopback_url("not a url"));
}

static int check_sources(const char *src, char *err, size_t errlen) {
  char *v[1] = {(char *)src};
  tg_jwt_cfg cfg = {.key_sources = {v, 1}, .refresh_interval_ms = 60000};
  err[0] = '\0';
  return tg_keystore_check(&cfg, err, errlen);
}

/* --check-config and a start both refuse a remote plain-http source before
 * fetching anything. */
TG_TEST(plain_http_to_a_remote_host_is_a_config_error) {
  char err[512];
  TG_CHECK(check_sources("http://127.attacker.invalid/jwks", err, sizeof err) !=
           0);
  TG_CHECK_STR_CONTAINS(err, "allowed only to a loopback host");
  TG_CHECK_STR_CONTAINS(err, "127.attacker.invalid");
  struct event_base *base = event_base_new();
  char *v[1] = {"http://127.attacker.invalid/jwks"};
  tg_jwt_cfg cfg = {.key_sources = {v, 1}, .refresh_interval_ms = 60000};
  err[0] = '\0';
  tg_keystore *ks = tg_keystore_new(base, &cfg, NULL, err, sizeof err);
  TG_CHECK(ks == NULL);
  TG_CHECK_STR_CONTAINS(err, "loopback");
  tg_keystore_free(ks);
  event_base_free(base);
  /* A loopback source gets as far as fetching (nothing listens on port 1). */
  TG_CHECK(check_sources("http://127.0.0.2:1/jwks", err, sizeof err) != 0);
  TG_CHECK(!strstr(err, "loopback"));
}

/* Refreshes that find the same documents keep the generation, and with it
 * every worker's cache of verified tokens; a changed document bumps it. */
TG_TEST(generation_grows_only_when_the_keys_change) {
  char *jwks = xprintf("%s/jwks.json", dir), *pem = xprintf("%s/k.pem", dir);
  char *src_file = xprintf("file:%s", jwks),
       *src_pem = xprintf("pem:%s#p", pem);
  char *doc = fresh_jwks("k1");
  write_file(jwks, doc);
  EVP_PKEY *k = EVP_PKEY_Q_keygen(NULL, NULL, "EC", "P-256");
  FILE *f = fopen(pem, "w");
  PEM_write_PUBKEY(f, k);
  fclose(f);
  EVP_PKEY_free(k);
  char *v[2] = {src_file, src_pem};
  tg_jwt_cfg cfg = {.key_sources = {v, 2}, .refresh_interval_ms = 50};
  char err[256] = "";
  struct event_base *base = event_base_new();
  tg_keystore *ks = tg_keystore_new(base, &cfg, NULL, err, sizeof err);
  TG_CHECK(ks != NULL);
  if (!ks)
    goto end;
  tg_keystore_stats st;
  tg_keystore_stats_get(ks, &st);
  TG_CHECK(st.generation == 1 && st.nkeys == 2);
  uint64_t gen = 0;
  tg_keyset *first = tg_keystore_get(ks, &gen);
  TG_CHECK(gen == 1);
  run_for(base, 400);
  tg_keystore_stats_get(ks, &st);
  TG_CHECK(st.refreshes >= 4);
  TG_CHECK(st.generation == 1);
  tg_keyset *same = tg_keystore_get(ks, &gen);
  TG_CHECK(gen == 1 && same == first);
  tg_keyset_unref(same);
  /* Rewritten with the same bytes: still the same keys. */
  write_file(jwks, doc);
  run_for(base, 150);
  tg_keystore_stats_get(ks, &st);
  TG_CHECK(st.generation == 1);
  /* A rotation at the source. */
  free(doc);
  doc = fresh_jwks("k2");
  write_file(jwks, doc);
  run_for(base, 150);
  tg_keystore_stats_get(ks, &st);
  TG_CHECK(st.generation == 2 && st.nkeys == 2);
  TG_CHECK(has_kid(ks, "k2") && !has_kid(ks, "k1"));
  /* A broken document keeps the last good keys and the generation. */
  write_file(jwks, "{\"keys\":");
  run_for(base, 150);
  tg_keystore_stats_get(ks, &st);
  TG_CHECK(st.generation == 2 && st.failures > 0 && has_kid(ks, "k2"));
  tg_keyset_unref(first);
end:
  tg_keystore_free(ks);
  event_base_free(base);
  free(doc);
  free(jwks);
  free(pem);
  free(src_file);
  free(src_pem);
}

/* A JWKS endpoint on the test's loop: the first request is answered only
 * after a delay (a slow IdP), with the document of that moment. */
typedef struct slow_server {
  struct event_base *base;
  int requests;
  char *doc; /* what is served now */
  struct evhttp_request *held;
  char *held_doc; /* the document as it was when the held request came */
  struct event *release;
} slow_server;

static void answer(struct evhttp_request *req, const char *doc) {
  struct evbuffer *b = evbuffer_new();
  evbuffer_add(b, doc, strlen(doc));
  evhttp_send_reply(req, 200, "OK", b);
  evbuffer_free(b);
}

static void release_cb(evutil_socket_t fd, short what, void *arg) {
  slow_server *s = arg;
  if (s->held)
    answer(s->held, s->held_doc);
  s->held = NULL;
}

static void slow_cb(struct evhttp_request *req, void *arg) {
  slow_server *s = arg;
  if (s->requests++ == 0) {
    struct timeval tv = {0, 300 * 1000};
    s->held = req;
    s->held_doc = s->doc;
    evtimer_add(s->release, &tv);
    return;
  }
  answer(req, s->doc);
}

typedef struct asker {
  tg_keystore *ks;
  slow_server *srv;
  char *rotated;
} asker;

/* While the first fetch is held: the IdP rotates, and a token with the new
 * kid asks for an early refresh. */
static void ask_cb(evutil_socket_t fd, short what, void *arg) {
  asker *a = arg;
  a->srv->doc = a->rotated;
  tg_keystore_request_refresh(a->ks);
}

TG_TEST(early_refresh_asked_during_a_fetch_is_not_lost) {
  slow_server srv = {0};
  struct event_base *base = event_base_new();
  struct evhttp *http = evhttp_new(base);
  struct evhttp_bound_socket *sock =
      evhttp_bind_socket_with_handle(http, "127.0.0.1", 0);
  TG_CHECK(sock != NULL);
  if (!sock) {
    evhttp_free(http);
    event_base_free(base);
    return;
  }
  struct sockaddr_in sin;
  socklen_t slen = sizeof sin;
  getsockname(evhttp_bound_socket_get_fd(sock), (struct sockaddr *)&sin, &slen);
  char *url = xprintf("http://127.0.0.1:%u/jwks", ntohs(sin.sin_port));
  char *old_doc = fresh_jwks("old"), *new_doc = fresh_jwks("new");
  srv.base = base;
  srv.doc = old_doc;
  srv.release = evtimer_new(base, release_cb, &srv);
  evhttp_set_gencb(http, slow_cb, &srv);
  char *v[1] = {url};
  tg_jwt_cfg cfg = {.key_sources = {v, 1}, .refresh_interval_ms = 60000};
  char err[256] = "";
  tg_keystore *ks = tg_keystore_new(base, &cfg, NULL, err, sizeof err);
  TG_CHECK(ks != NULL);
  asker a = {ks, &srv, new_doc};
  struct event *ask = evtimer_new(base, ask_cb, &a);
  struct timeval tv = {0, 100 * 1000};
  evtimer_add(ask, &tv);
  for (int i = 0; i < 40 && ks && !has_kid(ks, "new"); i++)
    run_for(base, 50);
  TG_CHECK(srv.requests == 2);
  TG_CHECK(ks && has_kid(ks, "new"));
  tg_keystore_free(ks);
  event_free(ask);
  event_free(srv.release);
  evhttp_free(http);
  event_base_free(base);
  free(url);
  free(old_doc);
  free(new_doc);
}

/* A self-signed certificate for k, written to path. */
static void write_cert(const char *path, EVP_PKEY *k) {
  X509 *x = X509_new();
  X509_set_version(x, 2);
  ASN1_INTEGER_set(X509_get_serialNumber(x), 1);
  X509_gmtime_adj(X509_getm_notBefore(x), 0);
  X509_gmtime_adj(X509_getm_notAfter(x), 3600);
  X509_NAME *name = X509_get_subject_name(x);
  X509_NAME_add_entry_by_txt(name, "CN", MBSTRING_ASC,
                             (const unsigned char *)"test CA", -1, -1, 0);
  X509_set_issuer_name(x, name);
  X509_set_pubkey(x, k);
  X509_sign(x, k, EVP_sha256());
  FILE *f = fopen(path, "w");
  if (f) {
    PEM_write_X509(f, x);
    fclose(f);
  }
  X509_free(x);
}

/* authentication.jwt.ca_file must load, at --check-config and at start. */
TG_TEST(ca_file_must_hold_a_certificate) {
  char *jwks = xprintf("%s/ca-jwks.json", dir), *src = xprintf("file:%s", jwks);
  char *ca = xprintf("%s/ca.pem", dir), *notca = xprintf("%s/pub.pem", dir);
  char *missing = xprintf("%s/missing.pem", dir);
  char *doc = fresh_jwks("k");
  write_file(jwks, doc);
  EVP_PKEY *k = EVP_PKEY_Q_keygen(NULL, NULL, "EC", "P-256");
  write_cert(ca, k);
  FILE *f = fopen(notca, "w");
  PEM_write_PUBKEY(f, k);
  fclose(f);
  EVP_PKEY_free(k);
  char *v[1] = {src};
  tg_jwt_cfg cfg = {.key_sources = {v, 1}, .refresh_interval_ms = 60000};
  char err[512] = "";
  cfg.ca_file = ca;
  TG_CHECK(tg_keystore_check(&cfg, err, sizeof err) == 0);
  cfg.ca_file = missing;
  TG_CHECK(tg_keystore_check(&cfg, err, sizeof err) != 0);
  TG_CHECK_STR_CONTAINS(err, "ca_file");
  TG_CHECK_STR_CONTAINS(err, "No such file");
  cfg.ca_file = notca;
  TG_CHECK(tg_keystore_check(&cfg, err, sizeof err) != 0);
  TG_CHECK_STR_CONTAINS(err, "no PEM certificate");
  struct event_base *base = event_base_new();
  tg_keystore *ks = tg_keystore_new(base, &cfg, NULL, err, sizeof err);
  TG_CHECK(ks == NULL);
  TG_CHECK_STR_CONTAINS(err, "no PEM certificate");
  cfg.ca_file = ca;
  ks = tg_keystore_new(base, &cfg, NULL, err, sizeof err);
  TG_CHECK(ks != NULL && has_kid(ks, "k"));
  tg_keystore_free(ks);
  event_base_free(base);
  free(doc);
  free(jwks);
  free(src);
  free(ca);
  free(notca);
  free(missing);
}

int main(void) {
  curl_global_init(CURL_GLOBAL_DEFAULT);
  tg_log_set_level(TG_LOG_ERROR);
  if (!mkdtemp(dir)) {
    perror("mkdtemp");
    return 1;
  }
  TG_RUN(loopback_hosts);
  TG_RUN(names_and_addresses_that_are_not_loopback);
  TG_RUN(plain_http_to_a_remote_host_is_a_config_error);
  TG_RUN(generation_grows_only_when_the_keys_change);
  TG_RUN(early_refresh_asked_during_a_fetch_is_not_lost);
  TG_RUN(ca_file_must_hold_a_certificate);
  char *cmd = xprintf("rm -rf '%s'", dir);
  if (system(cmd) != 0)
    fprintf(stderr, "could not remove %s\n", dir);
  free(cmd);
  curl_global_cleanup();
  return TG_DONE();
}
