/* Unit tests for src/config.c (tg_config_*). */
#include "tg_config.h"
#include "tg_test.h"

#include <stdlib.h>
#include <unistd.h>

#include "tg_failmalloc.h"

#define FILENAME "t.yaml"

/* The smallest valid configuration: four lines, so extra lines start at 5. */
#define MINIMAL                                                                \
  "listen:\n"                                                                  \
  "  address: \"127.0.0.1:7233\"\n"                                            \
  "upstream:\n"                                                                \
  "  addresses: [\"127.0.0.1:7234\"]\n"

static const char full_config[] =
    "# every key\n"
    "listen:\n"
    "  address: \"0.0.0.0:7233\"\n"
    "  tls:\n"
    "    cert_file: /etc/tgate/server.pem\n"
    "    key_file: /etc/tgate/server.key\n"
    "    client_ca_file: /etc/tgate/clients-ca.pem\n"
    "    require_client_cert: true\n"
    "  max_concurrent_streams: 500\n"
    "upstream:\n"
    "  addresses:\n"
    "    - \"10.0.0.1:7234\"\n"
    "    - \"[fd00::2]:7235\"\n"
    "    - temporal.internal:7236\n"
    "  tls:\n"
    "    ca_file: /etc/tgate/temporal-ca.pem\n"
    "    cert_file: /etc/tgate/client.pem\n"
    "    key_file: /etc/tgate/client.key\n"
    "    server_name: temporal.internal\n"
    "  max_connections: 16\n"
    "  connect_timeout: 250ms\n"
    "  health_check:\n"
    "    enabled: true\n"
    "    interval: 5s\n"
    "    timeout: 500ms\n"
    "    service: grpc.health.v1.Health\n"
    "    unhealthy_threshold: 3\n"
    "    healthy_threshold: 2\n"
    "  dns_refresh_interval: 1m\n"
    "  resolv_conf: /etc/tgate/resolv.conf\n"
    "admin:\n"
    "  address: \"127.0.0.1:9233\"\n"
    "workers: 4\n"
    "shutdown_grace_period: 2m\n"
    "authorization:\n"
    "  mode: off\n"
    "logging:\n"
    "  level: debug\n";

static const char many_errors[] = "listen:\n"
                                  "  address: \"127.0.0.1:0\"\n"
                                  "  colour: blue\n"
                                  "upstream:\n"
                                  "  addresses: []\n"
                                  "workers: many\n"
                                  "logging: {level: loud}\n"
                                  "extra: 1\n";

static int parse(const char *yaml, tg_config **cfg, char **errors) {
  return tg_config_parse(yaml, strlen(yaml), FILENAME, cfg, errors);
}

static int str_eq(const char *a, const char *b) {
  return a && b && strcmp(a, b) == 0;
}

/* Every line must be "t.yaml:LINE:COL: message"; returns how many, or -1. */
static int error_lines(const char *errors) {
  int n = 0;
  const char *s = errors;
  size_t plen = strlen(FILENAME);
  if (!s || !*s)
    return -1;
  while (*s) {
    const char *eol = strchr(s, '\n');
    if (!eol || strncmp(s, FILENAME ":", plen + 1) != 0)
      return -1;
    const char *c = s + plen + 1;
    for (int field = 0; field < 2; field++) {
      if (*c < '1' || *c > '9')
        return -1;
      while (*c >= '0' && *c <= '9')
        c++;
      if (*c++ != ':')
        return -1;
    }
    if (*c != ' ' || c + 1 >= eol)
      return -1;
    n++;
    s = eol + 1;
  }
  return n;
}

/* Whether one line of errors contains both a and b. */
static int line_has(const char *errors, const char *a, const char *b) {
  for (const char *s = errors; s && *s;) {
    const char *eol = strchr(s, '\n');
    size_t len = eol ? (size_t)(eol - s) : strlen(s);
    const char *x = strstr(s, a), *y = strstr(s, b);
    if (x && y && x + strlen(a) <= s + len && y + strlen(b) <= s + len)
      return 1;
    s += len + (eol != NULL);
  }
  return 0;
}

/* Parses yaml expecting failure rc with exactly nlines well-formed lines, one
 * of which contains where and what; returns the errors for more checks
 * (caller frees). */
static char *expect_error(const char *yaml, int rc, int nlines,
                          const char *where, const char *what) {
  tg_config *cfg = (tg_config *)1;
  char *errors = NULL;
  int got = parse(yaml, &cfg, &errors);
  TG_CHECK(got == rc);
  TG_CHECK(cfg == NULL);
  TG_CHECK(error_lines(errors) == nlines);
  TG_CHECK_STR_CONTAINS(errors, where);
  TG_CHECK_STR_CONTAINS(errors, what);
  TG_CHECK(line_has(errors, where, what));
  if (got == 0)
    tg_config_free(cfg);
  return errors;
}

#define EXPECT_ERROR(yaml, rc, nlines, where, what)                            \
  free(expect_error((yaml), (rc), (nlines), (where), (what)))

TG_TEST(test_full_config) {
  tg_config *cfg = NULL;
  char *errors = (char *)1;
  TG_CHECK(parse(full_config, &cfg, &errors) == 0);
  TG_CHECK(errors == NULL);
  if (!cfg)
    return;
  TG_CHECK(str_eq(cfg->listen_address.host, "0.0.0.0"));
  TG_CHECK(cfg->listen_address.port == 7233);
  TG_CHECK(cfg->listen_tls != NULL);
  if (cfg->listen_tls) {
    TG_CHECK(str_eq(cfg->listen_tls->cert_file, "/etc/tgate/server.pem"));
    TG_CHECK(str_eq(cfg->listen_tls->key_file, "/etc/tgate/server.key"));
    TG_CHECK(
        str_eq(cfg->listen_tls->client_ca_file, "/etc/tgate/clients-ca.pem"));
    TG_CHECK(cfg->listen_tls->require_client_cert == 1);
  }
  TG_CHECK(cfg->max_concurrent_streams == 500);
  TG_CHECK(cfg->upstream_naddresses == 3);
  if (cfg->upstream_naddresses == 3) {
    TG_CHECK(str_eq(cfg->upstream_addresses[0].host, "10.0.0.1"));
    TG_CHECK(cfg->upstream_addresses[0].port == 7234);
    TG_CHECK(str_eq(cfg->upstream_addresses[1].host, "fd00::2"));
    TG_CHECK(cfg->upstream_addresses[1].port == 7235);
    TG_CHECK(str_eq(cfg->upstream_addresses[2].host, "temporal.internal"));
    TG_CHECK(cfg->upstream_addresses[2].port == 7236);
  }
  TG_CHECK(cfg->upstream_tls != NULL);
  if (cfg->upstream_tls) {
    TG_CHECK(str_eq(cfg->upstream_tls->ca_file, "/etc/tgate/temporal-ca.pem"));
    TG_CHECK(str_eq(cfg->upstream_tls->cert_file, "/etc/tgate/client.pem"));
    TG_CHECK(str_eq(cfg->upstream_tls->key_file, "/etc/tgate/client.key"));
    TG_CHECK(str_eq(cfg->upstream_tls->server_name, "temporal.internal"));
  }
  TG_CHECK(cfg->upstream_max_connections == 16);
  TG_CHECK(cfg->upstream_connect_timeout_ms == 250);
  TG_CHECK(cfg->upstream_hc_enabled == 1);
  TG_CHECK(cfg->upstream_hc_interval_ms == 5000);
  TG_CHECK(cfg->upstream_hc_timeout_ms == 500);
  TG_CHECK(str_eq(cfg->upstream_hc_service, "grpc.health.v1.Health"));
  TG_CHECK(cfg->upstream_hc_unhealthy_threshold == 3);
  TG_CHECK(cfg->upstream_hc_healthy_threshold == 2);
  TG_CHECK(cfg->upstream_dns_refresh_ms == 60000);
  TG_CHECK(str_eq(cfg->upstream_resolv_conf, "/etc/tgate/resolv.conf"));
  TG_CHECK(cfg->admin_address != NULL);
  if (cfg->admin_address) {
    TG_CHECK(str_eq(cfg->admin_address->host, "127.0.0.1"));
    TG_CHECK(cfg->admin_address->port == 9233);
  }
  TG_CHECK(cfg->workers == 4);
  TG_CHECK(cfg->shutdown_grace_ms == 120000);
  TG_CHECK(cfg->authz_mode == TG_AUTHZ_OFF);
  TG_CHECK(cfg->log_level == TG_LOG_DEBUG);
  tg_config_free(cfg);
}

TG_TEST(test_defaults) {
  tg_config *cfg = NULL;
  char *errors = NULL;
  TG_CHECK(parse(MINIMAL, &cfg, &errors) == 0);
  TG_CHECK(errors == NULL);
  if (!cfg)
    return;
  TG_CHECK(str_eq(cfg->listen_address.host, "127.0.0.1"));
  TG_CHECK(cfg->listen_address.port == 7233);
  TG_CHECK(cfg->listen_tls == NULL);
  TG_CHECK(cfg->max_concurrent_streams == 1000);
  TG_CHECK(cfg->upstream_naddresses == 1);
  TG_CHECK(cfg->upstream_tls == NULL);
  TG_CHECK(cfg->upstream_max_connections == 8);
  TG_CHECK(cfg->upstream_connect_timeout_ms == 5000);
  TG_CHECK(cfg->upstream_hc_enabled == -1);
  TG_CHECK(cfg->upstream_hc_interval_ms == 10000);
  TG_CHECK(cfg->upstream_hc_timeout_ms == 2000);
  TG_CHECK(str_eq(cfg->upstream_hc_service,
                  "temporal.api.workflowservice.v1.WorkflowService"));
  TG_CHECK(cfg->upstream_hc_unhealthy_threshold == 2);
  TG_CHECK(cfg->upstream_hc_healthy_threshold == 1);
  TG_CHECK(cfg->upstream_dns_refresh_ms == 30000);
  TG_CHECK(cfg->upstream_resolv_conf == NULL);
  TG_CHECK(cfg->admin_address == NULL);
  TG_CHECK(cfg->workers == 0);
  TG_CHECK(cfg->shutdown_grace_ms == 30000);
  TG_CHECK(cfg->authz_mode == TG_AUTHZ_OFF);
  TG_CHECK(cfg->log_level == TG_LOG_INFO);
  tg_config_free(cfg);
}

TG_TEST(test_optional_forms) {
  /* A single upstream address, quoted scalars, client CA without requiring
   * a client certificate, anchors and aliases. */
  const char *yaml = "listen:\n"
                     "  address: &a \"[::1]:7233\"\n"
                     "  tls: {cert_file: c.pem, key_file: k.pem, "
                     "client_ca_file: ca.pem}\n"
                     "upstream:\n"
                     "  addresses: temporal:7233\n"
                     "  tls: {}\n"
                     "workers: \"0\"\n"
                     "shutdown_grace_period: 0s\n"
                     "authorization: {mode: \"off\"}\n"
                     "logging: {level: warn}\n"
                     "admin: {address: \"[::1]:9233\"}\n";
  tg_config *cfg = NULL;
  char *errors = NULL;
  TG_CHECK(parse(yaml, &cfg, &errors) == 0);
  TG_CHECK(errors == NULL);
  free(errors);
  if (!cfg)
    return;
  TG_CHECK(str_eq(cfg->listen_address.host, "::1"));
  TG_CHECK(cfg->listen_address.port == 7233);
  TG_CHECK(cfg->listen_tls && cfg->listen_tls->require_client_cert == 0);
  TG_CHECK(cfg->listen_tls &&
           str_eq(cfg->listen_tls->client_ca_file, "ca.pem"));
  TG_CHECK(cfg->upstream_naddresses == 1);
  TG_CHECK(str_eq(cfg->upstream_addresses[0].host, "temporal"));
  TG_CHECK(cfg->upstream_tls && !cfg->upstream_tls->ca_file &&
           !cfg->upstream_tls->cert_file && !cfg->upstream_tls->server_name);
  TG_CHECK(cfg->shutdown_grace_ms == 0);
  TG_CHECK(cfg->log_level == TG_LOG_WARN);
  TG_CHECK(cfg->admin_address && cfg->admin_address->port == 9233);
  tg_config_free(cfg);
}

TG_TEST(test_ipv6_listen) {
  const char *yaml = "listen:\n"
                     "  address: \"[2001:db8::7]:443\"\n"
                     "upstream:\n"
                     "  addresses: [\"[::1]:7234\"]\n";
  tg_config *cfg = NULL;
  char *errors = NULL;
  TG_CHECK(parse(yaml, &cfg, &errors) == 0);
  TG_CHECK(errors == NULL);
  if (!cfg)
    return;
  TG_CHECK(str_eq(cfg->listen_address.host, "2001:db8::7"));
  TG_CHECK(cfg->listen_address.port == 443);
  TG_CHECK(str_eq(cfg->upstream_addresses[0].host, "::1"));
  tg_config_free(cfg);
}

TG_TEST(test_unknown_top_level_key) {
  EXPECT_ERROR(MINIMAL "bogus: 1\n", TG_CONFIG_ERR_INVALID, 1,
               "t.yaml:5:1:", "unknown key 'bogus' at the top level");
}

TG_TEST(test_unknown_nested_key) {
  EXPECT_ERROR(MINIMAL "upstream_typo: 1\n", TG_CONFIG_ERR_INVALID, 1,
               "t.yaml:5:1:", "unknown key 'upstream_typo'");
  EXPECT_ERROR("listen:\n"
               "  address: \"127.0.0.1:7233\"\n"
               "  adress: \"127.0.0.1:7233\"\n"
               "upstream:\n"
               "  addresses: [\"127.0.0.1:7234\"]\n",
               TG_CONFIG_ERR_INVALID, 1,
               "t.yaml:3:3:", "unknown key 'adress' in 'listen'");
  EXPECT_ERROR(MINIMAL "  tls:\n"
                       "    ca_file: ca.pem\n"
                       "    verify: false\n",
               TG_CONFIG_ERR_INVALID, 1,
               "t.yaml:7:5:", "unknown key 'verify' in 'upstream.tls'");
}

TG_TEST(test_wrong_type) {
  EXPECT_ERROR("listen:\n"
               "  address: [\"127.0.0.1:7233\"]\n"
               "upstream:\n"
               "  addresses: [\"127.0.0.1:7234\"]\n",
               TG_CONFIG_ERR_INVALID, 1, "t.yaml:2:12:",
               "must be a \"host:port\" string, not a sequence");
  EXPECT_ERROR(MINIMAL "logging: debug\n", TG_CONFIG_ERR_INVALID, 1,
               "t.yaml:5:10:", "'logging' must be a mapping, not a scalar");
  EXPECT_ERROR(MINIMAL "admin:\n", TG_CONFIG_ERR_INVALID, 1,
               "t.yaml:5:7:", "'admin' must be a mapping, not null");
  EXPECT_ERROR(MINIMAL "  tls:\n    ca_file: {a: b}\n", TG_CONFIG_ERR_INVALID,
               1, "t.yaml:6:14:", "must be a string, not a mapping");
  EXPECT_ERROR(MINIMAL "  tls:\n    ca_file: \"\"\n", TG_CONFIG_ERR_INVALID, 1,
               "t.yaml:6:14:", "must not be empty");
  EXPECT_ERROR(MINIMAL "  tls:\n    ca_file: \"a\\0b\"\n",
               TG_CONFIG_ERR_INVALID, 1, "t.yaml:6:14:", "NUL");
  EXPECT_ERROR(MINIMAL "{a: 1}: 2\n", TG_CONFIG_ERR_INVALID, 1,
               "t.yaml:5:1:", "keys at the top level must be strings");
}

TG_TEST(test_bad_bool_and_int) {
  EXPECT_ERROR("listen:\n"
               "  address: \"127.0.0.1:7233\"\n"
               "  tls:\n"
               "    cert_file: c.pem\n"
               "    key_file: k.pem\n"
               "    client_ca_file: ca.pem\n"
               "    require_client_cert: yes\n"
               "upstream:\n"
               "  addresses: [\"127.0.0.1:7234\"]\n",
               TG_CONFIG_ERR_INVALID, 1,
               "t.yaml:7:26:", "must be true or false, not 'yes'");
  EXPECT_ERROR(MINIMAL "  max_connections: 0x10\n", TG_CONFIG_ERR_INVALID, 1,
               "t.yaml:5:20:", "must be a decimal integer, not '0x10'");
  EXPECT_ERROR(MINIMAL "  max_connections: 1025\n", TG_CONFIG_ERR_INVALID, 1,
               "t.yaml:5:20:", "between 1 and 1024");
  EXPECT_ERROR(MINIMAL "  max_connections: 99999999999999999999999\n",
               TG_CONFIG_ERR_INVALID, 1, "t.yaml:5:20:", "between 1 and 1024");
}

TG_TEST(test_bad_duration) {
  EXPECT_ERROR(MINIMAL "shutdown_grace_period: 30\n", TG_CONFIG_ERR_INVALID, 1,
               "t.yaml:5:24:", "must be a duration");
  EXPECT_ERROR(MINIMAL "shutdown_grace_period: 1.5s\n", TG_CONFIG_ERR_INVALID,
               1, "t.yaml:5:24:", "unit of ms, s, m or h");
  EXPECT_ERROR(MINIMAL "  connect_timeout: 0ms\n", TG_CONFIG_ERR_INVALID, 1,
               "t.yaml:5:20:", "between 1ms and 24h");
  EXPECT_ERROR(MINIMAL "shutdown_grace_period: 25h\n", TG_CONFIG_ERR_INVALID, 1,
               "t.yaml:5:24:", "between 0s and 24h");
}

TG_TEST(test_upstream_health_and_dns) {
  tg_config *cfg = NULL;
  char *errors = NULL;
  /* "" asks about the whole server; 0s turns re-resolution off; without a
   * timeout of its own, the timeout is at most the interval */
  TG_CHECK(parse(MINIMAL "  health_check: {enabled: false, service: \"\", "
                         "interval: 500ms}\n"
                         "  dns_refresh_interval: 0s\n",
                 &cfg, &errors) == 0);
  TG_CHECK(errors == NULL);
  if (cfg) {
    TG_CHECK(cfg->upstream_hc_enabled == 0);
    TG_CHECK(str_eq(cfg->upstream_hc_service, ""));
    TG_CHECK(cfg->upstream_hc_interval_ms == 500);
    TG_CHECK(cfg->upstream_hc_timeout_ms == 500);
    TG_CHECK(cfg->upstream_dns_refresh_ms == 0);
  }
  tg_config_free(cfg);

  EXPECT_ERROR(
      MINIMAL "  health_check:\n    intervall: 1s\n", TG_CONFIG_ERR_INVALID, 1,
      "t.yaml:6:5:", "unknown key 'intervall' in 'upstream.health_check'");
  EXPECT_ERROR(MINIMAL "  health_check: true\n", TG_CONFIG_ERR_INVALID, 1,
               "t.yaml:5:17:",
               "'upstream.health_check' must be a mapping, not a scalar");
  EXPECT_ERROR(MINIMAL "  health_check:\n    enabled: on\n",
               TG_CONFIG_ERR_INVALID, 1,
               "t.yaml:6:14:", "must be true or false, not 'on'");
  EXPECT_ERROR(MINIMAL "  health_check:\n    interval: 50ms\n",
               TG_CONFIG_ERR_INVALID, 1, "t.yaml:6:15:",
               "'upstream.health_check.interval' must be between 100ms and 1h");
  EXPECT_ERROR(MINIMAL "  health_check:\n    timeout: 0ms\n",
               TG_CONFIG_ERR_INVALID, 1, "t.yaml:6:14:",
               "'upstream.health_check.timeout' must be between 1ms and 1h");
  EXPECT_ERROR(MINIMAL "  health_check:\n    interval: 1s\n    timeout: 2s\n",
               TG_CONFIG_ERR_INVALID, 1, "t.yaml:7:14:",
               "must not be longer than its interval (1000ms), not '2s'");
  EXPECT_ERROR(MINIMAL "  health_check:\n    unhealthy_threshold: 0\n",
               TG_CONFIG_ERR_INVALID, 1, "t.yaml:6:26:",
               "'upstream.health_check.unhealthy_threshold' must be between 1 "
               "and 100");
  EXPECT_ERROR(MINIMAL "  health_check:\n    healthy_threshold: 101\n",
               TG_CONFIG_ERR_INVALID, 1, "t.yaml:6:24:",
               "'upstream.health_check.healthy_threshold' must be between 1 "
               "and 100");
  EXPECT_ERROR(
      MINIMAL "  health_check:\n    service: [a]\n", TG_CONFIG_ERR_INVALID, 1,
      "t.yaml:6:14:", "'upstream.health_check.service' must be a string");
  char big[1300];
  snprintf(big, sizeof big, MINIMAL "  health_check:\n    service: %01100d\n",
           0);
  EXPECT_ERROR(big, TG_CONFIG_ERR_INVALID, 1, "t.yaml:6:14:",
               "'upstream.health_check.service' must be at most 1024 bytes");
  EXPECT_ERROR(
      MINIMAL "  dns_refresh_interval: 50ms\n", TG_CONFIG_ERR_INVALID, 1,
      "t.yaml:5:25:", "must be 0s (off) or between 100ms and 24h, not '50ms'");
  EXPECT_ERROR(MINIMAL "  dns_refresh_interval: 25h\n", TG_CONFIG_ERR_INVALID,
               1, "t.yaml:5:25:", "between 0s and 24h");
  EXPECT_ERROR(MINIMAL "  dns_refresh_interval: often\n", TG_CONFIG_ERR_INVALID,
               1, "t.yaml:5:25:", "must be a duration");
  EXPECT_ERROR(MINIMAL "  resolv_conf: \"\"\n", TG_CONFIG_ERR_INVALID, 1,
               "t.yaml:5:16:", "must not be empty");
}

TG_TEST(test_bad_port) {
  EXPECT_ERROR("listen:\n"
               "  address: \"127.0.0.1:99999\"\n"
               "upstream:\n"
               "  addresses: [\"127.0.0.1:7234\"]\n",
               TG_CONFIG_ERR_INVALID, 1, "t.yaml:2:12:", "port out of range");
  EXPECT_ERROR("listen:\n"
               "  address: \"127.0.0.1:7233\"\n"
               "upstream:\n"
               "  addresses:\n"
               "    - \"127.0.0.1:7234\"\n"
               "    - \"127.0.0.1\"\n",
               TG_CONFIG_ERR_INVALID, 1, "t.yaml:6:7:",
               "'upstream.addresses[1]' is not a valid address '127.0.0.1': "
               "missing port");
}

TG_TEST(test_missing_listen_address) {
  EXPECT_ERROR("listen:\n"
               "  max_concurrent_streams: 10\n"
               "upstream:\n"
               "  addresses: [\"127.0.0.1:7234\"]\n",
               TG_CONFIG_ERR_INVALID, 1,
               "t.yaml:2:3:", "missing required key 'address' in 'listen'");
}

TG_TEST(test_missing_upstream) {
  EXPECT_ERROR("# no upstream\n"
               "listen:\n"
               "  address: \"127.0.0.1:7233\"\n",
               TG_CONFIG_ERR_INVALID, 1, "t.yaml:2:1:",
               "missing required key 'upstream' at the top level");
  EXPECT_ERROR("listen:\n"
               "  address: \"127.0.0.1:7233\"\n"
               "upstream:\n"
               "  addresses: []\n",
               TG_CONFIG_ERR_INVALID, 1, "t.yaml:4:14:", "must not be empty");
  EXPECT_ERROR("listen:\n"
               "  address: \"127.0.0.1:7233\"\n"
               "upstream:\n"
               "  max_connections: 2\n",
               TG_CONFIG_ERR_INVALID, 1,
               "t.yaml:4:3:", "missing required key 'addresses' in 'upstream'");
}

TG_TEST(test_tls_requirements) {
  EXPECT_ERROR("listen:\n"
               "  address: \"127.0.0.1:7233\"\n"
               "  tls:\n"
               "    cert_file: c.pem\n"
               "    key_file: k.pem\n"
               "    require_client_cert: true\n"
               "upstream:\n"
               "  addresses: [\"127.0.0.1:7234\"]\n",
               TG_CONFIG_ERR_INVALID, 1, "t.yaml:4:5:",
               "missing required key 'client_ca_file' in 'listen.tls' "
               "(required when require_client_cert is true)");
  char *errors =
      expect_error("listen:\n"
                   "  address: \"127.0.0.1:7233\"\n"
                   "  tls: {key_file: k.pem}\n"
                   "upstream:\n"
                   "  addresses: [\"127.0.0.1:7234\"]\n",
                   TG_CONFIG_ERR_INVALID, 1,
                   "t.yaml:3:8:", "missing required key 'cert_file'");
  free(errors);
  EXPECT_ERROR(MINIMAL "  tls:\n    cert_file: c.pem\n", TG_CONFIG_ERR_INVALID,
               1, "t.yaml:6:5:", "missing required key 'key_file'");
  EXPECT_ERROR(MINIMAL "  tls:\n    key_file: k.pem\n", TG_CONFIG_ERR_INVALID,
               1, "t.yaml:6:5:", "'cert_file' is missing");
}

TG_TEST(test_duplicate_key) {
  char *errors = expect_error(MINIMAL "workers: 2\n"
                                      "workers: 3\n",
                              TG_CONFIG_ERR_INVALID, 1,
                              "t.yaml:6:1:", "duplicate key 'workers'");
  TG_CHECK_STR_CONTAINS(errors, "first defined at 5:1");
  free(errors);
  EXPECT_ERROR("listen:\n"
               "  address: \"127.0.0.1:7233\"\n"
               "  address: \"127.0.0.1:7234\"\n"
               "upstream:\n"
               "  addresses: [\"127.0.0.1:7234\"]\n",
               TG_CONFIG_ERR_INVALID, 1,
               "t.yaml:3:3:", "duplicate key 'address' in 'listen'");
}

TG_TEST(test_syntax_error) {
  EXPECT_ERROR("listen:\n"
               "  address: a: b\n",
               TG_CONFIG_ERR_SYNTAX, 1, "t.yaml:2:13:",
               "YAML syntax error: mapping values are not allowed");
  EXPECT_ERROR("listen:\n"
               "  address: \"127.0.0.1:7233\n",
               TG_CONFIG_ERR_SYNTAX, 1,
               "t.yaml:3:1:", "while scanning a quoted scalar at 2:12");
  /* Reader errors carry a byte offset rather than a mark. */
  EXPECT_ERROR(MINIMAL "workers: \x01\n", TG_CONFIG_ERR_SYNTAX, 1,
               "t.yaml:5:10:", "control characters are not allowed");
  EXPECT_ERROR(MINIMAL "workers: *nowhere\n", TG_CONFIG_ERR_SYNTAX, 1,
               "t.yaml:5:10:", "YAML syntax error: found undefined alias");
  /* Syntax errors stop the parse: the unknown key is not reported. */
  EXPECT_ERROR("bogus: 1\n"
               "listen: [\n",
               TG_CONFIG_ERR_SYNTAX, 1, "t.yaml:3:1:", "YAML syntax error");
}

TG_TEST(test_empty_document) {
  EXPECT_ERROR("", TG_CONFIG_ERR_INVALID, 1, "t.yaml:1:1:", "empty");
  EXPECT_ERROR("# nothing but a comment\n\n", TG_CONFIG_ERR_INVALID, 1,
               "t.yaml:1:1:", "empty");
  EXPECT_ERROR("- listen\n", TG_CONFIG_ERR_INVALID, 1,
               "t.yaml:1:1:", "the document must be a mapping, not a sequence");
  EXPECT_ERROR("~\n", TG_CONFIG_ERR_INVALID, 1,
               "t.yaml:1:1:", "must be a mapping, not null");
  EXPECT_ERROR(MINIMAL "---\nworkers: 1\n", TG_CONFIG_ERR_INVALID, 1,
               "t.yaml:6:1:", "only one YAML document");

  tg_config *cfg = (tg_config *)1;
  char *errors = NULL;
  TG_CHECK(tg_config_parse(NULL, 0, NULL, &cfg, &errors) ==
           TG_CONFIG_ERR_INVALID);
  TG_CHECK(cfg == NULL);
  TG_CHECK_STR_CONTAINS(errors, "<config>:1:1: ");
  free(errors);
}

#define AUTHN_BASE                                                             \
  "listen:\n"                                                                  \
  "  address: \"127.0.0.1:7233\"\n"                                            \
  "  tls: {cert_file: s.pem, key_file: s.key, client_ca_file: ca.pem}\n"       \
  "upstream:\n"                                                                \
  "  addresses: [\"127.0.0.1:7234\"]\n"

TG_TEST(test_authorization_mode) {
  EXPECT_ERROR(
      MINIMAL "authorization:\n  mode: rbac\n", TG_CONFIG_ERR_INVALID, 1,
      "t.yaml:6:9:", "'authorization.mode' must be enforce, shadow or off");
  /* Enforcing without any way to authenticate would deny everything. */
  EXPECT_ERROR(MINIMAL "authorization:\n  mode: enforce\n",
               TG_CONFIG_ERR_INVALID, 1,
               "t.yaml:6:9:", "needs an 'authentication' section");
  /* Case-sensitive, whatever YAML 1.1 thinks of "Off". */
  EXPECT_ERROR(MINIMAL "authorization:\n  mode: Off\n", TG_CONFIG_ERR_INVALID,
               1, "t.yaml:6:9:", "not 'Off'");
  EXPECT_ERROR(MINIMAL "logging:\n  level: verbose\n", TG_CONFIG_ERR_INVALID, 1,
               "t.yaml:6:10:", "error, warn, info, debug");
}

TG_TEST(test_authorization_full) {
  const char *yaml = AUTHN_BASE
      "authentication:\n"
      "  require: [client_cert]\n"
      "authorization:\n"
      "  mode: shadow\n"
      "  worker_role: temporal\n"
      "  disabled_methods: [\"WorkflowService/TerminateWorkflowExecution\"]\n"
      "  max_message_bytes: 1048576\n"
      "  expose_reasons: true\n"
      "  subject_header: X-Tgate-Subject\n"
      "  forward_authorization: strip\n"
      "  rules:\n"
      "    - effect: allow\n"
      "      methods: [\"@worker\"]\n"
      "      namespaces: [payments]\n"
      "      subjects: [\"spiffe://acme.test/ns/payments/*\"]\n"
      "      task_queues: [\"payments-*\"]\n"
      "    - effect: deny\n"
      "      methods: \"@admin\"\n"
      "      namespaces: [\"prod-*\"]\n";
  tg_config *cfg = NULL;
  char *errors = NULL;
  TG_CHECK(parse(yaml, &cfg, &errors) == 0);
  TG_CHECK(errors == NULL);
  if (!cfg) {
    free(errors);
    return;
  }
  TG_CHECK(cfg->authz_mode == TG_AUTHZ_SHADOW);
  TG_CHECK(cfg->worker_role_extended == 0);
  TG_CHECK(cfg->disabled_methods.n == 1);
  TG_CHECK(cfg->max_message_bytes == 1048576);
  TG_CHECK(cfg->expose_reasons == 1);
  TG_CHECK(str_eq(cfg->subject_header, "x-tgate-subject"));
  TG_CHECK(cfg->forward_authorization == TG_FWD_AUTH_STRIP);
  TG_CHECK(cfg->nauthz_rules == 2);
  if (cfg->nauthz_rules == 2) {
    TG_CHECK(cfg->authz_rules[0].allow == 1 && cfg->authz_rules[1].allow == 0);
    TG_CHECK(cfg->authz_rules[0].task_queues.n == 1 &&
             str_eq(cfg->authz_rules[0].task_queues.v[0], "payments-*"));
    TG_CHECK(cfg->authz_rules[1].methods.n == 1 &&
             str_eq(cfg->authz_rules[1].methods.v[0], "@admin"));
    TG_CHECK(cfg->authz_rules[0].line == 17 && cfg->authz_rules[1].line == 22);
  }
  tg_config_free(cfg);
  TG_CHECK(parse(MINIMAL, &cfg, &errors) == 0);
  TG_CHECK(cfg && cfg->worker_role_extended == 1 &&
           cfg->max_message_bytes == 4 * 1024 * 1024 &&
           cfg->forward_authorization == TG_FWD_AUTH_FORWARD);
  tg_config_free(cfg);
  EXPECT_ERROR(AUTHN_BASE "authentication: {require: []}\n"
                          "authorization:\n  rules:\n    - effect: maybe\n",
               TG_CONFIG_ERR_INVALID, 2, "t.yaml:9:15:", "allow or deny");
}

TG_TEST(test_limits_and_reload) {
  tg_config *cfg = NULL;
  char *errors = NULL;
  TG_CHECK(parse(MINIMAL, &cfg, &errors) == 0);
  TG_CHECK(cfg && cfg->max_connections == 0 &&
           cfg->max_header_list_size == 65536 &&
           cfg->max_message_size == 64 * 1024 * 1024 &&
           cfg->max_calls_per_subject == 0 && cfg->reload_watch_ms == 2000);
  tg_config_free(cfg);
  cfg = NULL;
  TG_CHECK(parse(MINIMAL "limits:\n"
                         "  max_connections: 5000\n"
                         "  max_header_list_size: 8192\n"
                         "  max_message_size: 1048576\n"
                         "  max_calls_per_subject: 200\n"
                         "reload:\n"
                         "  watch_interval: 0s\n",
                 &cfg, &errors) == 0);
  TG_CHECK(errors == NULL);
  TG_CHECK(cfg && cfg->max_connections == 5000 &&
           cfg->max_header_list_size == 8192 &&
           cfg->max_message_size == 1048576 &&
           cfg->max_calls_per_subject == 200 && cfg->reload_watch_ms == 0);
  tg_config_free(cfg);
  EXPECT_ERROR(MINIMAL "limits:\n  max_header_list_size: 100\n",
               TG_CONFIG_ERR_INVALID, 1, "t.yaml:6:25:",
               "'limits.max_header_list_size' must be between 1024 and");
  EXPECT_ERROR(MINIMAL "limits:\n  max_message_size: 2000000000\n",
               TG_CONFIG_ERR_INVALID, 1, "t.yaml:6:21:",
               "'limits.max_message_size' must be between 1024 and");
  EXPECT_ERROR(MINIMAL "limits:\n  max_streams: 1\n", TG_CONFIG_ERR_INVALID, 1,
               "t.yaml:6:3:", "max_streams");
  EXPECT_ERROR(MINIMAL "reload:\n  watch_interval: 2\n", TG_CONFIG_ERR_INVALID,
               1, "t.yaml:6:19:", "reload.watch_interval");
  EXPECT_ERROR(MINIMAL "reload: yes\n", TG_CONFIG_ERR_INVALID, 1,
               "t.yaml:5:9:", "'reload' must be a mapping");
}

TG_TEST(test_upstream_credentials) {
  tg_config *cfg = NULL;
  char *errors = NULL;
  TG_CHECK(parse(MINIMAL "  credentials:\n"
                         "    bearer_token_file: /run/secrets/key\n"
                         "    header: X-Cloud-Auth\n",
                 &cfg, &errors) == 0);
  TG_CHECK(errors == NULL);
  TG_CHECK(cfg && str_eq(cfg->upstream_token_file, "/run/secrets/key") &&
           str_eq(cfg->upstream_token_header, "x-cloud-auth"));
  tg_config_free(cfg);
  cfg = NULL;
  TG_CHECK(parse(MINIMAL, &cfg, &errors) == 0);
  TG_CHECK(cfg && !cfg->upstream_token_file && !cfg->upstream_token_header);
  tg_config_free(cfg);
  EXPECT_ERROR(MINIMAL "  credentials:\n    header: x\n", TG_CONFIG_ERR_INVALID,
               1, "t.yaml:6:5:", "'bearer_token_file'");
  EXPECT_ERROR(MINIMAL "  credentials:\n    bearer_token_file: f\n"
                       "    header: \":authority\"\n",
               TG_CONFIG_ERR_INVALID, 1, "t.yaml:7:13:", "pseudo-header");
}

TG_TEST(test_workers_range) {
  EXPECT_ERROR(MINIMAL "workers: 257\n", TG_CONFIG_ERR_INVALID, 1,
               "t.yaml:5:10:", "'workers' must be between 0 and 256");
  EXPECT_ERROR(MINIMAL "workers: -1\n", TG_CONFIG_ERR_INVALID, 1,
               "t.yaml:5:10:", "between 0 and 256");
  EXPECT_ERROR(MINIMAL "workers: +4\n", TG_CONFIG_ERR_INVALID, 1,
               "t.yaml:5:10:", "decimal integer");

  tg_config *cfg = NULL;
  char *errors = NULL;
  TG_CHECK(parse(MINIMAL "workers: 256\n", &cfg, &errors) == 0);
  TG_CHECK(cfg && cfg->workers == 256);
  tg_config_free(cfg);
  free(errors);
}

TG_TEST(test_many_errors) {
  char *errors = expect_error(many_errors, TG_CONFIG_ERR_INVALID, 6,
                              "t.yaml:2:12:", "port out of range");
  TG_CHECK_STR_CONTAINS(errors, "t.yaml:3:3: unknown key 'colour'");
  TG_CHECK_STR_CONTAINS(errors, "t.yaml:5:14: 'upstream.addresses' must not");
  TG_CHECK_STR_CONTAINS(errors, "t.yaml:6:10: 'workers' must be a decimal");
  TG_CHECK_STR_CONTAINS(errors, "t.yaml:7:18: 'logging.level' must be one");
  TG_CHECK_STR_CONTAINS(errors, "t.yaml:8:1: unknown key 'extra'");
  /* Sorted by position. */
  TG_CHECK(errors && strncmp(errors, "t.yaml:2:12:", 12) == 0);
  free(errors);
}

TG_TEST(test_error_cap_and_quoting) {
  /* 150 unknown keys: 100 reported, then one line saying the rest is not. */
  char yaml[2048];
  size_t off = 0;
  yaml[off++] = '{';
  for (int i = 0; i < 150; i++)
    off += (size_t)snprintf(yaml + off, sizeof yaml - off, "%sk%d",
                            i ? "," : "", i);
  snprintf(yaml + off, sizeof yaml - off, "}");
  char *errors =
      expect_error(yaml, TG_CONFIG_ERR_INVALID, 101,
                   "t.yaml:1:392:", "too many errors (more than 100)");
  free(errors);

  /* A key holding a newline must not break the one-line-per-error form. */
  errors = expect_error(MINIMAL "\"a\\nb\\\\\": 1\n", TG_CONFIG_ERR_INVALID, 1,
                        "t.yaml:5:1:", "unknown key 'a\\x0ab\\x5c'");
  free(errors);

  /* Long text is cut. */
  char longkey[200];
  memset(longkey, 'x', 150);
  memcpy(longkey + 150, ": 1\n", 5);
  errors = expect_error(longkey, TG_CONFIG_ERR_INVALID, 3,
                        "t.yaml:1:1:", "unknown key 'xxxxxxxx");
  TG_CHECK_STR_CONTAINS(errors, "xxx...' at the top level");
  free(errors);
}

TG_TEST(test_admin_conflict) {
  EXPECT_ERROR(MINIMAL "admin:\n  address: \"127.0.0.1:7233\"\n",
               TG_CONFIG_ERR_INVALID, 1,
               "t.yaml:6:12:", "must differ from 'listen.address'");
  EXPECT_ERROR(MINIMAL "admin: {}\n", TG_CONFIG_ERR_INVALID, 1,
               "t.yaml:5:8:", "missing required key 'address' in 'admin'");
}

TG_TEST(test_alias_cycle) {
  /* The document API resolves aliases to shared nodes: a cycle must neither
   * loop nor be taken for an address list. */
  EXPECT_ERROR("listen:\n"
               "  address: \"127.0.0.1:7233\"\n"
               "upstream:\n"
               "  addresses: &a [*a]\n",
               TG_CONFIG_ERR_INVALID, 1, "t.yaml:4:14:",
               "must be a \"host:port\" string, not a sequence");
}

TG_TEST(test_limits) {
  /* Deep nesting and many anchors are refused before libyaml's composer,
   * which would take minutes over a large file of them. */
  static char deep[300001];
  memset(deep, '[', sizeof deep - 1);
  EXPECT_ERROR(deep, TG_CONFIG_ERR_INVALID, 1,
               "t.yaml:1:65:", "nesting is deeper than 64 levels");

  char yaml[8192];
  size_t off = (size_t)snprintf(yaml, sizeof yaml, "a: [");
  for (int i = 0; i < 300; i++)
    off += (size_t)snprintf(yaml + off, sizeof yaml - off, "%s&a%d x",
                            i ? "," : "", i);
  snprintf(yaml + off, sizeof yaml - off, "]\n");
  EXPECT_ERROR(yaml, TG_CONFIG_ERR_INVALID, 1,
               "t.yaml:1:", "more than 256 anchors");

  off = (size_t)snprintf(yaml, sizeof yaml, "a: &a x\nb: [");
  for (int i = 0; i < 300; i++)
    off +=
        (size_t)snprintf(yaml + off, sizeof yaml - off, "%s*a", i ? "," : "");
  snprintf(yaml + off, sizeof yaml - off, "]\n");
  EXPECT_ERROR(yaml, TG_CONFIG_ERR_INVALID, 1,
               "t.yaml:2:", "more than 256 aliases");
}

TG_TEST(test_parse_addr) {
  static const struct {
    const char *in;
    const char *host; /* NULL: must be rejected */
    uint16_t port;
  } cases[] = {
      {"127.0.0.1:7233", "127.0.0.1", 7233},
      {"localhost:1", "localhost", 1},
      {"temporal-frontend.svc_1:65535", "temporal-frontend.svc_1", 65535},
      {"[::1]:7233", "::1", 7233},
      {"[2001:db8::1]:443", "2001:db8::1", 443},
      {"[::ffff:10.0.0.1]:80", "::ffff:10.0.0.1", 80},
      {"", NULL, 0},
      {"127.0.0.1", NULL, 0},
      {"127.0.0.1:", NULL, 0},
      {"127.0.0.1:0", NULL, 0},
      {"127.0.0.1:65536", NULL, 0},
      {"127.0.0.1:99999999999999999999", NULL, 0},
      {"127.0.0.1:80a", NULL, 0},
      {"127.0.0.1:+80", NULL, 0},
      {"127.0.0.1: 80", NULL, 0},
      {":80", NULL, 0},
      {"::1:80", NULL, 0},
      {"fe80::1", NULL, 0},
      {"[::1]", NULL, 0},
      {"[::1]:", NULL, 0},
      {"[::1]80", NULL, 0},
      {"[::1]x:80", NULL, 0},
      {"[::1]:80]", NULL, 0},
      {"[]:80", NULL, 0},
      {"[::1:80", NULL, 0},
      {"[not-v6]:80", NULL, 0},
      {"[127.0.0.1]:80", NULL, 0},
      {"host name:80", NULL, 0},
      {"host/x:80", NULL, 0},
  };
  for (size_t i = 0; i < sizeof cases / sizeof cases[0]; i++) {
    tg_addr a = {(char *)1, 1};
    const char *why = NULL;
    int rc = tg_config_parse_addr(cases[i].in, &a, &why);
    if (cases[i].host) {
      TG_CHECK(rc == 0);
      TG_CHECK(str_eq(a.host, cases[i].host));
      TG_CHECK(a.port == cases[i].port);
      free(a.host);
    } else {
      if (rc != -1)
        fprintf(stderr, "  accepted %s\n", cases[i].in);
      TG_CHECK(rc == -1);
      TG_CHECK(why != NULL && *why != '\0');
      TG_CHECK(a.host == NULL);
    }
  }
  const char *why = NULL;
  tg_addr a;
  TG_CHECK(tg_config_parse_addr("[::1]x", &a, &why) == -1);
  TG_CHECK_STR_CONTAINS(why, "after ']'");
  TG_CHECK(tg_config_parse_addr("h:0", &a, &why) == -1);
  TG_CHECK_STR_CONTAINS(why, "port");
  TG_CHECK(tg_config_parse_addr("a:b:1", &a, &why) == -1);
  TG_CHECK_STR_CONTAINS(why, "brackets");
}

typedef struct duration_case {
  const char *in;
  int ok;
  uint64_t v;
} duration_case;

/* Each case through parse: the value when ok, else -1 and *out untouched. */
static void check_durations(int (*parse_fn)(const char *, uint64_t *),
                            const duration_case *cases, size_t n) {
  for (size_t i = 0; i < n; i++) {
    uint64_t v = 12345;
    int rc = parse_fn(cases[i].in, &v);
    if (cases[i].ok) {
      TG_CHECK(rc == 0);
      TG_CHECK(v == cases[i].v);
    } else {
      if (rc != -1)
        fprintf(stderr, "  accepted %s\n", cases[i].in);
      TG_CHECK(rc == -1);
      TG_CHECK(v == 12345);
    }
  }
}

TG_TEST(test_parse_duration) {
  static const duration_case cases[] = {
      {"0s", 1, 0},
      {"500ms", 1, 500},
      {"30s", 1, 30000},
      {"2m", 1, 120000},
      {"1h", 1, 3600000},
      {"007s", 1, 7000},
      {"18446744073709551615ms", 1, UINT64_MAX},
      {"18446744073709551616ms", 0, 0},
      {"18446744073709552s", 0, 0},
      {"30", 0, 0},
      {"", 0, 0},
      {"s", 0, 0},
      {"-1s", 0, 0},
      {"+1s", 0, 0},
      {" 1s", 0, 0},
      {"1s ", 0, 0},
      {"1.5s", 0, 0},
      {"1S", 0, 0},
      {"1sec", 0, 0},
      {"1d", 0, 0},
      {"1m30s", 0, 0},
      {"1us", 0, 0},
  };
  check_durations(tg_config_parse_duration, cases,
                  sizeof cases / sizeof cases[0]);
}

TG_TEST(test_parse_duration_us) {
  static const duration_case cases[] = {
      {"0us", 1, 0},
      {"50us", 1, 50},
      {"1ms", 1, 1000},
      {"2s", 1, 2000000},
      {"007us", 1, 7},
      {"us", 0, 0},
      {"50", 0, 0},
      {"-5us", 0, 0},
      {"5 us", 0, 0},
      {"5uss", 0, 0},
      {"1.5us", 0, 0},
      {"50Us", 0, 0},
      {"", 0, 0},
      {"18446744073709551615us", 1, UINT64_MAX},
      {"18446744073709551616us", 0, 0},
      {"18446744073709552s", 0, 0},
      {"99999999999999999999999us", 0, 0},
  };
  check_durations(tg_config_parse_duration_us, cases,
                  sizeof cases / sizeof cases[0]);
}

TG_TEST(test_busy_poll) {
  tg_config *cfg = NULL;
  char *errors = NULL;
  TG_CHECK(parse(MINIMAL, &cfg, &errors) == 0);
  TG_CHECK(cfg && cfg->busy_poll_us == 0);
  tg_config_free(cfg);
  cfg = NULL;
  TG_CHECK(parse(MINIMAL "busy_poll: 50us\n", &cfg, &errors) == 0);
  TG_CHECK(errors == NULL);
  TG_CHECK(cfg && cfg->busy_poll_us == 50);
  tg_config_free(cfg);
  cfg = NULL;
  TG_CHECK(parse(MINIMAL "busy_poll: 1ms\n", &cfg, &errors) == 0);
  TG_CHECK(cfg && cfg->busy_poll_us == 1000);
  tg_config_free(cfg);
  EXPECT_ERROR(MINIMAL "busy_poll: 2ms\n", TG_CONFIG_ERR_INVALID, 1,
               "t.yaml:5:12:", "'busy_poll' must be between 0us and 1ms");
  EXPECT_ERROR(MINIMAL "busy_poll: 50\n", TG_CONFIG_ERR_INVALID, 1,
               "t.yaml:5:12:", "'busy_poll' must be a duration");
  EXPECT_ERROR(MINIMAL "busy_poll: [1]\n", TG_CONFIG_ERR_INVALID, 1,
               "t.yaml:5:12:", "busy_poll");
}

static int write_temp(char *path, const char *data, size_t len) {
  int fd = mkstemp(path);
  if (fd < 0)
    return -1;
  size_t off = 0;
  while (off < len) {
    ssize_t n = write(fd, data + off, len - off);
    if (n <= 0) {
      close(fd);
      unlink(path);
      return -1;
    }
    off += (size_t)n;
  }
  close(fd);
  return 0;
}

TG_TEST(test_load_file) {
  tg_config *cfg = (tg_config *)1;
  char *errors = NULL;
  const char *missing = "/nonexistent-tgate-dir/tgate.yaml";
  TG_CHECK(tg_config_load_file(missing, &cfg, &errors) == TG_CONFIG_ERR_IO);
  TG_CHECK(cfg == NULL);
  TG_CHECK(str_eq(errors, "/nonexistent-tgate-dir/tgate.yaml: cannot read: "
                          "No such file or directory\n"));
  free(errors);

  char path[] = "/tmp/tg_config_testXXXXXX";
  TG_CHECK(write_temp(path, full_config, strlen(full_config)) == 0);
  errors = NULL;
  TG_CHECK(tg_config_load_file(path, &cfg, &errors) == 0);
  TG_CHECK(errors == NULL);
  TG_CHECK(cfg && cfg->upstream_naddresses == 3 && cfg->workers == 4);
  tg_config_free(cfg);
  unlink(path);

  /* Errors name the file. */
  char bad[] = "/tmp/tg_config_testXXXXXX";
  TG_CHECK(write_temp(bad, many_errors, strlen(many_errors)) == 0);
  TG_CHECK(tg_config_load_file(bad, &cfg, &errors) == TG_CONFIG_ERR_INVALID);
  char where[64];
  snprintf(where, sizeof where, "%s:3:3: unknown key", bad);
  TG_CHECK_STR_CONTAINS(errors, where);
  free(errors);
  unlink(bad);

  TG_CHECK(tg_config_load_file("/tmp", &cfg, &errors) == TG_CONFIG_ERR_IO);
  TG_CHECK_STR_CONTAINS(errors, "/tmp: cannot read: Is a directory");
  free(errors);
}

TG_TEST(test_load_file_too_big) {
  size_t len = 1024 * 1024 + 1;
  char *big = malloc(len);
  TG_CHECK(big != NULL);
  if (!big)
    return;
  memset(big, '#', len);
  char path[] = "/tmp/tg_config_testXXXXXX";
  TG_CHECK(write_temp(path, big, len) == 0);
  tg_config *cfg = (tg_config *)1;
  char *errors = NULL;
  TG_CHECK(tg_config_load_file(path, &cfg, &errors) == TG_CONFIG_ERR_IO);
  TG_CHECK(cfg == NULL);
  TG_CHECK_STR_CONTAINS(errors, "larger than 1048576 bytes");
  free(errors);
  unlink(path);

  /* Exactly 1 MiB is read (and is an empty document: all comment). */
  strcpy(path, "/tmp/tg_config_testXXXXXX");
  TG_CHECK(write_temp(path, big, len - 1) == 0);
  TG_CHECK(tg_config_load_file(path, &cfg, &errors) == TG_CONFIG_ERR_INVALID);
  TG_CHECK_STR_CONTAINS(errors, ":1:1: the document is empty");
  free(errors);
  unlink(path);
  free(big);
}

TG_TEST(test_out_of_memory) {
#ifdef TG_TEST_MALLOC_HOOK
  /* Under valgrind (or any other preloaded allocator) our malloc is not the
   * one called. */
  hook_arm(1);
  void *volatile probe = malloc(1);
  hook_armed = 0;
  free(probe);
  if (probe) {
    printf("# skipped: malloc is not replaceable here\n");
    return;
  }

  static const struct {
    const char *yaml;
    int rc;
  } cases[] = {{full_config, 0},
               {many_errors, TG_CONFIG_ERR_INVALID},
               {"listen: [\n", TG_CONFIG_ERR_SYNTAX},
               {"", TG_CONFIG_ERR_INVALID}};
  for (size_t i = 0; i < sizeof cases / sizeof cases[0]; i++) {
    long n;
    for (n = 1; n < 100000; n++) {
      tg_config *cfg = NULL;
      char *errors = NULL;
      hook_arm(n);
      int rc = parse(cases[i].yaml, &cfg, &errors);
      int failed = hook_failed;
      tg_config_free(cfg);
      if (rc != TG_CONFIG_ERR_NOMEM && failed)
        fprintf(stderr, "  %s", errors ? errors : "");
      free(errors);
      hook_armed = 0;
      if (hook_live != 0)
        fprintf(stderr, "  case %zu, failing allocation %ld: %ld leaked\n", i,
                n, hook_live);
      TG_CHECK(hook_live == 0);
      if (!failed) {
        TG_CHECK(rc == cases[i].rc);
        break;
      }
      if (rc != TG_CONFIG_ERR_NOMEM)
        fprintf(stderr, "  case %zu, failing allocation %ld: rc %d %s\n", i, n,
                rc, errors ? errors : "");
      TG_CHECK(rc == TG_CONFIG_ERR_NOMEM);
      TG_CHECK(cfg == NULL);
    }
    TG_CHECK(n > 1);
  }

  char path[] = "/tmp/tg_config_testXXXXXX";
  TG_CHECK(write_temp(path, full_config, strlen(full_config)) == 0);
  for (long n = 1; n < 100000; n++) {
    tg_config *cfg = NULL;
    char *errors = NULL;
    hook_arm(n);
    int rc = tg_config_load_file(path, &cfg, &errors);
    int failed = hook_failed;
    tg_config_free(cfg);
    free(errors);
    hook_armed = 0;
    TG_CHECK(hook_live == 0);
    if (!failed) {
      TG_CHECK(rc == 0);
      break;
    }
    /* fopen() may be the one failing; stdio survives a failed buffer. */
    TG_CHECK(rc == TG_CONFIG_ERR_NOMEM || rc == TG_CONFIG_ERR_IO || rc == 0);
  }
  unlink(path);
#endif
}

TG_TEST(test_authentication_full) {
  const char *yaml = AUTHN_BASE
      "authentication:\n"
      "  require: [client_cert, jwt]\n"
      "  system_namespaces: [temporal-system, system]\n"
      "  token_header: X-Token\n"
      "  jwt:\n"
      "    key_sources: [\"https://idp.test/jwks\", \"file:jwks.json\"]\n"
      "    refresh_interval: 30s\n"
      "    permissions_claim: roles\n"
      "    subject_claim: client_id\n"
      "    issuer: \"https://idp.test\"\n"
      "    audience: [temporal, other]\n"
      "    leeway: 5s\n"
      "    require_exp: false\n"
      "    cache_size: 5\n"
      "    ca_file: /etc/idp-ca.pem\n"
      "  client_certs:\n"
      "    - match: { uri_san: \"spiffe://acme.test/ns/*/sa/*\", o: acme }\n"
      "      subject: \"{uri_san}\"\n"
      "      permissions: [\"{1}:worker\"]\n"
      "  api_keys_file: keys.yaml\n"
      "  api_key_header: X-Api-Key\n";
  tg_config *cfg = NULL;
  char *errors = NULL;
  TG_CHECK(parse(yaml, &cfg, &errors) == 0);
  TG_CHECK(errors == NULL);
  if (!cfg)
    return;
  tg_authn_cfg *a = cfg->authn;
  TG_CHECK(a != NULL);
  if (a) {
    TG_CHECK(a->require == (TG_AUTHN_CLIENT_CERT | TG_AUTHN_JWT));
    TG_CHECK(a->system_namespaces.n == 2 &&
             str_eq(a->system_namespaces.v[1], "system"));
    TG_CHECK(str_eq(a->token_header, "x-token"));
    TG_CHECK(str_eq(a->api_key_header, "x-api-key"));
    TG_CHECK(str_eq(a->api_keys_file, "keys.yaml"));
    TG_CHECK(a->exempt_methods.n == 2);
    TG_CHECK(a->jwt != NULL);
    if (a->jwt) {
      TG_CHECK(a->jwt->key_sources.n == 2 &&
               str_eq(a->jwt->key_sources.v[1], "file:jwks.json"));
      TG_CHECK(a->jwt->refresh_interval_ms == 30000);
      TG_CHECK(str_eq(a->jwt->permissions_claim, "roles"));
      TG_CHECK(str_eq(a->jwt->subject_claim, "client_id"));
      TG_CHECK(str_eq(a->jwt->issuer, "https://idp.test"));
      TG_CHECK(a->jwt->audiences.n == 2 &&
               str_eq(a->jwt->audiences.v[0], "temporal"));
      TG_CHECK(a->jwt->leeway_ms == 5000);
      TG_CHECK(a->jwt->require_exp == 0);
      TG_CHECK(a->jwt->cache_size == 5);
      TG_CHECK(a->jwt->max_token_bytes == 16384);
      TG_CHECK(str_eq(a->jwt->ca_file, "/etc/idp-ca.pem"));
    }
    TG_CHECK(a->ncert_rules == 1);
    if (a->ncert_rules == 1) {
      TG_CHECK(
          str_eq(a->cert_rules[0].match[4], "spiffe://acme.test/ns/*/sa/*"));
      TG_CHECK(str_eq(a->cert_rules[0].match[1], "acme"));
      TG_CHECK(a->cert_rules[0].match[0] == NULL);
      TG_CHECK(str_eq(a->cert_rules[0].subject, "{uri_san}"));
      TG_CHECK(a->cert_rules[0].permissions.n == 1);
    }
  }
  tg_config_free(cfg);
}

TG_TEST(test_authentication_defaults) {
  tg_config *cfg = NULL;
  char *errors = NULL;
  TG_CHECK(parse(AUTHN_BASE "authentication:\n"
                            "  jwt: {key_sources: [\"file:k.json\"]}\n",
                 &cfg, &errors) == 0);
  if (!cfg)
    return;
  tg_authn_cfg *a = cfg->authn;
  TG_CHECK(a && a->require == 0);
  TG_CHECK(a && a->exempt_methods.n == 2 &&
           str_eq(a->exempt_methods.v[1], "/grpc.health.v1.Health/Check"));
  TG_CHECK(a && a->system_namespaces.n == 1 &&
           str_eq(a->system_namespaces.v[0], "temporal-system"));
  TG_CHECK(a && str_eq(a->token_header, "authorization"));
  TG_CHECK(a && a->jwt && a->jwt->refresh_interval_ms == 60000 &&
           a->jwt->leeway_ms == 60000 && a->jwt->require_exp == 1 &&
           str_eq(a->jwt->permissions_claim, "permissions") &&
           str_eq(a->jwt->subject_claim, "sub") && a->jwt->issuer == NULL &&
           a->jwt->audiences.n == 0 && a->jwt->ca_file == NULL);
  tg_config_free(cfg);
  TG_CHECK(parse(AUTHN_BASE, &cfg, &errors) == 0);
  TG_CHECK(cfg && cfg->authn == NULL);
  tg_config_free(cfg);
}

TG_TEST(test_authentication_errors) {
  EXPECT_ERROR(AUTHN_BASE "authentication:\n  require: [jwt, password]\n",
               TG_CONFIG_ERR_INVALID, 2, "t.yaml:7:18:", "password");
  EXPECT_ERROR(AUTHN_BASE "authentication:\n  require: [api_key]\n",
               TG_CONFIG_ERR_INVALID, 1, "t.yaml:7:3:", "api_keys_file");
  EXPECT_ERROR(AUTHN_BASE
               "authentication:\n  jwt: {key_sources: [\"ftp://x\"]}\n",
               TG_CONFIG_ERR_INVALID, 1, "t.yaml:7:23:", "https://");
  EXPECT_ERROR(AUTHN_BASE "authentication:\n  jwt: {key_sources: "
                          "[\"https://idp.test/k\"], ca_file: [a.pem]}\n",
               TG_CONFIG_ERR_INVALID, 1, "t.yaml:7:55:", "ca_file");
  EXPECT_ERROR(AUTHN_BASE "authentication:\n  jwt: {refresh_interval: 1m}\n",
               TG_CONFIG_ERR_INVALID, 1, "t.yaml:7:8:", "key_sources");
  EXPECT_ERROR(AUTHN_BASE "authentication:\n  client_certs:\n    - match: {}\n",
               TG_CONFIG_ERR_INVALID, 1, "t.yaml:8:14:", "at least one");
  EXPECT_ERROR(AUTHN_BASE
               "authentication:\n  client_certs:\n    - match: {sn: x}\n",
               TG_CONFIG_ERR_INVALID, 2, "t.yaml:8:15:", "unknown key 'sn'");
  EXPECT_ERROR(AUTHN_BASE
               "authentication:\n  exempt_methods: [GetSystemInfo]\n",
               TG_CONFIG_ERR_INVALID, 1, "t.yaml:7:19:", "full gRPC path");
  EXPECT_ERROR("listen: {address: \"127.0.0.1:1\"}\n"
               "upstream: {addresses: [\"127.0.0.1:2\"]}\n"
               "authentication: {require: [client_cert]}\n",
               TG_CONFIG_ERR_INVALID, 1, "t.yaml:3:27:", "client_ca_file");
}

static const char *const *env_table;
static const char *env_lookup(const char *name) {
  for (size_t i = 0; env_table[i]; i += 2)
    if (strcmp(env_table[i], name) == 0)
      return env_table[i + 1];
  return NULL;
}

TG_TEST(test_env_overrides) {
  static const char *const env[] = {"TGATE_LISTEN_ADDRESS",
                                    "[::]:7000",
                                    "TGATE_UPSTREAM_ADDRESSES",
                                    "fe-1:7233, fe-2:7233,,",
                                    "TGATE_ADMIN_ADDRESS",
                                    "0.0.0.0:9000",
                                    "TGATE_WORKERS",
                                    "4",
                                    "TGATE_LOG_LEVEL",
                                    "warn",
                                    "TEMPORAL_JWT_KEY_SOURCE1",
                                    "https://idp.test/jwks",
                                    "TEMPORAL_JWT_KEY_SOURCE3",
                                    "file:/etc/jwks.json",
                                    "TEMPORAL_JWT_PERMISSIONS_CLAIM",
                                    "roles",
                                    "TEMPORAL_JWT_KEY_REFRESH",
                                    "2m",
                                    NULL};
  tg_config *cfg = NULL;
  char *errors = NULL;
  TG_CHECK(parse(MINIMAL, &cfg, &errors) == 0);
  if (!cfg)
    return;
  env_table = env;
  TG_CHECK(tg_config_apply_env(cfg, env_lookup, &errors) == 0);
  TG_CHECK(errors == NULL);
  TG_CHECK(str_eq(cfg->listen_address.host, "::") &&
           cfg->listen_address.port == 7000);
  TG_CHECK(cfg->upstream_naddresses == 2 &&
           str_eq(cfg->upstream_addresses[1].host, "fe-2"));
  TG_CHECK(cfg->admin_address && cfg->admin_address->port == 9000);
  TG_CHECK(cfg->workers == 4 && cfg->log_level == TG_LOG_WARN);
  TG_CHECK(cfg->authn && cfg->authn->jwt);
  if (cfg->authn && cfg->authn->jwt) {
    const tg_jwt_cfg *j = cfg->authn->jwt;
    TG_CHECK(j->key_sources.n == 2 &&
             str_eq(j->key_sources.v[1], "file:/etc/jwks.json"));
    TG_CHECK(str_eq(j->permissions_claim, "roles"));
    TG_CHECK(j->refresh_interval_ms == 120000 && j->require_exp == 1);
    TG_CHECK(cfg->authn->exempt_methods.n == 2);
    TG_CHECK(str_eq(cfg->authn->token_header, "authorization"));
  }
  tg_config_free(cfg);
}

TG_TEST(test_env_errors) {
  static const char *const env[] = {"TGATE_WORKERS",
                                    "many",
                                    "TGATE_UPSTREAM_ADDRESSES",
                                    "nohost",
                                    "TEMPORAL_JWT_KEY_REFRESH",
                                    "soon",
                                    NULL};
  tg_config *cfg = NULL;
  char *errors = NULL;
  TG_CHECK(parse(MINIMAL, &cfg, &errors) == 0);
  if (!cfg)
    return;
  env_table = env;
  TG_CHECK(tg_config_apply_env(cfg, env_lookup, &errors) ==
           TG_CONFIG_ERR_INVALID);
  TG_CHECK_STR_CONTAINS(errors,
                        "environment TGATE_WORKERS: must be an integer");
  TG_CHECK_STR_CONTAINS(errors, "environment TGATE_UPSTREAM_ADDRESSES:");
  TG_CHECK_STR_CONTAINS(errors, "environment TEMPORAL_JWT_KEY_REFRESH:");
  TG_CHECK(cfg->upstream_naddresses == 1);
  free(errors);
  tg_config_free(cfg);
}

TG_TEST(test_env_ranges_match_the_file) {
  static const char *const bad[][2] = {
      {"TGATE_WORKERS", " +4"},
      {"TGATE_WORKERS", "-1"},
      {"TGATE_WORKERS", "99999999999999999999"},
      {"TEMPORAL_JWT_KEY_REFRESH", "25h"},
      {"TEMPORAL_JWT_KEY_REFRESH", "999ms"}};
  for (size_t i = 0; i < sizeof bad / sizeof bad[0]; i++) {
    const char *env[] = {bad[i][0], bad[i][1], "TEMPORAL_JWT_KEY_SOURCE1",
                         "file:/k.json", NULL};
    tg_config *cfg = NULL;
    char *errors = NULL;
    TG_CHECK(parse(MINIMAL, &cfg, &errors) == 0);
    if (!cfg)
      return;
    env_table = env;
    TG_CHECK(tg_config_apply_env(cfg, env_lookup, &errors) ==
             TG_CONFIG_ERR_INVALID);
    TG_CHECK_STR_CONTAINS(errors, bad[i][0]);
    free(errors);
    tg_config_free(cfg);
  }
  static const char *const good[] = {"TGATE_WORKERS",
                                     "4",
                                     "TEMPORAL_JWT_KEY_REFRESH",
                                     "24h",
                                     "TEMPORAL_JWT_KEY_SOURCE1",
                                     "file:/k.json",
                                     NULL};
  tg_config *cfg = NULL;
  char *errors = NULL;
  TG_CHECK(parse(MINIMAL, &cfg, &errors) == 0);
  if (!cfg)
    return;
  env_table = good;
  TG_CHECK(tg_config_apply_env(cfg, env_lookup, &errors) == 0);
  TG_CHECK(cfg->workers == 4 && cfg->authn && cfg->authn->jwt &&
           cfg->authn->jwt->refresh_interval_ms == 24ull * 3600 * 1000);
  free(errors);
  tg_config_free(cfg);
}

int main(void) {
  TG_RUN(test_env_overrides);
  TG_RUN(test_env_ranges_match_the_file);
  TG_RUN(test_env_errors);
  TG_RUN(test_authentication_full);
  TG_RUN(test_authentication_defaults);
  TG_RUN(test_authentication_errors);
  TG_RUN(test_full_config);
  TG_RUN(test_defaults);
  TG_RUN(test_optional_forms);
  TG_RUN(test_ipv6_listen);
  TG_RUN(test_unknown_top_level_key);
  TG_RUN(test_unknown_nested_key);
  TG_RUN(test_wrong_type);
  TG_RUN(test_bad_bool_and_int);
  TG_RUN(test_bad_duration);
  TG_RUN(test_upstream_health_and_dns);
  TG_RUN(test_bad_port);
  TG_RUN(test_missing_listen_address);
  TG_RUN(test_missing_upstream);
  TG_RUN(test_tls_requirements);
  TG_RUN(test_duplicate_key);
  TG_RUN(test_syntax_error);
  TG_RUN(test_empty_document);
  TG_RUN(test_authorization_mode);
  TG_RUN(test_workers_range);
  TG_RUN(test_limits_and_reload);
  TG_RUN(test_upstream_credentials);
  TG_RUN(test_authorization_full);
  TG_RUN(test_many_errors);
  TG_RUN(test_error_cap_and_quoting);
  TG_RUN(test_admin_conflict);
  TG_RUN(test_alias_cycle);
  TG_RUN(test_limits);
  TG_RUN(test_parse_addr);
  TG_RUN(test_parse_duration);
  TG_RUN(test_parse_duration_us);
  TG_RUN(test_busy_poll);
  TG_RUN(test_load_file);
  TG_RUN(test_load_file_too_big);
  TG_RUN(test_out_of_memory);
  return TG_DONE();
}
