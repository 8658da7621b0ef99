#include "tg_gen.h"

#include <ctype.h>
#include <errno.h>
#include <openssl/crypto.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "tg_authn.h"
#include "tg_authz.h"
#include "tg_tls.h"

#define TOKEN_MAX 16384

/* The problems found while building a generation, one line each, in the
 * caller's buffer; the lines that do not fit are only counted. */
typedef struct gen_report {
  const tg_config *cfg;
  char *buf;
  size_t cap;
  size_t len;
  unsigned n;
  unsigned dropped;
} gen_report;

/* Room kept at the end of the buffer for the "N more" line. */
#define GEN_TRAILER 48

/* Whether a line already starts with "NAME:LINE:COLUMN: " (a message about
 * the API keys file, which has its own positions). */
static int has_pos(const char *s, size_t len) {
  const char *q = memchr(s, ' ', len);
  if (!q || q - s < 5 || q[-1] != ':')
    return 0;
  q--;
  for (int field = 0; field < 2; field++) {
    const char *d = q;
    while (d > s && isdigit((unsigned char)d[-1]))
      d--;
    if (d == q || d == s || d[-1] != ':')
      return 0;
    q = d - 1;
  }
  return q > s;
}

/* Adds one line of msg (len bytes), prefixed with the FILE:LINE:COLUMN of
 * key when the file named it there. */
static void gen_line(gen_report *r, tg_config_file_key key, const char *msg,
                     size_t len) {
  char pos[64] = "";
  const tg_config_pos *at = key < TG_CFK_COUNT ? &r->cfg->file_at[key] : NULL;
  if (at && at->line && r->cfg->file && !has_pos(msg, len))
    snprintf(pos, sizeof pos, ":%u:%u: ", at->line, at->col);
  size_t file_len = pos[0] ? strlen(r->cfg->file) : 0;
  size_t need = (r->len ? 1 : 0) + file_len + strlen(pos) + len;
  /* The first line goes in even if cut short; later ones only whole. */
  if (r->n > 0 && r->len + need + GEN_TRAILER >= r->cap) {
    r->n++;
    r->dropped++;
    return;
  }
  int w = snprintf(r->buf + r->len, r->cap - r->len, "%s%s%s%.*s",
                   r->len ? "\n" : "", pos[0] ? r->cfg->file : "", pos,
                   (int)len, msg);
  r->len += w > 0 ? (size_t)w : 0;
  if (r->len >= r->cap)
    r->len = r->cap - 1;
  r->n++;
}

/* Adds each line of msg (one or more, '\n'-separated). */
static void gen_problem(gen_report *r, tg_config_file_key key,
                        const char *msg) {
  while (*msg) {
    const char *nl = strchr(msg, '\n');
    size_t len = nl ? (size_t)(nl - msg) : strlen(msg);
    if (len)
      gen_line(r, key, msg, len);
    msg += len + (nl ? 1 : 0);
  }
}

static void gen_tls_problem(void *arg, tg_config_file_key key,
                            const char *msg) {
  gen_problem(arg, key, msg);
}

/* Which file key a message of tg_authn_new() is about: the API keys file's
 * and the plugins' messages start with the file's name. */
static tg_config_file_key authn_key(const tg_authn_cfg *ac, const char *msg) {
  size_t n = ac->api_keys_file ? strlen(ac->api_keys_file) : 0;
  if (n && strncmp(msg, ac->api_keys_file, n) == 0 && msg[n] == ':')
    return TG_CFK_API_KEYS;
  if (strncmp(msg, "plugin ", 7) == 0)
    return TG_CFK_PLUGINS;
  return TG_CFK_COUNT;
}

/* Reads upstream.credentials.bearer_token_file: one token of visible ASCII,
 * trailing white space (a final newline) ignored. Returns "Bearer <token>"
 * (malloc'd) or NULL with the reason in err. */
static char *read_token(const char *path, char *err, size_t errlen) {
  FILE *f = fopen(path, "rb");
  if (!f) {
    snprintf(err, errlen, "upstream.credentials.bearer_token_file: %s: %s",
             path, strerror(errno));
    return NULL;
  }
  char *out = malloc(7 + TOKEN_MAX + 2);
  size_t n = out ? fread(out + 7, 1, TOKEN_MAX + 1, f) : 0;
  int bad = !out || ferror(f);
  fclose(f);
  const char *why = !out            ? "out of memory"
                    : bad           ? "read error"
                    : n > TOKEN_MAX ? "larger than 16 KiB"
                                    : NULL;
  while (!why && n > 0 &&
         (out[7 + n - 1] == '\n' || out[7 + n - 1] == '\r' ||
          out[7 + n - 1] == ' ' || out[7 + n - 1] == '\t'))
    n--;
  if (!why && n == 0)
    why = "empty";
  for (size_t i = 0; !why && i < n; i++)
    if (out[7 + i] < 0x21 || out[7 + i] > 0x7e)
      why = "the token must be one word of visible ASCII characters";
  if (why) {
    snprintf(err, errlen, "upstream.credentials.bearer_token_file: %s: %s",
             path, why);
    free(out);
    return NULL;
  }
  memcpy(out, "Bearer ", 7);
  out[7 + n] = '\0';
  return out;
}

tg_gen *tg_gen_new(tg_config *cfg, uint64_t id, struct event_base *base,
                   const tg_gen *prev, char *err, size_t errlen) {
  tg_gen *g = calloc(1, sizeof *g);
  if (!g) {
    snprintf(err, errlen, "out of memory");
    tg_config_free(cfg);
    return NULL;
  }
  atomic_init(&g->refs, 1);
  g->id = id;
  g->cfg = cfg;
  gen_report r = {.cfg = cfg, .buf = err, .cap = errlen};
  if (errlen)
    err[0] = '\0';
  /* Every part is built even after another failed, so that one run reports
   * every file that does not load. */
  char why[1024];
  if (cfg->listen_tls)
    g->server_ctx = tg_tls_server_ctx_new(cfg->listen_tls, gen_tls_problem, &r);
  if (cfg->upstream_tls)
    g->client_ctx =
        tg_tls_client_ctx_new(cfg->upstream_tls, gen_tls_problem, &r);
  if (cfg->authn && cfg->authn->jwt) {
    g->keystore = tg_keystore_new(
        base, cfg->authn->jwt, prev ? prev->keystore : NULL, why, sizeof why);
    if (!g->keystore) {
      char line[sizeof why + 32];
      snprintf(line, sizeof line, "authentication.jwt: %s", why);
      gen_problem(&r, TG_CFK_JWT, line);
    }
  }
  if (cfg->authn &&
      !(g->authn = tg_authn_new(cfg, g->keystore, why, sizeof why))) {
    tg_config_file_key key = authn_key(cfg->authn, why);
    char line[sizeof why + 32];
    /* "PATH: cannot read: ..." does not say which key named PATH. */
    snprintf(line, sizeof line, "%s%s",
             key == TG_CFK_API_KEYS && !has_pos(why, strlen(why))
                 ? "authentication.api_keys_file: "
                 : "",
             why);
    gen_problem(&r, key, line);
  }
  if (!(g->authz = tg_authz_new(cfg, why, sizeof why))) {
    char line[sizeof why + 32];
    snprintf(line, sizeof line, "authorization: %s", why);
    gen_problem(&r, TG_CFK_COUNT, line);
  }
  if (cfg->upstream_token_file) {
    if (!(g->upstream_cred =
              read_token(cfg->upstream_token_file, why, sizeof why)))
      gen_problem(&r, TG_CFK_UPSTREAM_TOKEN, why);
    g->upstream_cred_header = cfg->upstream_token_header
                                  ? cfg->upstream_token_header
                                  : "authorization";
  }
  if (r.n == 0)
    return g;
  if (r.dropped && r.len + 1 < r.cap)
    snprintf(r.buf + r.len, r.cap - r.len, "\n(%u more problems not shown)",
             r.dropped);
  atomic_store(&g->refs, 0);
  tg_gen_free(g);
  return NULL;
}

tg_gen *tg_gen_ref(tg_gen *g) {
  atomic_fetch_add_explicit(&g->refs, 1, memory_order_relaxed);
  return g;
}

void tg_gen_unref(tg_gen *g) {
  if (g)
    atomic_fetch_sub_explicit(&g->refs, 1, memory_order_release);
}

unsigned tg_gen_refs(const tg_gen *g) {
  return atomic_load_explicit(&g->refs, memory_order_acquire);
}

void tg_gen_strip(tg_gen *g) {
  tg_authz_free(g->authz);
  tg_authn_free(g->authn);
  tg_keystore_free(g->keystore);
  SSL_CTX_free(g->server_ctx);
  SSL_CTX_free(g->client_ctx);
  g->authz = NULL;
  g->authn = NULL;
  g->keystore = NULL;
  g->server_ctx = g->client_ctx = NULL;
  if (g->upstream_cred)
    OPENSSL_cleanse(g->upstream_cred, strlen(g->upstream_cred));
  free(g->upstream_cred);
  g->upstream_cred = NULL;
}

void tg_gen_free(tg_gen *g) {
  if (!g)
    return;
  tg_gen_strip(g);
  tg_config_free(g->cfg);
  free(g);
}

static int str_eq(const char *a, const char *b) {
  return a == b || (a && b && strcmp(a, b) == 0);
}

static int addr_eq(const tg_addr *a, const tg_addr *b) {
  return a == b || (a && b && a->port == b->port && str_eq(a->host, b->host));
}

int tg_gen_restart_only(const tg_config *cur, const tg_config *next, char *err,
                        size_t errlen) {
  const char *what = NULL;
  if (!addr_eq(&cur->listen_address, &next->listen_address))
    what = "listen.address";
  else if (!cur->listen_tls != !next->listen_tls)
    what = "listen.tls (on or off)";
  else if (cur->workers != next->workers)
    what = "workers";
  else if (!addr_eq(cur->admin_address, next->admin_address))
    what = "admin.address";
  else if (cur->metrics_max_namespaces != next->metrics_max_namespaces)
    what = "admin.metrics_max_namespaces";
  else if (cur->upstream_naddresses != next->upstream_naddresses)
    what = "upstream.addresses";
  else if (!cur->upstream_tls != !next->upstream_tls)
    what = "upstream.tls (on or off)";
  else if (cur->upstream_tls && !str_eq(cur->upstream_tls->server_name,
                                        next->upstream_tls->server_name))
    what = "upstream.tls.server_name";
  else if (cur->upstream_max_connections != next->upstream_max_connections)
    what = "upstream.max_connections";
  else if (cur->upstream_connect_timeout_ms !=
           next->upstream_connect_timeout_ms)
    what = "upstream.connect_timeout";
  else if (cur->upstream_hc_enabled != next->upstream_hc_enabled ||
           cur->upstream_hc_interval_ms != next->upstream_hc_interval_ms ||
           cur->upstream_hc_timeout_ms != next->upstream_hc_timeout_ms ||
           !str_eq(cur->upstream_hc_service, next->upstream_hc_service) ||
           cur->upstream_hc_unhealthy_threshold !=
               next->upstream_hc_unhealthy_threshold ||
           cur->upstream_hc_healthy_threshold !=
               next->upstream_hc_healthy_threshold)
    what = "upstream.health_check";
  else if (cur->upstream_dns_refresh_ms != next->upstream_dns_refresh_ms)
    what = "upstream.dns_refresh_interval";
  else if (!str_eq(cur->upstream_resolv_conf, next->upstream_resolv_conf))
    what = "upstream.resolv_conf";
  else if (!str_eq(cur->audit_file, next->audit_file))
    what = "audit.file";
  else if (!str_eq(cur->access_log, next->access_log))
    what = "logging.access_log";
  for (size_t i = 0; !what && i < cur->upstream_naddresses; i++)
    if (!addr_eq(&cur->upstream_addresses[i], &next->upstream_addresses[i]))
      what = "upstream.addresses";
  if (!what)
    return 0;
  snprintf(err, errlen,
           "%s changed: that takes a restart; the reload is refused (revert "
           "it, or restart tgate)",
           what);
  return -1;
}
