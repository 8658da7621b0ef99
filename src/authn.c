#include "tg_authn.h"

#include <stdatomic.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>

#include "tg_apikeys.h"
#include "tg_certmap.h"
#include "tg_jwt.h"
#include "tg_log.h"
#include "tg_plugins.h"
#include "tg_tokencache.h"

struct tg_authn {
  const tg_config *cfg;
  const tg_authn_cfg *ac;
  tg_keystore *keystore;
  tg_certmap *certmap; /* NULL without rules */
  tg_perm_regex *regex;
  tg_perm_opts perm;
  tg_jwt_opts jwt;
  tg_apikeys_file *keys;
  tg_plugins *plugins; /* NULL without plugins */
  size_t token_header_len, api_key_header_len;
};

struct tg_authn_local {
  const tg_authn *a;
  tg_tokencache *cache;
  tg_authn_counters *n; /* the owner's; outlives this */
};

tg_authn *tg_authn_new(const tg_config *cfg, tg_keystore *keystore, char *err,
                       size_t errlen) {
  const tg_authn_cfg *ac = cfg->authn;
  tg_authn *a = calloc(1, sizeof *a);
  if (!a) {
    snprintf(err, errlen, "out of memory");
    return NULL;
  }
  a->cfg = cfg;
  a->ac = ac;
  a->keystore = keystore;
  a->token_header_len = strlen(ac->token_header);
  a->api_key_header_len = ac->api_key_header ? strlen(ac->api_key_header) : 0;
  a->perm.system_names = (const char *const *)ac->system_namespaces.v;
  a->perm.nsystem_names = ac->system_namespaces.n;
  if (ac->jwt) {
    const tg_jwt_cfg *j = ac->jwt;
    if (j->permissions_regex) {
      char why[256];
      a->regex = tg_perm_regex_new(j->permissions_regex, why, sizeof why);
      if (!a->regex) {
        snprintf(err, errlen, "authentication.jwt.permissions_regex: %s", why);
        goto fail;
      }
      a->perm.regex = a->regex;
    }
    a->jwt.max_len = j->max_token_bytes;
    a->jwt.leeway_s = (int64_t)(j->leeway_ms / 1000);
    a->jwt.exp_optional = !j->require_exp;
    a->jwt.issuer = j->issuer;
    a->jwt.audiences = (const char *const *)j->audiences.v;
    a->jwt.naudiences = j->audiences.n;
    a->jwt.subject_claim = j->subject_claim;
    a->jwt.permissions_claim = j->permissions_claim;
    a->jwt.perm = &a->perm;
  }
  if (ac->ncert_rules) {
    a->certmap = tg_certmap_new();
    if (!a->certmap) {
      snprintf(err, errlen, "out of memory");
      goto fail;
    }
    for (size_t i = 0; i < ac->ncert_rules; i++) {
      const tg_cert_rule_cfg *r = &ac->cert_rules[i];
      tg_cert_rule_conf rc;
      char why[256];
      memset(&rc, 0, sizeof rc);
      for (int k = 0; k < TG_CERT_MATCH_FIELDS && k < TG_CF_COUNT; k++)
        rc.match[k] = r->match[k];
      rc.subject = r->subject;
      rc.permissions = (const char *const *)r->permissions.v;
      rc.npermissions = r->permissions.n;
      if (tg_certmap_add(a->certmap, &rc, why, sizeof why) != 0) {
        snprintf(err, errlen, "authentication.client_certs[%zu] (line %zu): %s",
                 i, r->line, why);
        goto fail;
      }
    }
  }
  if (ac->api_keys_file) {
    char *errors = NULL;
    if (tg_apikeys_file_load(ac->api_keys_file, &a->keys, &errors) != 0) {
      snprintf(err, errlen, "%s", errors ? errors : "cannot load API keys");
      size_t n = strlen(err);
      if (n && err[n - 1] == '\n')
        err[n - 1] = '\0';
      free(errors);
      goto fail;
    }
  }
  if (ac->nplugins &&
      !(a->plugins = tg_plugins_load(ac->plugins, ac->nplugins, err, errlen)))
    goto fail;
  return a;
fail:
  tg_authn_free(a);
  return NULL;
}

void tg_authn_free(tg_authn *a) {
  if (!a)
    return;
  tg_certmap_free(a->certmap);
  tg_perm_regex_free(a->regex);
  tg_apikeys_file_free(a->keys);
  tg_plugins_free(a->plugins);
  free(a);
}

tg_authn_local *tg_authn_local_new(const tg_authn *a, tg_authn_counters *n) {
  tg_authn_local *l = calloc(1, sizeof *l);
  if (!l)
    return NULL;
  l->a = a;
  l->n = n;
  size_t cap = a->ac->jwt ? a->ac->jwt->cache_size : 0;
  l->cache = tg_tokencache_new(cap);
  if (!l->cache) {
    free(l);
    return NULL;
  }
  return l;
}

void tg_authn_local_free(tg_authn_local *l) {
  if (!l)
    return;
  tg_tokencache_free(l->cache);
  free(l);
}

int tg_authn_is_exempt(const tg_authn *a, const char *path, size_t len) {
  const tg_strlist *m = &a->ac->exempt_methods;
  for (size_t i = 0; i < m->n; i++)
    if (strlen(m->v[i]) == len && memcmp(m->v[i], path, len) == 0)
      return 1;
  return 0;
}

int tg_authn_cert_claims(const tg_authn *a, X509 *cert, tg_claims *out) {
  out->kinds |= TG_CRED_CLIENT_CERT;
  if (!a->certmap)
    return 0;
  tg_cert_fields *f = NULL;
  if (tg_cert_fields_from_x509(cert, &f) != 0)
    return TG_CLAIMS_ERR_NOMEM;
  int rv = tg_certmap_apply(a->certmap, f, &a->perm, out);
  tg_cert_fields_free(f);
  return rv < 0 ? rv : 0;
}

int tg_authn_peer_claims(const tg_authn *a, SSL *ssl, tg_claims *out) {
  if (!ssl)
    return 0;
  X509 *cert = SSL_get0_peer_certificate(ssl);
  if (!cert || SSL_get_verify_result(ssl) != X509_V_OK)
    return 0;
  return tg_authn_cert_claims(a, cert, out);
}

/* Finds the single value of header name (nlen bytes); -1 when it occurs
 * more than once. */
static int one_header(const tg_hdrs *h, const char *name, size_t nlen,
                      const char **v, size_t *len) {
  int found = 0;
  *v = NULL;
  *len = 0;
  for (size_t i = 0; i < h->n; i++) {
    const tg_hdr_ent *e = &h->ents[i];
    if (e->name_len != nlen || memcmp(h->arena + e->name_off, name, nlen) != 0)
      continue;
    if (found++)
      return -1;
    *v = h->arena + e->value_off;
    *len = e->value_len;
  }
  return found;
}

static int verify_jwt(const tg_authn *a, tg_authn_local *l, const char *tok,
                      size_t len, int64_t now, tg_claims *out,
                      const char **reason) {
  uint64_t gen = 0;
  tg_keyset *ks = tg_keystore_get(a->keystore, &gen);
  if (!ks) {
    *reason = "token verification keys not loaded yet";
    return TG_AUTHN_UNAVAILABLE;
  }
  const tg_claims *hit = tg_tokencache_get(l->cache, tok, len, gen, now);
  int rv;
  if (hit) {
    atomic_fetch_add_explicit(&l->n->cache_hits, 1, memory_order_relaxed);
    rv = tg_claims_merge(out, hit) == 0 ? TG_AUTHN_OK : TG_AUTHN_UNAVAILABLE;
    if (rv != TG_AUTHN_OK)
      *reason = "out of memory";
    goto end;
  }
  atomic_fetch_add_explicit(&l->n->cache_misses, 1, memory_order_relaxed);
  tg_claims c;
  tg_claims_init(&c);
  int vr = tg_jwt_verify(tok, len, ks, &a->jwt, now, &c, reason);
  if (vr == TG_JWT_ERR_UNKNOWN_KID)
    tg_keystore_request_refresh(a->keystore);
  if (vr == TG_JWT_ERR_NOMEM) {
    rv = TG_AUTHN_UNAVAILABLE;
  } else if (vr != 0) {
    rv = TG_AUTHN_UNAUTHENTICATED;
  } else {
    atomic_fetch_add_explicit(&l->n->verified, 1, memory_order_relaxed);
    /* exp may be as late as INT64_MAX ("never"): saturate. */
    int64_t until = now + 60;
    if (c.not_after)
      until = c.not_after > INT64_MAX - a->jwt.leeway_s
                  ? INT64_MAX
                  : c.not_after + a->jwt.leeway_s;
    tg_tokencache_put(l->cache, tok, len, gen, until, &c);
    rv = tg_claims_merge(out, &c) == 0 ? TG_AUTHN_OK : TG_AUTHN_UNAVAILABLE;
    if (rv != TG_AUTHN_OK)
      *reason = "out of memory";
  }
  tg_claims_clear(&c);
end:
  tg_keyset_unref(ks);
  return rv;
}

static int check_api_key(const tg_authn *a, const char *key, size_t len,
                         int64_t now, tg_claims *out, const char **reason) {
  if (!a->keys) {
    *reason = "API keys are not accepted here";
    return TG_AUTHN_UNAUTHENTICATED;
  }
  int rv = tg_apikeys_check(a->keys, key, len, now, &a->perm, out, reason);
  if (rv == TG_CLAIMS_ERR_NOMEM) {
    *reason = "out of memory";
    return TG_AUTHN_UNAVAILABLE;
  }
  return rv == 0 ? TG_AUTHN_OK : TG_AUTHN_UNAUTHENTICATED;
}

int tg_authn_call(const tg_authn *a, tg_authn_local *l, const tg_hdrs *h,
                  SSL *ssl, const tg_claims *peer, int64_t now, tg_claims *out,
                  const char **reason) {
  const tg_authn_cfg *ac = a->ac;
  const char *v;
  size_t len;
  int rv = TG_AUTHN_OK;

  if (peer && tg_claims_merge(out, peer) != 0) {
    *reason = "out of memory";
    return TG_AUTHN_UNAVAILABLE;
  }
  int n = one_header(h, ac->token_header, a->token_header_len, &v, &len);
  if (n < 0) {
    *reason = "more than one authorization header";
    rv = TG_AUTHN_UNAUTHENTICATED;
    goto end;
  }
  if (n == 1 && len > 0) {
    if (len < 7 || strncasecmp(v, "bearer ", 7) != 0) {
      *reason = "authorization header is not \"Bearer <token>\"";
      rv = TG_AUTHN_UNAUTHENTICATED;
      goto end;
    }
    const char *tok = v + 7;
    size_t tlen = len - 7;
    if (tlen == 0) {
      *reason = "empty bearer token";
      rv = TG_AUTHN_UNAUTHENTICATED;
      goto end;
    }
    /* Exactly one space after the scheme, and none in the token (neither
     * JWTs nor API keys have any). */
    if (memchr(tok, ' ', tlen) || memchr(tok, '\t', tlen)) {
      *reason = "authorization header is not \"Bearer <token>\"";
      rv = TG_AUTHN_UNAUTHENTICATED;
      goto end;
    }
    /* A dot makes it a JWT (every token tg_jwt_looks_like accepts has
     * two). Its format is checked only by tg_jwt_verify, after the cache:
     * a cached token was verified under the current keys and has not
     * expired, so checking it again would be wasted. */
    if (memchr(tok, '.', tlen)) {
      if (!ac->jwt) {
        *reason = "JWTs are not accepted here";
        rv = TG_AUTHN_UNAUTHENTICATED;
        goto end;
      }
      rv = verify_jwt(a, l, tok, tlen, now, out, reason);
    } else {
      rv = check_api_key(a, tok, tlen, now, out, reason);
    }
    if (rv != TG_AUTHN_OK)
      goto end;
  }
  if (ac->api_key_header) {
    n = one_header(h, ac->api_key_header, a->api_key_header_len, &v, &len);
    if (n < 0) {
      *reason = "more than one API key header";
      rv = TG_AUTHN_UNAUTHENTICATED;
      goto end;
    }
    if (n == 1 && len > 0 &&
        (rv = check_api_key(a, v, len, now, out, reason)) != TG_AUTHN_OK)
      goto end;
  }
  if (a->plugins) {
    size_t plen = 0;
    const char *path = tg_hdrs_get(h, ":path", &plen);
    int pr = tg_plugins_apply(a->plugins, path ? path : "", plen, h, ssl, out,
                              reason);
    if (pr == TG_CLAIMS_ERR_NOMEM) {
      *reason = "out of memory";
      rv = TG_AUTHN_UNAVAILABLE;
      goto end;
    }
    if (pr != 0) {
      rv = TG_AUTHN_UNAUTHENTICATED;
      goto end;
    }
  }
  uint32_t missing = ac->require & ~out->kinds;
  if (missing) {
    *reason = (missing & TG_AUTHN_CLIENT_CERT) ? "client certificate required"
              : (missing & TG_AUTHN_JWT)       ? "bearer token (JWT) required"
              : (missing & TG_AUTHN_API_KEY)
                  ? "API key required"
                  : "no plugin recognised a credential";
    rv = TG_AUTHN_UNAUTHENTICATED;
  }
end:
  if (rv != TG_AUTHN_OK) {
    atomic_fetch_add_explicit(&l->n->rejected, 1, memory_order_relaxed);
    tg_claims_clear(out);
    tg_claims_init(out);
  }
  return rv;
}
