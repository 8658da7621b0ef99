/* Unit tests for tg_keystore: which http:// hosts count as loopback, and
 * key sources loaded on a real event loop (files on disk, a JWKS served
 * over HTTP by an evhttp server on the same loop). */
#include "tg_keystore.h"
#include "tg_test.h"

#include <curl/curl.h>
#include <event2/buffer.h>
#include <event2/event.h>
#include <event2/http.h>
#include <openssl/bn.h>
#include <openssl/core_names.h>
#include <openssl/evp.h>
#include <stdarg.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <unistd.h>

static char dir[] = "/tmp/tgate-test-keystore-XXXXXX";

static char *xprintf(const char *fmt, ...) {
  va_list ap;
  char *s = NULL;
  va_start(ap, fmt);
  if (vasprintf(&s, fmt, ap) < 0)
    s = NULL;
  va_end(ap);
  return s;
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

int main(void) {
  curl_global_init(CURL_GLOBAL_DEFAULT);
  if (!mkdtemp(dir)) {
    perror("mkdtemp");
    return 1;
  }
  TG_RUN(loopback_hosts);
  TG_RUN(names_and_addresses_that_are_not_loopback);
  TG_RUN(plain_http_to_a_remote_host_is_a_config_error);
  char *cmd = xprintf("rm -rf '%s'", dir);
  if (system(cmd) != 0)
    fprintf(stderr, "could not remove %s\n", dir);
  free(cmd);
  curl_global_cleanup();
  return TG_DONE();
}
