/*
 * libFuzzer harness for permission strings and glob patterns.
 *
 * Input: one flags byte, then lines. Every line is a permission string for
 * tg_perm_apply() (split at ':', or through a permissions regex made of the
 * first line when flag 1 is set; flag 2 selects the system names {"system"}).
 * The first line is also a certificate pattern on cn, matched against every
 * line as a cn value; when it is made of literals and '*' only, the match
 * and its captures are checked against a plain backtracking reference.
 * Claims must stay sorted, unique and NUL-free, and nothing may leak.
 */
#include "tg_certmap.h"
#include "tg_claims.h"

#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#define FUZZ_MAX_LINES 64
#define FUZZ_REF_MAX_VALUE 48 /* the reference is exponential */
#define FUZZ_REF_MAX_STARS 6

typedef struct fuzz_line {
  const char *p;
  size_t len;
} fuzz_line;

static void fuzz_check_claims(const tg_claims *c) {
  if (c->nns > c->cap || (c->nns && !c->ns) || c->system > 15)
    abort();
  for (size_t i = 0; i < c->nns; i++) {
    const tg_ns_role *e = &c->ns[i];
    if (!e->ns || e->len == 0 || e->ns[e->len] != '\0' ||
        memchr(e->ns, '\0', e->len) || e->role > 15)
      abort();
    if (i > 0) {
      const tg_ns_role *d = &c->ns[i - 1];
      size_t n = d->len < e->len ? d->len : e->len;
      int r = memcmp(d->ns, e->ns, n);
      if (r > 0 || (r == 0 && d->len >= e->len))
        abort();
    }
  }
}

/* Without a regex: what tg_perm_apply() must have done with line l. */
static void fuzz_check_split(const tg_claims *c, fuzz_line l, int rc,
                             const tg_perm_opts *o) {
  const char *colon = l.len ? memchr(l.p, ':', l.len) : NULL;
  size_t nslen = colon ? (size_t)(colon - l.p) : 0;
  int want = colon && nslen > 0 && !memchr(l.p, '\0', nslen);
  if (rc != want)
    abort();
  if (!want)
    return;
  uint8_t role = tg_perm_role(colon + 1, l.len - nslen - 1);
  if (tg_perm_is_system(l.p, nslen, o)) {
    if ((c->system & role) != role)
      abort();
  } else if ((tg_claims_ns_role(c, l.p, nslen) & role) != role) {
    abort();
  }
}

/* Greedy backtracking reference for patterns of literals and '*': earlier
 * stars take as much as they can; '*' is 1+ bytes other than '/'. */
/* caps receives (offset, length) pairs. */
static int fuzz_ref_match(const char *pat, const char *v, size_t off,
                          size_t vlen, size_t *caps) {
  if (!*pat)
    return off == vlen;
  if (*pat != '*')
    return off < vlen && v[off] == *pat &&
           fuzz_ref_match(pat + 1, v, off + 1, vlen, caps);
  size_t lim = off;
  while (lim < vlen && v[lim] != '/')
    lim++;
  for (size_t e = lim; e > off; e--) {
    if (fuzz_ref_match(pat + 1, v, e, vlen, caps + 2)) {
      caps[0] = off;
      caps[1] = e - off;
      return 1;
    }
  }
  return 0;
}

static int fuzz_simple_glob(const char *pat, size_t *nstars) {
  *nstars = 0;
  for (size_t i = 0; pat[i]; i++) {
    if (pat[i] == '{')
      return 0;
    if (pat[i] == '*') {
      if (i > 0 && pat[i - 1] == '*')
        return 0;
      ++*nstars;
    }
  }
  return *pat != '\0' && *nstars <= FUZZ_REF_MAX_STARS;
}

static char *fuzz_cstr(fuzz_line l) {
  char *s = malloc(l.len + 1);
  if (!s)
    return NULL;
  memcpy(s, l.p, l.len);
  s[l.len] = '\0';
  return s;
}

/* Matches pattern against every line as a cn, with subject "{i}" for each
 * capture i; compares with the reference when the pattern is simple. */
static void fuzz_glob(const char *pattern, const fuzz_line *lines,
                      size_t nlines) {
  size_t nstars;
  int simple = fuzz_simple_glob(pattern, &nstars);
  size_t nmaps = simple ? nstars + 1 : 1;
  tg_certmap *maps[FUZZ_REF_MAX_STARS + 1] = {0};
  char subj[FUZZ_REF_MAX_STARS + 1][8];
  static const char *const perms[] = {"{cn}:read", "temporal-system:{cn}",
                                      "x-{cn}:write"};
  int ok = 1;

  for (size_t i = 0; i < nmaps; i++) {
    snprintf(subj[i], sizeof(subj[i]), "{%zu}", i);
    tg_cert_rule_conf conf = {.match = {[TG_CF_CN] = pattern},
                              .subject = i ? subj[i] : NULL,
                              .permissions = perms,
                              .npermissions = 3};
    char err[128];
    maps[i] = tg_certmap_new();
    if (!maps[i] || tg_certmap_add(maps[i], &conf, err, sizeof(err)) != 0) {
      ok = 0;
      if (simple && maps[i] && !strstr(err, "out of memory"))
        abort(); /* a simple pattern is always valid */
    }
  }
  for (size_t k = 0; ok && k < nlines; k++) {
    char *v = fuzz_cstr(lines[k]);
    if (!v)
      break;
    size_t vlen = strlen(v);
    const char *vals[1] = {v};
    tg_cert_fields f;
    memset(&f, 0, sizeof(f));
    f.values[TG_CF_CN] = vals;
    f.nvalues[TG_CF_CN] = 1;
    size_t caps[2 * FUZZ_REF_MAX_STARS];
    int ref = -1;
    if (simple && vlen <= FUZZ_REF_MAX_VALUE)
      ref = fuzz_ref_match(pattern, v, 0, vlen, caps);
    for (size_t i = 0; i < nmaps; i++) {
      tg_claims c;
      tg_claims_init(&c);
      int rc = tg_certmap_apply(maps[i], &f, NULL, &c);
      if (rc != TG_CLAIMS_ERR_NOMEM) {
        fuzz_check_claims(&c);
        if (rc != 0 && rc != 1)
          abort();
        if (ref >= 0 && rc != ref)
          abort();
        if (rc == 1 && !(c.kinds & TG_CRED_CLIENT_CERT))
          abort();
        /* The cn itself never names the system scope. */
        if (rc == 1 && (c.system & ~tg_perm_role(v, vlen)))
          abort();
        if (ref == 1 && i > 0) {
          const char *want = v + caps[2 * (i - 1)];
          size_t wlen = caps[2 * (i - 1) + 1];
          if (!c.subject || strlen(c.subject) != wlen ||
              memcmp(c.subject, want, wlen) != 0)
            abort();
        }
      }
      tg_claims_clear(&c);
    }
    free(v);
  }
  for (size_t i = 0; i < nmaps; i++)
    tg_certmap_free(maps[i]);
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size) {
  static const char *const custom_system[] = {"system"};
  fuzz_line lines[FUZZ_MAX_LINES];
  size_t nlines = 0;

  if (size < 1)
    return 0;
  uint8_t flags = data[0];
  const char *s = (const char *)data + 1, *end = (const char *)data + size;
  while (s <= end && nlines < FUZZ_MAX_LINES) {
    const char *nl = memchr(s, '\n', (size_t)(end - s));
    if (!nl)
      nl = end;
    lines[nlines].p = s;
    lines[nlines++].len = (size_t)(nl - s);
    s = nl + 1;
  }

  tg_perm_opts o = {0};
  tg_perm_regex *re = NULL;
  char *first = fuzz_cstr(lines[0]);
  if (!first)
    return 0;
  if (flags & 2) {
    o.system_names = custom_system;
    o.nsystem_names = 1;
  }
  if (flags & 1) {
    char err[128];
    re = tg_perm_regex_new(first, err, sizeof(err));
    if (!re && !err[0])
      abort();
    o.regex = re;
  }

  tg_claims c, copy, merged;
  tg_claims_init(&c);
  tg_claims_init(&copy);
  tg_claims_init(&merged);
  int c_ok = 1;
  for (size_t i = 0; i < nlines; i++) {
    int rc = tg_perm_apply(&c, lines[i].p, lines[i].len, &o);
    if (rc == TG_CLAIMS_ERR_NOMEM) {
      c_ok = 0;
      break;
    }
    if (rc != 0 && rc != 1)
      abort();
    fuzz_check_claims(&c);
    if (!re)
      fuzz_check_split(&c, lines[i], rc, &o);
  }
  if (tg_claims_copy(&copy, &c) == 0) {
    fuzz_check_claims(&copy);
    if (copy.nns != c.nns || copy.system != c.system)
      abort();
    /* Merging a value into a copy of itself changes nothing. */
    if (tg_claims_merge(&copy, &c) == 0 && copy.nns != c.nns)
      abort();
    for (size_t i = 0; i < c.nns; i++)
      if (tg_claims_ns_role(&copy, c.ns[i].ns, c.ns[i].len) != c.ns[i].role)
        abort();
  }
  /* The second half merged with the first equals all lines applied. */
  tg_claims half;
  tg_claims_init(&half);
  int nomem = 0;
  for (size_t i = nlines / 2; i < nlines; i++)
    nomem |= tg_perm_apply(&half, lines[i].p, lines[i].len, &o) < 0;
  for (size_t i = 0; i < nlines / 2; i++)
    nomem |= tg_perm_apply(&merged, lines[i].p, lines[i].len, &o) < 0;
  if (!nomem && c_ok && tg_claims_merge(&half, &merged) == 0) {
    fuzz_check_claims(&half);
    if (half.nns != c.nns || half.system != c.system)
      abort();
    for (size_t i = 0; i < c.nns; i++)
      if (half.ns[i].len != c.ns[i].len || half.ns[i].role != c.ns[i].role ||
          memcmp(half.ns[i].ns, c.ns[i].ns, c.ns[i].len) != 0)
        abort();
  }
  tg_claims_clear(&half);
  tg_claims_clear(&merged);
  tg_claims_clear(&copy);
  tg_claims_clear(&c);
  tg_perm_regex_free(re);

  fuzz_glob(first, lines, nlines);
  free(first);
  return 0;
}
