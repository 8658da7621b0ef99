/*
 * tg_certmap: the client-certificate ClaimMapper (see include/tg_certmap.h).
 *
 * A pattern is kept as a literal prefix followed by segments, each a
 * wildcard and the literal after it. Matching is a table over (segment,
 * offset) built from the end, so a value costs O(segments x length) however
 * the wildcards are placed: certificate values reach us from clients, and a
 * backtracking glob is exponential in the worst case.
 */
#include "tg_certmap.h"

#include <openssl/err.h>
#include <openssl/x509v3.h>
#include <stdarg.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

/* Per pattern; bounds the matcher's table at (N + 1) x value length bytes. */
#define CM_MAX_WILDCARDS 32

static const char *const cm_field_names[TG_CF_COUNT] = {
    "cn", "o", "ou", "dns_san", "uri_san", "email_san"};

typedef struct cm_slice {
  const char *p;
  size_t len;
} cm_slice;

typedef struct cm_pattern {
  char *src;
  cm_slice prefix;
  cm_slice *segs; /* the literal after each wildcard; only the last may be "" */
  size_t nsegs;
  size_t cap0; /* index of this pattern's first capture in the rule */
} cm_pattern;

enum { CM_PART_LIT, CM_PART_CAP, CM_PART_FIELD };

typedef struct cm_part {
  int kind;
  cm_slice lit;
  size_t idx; /* capture index (0-based) or field */
} cm_part;

typedef struct cm_template {
  char *src;
  cm_part *parts;
  size_t nparts;
  int any_ph; /* has a placeholder */
  int ns_ph;  /* a placeholder comes before the first literal ':' */
} cm_template;

typedef struct cm_rule {
  int has[TG_CF_COUNT];
  cm_pattern pat[TG_CF_COUNT];
  cm_slice *capnames; /* per capture; {NULL, 0} for '*' */
  size_t ncap;
  int has_subject;
  cm_template subject;
  cm_template *perms;
  size_t nperms;
} cm_rule;

struct tg_certmap {
  cm_rule *rules;
  size_t n;
  size_t cap;
};

typedef struct cm_buf {
  char *data;
  size_t len;
  size_t cap;
} cm_buf;

typedef struct cm_fields_block {
  tg_cert_fields pub; /* first, so that tg_cert_fields_free() finds us */
  char **vals[TG_CF_COUNT];
  size_t cap[TG_CF_COUNT];
} cm_fields_block;

static void cm_err(char *err, size_t errlen, const char *fmt, ...) {
  if (!err || errlen == 0)
    return;
  va_list ap;
  va_start(ap, fmt);
  vsnprintf(err, errlen, fmt, ap);
  va_end(ap);
}

static char *cm_strdup(const char *s) {
  size_t n = strlen(s) + 1;
  char *d = malloc(n);
  if (d)
    memcpy(d, s, n);
  return d;
}

static int cm_is_name_start(char c) {
  return (c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z') || c == '_';
}

static int cm_is_name_char(char c) {
  return cm_is_name_start(c) || (c >= '0' && c <= '9');
}

static int cm_field_by_name(const char *s, size_t len) {
  for (int f = 0; f < TG_CF_COUNT; f++)
    if (strlen(cm_field_names[f]) == len &&
        memcmp(cm_field_names[f], s, len) == 0)
      return f;
  return -1;
}

static void cm_pattern_clear(cm_pattern *p) {
  free(p->segs);
  free(p->src);
  memset(p, 0, sizeof(*p));
}

static void cm_template_clear(cm_template *t) {
  free(t->parts);
  free(t->src);
  memset(t, 0, sizeof(*t));
}

static void cm_rule_clear(cm_rule *r) {
  for (int f = 0; f < TG_CF_COUNT; f++)
    cm_pattern_clear(&r->pat[f]);
  free(r->capnames);
  cm_template_clear(&r->subject);
  for (size_t i = 0; i < r->nperms; i++)
    cm_template_clear(&r->perms[i]);
  free(r->perms);
  memset(r, 0, sizeof(*r));
}

static int cm_add_capture(cm_rule *r, const char *name, size_t len) {
  cm_slice *grown = realloc(r->capnames, (r->ncap + 1) * sizeof(*grown));
  if (!grown)
    return -1;
  r->capnames = grown;
  r->capnames[r->ncap].p = name;
  r->capnames[r->ncap].len = len;
  r->ncap++;
  return 0;
}

/* Parses conf's pattern for field f into r->pat[f], numbering its captures
 * after those of the earlier fields. Returns 0 or -1 with err set. */
static int cm_pattern_parse(cm_rule *r, int f, const char *pattern, char *err,
                            size_t errlen) {
  cm_pattern *p = &r->pat[f];
  const char *fname = cm_field_names[f];
  size_t bound = 1;

  p->cap0 = r->ncap;
  if (!*pattern) {
    cm_err(err, errlen, "%s: empty pattern", fname);
    return -1;
  }
  if (!(p->src = cm_strdup(pattern)))
    goto nomem;
  for (const char *s = p->src; *s; s++)
    bound += *s == '*' || *s == '{';
  if (!(p->segs = calloc(bound, sizeof(*p->segs))))
    goto nomem;

  const char *s = p->src, *lit = s;
  cm_slice *cur = &p->prefix;
  int after_wildcard = 0;
  while (*s) {
    const char *name = NULL;
    size_t namelen = 0, taken;
    if (*s == '*') {
      taken = 1;
    } else if (*s == '{') {
      name = s + 1;
      while (cm_is_name_char(name[namelen]))
        namelen++;
      if (!namelen || !cm_is_name_start(name[0]) || name[namelen] != '}') {
        cm_err(err, errlen,
               "%s: '{' must open a capture \"{name}\" (a letter or '_', "
               "then letters, digits, '_')",
               fname);
        return -1;
      }
      taken = namelen + 2;
    } else {
      s++;
      continue;
    }
    /* "**" reads as "any depth" in most globs; here it would be two
     * one-or-more captures with no defined split, so it is refused. */
    if (after_wildcard && s == lit) {
      cm_err(err, errlen, "%s: two wildcards in a row", fname);
      return -1;
    }
    if (p->nsegs == CM_MAX_WILDCARDS) {
      cm_err(err, errlen, "%s: more than %d wildcards", fname,
             CM_MAX_WILDCARDS);
      return -1;
    }
    if (name) {
      if (cm_field_by_name(name, namelen) >= 0) {
        cm_err(err, errlen, "%s: capture {%.*s} has the name of a field", fname,
               (int)namelen, name);
        return -1;
      }
      for (size_t i = 0; i < r->ncap; i++) {
        if (r->capnames[i].len == namelen &&
            memcmp(r->capnames[i].p, name, namelen) == 0) {
          cm_err(err, errlen, "%s: capture {%.*s} is named twice", fname,
                 (int)namelen, name);
          return -1;
        }
      }
    }
    if (cm_add_capture(r, name, namelen) != 0)
      goto nomem;
    cur->p = lit;
    cur->len = (size_t)(s - lit);
    cur = &p->segs[p->nsegs++];
    s += taken;
    lit = s;
    after_wildcard = 1;
  }
  cur->p = lit;
  cur->len = (size_t)(s - lit);
  return 0;

nomem:
  cm_err(err, errlen, "out of memory");
  return -1;
}

/* Parses template src (what names it in messages). Returns 0 or -1 with
 * err set; t is left empty on failure. */
static int cm_template_parse(cm_template *t, const cm_rule *r, const char *src,
                             const char *what, char *err, size_t errlen) {
  size_t bound = 1;
  int seen_colon = 0;

  if (!(t->src = cm_strdup(src)))
    goto nomem;
  for (const char *s = t->src; *s; s++)
    bound += 2 * (*s == '{');
  if (!(t->parts = calloc(bound, sizeof(*t->parts))))
    goto nomem;

  const char *s = t->src;
  while (*s) {
    cm_part *part = &t->parts[t->nparts];
    if (*s != '{') {
      const char *end = strchr(s, '{');
      if (!end)
        end = s + strlen(s);
      part->kind = CM_PART_LIT;
      part->lit.p = s;
      part->lit.len = (size_t)(end - s);
      if (memchr(s, ':', part->lit.len))
        seen_colon = 1;
      t->nparts++;
      s = end;
      continue;
    }
    const char *name = s + 1, *close = strchr(name, '}');
    if (!close) {
      cm_err(err, errlen, "%s: '{' without a closing '}'", what);
      goto fail;
    }
    size_t len = (size_t)(close - name), num = 0, digits = 0;
    while (digits < len && name[digits] >= '0' && name[digits] <= '9' &&
           num <= r->ncap)
      num = num * 10 + (size_t)(name[digits++] - '0');
    int field = cm_field_by_name(name, len);
    part->kind = -1;
    if (len && digits == len) {
      if (num >= 1 && num <= r->ncap) {
        part->kind = CM_PART_CAP;
        part->idx = num - 1;
      }
    } else {
      for (size_t i = 0; i < r->ncap; i++) {
        if (r->capnames[i].p && r->capnames[i].len == len &&
            memcmp(r->capnames[i].p, name, len) == 0) {
          part->kind = CM_PART_CAP;
          part->idx = i;
        }
      }
      if (part->kind < 0 && field >= 0) {
        part->kind = CM_PART_FIELD;
        part->idx = (size_t)field;
      }
    }
    if (part->kind < 0) {
      cm_err(err, errlen, "%s: unknown placeholder {%.*s}", what,
             (int)(len > 64 ? 64 : len), name);
      goto fail;
    }
    t->any_ph = 1;
    if (!seen_colon)
      t->ns_ph = 1;
    t->nparts++;
    s = close + 1;
  }
  return 0;

nomem:
  cm_err(err, errlen, "out of memory");
fail:
  cm_template_clear(t);
  return -1;
}

tg_certmap *tg_certmap_new(void) {
  return calloc(1, sizeof(tg_certmap));
}

void tg_certmap_free(tg_certmap *m) {
  if (!m)
    return;
  for (size_t i = 0; i < m->n; i++)
    cm_rule_clear(&m->rules[i]);
  free(m->rules);
  free(m);
}

int tg_certmap_add(tg_certmap *m, const tg_cert_rule_conf *conf, char *err,
                   size_t errlen) {
  cm_rule r;
  int any = 0;
  char what[48];

  memset(&r, 0, sizeof(r));
  if (!m || !conf) {
    cm_err(err, errlen, "no rule");
    return -1;
  }
  for (int f = 0; f < TG_CF_COUNT; f++) {
    if (!conf->match[f])
      continue;
    any = 1;
    r.has[f] = 1;
    if (cm_pattern_parse(&r, f, conf->match[f], err, errlen) != 0)
      goto fail;
  }
  if (!any) {
    cm_err(err, errlen,
           "a rule must match at least one of cn, o, ou, dns_san, uri_san, "
           "email_san");
    goto fail;
  }
  if (conf->subject) {
    if (cm_template_parse(&r.subject, &r, conf->subject, "subject", err,
                          errlen) != 0)
      goto fail;
    r.has_subject = 1;
  }
  if (conf->npermissions) {
    if (!conf->permissions) {
      cm_err(err, errlen, "no permissions array");
      goto fail;
    }
    if (!(r.perms = calloc(conf->npermissions, sizeof(*r.perms))))
      goto nomem;
    for (size_t i = 0; i < conf->npermissions; i++) {
      snprintf(what, sizeof(what), "permissions[%zu]", i);
      if (!conf->permissions[i]) {
        cm_err(err, errlen, "%s: missing", what);
        goto fail;
      }
      if (cm_template_parse(&r.perms[i], &r, conf->permissions[i], what, err,
                            errlen) != 0)
        goto fail;
      r.nperms = i + 1;
    }
  }
  if (m->n == m->cap) {
    size_t cap = m->cap ? m->cap * 2 : 4;
    cm_rule *grown = cap > SIZE_MAX / sizeof(*grown)
                         ? NULL
                         : realloc(m->rules, cap * sizeof(*grown));
    if (!grown)
      goto nomem;
    m->rules = grown;
    m->cap = cap;
  }
  m->rules[m->n++] = r;
  return 0;

nomem:
  cm_err(err, errlen, "out of memory");
fail:
  cm_rule_clear(&r);
  return -1;
}

/* Does literal lit occur at s[e..] and segments k+1.. match after it? */
static int cm_seg_at(const char *s, size_t m, const cm_slice *lit,
                     const unsigned char *next, size_t e) {
  return e + lit->len <= m && memcmp(s + e, lit->p, lit->len) == 0 &&
         next[e + lit->len];
}

/* Matches value v (n bytes) against p, writing p's captures to caps.
 * Returns 1 on a match, 0 on none, -1 when out of memory. */
static int cm_pattern_match(const cm_pattern *p, const char *v, size_t n,
                            cm_slice *caps) {
  if (n < p->prefix.len || memcmp(v, p->prefix.p, p->prefix.len) != 0)
    return 0;
  if (p->nsegs == 0)
    return n == p->prefix.len;

  const char *s = v + p->prefix.len;
  size_t m = n - p->prefix.len, w = m + 1, k = p->nsegs;
  if (w > SIZE_MAX / (k + 1))
    return -1;
  /* good[k * w + q]: segments k.. match s[q..m). */
  unsigned char *good = calloc(k + 1, w);
  if (!good)
    return -1;
  good[k * w + m] = 1;
  while (k-- > 0) {
    const unsigned char *next = good + (k + 1) * w;
    unsigned char *cur = good + k * w;
    size_t nearest = SIZE_MAX, slash = m;
    for (size_t q = w; q-- > 0;) {
      if (q < m && s[q] == '/')
        slash = q;
      cur[q] = q < m && s[q] != '/' && nearest <= slash;
      if (cm_seg_at(s, m, &p->segs[k], next, q))
        nearest = q;
    }
  }
  int ok = good[0];
  size_t q = 0;
  for (k = 0; ok && k < p->nsegs; k++) {
    const unsigned char *next = good + (k + 1) * w;
    size_t slash = q;
    while (slash < m && s[slash] != '/')
      slash++;
    size_t e = slash;
    while (!cm_seg_at(s, m, &p->segs[k], next, e))
      e--;
    caps[p->cap0 + k].p = s + q;
    caps[p->cap0 + k].len = e - q;
    q = e + p->segs[k].len;
  }
  free(good);
  return ok;
}

/* Matches every field r names; val[f] becomes the value that matched, or the
 * certificate's first value for a field r does not name. Returns 1, 0, or
 * -1 when out of memory. */
static int cm_rule_match(const cm_rule *r, const tg_cert_fields *f,
                         cm_slice *caps, const char **val) {
  for (int fld = 0; fld < TG_CF_COUNT; fld++) {
    val[fld] = f->nvalues[fld] ? f->values[fld][0] : NULL;
    if (!r->has[fld])
      continue;
    val[fld] = NULL;
    for (size_t i = 0; i < f->nvalues[fld] && !val[fld]; i++) {
      const char *v = f->values[fld][i];
      int rc = cm_pattern_match(&r->pat[fld], v, strlen(v), caps);
      if (rc < 0)
        return -1;
      if (rc)
        val[fld] = v;
    }
    if (!val[fld])
      return 0;
  }
  return 1;
}

static int cm_buf_add(cm_buf *b, const char *s, size_t len) {
  if (len > SIZE_MAX - b->len - 1)
    return -1;
  if (b->len + len + 1 > b->cap) {
    size_t cap = b->cap ? b->cap : 64;
    while (cap < b->len + len + 1)
      cap = cap > SIZE_MAX / 2 ? b->len + len + 1 : cap * 2;
    char *grown = realloc(b->data, cap);
    if (!grown)
      return -1;
    b->data = grown;
    b->cap = cap;
  }
  if (len)
    memcpy(b->data + b->len, s, len);
  b->len += len;
  b->data[b->len] = '\0';
  return 0;
}

/* Expands t into b. Returns 1, 0 when a field it names has no value in
 * this certificate, or -1 when out of memory. */
static int cm_expand(const cm_template *t, const cm_slice *caps,
                     const char *const *val, cm_buf *b) {
  b->len = 0;
  if (cm_buf_add(b, "", 0) != 0)
    return -1;
  for (size_t i = 0; i < t->nparts; i++) {
    const cm_part *part = &t->parts[i];
    cm_slice piece = part->lit;
    if (part->kind == CM_PART_CAP) {
      piece = caps[part->idx];
    } else if (part->kind == CM_PART_FIELD) {
      if (!val[part->idx])
        return 0;
      piece.p = val[part->idx];
      piece.len = strlen(piece.p);
    }
    if (cm_buf_add(b, piece.p, piece.len) != 0)
      return -1;
  }
  return 1;
}

/* A permission whose namespace may hold certificate text is applied to a
 * scratch value first and dropped if it reached the system scope. With a
 * permissions regex any placeholder counts, since the regex may pick its
 * namespace from anywhere in the string. */
static int cm_apply_perm(const cm_template *t, const char *s, size_t len,
                         const tg_perm_opts *popts, tg_claims *out) {
  int tainted = popts && popts->regex ? t->any_ph : t->ns_ph;
  if (!tainted)
    return tg_perm_apply(out, s, len, popts) < 0 ? -1 : 0;
  tg_claims tmp;
  tg_claims_init(&tmp);
  int rc = tg_perm_apply(&tmp, s, len, popts) < 0 ? -1 : 0;
  if (rc == 0 && tmp.system == 0)
    rc = tg_claims_merge(out, &tmp) != 0 ? -1 : 0;
  tg_claims_clear(&tmp);
  return rc;
}

int tg_certmap_apply(const tg_certmap *m, const tg_cert_fields *f,
                     const tg_perm_opts *popts, tg_claims *out) {
  cm_slice *caps = NULL;
  size_t ncaps = 0;
  cm_buf b = {0};
  const char *val[TG_CF_COUNT];
  int matched = 0;

  if (!m || !f || !out)
    return 0;
  for (size_t i = 0; i < m->n; i++) {
    const cm_rule *r = &m->rules[i];
    if (r->ncap > ncaps) {
      cm_slice *grown = realloc(caps, r->ncap * sizeof(*caps));
      if (!grown)
        goto nomem;
      caps = grown;
      ncaps = r->ncap;
    }
    int rc = cm_rule_match(r, f, caps, val);
    if (rc < 0)
      goto nomem;
    if (rc == 0)
      continue;
    matched++;
    out->kinds |= TG_CRED_CLIENT_CERT;
    if (!out->subject) {
      const char *subj = NULL;
      size_t subjlen = 0;
      if (r->has_subject) {
        if ((rc = cm_expand(&r->subject, caps, val, &b)) < 0)
          goto nomem;
        if (rc) {
          subj = b.data;
          subjlen = b.len;
        }
      } else {
        subj = r->has[TG_CF_URI_SAN] ? val[TG_CF_URI_SAN] : val[TG_CF_CN];
        subjlen = subj ? strlen(subj) : 0;
      }
      if (subjlen && tg_claims_set_subject(out, subj, subjlen) != 0)
        goto nomem;
    }
    for (size_t j = 0; j < r->nperms; j++) {
      if ((rc = cm_expand(&r->perms[j], caps, val, &b)) < 0)
        goto nomem;
      if (rc && cm_apply_perm(&r->perms[j], b.data, b.len, popts, out) != 0)
        goto nomem;
    }
  }
  free(b.data);
  free(caps);
  return matched;

nomem:
  free(b.data);
  free(caps);
  return TG_CLAIMS_ERR_NOMEM;
}

/* ---- certificates ---- */

static int cm_fields_add(cm_fields_block *blk, int f, const unsigned char *s,
                         size_t len) {
  if (len && memchr(s, '\0', len))
    return 0;
  if (blk->pub.nvalues[f] == blk->cap[f]) {
    size_t cap = blk->cap[f] ? blk->cap[f] * 2 : 2;
    char **grown = realloc(blk->vals[f], cap * sizeof(*grown));
    if (!grown)
      return -1;
    blk->vals[f] = grown;
    blk->cap[f] = cap;
    blk->pub.values[f] = (const char *const *)grown;
  }
  char *copy = malloc(len + 1);
  if (!copy)
    return -1;
  if (len)
    memcpy(copy, s, len);
  copy[len] = '\0';
  blk->vals[f][blk->pub.nvalues[f]++] = copy;
  return 0;
}

/* subjectAltName entries are IA5String (ASCII); Go's x509 rejects a
 * certificate whose SAN has other bytes, we drop the value. */
static int cm_add_ia5(cm_fields_block *blk, int f, const ASN1_STRING *s) {
  const unsigned char *p = ASN1_STRING_get0_data(s);
  int len = ASN1_STRING_length(s);
  if (!p || len < 0)
    return 0;
  for (int i = 0; i < len; i++)
    if (p[i] == 0 || p[i] > 0x7f)
      return 0;
  return cm_fields_add(blk, f, p, (size_t)len);
}

int tg_cert_fields_from_x509(X509 *cert, tg_cert_fields **out) {
  static const int nids[3] = {NID_commonName, NID_organizationName,
                              NID_organizationalUnitName};
  static const int name_fields[3] = {TG_CF_CN, TG_CF_O, TG_CF_OU};
  GENERAL_NAMES *gens = NULL;
  cm_fields_block *blk = calloc(1, sizeof(*blk));

  *out = NULL;
  if (!blk)
    return -1;
  /* A value that fails to decode leaves errors on this thread's OpenSSL
   * queue, where the next SSL_get_error() on the connection would find
   * them; they are ours to remove. */
  ERR_set_mark();
  X509_NAME *name = cert ? X509_get_subject_name(cert) : NULL;
  for (int k = 0; name && k < 3; k++) {
    int pos = -1;
    while ((pos = X509_NAME_get_index_by_NID(name, nids[k], pos)) >= 0) {
      ASN1_STRING *data =
          X509_NAME_ENTRY_get_data(X509_NAME_get_entry(name, pos));
      unsigned char *utf8 = NULL;
      /* A value that does not decode is dropped, like one with a NUL. */
      int len = data ? ASN1_STRING_to_UTF8(&utf8, data) : -1;
      if (len < 0)
        continue;
      int rc = cm_fields_add(blk, name_fields[k], utf8, (size_t)len);
      OPENSSL_free(utf8);
      if (rc != 0)
        goto fail;
    }
  }
  /* NULL also for a certificate with two subjectAltName extensions, which
   * OpenSSL's verification refuses anyway. */
  gens = cert ? X509_get_ext_d2i(cert, NID_subject_alt_name, NULL, NULL) : NULL;
  for (int i = 0; gens && i < sk_GENERAL_NAME_num(gens); i++) {
    const GENERAL_NAME *g = sk_GENERAL_NAME_value(gens, i);
    int rc = 0;
    if (g->type == GEN_DNS)
      rc = cm_add_ia5(blk, TG_CF_DNS_SAN, g->d.dNSName);
    else if (g->type == GEN_URI)
      rc = cm_add_ia5(blk, TG_CF_URI_SAN, g->d.uniformResourceIdentifier);
    else if (g->type == GEN_EMAIL)
      rc = cm_add_ia5(blk, TG_CF_EMAIL_SAN, g->d.rfc822Name);
    if (rc != 0)
      goto fail;
  }
  GENERAL_NAMES_free(gens);
  ERR_pop_to_mark();
  *out = &blk->pub;
  return 0;

fail:
  GENERAL_NAMES_free(gens);
  ERR_pop_to_mark();
  tg_cert_fields_free(&blk->pub);
  return -1;
}

void tg_cert_fields_free(tg_cert_fields *f) {
  if (!f)
    return;
  cm_fields_block *blk = (cm_fields_block *)f;
  for (int k = 0; k < TG_CF_COUNT; k++) {
    for (size_t i = 0; i < blk->pub.nvalues[k]; i++)
      free(blk->vals[k][i]);
    free(blk->vals[k]);
  }
  free(blk);
}
