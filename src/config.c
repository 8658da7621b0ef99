/*
 * tg_config: YAML configuration loader (see include/tg_config.h).
 *
 * libyaml's document API builds the whole node graph; we then walk it along
 * the fixed schema below, so the walk's depth is bounded by the schema and
 * alias cycles (`&a [*a]`) cannot make it loop.
 */
#include "tg_config.h"

#include <arpa/inet.h>
#include <errno.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <yaml.h>

#include "tg_healthcheck.h"

#define CFG_MAX_FILE_SIZE (1024 * 1024)
/* Garbage input can yield one error per two bytes; past this many the rest
 * is noise and would only bloat *errors. */
#define CFG_MAX_ERRORS 100
/* How many bytes of user text are quoted back in a message. */
#define CFG_QUOTE_MAX 64
#define CFG_QUOTE_BUF (CFG_QUOTE_MAX * 4 + 4)
#define CFG_DAY_MS (24ULL * 60 * 60 * 1000)
/* Far beyond what the schema needs (4 levels, a handful of anchors), far
 * below what makes libyaml slow; see cfg_prescan(). */
#define CFG_MAX_DEPTH 64
#define CFG_MAX_ANCHORS 256

typedef struct cfg_buf {
  char *data;
  size_t len;
  size_t cap;
} cfg_buf;

/* One error line, kept apart until the end so that the lines can be sorted
 * by position: the walk visits keys before the values of earlier keys. */
typedef struct cfg_msg {
  size_t line;
  size_t col;
  size_t seq;
  char *text;
} cfg_msg;

typedef struct cfg_parser {
  const char *filename;
  yaml_document_t *doc;
  tg_config *cfg;        /* the configuration being read, or NULL */
  tg_apikeys_file *keys; /* the API keys file being read, or NULL */
  cfg_msg *msgs;
  size_t nmsgs;
  size_t msgs_cap;
  size_t nerrors;
  size_t dropped_line; /* where the first error past CFG_MAX_ERRORS was */
  size_t dropped_col;
  int nomem;
} cfg_parser;

/* A key of the schema and, once the mapping has been read, where it was. */
typedef struct cfg_field {
  const char *name;
  yaml_node_t *key;
  yaml_node_t *val;
} cfg_field;

static int cfg_buf_vappend(cfg_buf *b, const char *fmt, va_list ap) {
  va_list ap2;
  va_copy(ap2, ap);
  int n = vsnprintf(NULL, 0, fmt, ap2);
  va_end(ap2);
  if (n < 0)
    return -1;
  size_t need = b->len + (size_t)n + 1;
  if (need > b->cap) {
    size_t cap = b->cap ? b->cap : 256;
    while (cap < need)
      cap *= 2;
    char *data = realloc(b->data, cap);
    if (!data)
      return -1;
    b->data = data;
    b->cap = cap;
  }
  vsnprintf(b->data + b->len, b->cap - b->len, fmt, ap);
  b->len += (size_t)n;
  return 0;
}

static int cfg_buf_append(cfg_buf *b, const char *fmt, ...) {
  va_list ap;
  va_start(ap, fmt);
  int rc = cfg_buf_vappend(b, fmt, ap);
  va_end(ap);
  return rc;
}

static void cfg_error_at(cfg_parser *p, size_t line, size_t col,
                         const char *fmt, ...) {
  cfg_buf b = {0};
  va_list ap;

  if (++p->nerrors > CFG_MAX_ERRORS) {
    if (p->nerrors == CFG_MAX_ERRORS + 1) {
      p->dropped_line = line;
      p->dropped_col = col;
    }
    return;
  }
  if (p->nmsgs == p->msgs_cap) {
    size_t cap = p->msgs_cap ? p->msgs_cap * 2 : 8;
    cfg_msg *msgs = realloc(p->msgs, cap * sizeof *msgs);
    if (!msgs)
      goto nomem;
    p->msgs = msgs;
    p->msgs_cap = cap;
  }
  if (cfg_buf_append(&b, "%s:%zu:%zu: ", p->filename, line, col) < 0)
    goto nomem;
  va_start(ap, fmt);
  int rc = cfg_buf_vappend(&b, fmt, ap);
  va_end(ap);
  if (rc < 0 || cfg_buf_append(&b, "\n") < 0)
    goto nomem;
  p->msgs[p->nmsgs] = (cfg_msg){line, col, p->nmsgs, b.data};
  p->nmsgs++;
  return;
nomem:
  free(b.data);
  p->nomem = 1;
}

static int cfg_msg_cmp(const void *a, const void *b) {
  const cfg_msg *x = a, *y = b;
  if (x->line != y->line)
    return x->line < y->line ? -1 : 1;
  if (x->col != y->col)
    return x->col < y->col ? -1 : 1;
  return x->seq < y->seq ? -1 : x->seq > y->seq;
}

/* Joins the sorted messages into one string; NULL when out of memory. */
static char *cfg_join_errors(cfg_parser *p) {
  cfg_buf b = {0};
  if (p->nmsgs)
    qsort(p->msgs, p->nmsgs, sizeof *p->msgs, cfg_msg_cmp);
  for (size_t i = 0; i < p->nmsgs; i++)
    if (cfg_buf_append(&b, "%s", p->msgs[i].text) < 0)
      goto nomem;
  if (p->nerrors > CFG_MAX_ERRORS &&
      cfg_buf_append(&b,
                     "%s:%zu:%zu: too many errors (more than %d), not "
                     "reporting the rest\n",
                     p->filename, p->dropped_line, p->dropped_col,
                     CFG_MAX_ERRORS) < 0)
    goto nomem;
  return b.data;
nomem:
  free(b.data);
  return NULL;
}

#define cfg_error(p, node, ...)                                                \
  cfg_error_at((p), (node)->start_mark.line + 1,                               \
               (node)->start_mark.column + 1, __VA_ARGS__)

/* Renders user text for a message: control bytes escaped so that every error
 * stays on one line, long text cut at a UTF-8 boundary. */
static const char *cfg_quote(const char *s, size_t len,
                             char out[CFG_QUOTE_BUF]) {
  static const char hex[] = "0123456789abcdef";
  size_t n = len;
  if (n > CFG_QUOTE_MAX) {
    n = CFG_QUOTE_MAX;
    while (n > 0 && ((unsigned char)s[n] & 0xc0) == 0x80)
      n--;
  }
  char *o = out;
  for (size_t i = 0; i < n; i++) {
    unsigned char c = (unsigned char)s[i];
    if (c < 0x20 || c == 0x7f || c == '\\') {
      *o++ = '\\';
      *o++ = 'x';
      *o++ = hex[c >> 4];
      *o++ = hex[c & 0xf];
    } else {
      *o++ = (char)c;
    }
  }
  if (n < len) {
    memcpy(o, "...", 3);
    o += 3;
  }
  *o = '\0';
  return out;
}

static const char *cfg_quote_node(const yaml_node_t *n,
                                  char out[CFG_QUOTE_BUF]) {
  return cfg_quote((const char *)n->data.scalar.value, n->data.scalar.length,
                   out);
}

static int cfg_scalar_is(const yaml_node_t *n, const char *s) {
  size_t len = strlen(s);
  return n->type == YAML_SCALAR_NODE && n->data.scalar.length == len &&
         memcmp(n->data.scalar.value, s, len) == 0;
}

/* What YAML 1.1 and 1.2 both read as null. */
static int cfg_is_null(const yaml_node_t *n) {
  return n->type == YAML_SCALAR_NODE &&
         n->data.scalar.style == YAML_PLAIN_SCALAR_STYLE &&
         (n->data.scalar.length == 0 || cfg_scalar_is(n, "~") ||
          cfg_scalar_is(n, "null") || cfg_scalar_is(n, "Null") ||
          cfg_scalar_is(n, "NULL"));
}

static const char *cfg_kind(const yaml_node_t *n) {
  switch (n->type) {
  case YAML_MAPPING_NODE:
    return "a mapping";
  case YAML_SEQUENCE_NODE:
    return "a sequence";
  case YAML_SCALAR_NODE:
    return cfg_is_null(n) ? "null" : "a scalar";
  default:
    return "nothing";
  }
}

static int cfg_expect_mapping(cfg_parser *p, const char *name, yaml_node_t *n) {
  if (n->type == YAML_MAPPING_NODE)
    return 1;
  cfg_error(p, n, "'%s' must be a mapping, not %s", name, cfg_kind(n));
  return 0;
}

/* what: the expected value, for the message ("a string"). */
static int cfg_expect_scalar(cfg_parser *p, const char *name, yaml_node_t *n,
                             const char *what) {
  if (n->type != YAML_SCALAR_NODE || cfg_is_null(n)) {
    cfg_error(p, n, "'%s' must be %s, not %s", name, what, cfg_kind(n));
    return 0;
  }
  if (memchr(n->data.scalar.value, '\0', n->data.scalar.length)) {
    cfg_error(p, n, "'%s' must not contain NUL characters", name);
    return 0;
  }
  return 1;
}

/* Copies a scalar known to be NUL-free into buf; 0 when it does not fit. */
static int cfg_copy_scalar(const yaml_node_t *n, char *buf, size_t size) {
  if (n->data.scalar.length >= size)
    return 0;
  memcpy(buf, n->data.scalar.value, n->data.scalar.length);
  buf[n->data.scalar.length] = '\0';
  return 1;
}

/* Reads the keys of a mapping into the matching fields; path is the
 * mapping's dotted name, "" for the document root. */
static void cfg_collect(cfg_parser *p, yaml_node_t *map, const char *path,
                        cfg_field *fields, size_t nfields) {
  char where[64], q[CFG_QUOTE_BUF];
  if (path[0])
    snprintf(where, sizeof where, "in '%s'", path);
  else
    snprintf(where, sizeof where, "at the top level");

  for (yaml_node_pair_t *pair = map->data.mapping.pairs.start;
       pair < map->data.mapping.pairs.top; pair++) {
    yaml_node_t *k = yaml_document_get_node(p->doc, pair->key);
    yaml_node_t *v = yaml_document_get_node(p->doc, pair->value);
    if (!k || !v)
      continue;
    if (k->type != YAML_SCALAR_NODE) {
      cfg_error(p, k, "keys %s must be strings, not %s", where, cfg_kind(k));
      continue;
    }
    size_t i;
    for (i = 0; i < nfields; i++)
      if (cfg_scalar_is(k, fields[i].name))
        break;
    if (i == nfields) {
      char expected[256] = "";
      size_t off = 0;
      for (size_t j = 0; j < nfields && off < sizeof expected; j++)
        off += (size_t)snprintf(expected + off, sizeof expected - off, "%s%s",
                                j ? ", " : "", fields[j].name);
      cfg_error(p, k, "unknown key '%s' %s (expected one of: %s)",
                cfg_quote_node(k, q), where, expected);
      continue;
    }
    if (fields[i].key) {
      cfg_error(p, k, "duplicate key '%s' %s (first defined at %zu:%zu)",
                fields[i].name, where, fields[i].key->start_mark.line + 1,
                fields[i].key->start_mark.column + 1);
      continue;
    }
    fields[i].key = k;
    fields[i].val = v;
  }
}

static void cfg_missing(cfg_parser *p, yaml_node_t *map, const char *path,
                        const char *key, const char *why) {
  if (path[0])
    cfg_error(p, map, "missing required key '%s' in '%s'%s", key, path, why);
  else
    cfg_error(p, map, "missing required key '%s' at the top level%s", key, why);
}

static void cfg_get_string(cfg_parser *p, const char *name, yaml_node_t *n,
                           char **out) {
  if (!cfg_expect_scalar(p, name, n, "a string"))
    return;
  size_t len = n->data.scalar.length;
  if (len == 0) {
    cfg_error(p, n, "'%s' must not be empty", name);
    return;
  }
  char *s = malloc(len + 1);
  if (!s) {
    p->nomem = 1;
    return;
  }
  memcpy(s, n->data.scalar.value, len);
  s[len] = '\0';
  free(*out);
  *out = s;
}

/* Keeps where a key naming a file was, for tg_gen's messages about it. */
static void cfg_file_at(cfg_parser *p, tg_config_file_key k,
                        const yaml_node_t *key) {
  p->cfg->file_at[k] = (tg_config_pos){(uint32_t)key->start_mark.line + 1,
                                       (uint32_t)key->start_mark.column + 1};
}

/* Decimal digits with an optional '-', so that "-1" gets the range message
 * rather than "not a number". */
static int cfg_get_uint(cfg_parser *p, const char *name, yaml_node_t *n,
                        uint64_t min, uint64_t max, uint64_t *out) {
  char q[CFG_QUOTE_BUF];
  if (!cfg_expect_scalar(p, name, n, "a decimal integer"))
    return 0;
  const char *s = (const char *)n->data.scalar.value;
  size_t len = n->data.scalar.length, i = 0;
  int neg = 0, overflow = 0;
  uint64_t v = 0;
  if (len > 0 && s[0] == '-') {
    neg = 1;
    i = 1;
  }
  if (i == len)
    goto not_a_number;
  for (; i < len; i++) {
    if (s[i] < '0' || s[i] > '9')
      goto not_a_number;
    unsigned d = (unsigned)(s[i] - '0');
    if (v > (UINT64_MAX - d) / 10)
      overflow = 1;
    else
      v = v * 10 + d;
  }
  if (overflow || (neg && v != 0) || v < min || v > max) {
    cfg_error(p, n, "'%s' must be between %llu and %llu, not %s", name,
              (unsigned long long)min, (unsigned long long)max,
              cfg_quote_node(n, q));
    return 0;
  }
  *out = v;
  return 1;
not_a_number:
  cfg_error(p, n, "'%s' must be a decimal integer, not '%s'", name,
            cfg_quote_node(n, q));
  return 0;
}

static void cfg_get_bool(cfg_parser *p, const char *name, yaml_node_t *n,
                         int *out) {
  char q[CFG_QUOTE_BUF];
  if (!cfg_expect_scalar(p, name, n, "true or false"))
    return;
  if (cfg_scalar_is(n, "true"))
    *out = 1;
  else if (cfg_scalar_is(n, "false"))
    *out = 0;
  else
    cfg_error(p, n, "'%s' must be true or false, not '%s'", name,
              cfg_quote_node(n, q));
}

/* A duration read by parse (in its unit), min..max; units: what the message
 * lists, e.g. "ms, s, m or h (e.g. 30s)"; range: the bounds for the message,
 * e.g. "1ms and 24h". */
static void cfg_get_duration_in(cfg_parser *p, const char *name, yaml_node_t *n,
                                int (*parse)(const char *, uint64_t *),
                                const char *units, uint64_t min, uint64_t max,
                                const char *range, uint64_t *out) {
  char buf[32], q[CFG_QUOTE_BUF];
  uint64_t v;
  if (!cfg_expect_scalar(p, name, n, "a duration"))
    return;
  if (!cfg_copy_scalar(n, buf, sizeof buf) || parse(buf, &v) < 0) {
    cfg_error(p, n,
              "'%s' must be a duration: an integer with a unit of %s, not "
              "'%s'",
              name, units, cfg_quote_node(n, q));
    return;
  }
  if (v < min || v > max) {
    cfg_error(p, n, "'%s' must be between %s, not '%s'", name, range,
              cfg_quote_node(n, q));
    return;
  }
  *out = v;
}

/* In milliseconds. */
static void cfg_get_duration(cfg_parser *p, const char *name, yaml_node_t *n,
                             uint64_t min_ms, uint64_t max_ms,
                             const char *range, uint64_t *out) {
  cfg_get_duration_in(p, name, n, tg_config_parse_duration,
                      "ms, s, m or h (e.g. 30s)", min_ms, max_ms, range, out);
}

/* busy_poll: in microseconds, 0us..1ms. */
static void cfg_busy_poll(cfg_parser *p, yaml_node_t *n) {
  uint64_t us = p->cfg->busy_poll_us;
  cfg_get_duration_in(p, "busy_poll", n, tg_config_parse_duration_us,
                      "us, ms or s (e.g. 50us)", 0, 1000, "0us and 1ms", &us);
  p->cfg->busy_poll_us = (uint32_t)us;
}

/* Returns 0, -1 (invalid, *why set) or -2 (out of memory). */
static int cfg_parse_addr(const char *s, tg_addr *out, const char **why) {
  const char *host, *port;
  size_t hostlen;

  out->host = NULL;
  out->port = 0;
  if (!s || !*s) {
    *why = "empty address";
    return -1;
  }
  if (s[0] == '[') {
    const char *end = strchr(s, ']');
    char v6[INET6_ADDRSTRLEN];
    struct in6_addr a6;
    if (!end) {
      *why = "missing ']' after the IPv6 address";
      return -1;
    }
    host = s + 1;
    hostlen = (size_t)(end - host);
    if (hostlen == 0) {
      *why = "empty host";
      return -1;
    }
    if (end[1] == '\0') {
      *why = "missing port";
      return -1;
    }
    if (end[1] != ':') {
      *why = "unexpected text after ']' (expected ':port')";
      return -1;
    }
    if (hostlen >= sizeof v6) {
      *why = "invalid IPv6 address in brackets";
      return -1;
    }
    memcpy(v6, host, hostlen);
    v6[hostlen] = '\0';
    if (inet_pton(AF_INET6, v6, &a6) != 1) {
      *why = "invalid IPv6 address in brackets";
      return -1;
    }
    port = end + 2;
  } else {
    const char *colon = strrchr(s, ':');
    if (!colon) {
      *why = "missing port (expected host:port)";
      return -1;
    }
    if (memchr(s, ':', (size_t)(colon - s))) {
      *why = "an IPv6 address must be in brackets, as in [::1]:port";
      return -1;
    }
    host = s;
    hostlen = (size_t)(colon - s);
    if (hostlen == 0) {
      *why = "empty host";
      return -1;
    }
    if (hostlen > 253) {
      *why = "host name too long";
      return -1;
    }
    for (size_t i = 0; i < hostlen; i++) {
      char c = host[i];
      if (!((c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z') ||
            (c >= '0' && c <= '9') || c == '.' || c == '-' || c == '_')) {
        *why = "invalid character in host";
        return -1;
      }
    }
    port = colon + 1;
  }

  if (*port == '\0') {
    *why = "missing port";
    return -1;
  }
  unsigned long pv = 0;
  for (const char *c = port; *c; c++) {
    if (*c < '0' || *c > '9') {
      *why = "port is not a decimal number";
      return -1;
    }
    if (pv <= 65535)
      pv = pv * 10 + (unsigned long)(*c - '0');
  }
  if (pv == 0 || pv > 65535) {
    *why = "port out of range 1..65535";
    return -1;
  }

  char *h = malloc(hostlen + 1);
  if (!h)
    return -2;
  memcpy(h, host, hostlen);
  h[hostlen] = '\0';
  out->host = h;
  out->port = (uint16_t)pv;
  return 0;
}

static int cfg_get_addr(cfg_parser *p, const char *name, yaml_node_t *n,
                        tg_addr *out) {
  /* "[" 45-char IPv6 "]:" 5-digit port, or a 253-char name ":" port. */
  char buf[272], q[CFG_QUOTE_BUF];
  const char *why = "too long";
  if (!cfg_expect_scalar(p, name, n, "a \"host:port\" string"))
    return -1;
  int rc = -1;
  if (cfg_copy_scalar(n, buf, sizeof buf))
    rc = cfg_parse_addr(buf, out, &why);
  if (rc == -2) {
    p->nomem = 1;
    return -1;
  }
  if (rc < 0) {
    cfg_error(p, n, "'%s' is not a valid address '%s': %s", name,
              cfg_quote_node(n, q), why);
    return -1;
  }
  return 0;
}

static void cfg_listen_tls(cfg_parser *p, yaml_node_t *n) {
  enum { T_CERT, T_KEY, T_CA, T_REQUIRE, T_N };
  cfg_field f[T_N] = {{.name = "cert_file"},
                      {.name = "key_file"},
                      {.name = "client_ca_file"},
                      {.name = "require_client_cert"}};
  tg_listen_tls *tls;

  if (!cfg_expect_mapping(p, "listen.tls", n))
    return;
  cfg_collect(p, n, "listen.tls", f, T_N);
  tls = calloc(1, sizeof *tls);
  if (!tls) {
    p->nomem = 1;
    return;
  }
  p->cfg->listen_tls = tls;
  if (f[T_CERT].key)
    cfg_file_at(p, TG_CFK_LISTEN_CERT, f[T_CERT].key);
  if (f[T_KEY].key)
    cfg_file_at(p, TG_CFK_LISTEN_KEY, f[T_KEY].key);
  if (f[T_CA].key)
    cfg_file_at(p, TG_CFK_LISTEN_CA, f[T_CA].key);

  if (f[T_CERT].val)
    cfg_get_string(p, "listen.tls.cert_file", f[T_CERT].val, &tls->cert_file);
  else
    cfg_missing(p, n, "listen.tls", "cert_file", "");
  if (f[T_KEY].val)
    cfg_get_string(p, "listen.tls.key_file", f[T_KEY].val, &tls->key_file);
  else
    cfg_missing(p, n, "listen.tls", "key_file", "");
  if (f[T_CA].val)
    cfg_get_string(p, "listen.tls.client_ca_file", f[T_CA].val,
                   &tls->client_ca_file);
  if (f[T_REQUIRE].val)
    cfg_get_bool(p, "listen.tls.require_client_cert", f[T_REQUIRE].val,
                 &tls->require_client_cert);
  if (tls->require_client_cert && !f[T_CA].val)
    cfg_missing(p, n, "listen.tls", "client_ca_file",
                " (required when require_client_cert is true)");
}

static void cfg_listen(cfg_parser *p, yaml_node_t *n) {
  enum { L_ADDRESS, L_TLS, L_STREAMS, L_N };
  cfg_field f[L_N] = {
      {.name = "address"}, {.name = "tls"}, {.name = "max_concurrent_streams"}};
  uint64_t v;

  if (!cfg_expect_mapping(p, "listen", n))
    return;
  cfg_collect(p, n, "listen", f, L_N);
  if (f[L_ADDRESS].val)
    cfg_get_addr(p, "listen.address", f[L_ADDRESS].val,
                 &p->cfg->listen_address);
  else
    cfg_missing(p, n, "listen", "address", "");
  if (f[L_TLS].val)
    cfg_listen_tls(p, f[L_TLS].val);
  if (f[L_STREAMS].val && cfg_get_uint(p, "listen.max_concurrent_streams",
                                       f[L_STREAMS].val, 1, 1000000, &v))
    p->cfg->max_concurrent_streams = (uint32_t)v;
}

static void cfg_upstream_addresses(cfg_parser *p, yaml_node_t *n) {
  tg_config *cfg = p->cfg;
  char name[64];

  if (n->type == YAML_SCALAR_NODE && !cfg_is_null(n)) {
    cfg->upstream_addresses = calloc(1, sizeof *cfg->upstream_addresses);
    if (!cfg->upstream_addresses) {
      p->nomem = 1;
      return;
    }
    cfg->upstream_naddresses = 1;
    cfg_get_addr(p, "upstream.addresses", n, &cfg->upstream_addresses[0]);
    return;
  }
  if (n->type != YAML_SEQUENCE_NODE) {
    cfg_error(p, n,
              "'upstream.addresses' must be a sequence of \"host:port\" "
              "strings, not %s",
              cfg_kind(n));
    return;
  }
  size_t count =
      (size_t)(n->data.sequence.items.top - n->data.sequence.items.start);
  if (count == 0) {
    cfg_error(p, n, "'upstream.addresses' must not be empty");
    return;
  }
  cfg->upstream_addresses = calloc(count, sizeof *cfg->upstream_addresses);
  if (!cfg->upstream_addresses) {
    p->nomem = 1;
    return;
  }
  cfg->upstream_naddresses = count;
  for (size_t i = 0; i < count; i++) {
    yaml_node_t *item =
        yaml_document_get_node(p->doc, n->data.sequence.items.start[i]);
    if (!item)
      continue;
    snprintf(name, sizeof name, "upstream.addresses[%zu]", i);
    cfg_get_addr(p, name, item, &cfg->upstream_addresses[i]);
  }
}

static void cfg_upstream_tls(cfg_parser *p, yaml_node_t *n) {
  enum { T_CA, T_CERT, T_KEY, T_SNI, T_N };
  cfg_field f[T_N] = {{.name = "ca_file"},
                      {.name = "cert_file"},
                      {.name = "key_file"},
                      {.name = "server_name"}};
  tg_upstream_tls *tls;

  if (!cfg_expect_mapping(p, "upstream.tls", n))
    return;
  cfg_collect(p, n, "upstream.tls", f, T_N);
  tls = calloc(1, sizeof *tls);
  if (!tls) {
    p->nomem = 1;
    return;
  }
  p->cfg->upstream_tls = tls;
  if (f[T_CA].key)
    cfg_file_at(p, TG_CFK_UPSTREAM_CA, f[T_CA].key);
  if (f[T_CERT].key)
    cfg_file_at(p, TG_CFK_UPSTREAM_CERT, f[T_CERT].key);
  if (f[T_KEY].key)
    cfg_file_at(p, TG_CFK_UPSTREAM_KEY, f[T_KEY].key);

  if (f[T_CA].val)
    cfg_get_string(p, "upstream.tls.ca_file", f[T_CA].val, &tls->ca_file);
  if (f[T_CERT].val)
    cfg_get_string(p, "upstream.tls.cert_file", f[T_CERT].val, &tls->cert_file);
  if (f[T_KEY].val)
    cfg_get_string(p, "upstream.tls.key_file", f[T_KEY].val, &tls->key_file);
  if (f[T_SNI].val)
    cfg_get_string(p, "upstream.tls.server_name", f[T_SNI].val,
                   &tls->server_name);
  if (f[T_CERT].val && !f[T_KEY].val)
    cfg_missing(p, n, "upstream.tls", "key_file",
                " (required when cert_file is set)");
  if (f[T_KEY].val && !f[T_CERT].val)
    cfg_error(p, f[T_KEY].key,
              "'upstream.tls.key_file' is set but 'cert_file' is missing");
}

static void cfg_upstream_credentials(cfg_parser *p, yaml_node_t *n) {
  enum { C_FILE, C_HEADER, C_N };
  cfg_field f[C_N] = {{.name = "bearer_token_file"}, {.name = "header"}};
  tg_config *cfg = p->cfg;
  if (!cfg_expect_mapping(p, "upstream.credentials", n))
    return;
  cfg_collect(p, n, "upstream.credentials", f, C_N);
  if (f[C_FILE].key)
    cfg_file_at(p, TG_CFK_UPSTREAM_TOKEN, f[C_FILE].key);
  if (f[C_FILE].val)
    cfg_get_string(p, "upstream.credentials.bearer_token_file", f[C_FILE].val,
                   &cfg->upstream_token_file);
  else
    cfg_missing(p, n, "upstream.credentials", "bearer_token_file", "");
  if (f[C_HEADER].val)
    cfg_get_string(p, "upstream.credentials.header", f[C_HEADER].val,
                   &cfg->upstream_token_header);
  if (cfg->upstream_token_header) {
    for (char *c = cfg->upstream_token_header; *c; c++)
      if (*c >= 'A' && *c <= 'Z')
        *c = (char)(*c - 'A' + 'a');
    if (cfg->upstream_token_header[0] == ':')
      cfg_error(p, f[C_HEADER].val,
                "'upstream.credentials.header' must be a regular header "
                "name, not a pseudo-header");
  }
}

static void cfg_upstream_health(cfg_parser *p, yaml_node_t *n) {
  enum { H_ENABLED, H_INTERVAL, H_TIMEOUT, H_SERVICE, H_UNHEALTHY, H_HEALTHY };
  cfg_field f[] = {{.name = "enabled"},
                   {.name = "interval"},
                   {.name = "timeout"},
                   {.name = "service"},
                   {.name = "unhealthy_threshold"},
                   {.name = "healthy_threshold"}};
  tg_config *cfg = p->cfg;
  char q[CFG_QUOTE_BUF];
  uint64_t v;

  if (!cfg_expect_mapping(p, "upstream.health_check", n))
    return;
  cfg_collect(p, n, "upstream.health_check", f, sizeof f / sizeof f[0]);
  if (f[H_ENABLED].val)
    cfg_get_bool(p, "upstream.health_check.enabled", f[H_ENABLED].val,
                 &cfg->upstream_hc_enabled);
  if (f[H_INTERVAL].val)
    cfg_get_duration(p, "upstream.health_check.interval", f[H_INTERVAL].val,
                     100, 3600000, "100ms and 1h",
                     &cfg->upstream_hc_interval_ms);
  if (f[H_TIMEOUT].val) {
    cfg_get_duration(p, "upstream.health_check.timeout", f[H_TIMEOUT].val, 1,
                     3600000, "1ms and 1h", &cfg->upstream_hc_timeout_ms);
    if (cfg->upstream_hc_timeout_ms > cfg->upstream_hc_interval_ms)
      cfg_error(p, f[H_TIMEOUT].val,
                "'upstream.health_check.timeout' must not be longer than its "
                "interval (%llums), not '%s'",
                (unsigned long long)cfg->upstream_hc_interval_ms,
                cfg_quote_node(f[H_TIMEOUT].val, q));
  } else if (cfg->upstream_hc_timeout_ms > cfg->upstream_hc_interval_ms) {
    cfg->upstream_hc_timeout_ms = cfg->upstream_hc_interval_ms;
  }
  yaml_node_t *sv = f[H_SERVICE].val;
  if (sv &&
      cfg_expect_scalar(p, "upstream.health_check.service", sv, "a string")) {
    size_t len = sv->data.scalar.length;
    char *s;
    if (len > TG_HC_MAX_SERVICE) {
      cfg_error(p, sv,
                "'upstream.health_check.service' must be at most %d bytes",
                TG_HC_MAX_SERVICE);
    } else if (!(s = malloc(len + 1))) {
      p->nomem = 1;
    } else {
      memcpy(s, sv->data.scalar.value, len);
      s[len] = '\0';
      free(cfg->upstream_hc_service);
      cfg->upstream_hc_service = s;
    }
  }
  if (f[H_UNHEALTHY].val &&
      cfg_get_uint(p, "upstream.health_check.unhealthy_threshold",
                   f[H_UNHEALTHY].val, 1, 100, &v))
    cfg->upstream_hc_unhealthy_threshold = (uint32_t)v;
  if (f[H_HEALTHY].val &&
      cfg_get_uint(p, "upstream.health_check.healthy_threshold",
                   f[H_HEALTHY].val, 1, 100, &v))
    cfg->upstream_hc_healthy_threshold = (uint32_t)v;
}

static void cfg_upstream(cfg_parser *p, yaml_node_t *n) {
  enum {
    U_ADDRESSES,
    U_TLS,
    U_MAXCONN,
    U_TIMEOUT,
    U_HEALTH,
    U_DNS_REFRESH,
    U_RESOLV_CONF,
    U_CREDS,
    U_N
  };
  cfg_field f[U_N] = {
      {.name = "addresses"},       {.name = "tls"},
      {.name = "max_connections"}, {.name = "connect_timeout"},
      {.name = "health_check"},    {.name = "dns_refresh_interval"},
      {.name = "resolv_conf"},     {.name = "credentials"}};
  uint64_t v;

  if (!cfg_expect_mapping(p, "upstream", n))
    return;
  cfg_collect(p, n, "upstream", f, U_N);
  if (f[U_ADDRESSES].val)
    cfg_upstream_addresses(p, f[U_ADDRESSES].val);
  else
    cfg_missing(p, n, "upstream", "addresses", "");
  if (f[U_TLS].val)
    cfg_upstream_tls(p, f[U_TLS].val);
  if (f[U_MAXCONN].val && cfg_get_uint(p, "upstream.max_connections",
                                       f[U_MAXCONN].val, 1, 1024, &v))
    p->cfg->upstream_max_connections = (uint32_t)v;
  if (f[U_TIMEOUT].val)
    cfg_get_duration(p, "upstream.connect_timeout", f[U_TIMEOUT].val, 1,
                     CFG_DAY_MS, "1ms and 24h",
                     &p->cfg->upstream_connect_timeout_ms);
  if (f[U_HEALTH].val)
    cfg_upstream_health(p, f[U_HEALTH].val);
  v = UINT64_MAX;
  if (f[U_DNS_REFRESH].val)
    cfg_get_duration(p, "upstream.dns_refresh_interval", f[U_DNS_REFRESH].val,
                     0, CFG_DAY_MS, "0s and 24h", &v);
  if (v > 0 && v < 100) {
    char q[CFG_QUOTE_BUF];
    cfg_error(p, f[U_DNS_REFRESH].val,
              "'upstream.dns_refresh_interval' must be 0s (off) or between "
              "100ms and 24h, not '%s'",
              cfg_quote_node(f[U_DNS_REFRESH].val, q));
  } else if (v != UINT64_MAX) {
    p->cfg->upstream_dns_refresh_ms = v;
  }
  if (f[U_RESOLV_CONF].val)
    cfg_get_string(p, "upstream.resolv_conf", f[U_RESOLV_CONF].val,
                   &p->cfg->upstream_resolv_conf);
  if (f[U_CREDS].val)
    cfg_upstream_credentials(p, f[U_CREDS].val);
}

static void cfg_admin(cfg_parser *p, yaml_node_t *n) {
  enum { A_ADDRESS, A_MAXNS, A_N };
  cfg_field f[A_N] = {{.name = "address"}, {.name = "metrics_max_namespaces"}};
  tg_config *cfg = p->cfg;
  uint64_t v;

  if (!cfg_expect_mapping(p, "admin", n))
    return;
  cfg_collect(p, n, "admin", f, A_N);
  if (f[A_MAXNS].val && cfg_get_uint(p, "admin.metrics_max_namespaces",
                                     f[A_MAXNS].val, 0, 100000, &v))
    cfg->metrics_max_namespaces = (uint32_t)v;
  if (!f[A_ADDRESS].val) {
    cfg_missing(p, n, "admin", "address", "");
    return;
  }
  cfg->admin_address = calloc(1, sizeof *cfg->admin_address);
  if (!cfg->admin_address) {
    p->nomem = 1;
    return;
  }
  if (cfg_get_addr(p, "admin.address", f[A_ADDRESS].val, cfg->admin_address) ==
          0 &&
      cfg->listen_address.host &&
      strcmp(cfg->admin_address->host, cfg->listen_address.host) == 0 &&
      cfg->admin_address->port == cfg->listen_address.port)
    cfg_error(p, f[A_ADDRESS].val,
              "'admin.address' must differ from 'listen.address'");
}

/* A string or a sequence of strings (allow_scalar) into out. */
static void cfg_get_strlist(cfg_parser *p, const char *name, yaml_node_t *n,
                            int allow_scalar, int allow_empty,
                            tg_strlist *out) {
  char item_name[96];
  if (allow_scalar && n->type == YAML_SCALAR_NODE && !cfg_is_null(n)) {
    out->v = calloc(1, sizeof *out->v);
    if (!out->v) {
      p->nomem = 1;
      return;
    }
    out->n = 1;
    cfg_get_string(p, name, n, &out->v[0]);
    return;
  }
  if (n->type != YAML_SEQUENCE_NODE) {
    cfg_error(p, n, "'%s' must be a sequence of strings%s, not %s", name,
              allow_scalar ? " or a string" : "", cfg_kind(n));
    return;
  }
  size_t count =
      (size_t)(n->data.sequence.items.top - n->data.sequence.items.start);
  if (count == 0) {
    if (!allow_empty)
      cfg_error(p, n, "'%s' must not be empty", name);
    return;
  }
  out->v = calloc(count, sizeof *out->v);
  if (!out->v) {
    p->nomem = 1;
    return;
  }
  out->n = count;
  for (size_t i = 0; i < count; i++) {
    yaml_node_t *item =
        yaml_document_get_node(p->doc, n->data.sequence.items.start[i]);
    if (!item)
      continue;
    snprintf(item_name, sizeof item_name, "%s[%zu]", name, i);
    cfg_get_string(p, item_name, item, &out->v[i]);
  }
}

static void cfg_strlist_free(tg_strlist *l) {
  for (size_t i = 0; i < l->n; i++)
    free(l->v[i]);
  free(l->v);
  l->v = NULL;
  l->n = 0;
}

static int cfg_strlist_set(cfg_parser *p, tg_strlist *l,
                           const char *const *vals, size_t n) {
  l->v = calloc(n, sizeof *l->v);
  if (!l->v) {
    p->nomem = 1;
    return -1;
  }
  l->n = n;
  for (size_t i = 0; i < n; i++) {
    l->v[i] = strdup(vals[i]);
    if (!l->v[i]) {
      p->nomem = 1;
      return -1;
    }
  }
  return 0;
}

static void cfg_jwt_defaults(tg_jwt_cfg *j) {
  j->refresh_interval_ms = 60 * 1000;
  j->leeway_ms = 60 * 1000;
  j->require_exp = 1;
  j->max_token_bytes = 16384;
  j->cache_size = 10000;
}

static void cfg_jwt(cfg_parser *p, yaml_node_t *n) {
  enum {
    J_SOURCES,
    J_REFRESH,
    J_PCLAIM,
    J_PREGEX,
    J_SCLAIM,
    J_ISSUER,
    J_AUD,
    J_LEEWAY,
    J_REQEXP,
    J_MAXSIZE,
    J_CACHE,
    J_CA,
    J_N
  };
  cfg_field f[J_N] = {
      {.name = "key_sources"},       {.name = "refresh_interval"},
      {.name = "permissions_claim"}, {.name = "permissions_regex"},
      {.name = "subject_claim"},     {.name = "issuer"},
      {.name = "audience"},          {.name = "leeway"},
      {.name = "require_exp"},       {.name = "max_token_size"},
      {.name = "cache_size"},        {.name = "ca_file"}};
  char q[CFG_QUOTE_BUF];
  uint64_t v;

  if (!cfg_expect_mapping(p, "authentication.jwt", n))
    return;
  cfg_collect(p, n, "authentication.jwt", f, J_N);
  tg_jwt_cfg *j = calloc(1, sizeof *j);
  if (!j) {
    p->nomem = 1;
    return;
  }
  p->cfg->authn->jwt = j;
  cfg_jwt_defaults(j);

  if (f[J_SOURCES].val) {
    cfg_get_strlist(p, "authentication.jwt.key_sources", f[J_SOURCES].val, 0, 0,
                    &j->key_sources);
    for (size_t i = 0; i < j->key_sources.n; i++) {
      const char *src = j->key_sources.v[i];
      yaml_node_t *item =
          f[J_SOURCES].val->type == YAML_SEQUENCE_NODE
              ? yaml_document_get_node(
                    p->doc, f[J_SOURCES].val->data.sequence.items.start[i])
              : f[J_SOURCES].val;
      if (!src || !item)
        continue;
      if (strncmp(src, "https://", 8) != 0 && strncmp(src, "http://", 7) != 0 &&
          strncmp(src, "file:", 5) != 0 && strncmp(src, "pem:", 4) != 0)
        cfg_error(p, item,
                  "'authentication.jwt.key_sources[%zu]' must start with "
                  "https://, http://, file: or pem:, not '%s'",
                  i, cfg_quote(src, strlen(src), q));
      else if ((strncmp(src, "file:", 5) == 0 && !src[5]) ||
               (strncmp(src, "pem:", 4) == 0 && !src[4]))
        cfg_error(p, item,
                  "'authentication.jwt.key_sources[%zu]' names no file", i);
    }
  } else {
    cfg_missing(p, n, "authentication.jwt", "key_sources", "");
  }
  if (f[J_REFRESH].val)
    cfg_get_duration(p, "authentication.jwt.refresh_interval", f[J_REFRESH].val,
                     1000, CFG_DAY_MS, "1s and 24h", &j->refresh_interval_ms);
  if (f[J_PCLAIM].val)
    cfg_get_string(p, "authentication.jwt.permissions_claim", f[J_PCLAIM].val,
                   &j->permissions_claim);
  if (f[J_PREGEX].val)
    cfg_get_string(p, "authentication.jwt.permissions_regex", f[J_PREGEX].val,
                   &j->permissions_regex);
  if (f[J_SCLAIM].val)
    cfg_get_string(p, "authentication.jwt.subject_claim", f[J_SCLAIM].val,
                   &j->subject_claim);
  if (f[J_ISSUER].val)
    cfg_get_string(p, "authentication.jwt.issuer", f[J_ISSUER].val, &j->issuer);
  if (f[J_AUD].val)
    cfg_get_strlist(p, "authentication.jwt.audience", f[J_AUD].val, 1, 0,
                    &j->audiences);
  if (f[J_LEEWAY].val)
    cfg_get_duration(p, "authentication.jwt.leeway", f[J_LEEWAY].val, 0,
                     10 * 60 * 1000, "0s and 10m", &j->leeway_ms);
  if (f[J_REQEXP].val)
    cfg_get_bool(p, "authentication.jwt.require_exp", f[J_REQEXP].val,
                 &j->require_exp);
  if (f[J_MAXSIZE].val && cfg_get_uint(p, "authentication.jwt.max_token_size",
                                       f[J_MAXSIZE].val, 256, 1048576, &v))
    j->max_token_bytes = (uint32_t)v;
  if (f[J_CACHE].val && cfg_get_uint(p, "authentication.jwt.cache_size",
                                     f[J_CACHE].val, 0, 10000000, &v))
    j->cache_size = (uint32_t)v;
  if (f[J_CA].val)
    cfg_get_string(p, "authentication.jwt.ca_file", f[J_CA].val, &j->ca_file);
  if (!j->permissions_claim && !(j->permissions_claim = strdup("permissions")))
    p->nomem = 1;
  if (!j->subject_claim && !(j->subject_claim = strdup("sub")))
    p->nomem = 1;
}

/* A sequence whose items are read by each() into a new array of elem_size
 * elements (*out, *count). what names the items for the message. An empty
 * sequence leaves *out NULL. */
static void
cfg_sequence(cfg_parser *p, yaml_node_t *n, const char *name, const char *what,
             size_t elem_size, void **out, size_t *count,
             void (*each)(cfg_parser *, yaml_node_t *, size_t, void *)) {
  if (n->type != YAML_SEQUENCE_NODE) {
    cfg_error(p, n, "'%s' must be a sequence of %s, not %s", name, what,
              cfg_kind(n));
    return;
  }
  size_t c =
      (size_t)(n->data.sequence.items.top - n->data.sequence.items.start);
  if (c == 0)
    return;
  char *arr = calloc(c, elem_size);
  if (!arr) {
    p->nomem = 1;
    return;
  }
  *out = arr;
  *count = c;
  for (size_t i = 0; i < c; i++) {
    yaml_node_t *item =
        yaml_document_get_node(p->doc, n->data.sequence.items.start[i]);
    if (item)
      each(p, item, i, arr + i * elem_size);
  }
}

static void cfg_cert_rule(cfg_parser *p, yaml_node_t *n, size_t idx,
                          tg_cert_rule_cfg *r) {
  static const char *const names[TG_CERT_MATCH_FIELDS] = {
      "cn", "o", "ou", "dns_san", "uri_san", "email_san"};
  enum { C_MATCH, C_SUBJECT, C_PERMS, C_N };
  cfg_field f[C_N] = {
      {.name = "match"}, {.name = "subject"}, {.name = "permissions"}};
  char path[96], name[128];

  snprintf(path, sizeof path, "authentication.client_certs[%zu]", idx);
  r->line = n->start_mark.line + 1;
  if (!cfg_expect_mapping(p, path, n))
    return;
  cfg_collect(p, n, path, f, C_N);
  if (f[C_MATCH].val) {
    snprintf(name, sizeof name, "%s.match", path);
    if (cfg_expect_mapping(p, name, f[C_MATCH].val)) {
      cfg_field m[TG_CERT_MATCH_FIELDS];
      memset(m, 0, sizeof m);
      for (size_t i = 0; i < TG_CERT_MATCH_FIELDS; i++)
        m[i].name = names[i];
      cfg_collect(p, f[C_MATCH].val, name, m, TG_CERT_MATCH_FIELDS);
      int any = 0;
      for (size_t i = 0; i < TG_CERT_MATCH_FIELDS; i++) {
        if (!m[i].val)
          continue;
        any = 1;
        char fname[160];
        snprintf(fname, sizeof fname, "%s.%s", name, names[i]);
        cfg_get_string(p, fname, m[i].val, &r->match[i]);
      }
      if (!any)
        cfg_error(p, f[C_MATCH].val,
                  "'%s' must name at least one of cn, o, ou, dns_san, "
                  "uri_san, email_san",
                  name);
    }
  } else {
    cfg_missing(p, n, path, "match", "");
  }
  if (f[C_SUBJECT].val) {
    snprintf(name, sizeof name, "%s.subject", path);
    cfg_get_string(p, name, f[C_SUBJECT].val, &r->subject);
  }
  if (f[C_PERMS].val) {
    snprintf(name, sizeof name, "%s.permissions", path);
    cfg_get_strlist(p, name, f[C_PERMS].val, 0, 1, &r->permissions);
  }
}

static void cfg_cert_rule_item(cfg_parser *p, yaml_node_t *n, size_t i,
                               void *elem) {
  cfg_cert_rule(p, n, i, elem);
}

static void cfg_client_certs(cfg_parser *p, yaml_node_t *n) {
  tg_authn_cfg *a = p->cfg->authn;
  cfg_sequence(p, n, "authentication.client_certs", "rules",
               sizeof *a->cert_rules, (void **)&a->cert_rules, &a->ncert_rules,
               cfg_cert_rule_item);
}

static void cfg_plugin(cfg_parser *p, yaml_node_t *item, size_t i, void *elem) {
  tg_plugin_cfg *pl = elem;
  char path[64], name[96];
  enum { P_PATH, P_CONFIG, P_N };
  cfg_field f[P_N] = {{.name = "path"}, {.name = "config"}};
  snprintf(path, sizeof path, "authentication.plugins[%zu]", i);
  if (!cfg_expect_mapping(p, path, item))
    return;
  cfg_collect(p, item, path, f, P_N);
  if (f[P_PATH].val) {
    snprintf(name, sizeof name, "%s.path", path);
    cfg_get_string(p, name, f[P_PATH].val, &pl->path);
  } else {
    cfg_missing(p, item, path, "path", "");
  }
  if (f[P_CONFIG].val) {
    snprintf(name, sizeof name, "%s.config", path);
    cfg_get_string(p, name, f[P_CONFIG].val, &pl->config);
  }
}

static void cfg_plugins(cfg_parser *p, yaml_node_t *n) {
  tg_authn_cfg *a = p->cfg->authn;
  cfg_sequence(p, n, "authentication.plugins", "{path, config}",
               sizeof *a->plugins, (void **)&a->plugins, &a->nplugins,
               cfg_plugin);
}

static void cfg_authentication(cfg_parser *p, yaml_node_t *n) {
  enum {
    A_REQUIRE,
    A_EXEMPT,
    A_SYSNS,
    A_HEADER,
    A_JWT,
    A_CERTS,
    A_KEYS,
    A_KEYHDR,
    A_PLUGINS,
    A_N
  };
  cfg_field f[A_N] = {{.name = "require"},
                      {.name = "exempt_methods"},
                      {.name = "system_namespaces"},
                      {.name = "token_header"},
                      {.name = "jwt"},
                      {.name = "client_certs"},
                      {.name = "api_keys_file"},
                      {.name = "api_key_header"},
                      {.name = "plugins"}};
  static const char *const default_exempt[] = {
      "/temporal.api.workflowservice.v1.WorkflowService/GetSystemInfo",
      "/grpc.health.v1.Health/Check"};
  static const char *const default_sysns[] = {"temporal-system"};
  char q[CFG_QUOTE_BUF];

  if (!cfg_expect_mapping(p, "authentication", n))
    return;
  cfg_collect(p, n, "authentication", f, A_N);
  tg_authn_cfg *a = calloc(1, sizeof *a);
  if (!a) {
    p->nomem = 1;
    return;
  }
  p->cfg->authn = a;
  if (f[A_JWT].key)
    cfg_file_at(p, TG_CFK_JWT, f[A_JWT].key);
  if (f[A_KEYS].key)
    cfg_file_at(p, TG_CFK_API_KEYS, f[A_KEYS].key);
  if (f[A_PLUGINS].key)
    cfg_file_at(p, TG_CFK_PLUGINS, f[A_PLUGINS].key);

  if (f[A_REQUIRE].val) {
    yaml_node_t *r = f[A_REQUIRE].val;
    if (r->type != YAML_SEQUENCE_NODE) {
      cfg_error(p, r,
                "'authentication.require' must be a sequence of client_cert, "
                "jwt, api_key, plugin (or []), not %s",
                cfg_kind(r));
    } else {
      for (yaml_node_item_t *it = r->data.sequence.items.start;
           it < r->data.sequence.items.top; it++) {
        yaml_node_t *item = yaml_document_get_node(p->doc, *it);
        if (!item ||
            !cfg_expect_scalar(p, "authentication.require[]", item, "a string"))
          continue;
        if (cfg_scalar_is(item, "client_cert"))
          a->require |= TG_AUTHN_CLIENT_CERT;
        else if (cfg_scalar_is(item, "jwt"))
          a->require |= TG_AUTHN_JWT;
        else if (cfg_scalar_is(item, "api_key"))
          a->require |= TG_AUTHN_API_KEY;
        else if (cfg_scalar_is(item, "plugin"))
          a->require |= TG_AUTHN_PLUGIN;
        else
          cfg_error(p, item,
                    "'authentication.require' entries must be client_cert, "
                    "jwt, api_key or plugin, not '%s'",
                    cfg_quote_node(item, q));
      }
    }
  }
  if (f[A_EXEMPT].val)
    cfg_get_strlist(p, "authentication.exempt_methods", f[A_EXEMPT].val, 0, 1,
                    &a->exempt_methods);
  else
    cfg_strlist_set(p, &a->exempt_methods, default_exempt, 2);
  for (size_t i = 0; i < a->exempt_methods.n; i++)
    if (a->exempt_methods.v[i] && a->exempt_methods.v[i][0] != '/')
      cfg_error(p, f[A_EXEMPT].val,
                "'authentication.exempt_methods[%zu]' must be a full gRPC path "
                "such as /grpc.health.v1.Health/Check",
                i);
  if (f[A_SYSNS].val)
    cfg_get_strlist(p, "authentication.system_namespaces", f[A_SYSNS].val, 0, 1,
                    &a->system_namespaces);
  else
    cfg_strlist_set(p, &a->system_namespaces, default_sysns, 1);
  if (f[A_HEADER].val)
    cfg_get_string(p, "authentication.token_header", f[A_HEADER].val,
                   &a->token_header);
  else if (!(a->token_header = strdup("authorization")))
    p->nomem = 1;
  if (f[A_JWT].val)
    cfg_jwt(p, f[A_JWT].val);
  if (f[A_CERTS].val)
    cfg_client_certs(p, f[A_CERTS].val);
  if (f[A_KEYS].val)
    cfg_get_string(p, "authentication.api_keys_file", f[A_KEYS].val,
                   &a->api_keys_file);
  if (f[A_KEYHDR].val)
    cfg_get_string(p, "authentication.api_key_header", f[A_KEYHDR].val,
                   &a->api_key_header);
  if (f[A_PLUGINS].val)
    cfg_plugins(p, f[A_PLUGINS].val);
  if ((a->require & TG_AUTHN_PLUGIN) && !a->nplugins)
    cfg_missing(p, n, "authentication", "plugins",
                " (required when require lists plugin)");
  for (size_t i = 0; a->token_header && a->token_header[i]; i++)
    if (a->token_header[i] >= 'A' && a->token_header[i] <= 'Z')
      a->token_header[i] = (char)(a->token_header[i] - 'A' + 'a');
  for (size_t i = 0; a->api_key_header && a->api_key_header[i]; i++)
    if (a->api_key_header[i] >= 'A' && a->api_key_header[i] <= 'Z')
      a->api_key_header[i] = (char)(a->api_key_header[i] - 'A' + 'a');

  if ((a->require & TG_AUTHN_JWT) && !f[A_JWT].val)
    cfg_missing(p, n, "authentication", "jwt",
                " (required when require lists jwt)");
  if ((a->require & TG_AUTHN_API_KEY) && !f[A_KEYS].val)
    cfg_missing(p, n, "authentication", "api_keys_file",
                " (required when require lists api_key)");
  if ((a->require & TG_AUTHN_CLIENT_CERT) &&
      (!p->cfg->listen_tls || !p->cfg->listen_tls->client_ca_file))
    cfg_error(p, f[A_REQUIRE].val,
              "'authentication.require' lists client_cert, but "
              "listen.tls.client_ca_file is not set: no client certificate "
              "could be verified");
}

void tg_authn_cfg_free(tg_authn_cfg *a) {
  if (!a)
    return;
  cfg_strlist_free(&a->exempt_methods);
  cfg_strlist_free(&a->system_namespaces);
  free(a->token_header);
  if (a->jwt) {
    cfg_strlist_free(&a->jwt->key_sources);
    cfg_strlist_free(&a->jwt->audiences);
    free(a->jwt->permissions_claim);
    free(a->jwt->permissions_regex);
    free(a->jwt->subject_claim);
    free(a->jwt->issuer);
    free(a->jwt->ca_file);
    free(a->jwt);
  }
  for (size_t i = 0; i < a->ncert_rules; i++) {
    for (size_t j = 0; j < TG_CERT_MATCH_FIELDS; j++)
      free(a->cert_rules[i].match[j]);
    free(a->cert_rules[i].subject);
    cfg_strlist_free(&a->cert_rules[i].permissions);
  }
  free(a->cert_rules);
  free(a->api_keys_file);
  free(a->api_key_header);
  for (size_t i = 0; i < a->nplugins; i++) {
    free(a->plugins[i].path);
    free(a->plugins[i].config);
  }
  free(a->plugins);
  free(a);
}

static void cfg_logging(cfg_parser *p, yaml_node_t *n) {
  enum { G_LEVEL, G_ACCESS, G_N };
  cfg_field f[G_N] = {{.name = "level"}, {.name = "access_log"}};
  static const struct {
    const char *name;
    tg_log_level level;
  } levels[] = {{"error", TG_LOG_ERROR},
                {"warn", TG_LOG_WARN},
                {"info", TG_LOG_INFO},
                {"debug", TG_LOG_DEBUG}};
  char q[CFG_QUOTE_BUF];

  if (!cfg_expect_mapping(p, "logging", n))
    return;
  cfg_collect(p, n, "logging", f, G_N);
  if (f[G_ACCESS].val) {
    cfg_get_string(p, "logging.access_log", f[G_ACCESS].val,
                   &p->cfg->access_log);
    if (p->cfg->access_log && strcmp(p->cfg->access_log, "off") == 0) {
      free(p->cfg->access_log);
      p->cfg->access_log = NULL;
    }
  }
  yaml_node_t *v = f[G_LEVEL].val;
  if (!v || !cfg_expect_scalar(p, "logging.level", v, "a string"))
    return;
  for (size_t i = 0; i < sizeof levels / sizeof levels[0]; i++) {
    if (cfg_scalar_is(v, levels[i].name)) {
      p->cfg->log_level = levels[i].level;
      return;
    }
  }
  cfg_error(p, v,
            "'logging.level' must be one of error, warn, info, debug, not "
            "'%s'",
            cfg_quote_node(v, q));
}

static void cfg_authz_rule(cfg_parser *p, yaml_node_t *n, size_t idx,
                           tg_authz_rule_cfg *r) {
  enum { R_EFFECT, R_METHODS, R_NS, R_SUBJECTS, R_TQ, R_WT, R_N };
  cfg_field f[R_N] = {{.name = "effect"},      {.name = "methods"},
                      {.name = "namespaces"},  {.name = "subjects"},
                      {.name = "task_queues"}, {.name = "workflow_types"}};
  tg_strlist *lists[R_N] = {NULL,         &r->methods,     &r->namespaces,
                            &r->subjects, &r->task_queues, &r->workflow_types};
  char path[64], name[96], q[CFG_QUOTE_BUF];

  snprintf(path, sizeof path, "authorization.rules[%zu]", idx);
  r->line = n->start_mark.line + 1;
  if (!cfg_expect_mapping(p, path, n))
    return;
  cfg_collect(p, n, path, f, R_N);
  yaml_node_t *e = f[R_EFFECT].val;
  if (!e) {
    cfg_missing(p, n, path, "effect", "");
  } else if (cfg_expect_scalar(p, "effect", e, "allow or deny")) {
    if (cfg_scalar_is(e, "allow"))
      r->allow = 1;
    else if (!cfg_scalar_is(e, "deny"))
      cfg_error(p, e, "'%s.effect' must be allow or deny, not '%s'", path,
                cfg_quote_node(e, q));
  }
  int any = 0;
  for (int i = R_METHODS; i < R_N; i++) {
    if (!f[i].val)
      continue;
    any = 1;
    snprintf(name, sizeof name, "%s.%s", path, f[i].name);
    cfg_get_strlist(p, name, f[i].val, 1, 0, lists[i]);
  }
  if (!any)
    cfg_error(p, n,
              "'%s' matches every call; name at least one of methods, "
              "namespaces, subjects, task_queues, workflow_types",
              path);
}

static void cfg_authz_rule_item(cfg_parser *p, yaml_node_t *n, size_t i,
                                void *elem) {
  cfg_authz_rule(p, n, i, elem);
}

static void cfg_authorization(cfg_parser *p, yaml_node_t *n) {
  enum {
    Z_MODE,
    Z_WORKER,
    Z_DISABLED,
    Z_RULES,
    Z_MAXMSG,
    Z_EXPOSE,
    Z_SUBJHDR,
    Z_FWDAUTH,
    Z_N
  };
  cfg_field f[Z_N] = {{.name = "mode"},
                      {.name = "worker_role"},
                      {.name = "disabled_methods"},
                      {.name = "rules"},
                      {.name = "max_message_bytes"},
                      {.name = "expose_reasons"},
                      {.name = "subject_header"},
                      {.name = "forward_authorization"}};
  char q[CFG_QUOTE_BUF];
  tg_config *cfg = p->cfg;
  uint64_t v;

  if (!cfg_expect_mapping(p, "authorization", n))
    return;
  cfg_collect(p, n, "authorization", f, Z_N);
  yaml_node_t *m = f[Z_MODE].val;
  if (m && cfg_expect_scalar(p, "authorization.mode", m, "a string")) {
    if (cfg_scalar_is(m, "off"))
      cfg->authz_mode = TG_AUTHZ_OFF;
    else if (cfg_scalar_is(m, "enforce"))
      cfg->authz_mode = TG_AUTHZ_ENFORCE;
    else if (cfg_scalar_is(m, "shadow"))
      cfg->authz_mode = TG_AUTHZ_SHADOW;
    else
      cfg_error(p, m,
                "'authorization.mode' must be enforce, shadow or off, not "
                "'%s'",
                cfg_quote_node(m, q));
  }
  yaml_node_t *w = f[Z_WORKER].val;
  if (w && cfg_expect_scalar(p, "authorization.worker_role", w, "a string")) {
    if (cfg_scalar_is(w, "extended"))
      cfg->worker_role_extended = 1;
    else if (cfg_scalar_is(w, "temporal"))
      cfg->worker_role_extended = 0;
    else
      cfg_error(p, w,
                "'authorization.worker_role' must be extended or temporal, "
                "not '%s'",
                cfg_quote_node(w, q));
  }
  if (f[Z_DISABLED].val)
    cfg_get_strlist(p, "authorization.disabled_methods", f[Z_DISABLED].val, 0,
                    1, &cfg->disabled_methods);
  if (f[Z_RULES].val)
    cfg_sequence(p, f[Z_RULES].val, "authorization.rules", "rules",
                 sizeof *cfg->authz_rules, (void **)&cfg->authz_rules,
                 &cfg->nauthz_rules, cfg_authz_rule_item);
  if (f[Z_MAXMSG].val &&
      cfg_get_uint(p, "authorization.max_message_bytes", f[Z_MAXMSG].val, 1024,
                   64 * 1024 * 1024, &v))
    cfg->max_message_bytes = (uint32_t)v;
  if (f[Z_EXPOSE].val)
    cfg_get_bool(p, "authorization.expose_reasons", f[Z_EXPOSE].val,
                 &cfg->expose_reasons);
  if (f[Z_SUBJHDR].val) {
    cfg_get_string(p, "authorization.subject_header", f[Z_SUBJHDR].val,
                   &cfg->subject_header);
    for (char *c = cfg->subject_header; c && *c; c++)
      if (*c >= 'A' && *c <= 'Z')
        *c = (char)(*c - 'A' + 'a');
  }
  yaml_node_t *fa = f[Z_FWDAUTH].val;
  if (fa && cfg_expect_scalar(p, "authorization.forward_authorization", fa,
                              "a string")) {
    if (cfg_scalar_is(fa, "forward"))
      cfg->forward_authorization = TG_FWD_AUTH_FORWARD;
    else if (cfg_scalar_is(fa, "strip"))
      cfg->forward_authorization = TG_FWD_AUTH_STRIP;
    else
      cfg_error(p, fa,
                "'authorization.forward_authorization' must be forward or "
                "strip, not '%s'",
                cfg_quote_node(fa, q));
  }
  if (cfg->authz_mode != TG_AUTHZ_OFF && !cfg->authn)
    cfg_error(p, m ? m : n,
              "'authorization.mode' %s needs an 'authentication' section: "
              "without credentials every call but GetSystemInfo is denied",
              cfg->authz_mode == TG_AUTHZ_ENFORCE ? "enforce" : "shadow");
}

static void cfg_audit(cfg_parser *p, yaml_node_t *n) {
  enum { U_FILE, U_ALLOWS, U_FAIL, U_N };
  cfg_field f[U_N] = {{.name = "file"},
                      {.name = "include_allows"},
                      {.name = "on_write_failure"}};
  char q[CFG_QUOTE_BUF];
  if (!cfg_expect_mapping(p, "audit", n))
    return;
  cfg_collect(p, n, "audit", f, U_N);
  if (f[U_FILE].val)
    cfg_get_string(p, "audit.file", f[U_FILE].val, &p->cfg->audit_file);
  else
    cfg_missing(p, n, "audit", "file", "");
  if (p->cfg->audit_file && strcmp(p->cfg->audit_file, "off") == 0) {
    free(p->cfg->audit_file);
    p->cfg->audit_file = NULL;
  }
  if (f[U_ALLOWS].val)
    cfg_get_bool(p, "audit.include_allows", f[U_ALLOWS].val,
                 &p->cfg->audit_include_allows);
  yaml_node_t *v = f[U_FAIL].val;
  if (v && cfg_expect_scalar(p, "audit.on_write_failure", v, "a string")) {
    if (cfg_scalar_is(v, "fail_closed"))
      p->cfg->audit_fail_closed = 1;
    else if (cfg_scalar_is(v, "fail_open"))
      p->cfg->audit_fail_closed = 0;
    else
      cfg_error(p, v,
                "'audit.on_write_failure' must be fail_closed or fail_open, "
                "not '%s'",
                cfg_quote_node(v, q));
  }
}

static void cfg_limits(cfg_parser *p, yaml_node_t *n) {
  enum { M_CONNS, M_HDRS, M_MSG, M_SUBJ, M_N };
  cfg_field f[M_N] = {{.name = "max_connections"},
                      {.name = "max_header_list_size"},
                      {.name = "max_message_size"},
                      {.name = "max_calls_per_subject"}};
  tg_config *cfg = p->cfg;
  uint64_t v;
  if (!cfg_expect_mapping(p, "limits", n))
    return;
  cfg_collect(p, n, "limits", f, M_N);
  if (f[M_CONNS].val && cfg_get_uint(p, "limits.max_connections",
                                     f[M_CONNS].val, 0, 10000000, &v))
    cfg->max_connections = (uint32_t)v;
  if (f[M_HDRS].val && cfg_get_uint(p, "limits.max_header_list_size",
                                    f[M_HDRS].val, 1024, 1024 * 1024, &v))
    cfg->max_header_list_size = (uint32_t)v;
  if (f[M_MSG].val && cfg_get_uint(p, "limits.max_message_size", f[M_MSG].val,
                                   1024, 1024 * 1024 * 1024, &v))
    cfg->max_message_size = (uint32_t)v;
  if (f[M_SUBJ].val && cfg_get_uint(p, "limits.max_calls_per_subject",
                                    f[M_SUBJ].val, 0, 1000000, &v))
    cfg->max_calls_per_subject = (uint32_t)v;
}

static void cfg_reload(cfg_parser *p, yaml_node_t *n) {
  enum { L_WATCH, L_N };
  cfg_field f[L_N] = {{.name = "watch_interval"}};
  if (!cfg_expect_mapping(p, "reload", n))
    return;
  cfg_collect(p, n, "reload", f, L_N);
  if (f[L_WATCH].val)
    cfg_get_duration(p, "reload.watch_interval", f[L_WATCH].val, 0, CFG_DAY_MS,
                     "0s and 24h", &p->cfg->reload_watch_ms);
}

static void cfg_root(cfg_parser *p, yaml_node_t *root) {
  enum {
    R_LISTEN,
    R_UPSTREAM,
    R_ADMIN,
    R_WORKERS,
    R_GRACE,
    R_BUSY_POLL,
    R_AUTHN,
    R_AUTHZ,
    R_LOGGING,
    R_AUDIT,
    R_RELOAD,
    R_LIMITS,
    R_N
  };
  cfg_field f[R_N] = {{.name = "listen"},
                      {.name = "upstream"},
                      {.name = "admin"},
                      {.name = "workers"},
                      {.name = "shutdown_grace_period"},
                      {.name = "busy_poll"},
                      {.name = "authentication"},
                      {.name = "authorization"},
                      {.name = "logging"},
                      {.name = "audit"},
                      {.name = "reload"},
                      {.name = "limits"}};
  uint64_t v;

  if (root->type != YAML_MAPPING_NODE) {
    cfg_error(p, root, "the document must be a mapping, not %s",
              cfg_kind(root));
    return;
  }
  cfg_collect(p, root, "", f, R_N);
  /* listen before admin: admin compares its address with listen's. */
  if (f[R_LISTEN].val)
    cfg_listen(p, f[R_LISTEN].val);
  else
    cfg_missing(p, root, "", "listen", "");
  if (f[R_UPSTREAM].val)
    cfg_upstream(p, f[R_UPSTREAM].val);
  else
    cfg_missing(p, root, "", "upstream", "");
  if (f[R_ADMIN].val)
    cfg_admin(p, f[R_ADMIN].val);
  if (f[R_WORKERS].val &&
      cfg_get_uint(p, "workers", f[R_WORKERS].val, 0, 256, &v))
    p->cfg->workers = (uint32_t)v;
  if (f[R_GRACE].val)
    cfg_get_duration(p, "shutdown_grace_period", f[R_GRACE].val, 0, CFG_DAY_MS,
                     "0s and 24h", &p->cfg->shutdown_grace_ms);
  if (f[R_BUSY_POLL].val)
    cfg_busy_poll(p, f[R_BUSY_POLL].val);
  /* after listen: authentication checks listen.tls */
  if (f[R_AUTHN].val)
    cfg_authentication(p, f[R_AUTHN].val);
  if (f[R_AUTHZ].val)
    cfg_authorization(p, f[R_AUTHZ].val);
  if (f[R_LOGGING].val)
    cfg_logging(p, f[R_LOGGING].val);
  if (f[R_AUDIT].val)
    cfg_audit(p, f[R_AUDIT].val);
  if (f[R_RELOAD].val)
    cfg_reload(p, f[R_RELOAD].val);
  if (f[R_LIMITS].val)
    cfg_limits(p, f[R_LIMITS].val);
}

/* Reports why libyaml failed; returns the TG_CONFIG_ERR_* code. */
static int cfg_yaml_error(cfg_parser *p, const yaml_parser_t *yp,
                          const char *buf, size_t len) {
  const char *problem = yp->problem ? yp->problem : "unknown error";
  size_t line, col;

  /* libyaml fails some allocations without setting an error. */
  if (yp->error == YAML_MEMORY_ERROR || yp->error == YAML_NO_ERROR)
    return TG_CONFIG_ERR_NOMEM;
  if (yp->error == YAML_READER_ERROR) {
    /* The reader reports a byte offset, not a mark. */
    size_t end = yp->problem_offset < len ? yp->problem_offset : len;
    line = 1;
    col = 1;
    for (size_t i = 0; i < end; i++) {
      if (buf[i] == '\n') {
        line++;
        col = 1;
      } else {
        col++;
      }
    }
  } else {
    line = yp->problem_mark.line + 1;
    col = yp->problem_mark.column + 1;
  }
  if (yp->context)
    cfg_error_at(p, line, col, "YAML syntax error: %s (%s at %zu:%zu)", problem,
                 yp->context, yp->context_mark.line + 1,
                 yp->context_mark.column + 1);
  else
    cfg_error_at(p, line, col, "YAML syntax error: %s", problem);
  return TG_CONFIG_ERR_SYNTAX;
}

/* Walks the event stream before composing, to refuse what would make libyaml
 * slow: its scanner rescans the whole flow-nesting stack for every token and
 * its composer looks anchors up linearly, so a few hundred KiB of "[[[[" or
 * of anchors and aliases would otherwise take minutes. Stopping early here
 * also stops the scanner early. */
static int cfg_prescan(cfg_parser *p, const char *buf, size_t len) {
  yaml_parser_t yp;
  yaml_event_t ev;
  size_t depth = 0, anchors = 0, aliases = 0;
  int rc;

  if (!yaml_parser_initialize(&yp))
    return TG_CONFIG_ERR_NOMEM;
  yaml_parser_set_input_string(&yp, (const unsigned char *)buf, len);
  for (;;) {
    if (!yaml_parser_parse(&yp, &ev)) {
      rc = cfg_yaml_error(p, &yp, buf, len);
      break;
    }
    yaml_event_type_t type = ev.type;
    yaml_mark_t mark = ev.start_mark;
    const yaml_char_t *anchor = NULL;
    switch (type) {
    case YAML_SEQUENCE_START_EVENT:
      depth++;
      anchor = ev.data.sequence_start.anchor;
      break;
    case YAML_MAPPING_START_EVENT:
      depth++;
      anchor = ev.data.mapping_start.anchor;
      break;
    case YAML_SEQUENCE_END_EVENT:
    case YAML_MAPPING_END_EVENT:
      depth--;
      break;
    case YAML_SCALAR_EVENT:
      anchor = ev.data.scalar.anchor;
      break;
    case YAML_ALIAS_EVENT:
      aliases++;
      break;
    default:
      break;
    }
    if (anchor)
      anchors++;
    yaml_event_delete(&ev);

    rc = TG_CONFIG_ERR_INVALID;
    if (depth > CFG_MAX_DEPTH) {
      cfg_error_at(p, mark.line + 1, mark.column + 1,
                   "nesting is deeper than %d levels", CFG_MAX_DEPTH);
      break;
    }
    if (anchors > CFG_MAX_ANCHORS) {
      cfg_error_at(p, mark.line + 1, mark.column + 1, "more than %d anchors",
                   CFG_MAX_ANCHORS);
      break;
    }
    if (aliases > CFG_MAX_ANCHORS) {
      cfg_error_at(p, mark.line + 1, mark.column + 1, "more than %d aliases",
                   CFG_MAX_ANCHORS);
      break;
    }
    if (type == YAML_STREAM_END_EVENT) {
      rc = 0;
      break;
    }
  }
  yaml_parser_delete(&yp);
  return rc;
}

/* Loads the single YAML document of buf and hands its root to root_fn;
 * collects the errors into *errors. Returns 0 or a TG_CONFIG_ERR_* code. */
static int cfg_run(cfg_parser *p, const char *buf, size_t len,
                   void (*root_fn)(cfg_parser *, yaml_node_t *),
                   const char *empty_msg, char **errors) {
  yaml_parser_t yp;
  yaml_document_t doc, extra;
  int have_parser = 0, have_doc = 0, have_extra = 0;
  int rc;

  if (!buf) {
    buf = "";
    len = 0;
  }
  rc = cfg_prescan(p, buf, len);
  if (rc < 0)
    goto done;

  if (!yaml_parser_initialize(&yp)) {
    rc = TG_CONFIG_ERR_NOMEM;
    goto done;
  }
  have_parser = 1;
  yaml_parser_set_input_string(&yp, (const unsigned char *)buf, len);
  if (!yaml_parser_load(&yp, &doc)) {
    rc = cfg_yaml_error(p, &yp, buf, len);
    goto done;
  }
  have_doc = 1;
  p->doc = &doc;

  yaml_node_t *root = yaml_document_get_root_node(&doc);
  if (!root) {
    cfg_error_at(p, 1, 1, "%s", empty_msg);
    rc = TG_CONFIG_ERR_INVALID;
    goto done;
  }
  /* A second document would be silently ignored; say so instead. */
  if (!yaml_parser_load(&yp, &extra)) {
    rc = cfg_yaml_error(p, &yp, buf, len);
    goto done;
  }
  have_extra = 1;
  yaml_node_t *extra_root = yaml_document_get_root_node(&extra);
  if (extra_root)
    cfg_error(p, extra_root, "only one YAML document is allowed in a file");

  root_fn(p, root);
  rc = p->nerrors ? TG_CONFIG_ERR_INVALID : 0;

done:
  if (p->nomem)
    rc = TG_CONFIG_ERR_NOMEM;
  if (rc != 0 && errors) {
    if (rc != TG_CONFIG_ERR_NOMEM && !(*errors = cfg_join_errors(p)))
      rc = TG_CONFIG_ERR_NOMEM;
    if (rc == TG_CONFIG_ERR_NOMEM) {
      cfg_buf b = {0};
      /* Best effort: the contract promises a line, but memory is short. */
      cfg_buf_append(&b, "%s: out of memory\n", p->filename);
      *errors = b.data;
    }
  }
  for (size_t i = 0; i < p->nmsgs; i++)
    free(p->msgs[i].text);
  free(p->msgs);
  p->msgs = NULL;
  p->nmsgs = 0;
  p->doc = NULL;
  if (have_extra)
    yaml_document_delete(&extra);
  if (have_doc)
    yaml_document_delete(&doc);
  if (have_parser)
    yaml_parser_delete(&yp);
  return rc;
}

int tg_config_parse(const char *buf, size_t len, const char *filename,
                    tg_config **out, char **errors) {
  cfg_parser p = {.filename = filename ? filename : "<config>"};
  int rc;

  *out = NULL;
  if (errors)
    *errors = NULL;
  p.cfg = calloc(1, sizeof *p.cfg);
  if (!p.cfg) {
    p.nomem = 1;
    return cfg_run(&p, "", 0, cfg_root, "", errors);
  }
  p.cfg->file = strdup(p.filename);
  if (!p.cfg->file)
    p.nomem = 1;
  p.cfg->max_concurrent_streams = 1000;
  p.cfg->upstream_max_connections = 8;
  p.cfg->upstream_connect_timeout_ms = 5000;
  p.cfg->upstream_hc_enabled = -1;
  p.cfg->upstream_hc_interval_ms = 10000;
  p.cfg->upstream_hc_timeout_ms = 2000;
  p.cfg->upstream_hc_service = strdup(TG_HC_DEFAULT_SERVICE);
  if (!p.cfg->upstream_hc_service)
    p.nomem = 1;
  p.cfg->upstream_hc_unhealthy_threshold = 2;
  p.cfg->upstream_hc_healthy_threshold = 1;
  p.cfg->upstream_dns_refresh_ms = 30000;
  p.cfg->workers = 0;
  p.cfg->shutdown_grace_ms = 30000;
  p.cfg->authz_mode = TG_AUTHZ_OFF;
  p.cfg->worker_role_extended = 1;
  p.cfg->max_message_bytes = 4 * 1024 * 1024;
  p.cfg->audit_fail_closed = 1;
  p.cfg->log_level = TG_LOG_INFO;
  p.cfg->reload_watch_ms = 2000;
  p.cfg->max_header_list_size = 64 * 1024;
  p.cfg->metrics_max_namespaces = 100;
  p.cfg->max_message_size = 64 * 1024 * 1024;

  rc = cfg_run(&p, buf, len, cfg_root,
               "the document is empty; expected a mapping with at least "
               "'listen' and 'upstream'",
               errors);
  if (rc == 0) {
    *out = p.cfg;
    p.cfg = NULL;
  }
  tg_config_free(p.cfg);
  return rc;
}

/* Reads path (at most CFG_MAX_FILE_SIZE bytes) into *data. Returns 0, or a
 * TG_CONFIG_ERR_* code with the reason appended to eb. */
static int cfg_read_file(const char *path, char **data, size_t *lenp,
                         cfg_buf *eb) {
  char ebuf[128];
  size_t len = 0;
  int rc = TG_CONFIG_ERR_IO;
  FILE *f = fopen(path, "rb");
  *data = NULL;
  if (!f) {
    cfg_buf_append(eb, "%s: cannot read: %s\n", path,
                   strerror_r(errno, ebuf, sizeof ebuf));
    return rc;
  }
  /* One byte more than the limit tells "exactly 1 MiB" from "bigger". */
  char *buf = malloc(CFG_MAX_FILE_SIZE + 1);
  if (!buf) {
    rc = TG_CONFIG_ERR_NOMEM;
    cfg_buf_append(eb, "%s: out of memory\n", path);
    goto fail;
  }
  while (len < CFG_MAX_FILE_SIZE + 1) {
    size_t n = fread(buf + len, 1, CFG_MAX_FILE_SIZE + 1 - len, f);
    if (n == 0)
      break;
    len += n;
  }
  if (ferror(f)) {
    cfg_buf_append(eb, "%s: cannot read: %s\n", path,
                   strerror_r(errno, ebuf, sizeof ebuf));
    goto fail;
  }
  if (len > CFG_MAX_FILE_SIZE) {
    cfg_buf_append(eb, "%s: cannot read: file is larger than %d bytes\n", path,
                   CFG_MAX_FILE_SIZE);
    goto fail;
  }
  fclose(f);
  *data = buf;
  *lenp = len;
  return 0;
fail:
  free(buf);
  fclose(f);
  return rc;
}

int tg_config_load_file(const char *path, tg_config **out, char **errors) {
  cfg_buf eb = {0};
  char *data = NULL;
  size_t len = 0;

  *out = NULL;
  if (errors)
    *errors = NULL;
  int rc = cfg_read_file(path, &data, &len, &eb);
  if (rc == 0)
    rc = tg_config_parse(data, len, path, out, errors);
  else if (errors)
    *errors = eb.data, eb.data = NULL;
  free(eb.data);
  free(data);
  return rc;
}

/* ---- API keys file ---- */

/* "2027-01-01T00:00:00Z" or "2027-01-01": unix seconds, or -1. */
static int64_t cfg_parse_time(const char *s) {
  struct tm tm;
  memset(&tm, 0, sizeof tm);
  const char *end = strptime(s, "%Y-%m-%dT%H:%M:%SZ", &tm);
  if (!end || *end) {
    memset(&tm, 0, sizeof tm);
    end = strptime(s, "%Y-%m-%d", &tm);
    if (!end || *end)
      return -1;
  }
  return (int64_t)timegm(&tm);
}

static int cfg_hex_digest(const char *s, uint8_t out[32]) {
  if (strlen(s) != 64)
    return -1;
  for (size_t i = 0; i < 32; i++) {
    int v = 0;
    for (int k = 0; k < 2; k++) {
      char c = s[2 * i + (size_t)k];
      int d = c >= '0' && c <= '9'   ? c - '0'
              : c >= 'a' && c <= 'f' ? c - 'a' + 10
              : c >= 'A' && c <= 'F' ? c - 'A' + 10
                                     : -1;
      if (d < 0)
        return -1;
      v = v * 16 + d;
    }
    out[i] = (uint8_t)v;
  }
  return 0;
}

static void cfg_apikey(cfg_parser *p, yaml_node_t *n, size_t idx,
                       tg_apikey_entry *e) {
  enum { K_ID, K_SHA, K_SUBJECT, K_PERMS, K_EXPIRES, K_N };
  cfg_field f[K_N] = {{.name = "id"},
                      {.name = "sha256"},
                      {.name = "subject"},
                      {.name = "permissions"},
                      {.name = "expires"}};
  char path[64], name[96];
  char *tmp = NULL;

  snprintf(path, sizeof path, "keys[%zu]", idx);
  if (!cfg_expect_mapping(p, path, n))
    return;
  cfg_collect(p, n, path, f, K_N);
  if (f[K_ID].val) {
    snprintf(name, sizeof name, "%s.id", path);
    cfg_get_string(p, name, f[K_ID].val, &e->id);
  }
  if (f[K_SHA].val) {
    snprintf(name, sizeof name, "%s.sha256", path);
    cfg_get_string(p, name, f[K_SHA].val, &tmp);
    if (tmp && cfg_hex_digest(tmp, e->sha256) != 0)
      cfg_error(p, f[K_SHA].val,
                "'%s' must be 64 hexadecimal digits (the SHA-256 of the key)",
                name);
    free(tmp);
    tmp = NULL;
  } else {
    cfg_missing(p, n, path, "sha256", "");
  }
  if (f[K_SUBJECT].val) {
    snprintf(name, sizeof name, "%s.subject", path);
    cfg_get_string(p, name, f[K_SUBJECT].val, &e->subject);
  } else {
    cfg_missing(p, n, path, "subject", "");
  }
  if (f[K_PERMS].val) {
    snprintf(name, sizeof name, "%s.permissions", path);
    cfg_get_strlist(p, name, f[K_PERMS].val, 0, 1, &e->permissions);
  }
  if (f[K_EXPIRES].val) {
    snprintf(name, sizeof name, "%s.expires", path);
    cfg_get_string(p, name, f[K_EXPIRES].val, &tmp);
    if (tmp && (e->expires = cfg_parse_time(tmp)) <= 0)
      cfg_error(p, f[K_EXPIRES].val,
                "'%s' must be a UTC time such as 2027-01-31T00:00:00Z or "
                "2027-01-31",
                name);
    free(tmp);
  }
}

static void cfg_apikey_item(cfg_parser *p, yaml_node_t *n, size_t i,
                            void *elem) {
  cfg_apikey(p, n, i, elem);
}

static void cfg_apikeys_root(cfg_parser *p, yaml_node_t *root) {
  enum { F_KEYS, F_N };
  cfg_field f[F_N] = {{.name = "keys"}};
  tg_apikeys_file *kf = p->keys;

  if (root->type != YAML_MAPPING_NODE) {
    cfg_error(p, root, "the document must be a mapping with 'keys', not %s",
              cfg_kind(root));
    return;
  }
  cfg_collect(p, root, "", f, F_N);
  yaml_node_t *n = f[F_KEYS].val;
  if (!n) {
    cfg_missing(p, root, "", "keys", "");
    return;
  }
  cfg_sequence(p, n, "keys", "keys", sizeof *kf->v, (void **)&kf->v, &kf->n,
               cfg_apikey_item);
  size_t count = kf->n;
  /* Only among well-formed entries: a missing digest reads as zeros. */
  for (size_t i = 0; i < count && p->nerrors == 0; i++)
    for (size_t j = 0; j < i; j++)
      if (memcmp(kf->v[i].sha256, kf->v[j].sha256, 32) == 0)
        cfg_error(
            p, yaml_document_get_node(p->doc, n->data.sequence.items.start[i]),
            "keys[%zu] has the same sha256 as keys[%zu]", i, j);
}

int tg_apikeys_file_parse(const char *buf, size_t len, const char *filename,
                          tg_apikeys_file **out, char **errors) {
  cfg_parser p = {.filename = filename ? filename : "<api keys>"};
  *out = NULL;
  if (errors)
    *errors = NULL;
  p.keys = calloc(1, sizeof *p.keys);
  if (!p.keys)
    p.nomem = 1;
  int rc =
      cfg_run(&p, p.keys ? buf : "", p.keys ? len : 0, cfg_apikeys_root,
              "the document is empty; expected a mapping with 'keys'", errors);
  if (rc == 0) {
    *out = p.keys;
    p.keys = NULL;
  }
  tg_apikeys_file_free(p.keys);
  return rc;
}

int tg_apikeys_file_load(const char *path, tg_apikeys_file **out,
                         char **errors) {
  cfg_buf eb = {0};
  char *data = NULL;
  size_t len = 0;

  *out = NULL;
  if (errors)
    *errors = NULL;
  int rc = cfg_read_file(path, &data, &len, &eb);
  if (rc == 0)
    rc = tg_apikeys_file_parse(data, len, path, out, errors);
  else if (errors)
    *errors = eb.data, eb.data = NULL;
  free(eb.data);
  free(data);
  return rc;
}

void tg_apikeys_file_free(tg_apikeys_file *f) {
  if (!f)
    return;
  for (size_t i = 0; i < f->n; i++) {
    free(f->v[i].id);
    free(f->v[i].subject);
    cfg_strlist_free(&f->v[i].permissions);
  }
  free(f->v);
  free(f);
}

/* ---- environment overrides ---- */

static int env_error(cfg_buf *eb, const char *name, const char *msg) {
  cfg_buf_append(eb, "environment %s: %s\n", name, msg);
  return -1;
}

/* Replaces l with the comma-separated items of v (empty items skipped). */
static int env_list(tg_strlist *l, const char *v) {
  cfg_strlist_free(l);
  size_t n = 1;
  for (const char *c = v; *c; c++)
    n += *c == ',';
  l->v = calloc(n, sizeof *l->v);
  if (!l->v)
    return -1;
  const char *start = v;
  for (const char *c = v;; c++) {
    if (*c != ',' && *c)
      continue;
    const char *a = start, *b = c;
    while (a < b && (*a == ' ' || *a == '\t'))
      a++;
    while (b > a && (b[-1] == ' ' || b[-1] == '\t'))
      b--;
    if (b > a && !(l->v[l->n++] = strndup(a, (size_t)(b - a))))
      return -1;
    if (!*c)
      break;
    start = c + 1;
  }
  return 0;
}

/* authentication.jwt, created with its defaults when the file has none. */
static tg_jwt_cfg *env_jwt(tg_config *cfg) {
  if (!cfg->authn) {
    tg_authn_cfg *a = calloc(1, sizeof *a);
    if (!a)
      return NULL;
    cfg->authn = a;
    if (env_list(&a->exempt_methods,
                 "/temporal.api.workflowservice.v1.WorkflowService/"
                 "GetSystemInfo,/grpc.health.v1.Health/Check") != 0 ||
        env_list(&a->system_namespaces, "temporal-system") != 0 ||
        !(a->token_header = strdup("authorization")))
      return NULL;
  }
  if (!cfg->authn->jwt) {
    tg_jwt_cfg *j = calloc(1, sizeof *j);
    if (!j)
      return NULL;
    cfg->authn->jwt = j;
    cfg_jwt_defaults(j);
    if (!(j->permissions_claim = strdup("permissions")) ||
        !(j->subject_claim = strdup("sub")))
      return NULL;
  }
  return cfg->authn->jwt;
}

int tg_config_apply_env(tg_config *cfg, const char *(*get)(const char *name),
                        char **errors) {
  cfg_buf eb = {0};
  const char *v;
  const char *why;
  int rc = 0, nomem = 0;
  char name[64];
  uint64_t ms;

  if (errors)
    *errors = NULL;
  if ((v = get("TGATE_LISTEN_ADDRESS"))) {
    tg_addr a = {0};
    if (tg_config_parse_addr(v, &a, &why) != 0) {
      rc = env_error(&eb, "TGATE_LISTEN_ADDRESS", why);
    } else {
      free(cfg->listen_address.host);
      cfg->listen_address = a;
    }
  }
  if ((v = get("TGATE_ADMIN_ADDRESS"))) {
    tg_addr a = {0};
    if (tg_config_parse_addr(v, &a, &why) != 0) {
      rc = env_error(&eb, "TGATE_ADMIN_ADDRESS", why);
    } else {
      if (!cfg->admin_address && !(cfg->admin_address = calloc(1, sizeof a))) {
        free(a.host);
        nomem = 1;
      } else {
        free(cfg->admin_address->host);
        *cfg->admin_address = a;
      }
    }
  }
  if ((v = get("TGATE_UPSTREAM_ADDRESSES"))) {
    tg_strlist l = {0};
    if (env_list(&l, v) != 0) {
      nomem = 1;
    } else if (l.n == 0) {
      rc = env_error(&eb, "TGATE_UPSTREAM_ADDRESSES", "no address");
    } else {
      tg_addr *addrs = calloc(l.n, sizeof *addrs);
      size_t i;
      for (i = 0; addrs && i < l.n; i++)
        if (tg_config_parse_addr(l.v[i], &addrs[i], &why) != 0)
          break;
      if (!addrs) {
        nomem = 1;
      } else if (i < l.n) {
        rc = env_error(&eb, "TGATE_UPSTREAM_ADDRESSES", why);
        for (size_t k = 0; k < i; k++)
          free(addrs[k].host);
        free(addrs);
      } else {
        for (size_t k = 0; k < cfg->upstream_naddresses; k++)
          free(cfg->upstream_addresses[k].host);
        free(cfg->upstream_addresses);
        cfg->upstream_addresses = addrs;
        cfg->upstream_naddresses = l.n;
      }
    }
    cfg_strlist_free(&l);
  }
  if ((v = get("TGATE_WORKERS"))) {
    char *end;
    unsigned long n = strtoul(v, &end, 10);
    /* decimal digits only, as in the file (strtoul takes " +4" too) */
    if (*v < '0' || *v > '9' || *end || n > 256)
      rc = env_error(&eb, "TGATE_WORKERS", "must be an integer from 0 to 256");
    else
      cfg->workers = (uint32_t)n;
  }
  if ((v = get("TGATE_LOG_LEVEL"))) {
    static const char *const levels[] = {"error", "warn", "info", "debug"};
    size_t i;
    for (i = 0; i < 4 && strcmp(v, levels[i]) != 0; i++)
      ;
    if (i == 4)
      rc = env_error(&eb, "TGATE_LOG_LEVEL",
                     "must be error, warn, info or debug");
    else
      cfg->log_level = (tg_log_level)i;
  }
  /* The variables Temporal's server image reads for its JWT ClaimMapper, so
   * that authorization can move from the server to tgate unchanged. */
  tg_strlist sources = {0};
  for (int i = 1; i <= 64; i++) {
    snprintf(name, sizeof name, "TEMPORAL_JWT_KEY_SOURCE%d", i);
    if (!(v = get(name)) || !*v)
      continue;
    char **nv = realloc(sources.v, (sources.n + 1) * sizeof *nv);
    if (!nv || !(nv[sources.n] = strdup(v))) {
      if (nv)
        sources.v = nv;
      nomem = 1;
      break;
    }
    sources.v = nv;
    sources.n++;
  }
  const char *claim = get("TEMPORAL_JWT_PERMISSIONS_CLAIM");
  const char *refresh = get("TEMPORAL_JWT_KEY_REFRESH");
  if (!nomem && (sources.n || (claim && *claim) || (refresh && *refresh))) {
    tg_jwt_cfg *j = env_jwt(cfg);
    if (!j) {
      nomem = 1;
    } else {
      if (sources.n) {
        cfg_strlist_free(&j->key_sources);
        j->key_sources = sources;
        cfg->file_at[TG_CFK_JWT] = (tg_config_pos){0, 0};
        sources.v = NULL;
        sources.n = 0;
      }
      if (claim && *claim) {
        char *c = strdup(claim);
        if (!c) {
          nomem = 1;
        } else {
          free(j->permissions_claim);
          j->permissions_claim = c;
        }
      }
      if (refresh && *refresh) {
        if (tg_config_parse_duration(refresh, &ms) != 0 || ms < 1000 ||
            ms > CFG_DAY_MS)
          rc = env_error(&eb, "TEMPORAL_JWT_KEY_REFRESH",
                         "must be a duration between 1s and 24h, e.g. 1m");
        else
          j->refresh_interval_ms = ms;
      }
      if (j->key_sources.n == 0)
        rc = env_error(&eb, "TEMPORAL_JWT_KEY_SOURCE1",
                       "JWT settings given but no key source");
    }
  }
  cfg_strlist_free(&sources);
  if (nomem) {
    cfg_buf_append(&eb, "environment: out of memory\n");
    rc = TG_CONFIG_ERR_NOMEM;
  } else if (rc != 0) {
    rc = TG_CONFIG_ERR_INVALID;
  }
  if (errors && eb.data)
    *errors = eb.data;
  else
    free(eb.data);
  return rc;
}

int tg_config_parse_duration(const char *s, uint64_t *ms) {
  uint64_t v = 0, unit;
  const char *c = s;

  if (!s || *c < '0' || *c > '9')
    return -1;
  for (; *c >= '0' && *c <= '9'; c++) {
    unsigned d = (unsigned)(*c - '0');
    if (v > (UINT64_MAX - d) / 10)
      return -1;
    v = v * 10 + d;
  }
  if (strcmp(c, "ms") == 0)
    unit = 1;
  else if (strcmp(c, "s") == 0)
    unit = 1000;
  else if (strcmp(c, "m") == 0)
    unit = 60 * 1000;
  else if (strcmp(c, "h") == 0)
    unit = 60 * 60 * 1000;
  else
    return -1;
  if (v > UINT64_MAX / unit)
    return -1;
  *ms = v * unit;
  return 0;
}

int tg_config_parse_duration_us(const char *s, uint64_t *us) {
  size_t n = s ? strlen(s) : 0;
  uint64_t ms;
  if (n > 2 && strcmp(s + n - 2, "us") == 0) {
    /* the same digits read as milliseconds: one number parser */
    char ms_form[24];
    if (n >= sizeof ms_form)
      return -1;
    memcpy(ms_form, s, n - 2);
    memcpy(ms_form + n - 2, "ms", 3);
    if (tg_config_parse_duration(ms_form, &ms) < 0)
      return -1;
    *us = ms;
    return 0;
  }
  if (tg_config_parse_duration(s, &ms) < 0 || ms > UINT64_MAX / 1000)
    return -1;
  *us = ms * 1000;
  return 0;
}

int tg_config_parse_addr(const char *s, tg_addr *out, const char **err_desc) {
  const char *why = NULL;
  int rc = cfg_parse_addr(s, out, &why);
  if (rc == 0)
    return 0;
  if (err_desc)
    *err_desc = rc == -2 ? "out of memory" : why;
  return -1;
}

void tg_config_free(tg_config *cfg) {
  if (!cfg)
    return;
  free(cfg->listen_address.host);
  if (cfg->listen_tls) {
    free(cfg->listen_tls->cert_file);
    free(cfg->listen_tls->key_file);
    free(cfg->listen_tls->client_ca_file);
    free(cfg->listen_tls);
  }
  for (size_t i = 0; i < cfg->upstream_naddresses; i++)
    free(cfg->upstream_addresses[i].host);
  free(cfg->upstream_addresses);
  if (cfg->upstream_tls) {
    free(cfg->upstream_tls->ca_file);
    free(cfg->upstream_tls->cert_file);
    free(cfg->upstream_tls->key_file);
    free(cfg->upstream_tls->server_name);
    free(cfg->upstream_tls);
  }
  free(cfg->upstream_token_file);
  free(cfg->upstream_token_header);
  free(cfg->upstream_hc_service);
  free(cfg->upstream_resolv_conf);
  if (cfg->admin_address) {
    free(cfg->admin_address->host);
    free(cfg->admin_address);
  }
  tg_authn_cfg_free(cfg->authn);
  cfg_strlist_free(&cfg->disabled_methods);
  for (size_t i = 0; i < cfg->nauthz_rules; i++) {
    tg_authz_rule_cfg *r = &cfg->authz_rules[i];
    cfg_strlist_free(&r->methods);
    cfg_strlist_free(&r->namespaces);
    cfg_strlist_free(&r->subjects);
    cfg_strlist_free(&r->task_queues);
    cfg_strlist_free(&r->workflow_types);
  }
  free(cfg->authz_rules);
  free(cfg->subject_header);
  free(cfg->access_log);
  free(cfg->audit_file);
  free(cfg->file);
  free(cfg);
}
