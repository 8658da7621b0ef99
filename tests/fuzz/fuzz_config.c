/*
 * libFuzzer harness for tg_config_parse(): any bytes must yield either a
 * config or well-formed "FILE:LINE:COL: message" lines, and nothing leaks.
 * The same bytes also feed tg_config_parse_addr() and
 * tg_config_parse_duration().
 */
#include "tg_config.h"

#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#define FUZZ_FILE "f.yaml"

/* Each line: FUZZ_FILE ":" digits ":" digits ": " text "\n", no control
 * characters inside. */
static void fuzz_check_errors(const char *errors) {
  const char *s = errors;
  size_t plen = strlen(FUZZ_FILE);
  if (!s || !*s)
    abort();
  while (*s) {
    if (strncmp(s, FUZZ_FILE ":", plen + 1) != 0)
      abort();
    s += plen + 1;
    for (int field = 0; field < 2; field++) {
      if (*s < '1' || *s > '9')
        abort();
      while (*s >= '0' && *s <= '9')
        s++;
      if (*s++ != ':')
        abort();
    }
    if (*s++ != ' ')
      abort();
    for (; *s != '\n'; s++)
      if ((unsigned char)*s < 0x20 || *s == 0x7f)
        abort();
    s++;
  }
}

static void fuzz_check_addr(const tg_addr *a) {
  if (!a->host || !*a->host || a->port == 0)
    abort();
}

static void fuzz_check_config(const tg_config *cfg) {
  fuzz_check_addr(&cfg->listen_address);
  if (cfg->upstream_naddresses == 0 || !cfg->upstream_addresses)
    abort();
  for (size_t i = 0; i < cfg->upstream_naddresses; i++)
    fuzz_check_addr(&cfg->upstream_addresses[i]);
  if (cfg->admin_address)
    fuzz_check_addr(cfg->admin_address);
  if (cfg->listen_tls &&
      (!cfg->listen_tls->cert_file || !cfg->listen_tls->key_file ||
       (cfg->listen_tls->require_client_cert &&
        !cfg->listen_tls->client_ca_file)))
    abort();
  if (cfg->upstream_tls &&
      !cfg->upstream_tls->cert_file != !cfg->upstream_tls->key_file)
    abort();
  if (cfg->workers > 256 || cfg->max_concurrent_streams == 0 ||
      cfg->upstream_max_connections == 0 ||
      cfg->upstream_connect_timeout_ms == 0)
    abort();
  if (!cfg->upstream_hc_service || cfg->upstream_hc_enabled < -1 ||
      cfg->upstream_hc_enabled > 1 || cfg->upstream_hc_interval_ms < 100 ||
      cfg->upstream_hc_timeout_ms == 0 ||
      cfg->upstream_hc_timeout_ms > cfg->upstream_hc_interval_ms ||
      cfg->upstream_hc_unhealthy_threshold == 0 ||
      cfg->upstream_hc_healthy_threshold == 0 ||
      (cfg->upstream_dns_refresh_ms > 0 && cfg->upstream_dns_refresh_ms < 100))
    abort();
  if (cfg->max_header_list_size < 1024 || cfg->max_message_size < 1024 ||
      cfg->max_connections > 10000000 ||
      cfg->reload_watch_ms > 24ULL * 3600 * 1000 ||
      (cfg->upstream_token_header && cfg->upstream_token_header[0] == ':'))
    abort();
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size) {
  tg_config *cfg = NULL;
  char *errors = NULL;
  int rc = tg_config_parse((const char *)data, size, FUZZ_FILE, &cfg, &errors);
  if (rc == 0) {
    if (!cfg || errors)
      abort();
    fuzz_check_config(cfg);
  } else {
    if (cfg)
      abort();
    if (rc == TG_CONFIG_ERR_SYNTAX || rc == TG_CONFIG_ERR_INVALID)
      fuzz_check_errors(errors);
    else if (rc != TG_CONFIG_ERR_NOMEM)
      abort();
  }
  tg_config_free(cfg);
  free(errors);

  char *s = malloc(size + 1);
  if (!s)
    return 0;
  memcpy(s, data, size);
  s[size] = '\0';
  tg_addr addr;
  const char *why = NULL;
  if (tg_config_parse_addr(s, &addr, &why) == 0) {
    fuzz_check_addr(&addr);
    free(addr.host);
  } else if (!why) {
    abort();
  }
  uint64_t ms;
  tg_config_parse_duration(s, &ms);
  free(s);
  return 0;
}
