/*
 * tg_claims: claims values and Temporal permission strings (see
 * include/tg_claims.h).
 *
 * Namespaces live in one array sorted bytewise, so a lookup is a binary
 * search and a merge is one linear pass over two sorted lists.
 */
#define PCRE2_CODE_UNIT_WIDTH 8
#include "tg_claims.h"

#include <pcre2.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

/* Go's RE2 matches in linear time; PCRE2 backtracks, and the subject is an
 * untrusted token. These bound the work of one match (a few ms); a match
 * that hits them is treated as no match, which grants nothing. */
#define CLAIMS_RE_MATCH_LIMIT 1000000
#define CLAIMS_RE_DEPTH_LIMIT 10000
#define CLAIMS_RE_HEAP_LIMIT_KIB 4096

struct tg_perm_regex {
  pcre2_code *code;
  pcre2_match_context *mctx;
  uint32_t ns_group;
  uint32_t role_group;
};

static const char *const claims_default_system[] = {"temporal-system"};

static char *claims_dup(const char *s, size_t len) {
  char *d = malloc(len + 1);
  if (!d)
    return NULL;
  if (len)
    memcpy(d, s, len);
  d[len] = '\0';
  return d;
}

static int claims_ns_cmp(const char *a, size_t alen, const char *b,
                         size_t blen) {
  size_t n = alen < blen ? alen : blen;
  int r = n ? memcmp(a, b, n) : 0;
  if (r)
    return r;
  return (alen > blen) - (alen < blen);
}

/* Index of ns in c->ns, or where it would be inserted (*found = 0). */
static size_t claims_ns_find(const tg_claims *c, const char *ns, size_t len,
                             int *found) {
  size_t lo = 0, hi = c->nns;
  while (lo < hi) {
    size_t mid = lo + (hi - lo) / 2;
    int r = claims_ns_cmp(c->ns[mid].ns, c->ns[mid].len, ns, len);
    if (r == 0) {
      *found = 1;
      return mid;
    }
    if (r < 0)
      lo = mid + 1;
    else
      hi = mid;
  }
  *found = 0;
  return lo;
}

void tg_claims_init(tg_claims *c) {
  memset(c, 0, sizeof(*c));
}

static void claims_free_storage(tg_claims *c) {
  if (c->packed) {
    free(c->packed);
    return;
  }
  for (size_t i = 0; i < c->nns; i++)
    free(c->ns[i].ns);
  free(c->ns);
  free(c->subject);
}

void tg_claims_clear(tg_claims *c) {
  claims_free_storage(c);
  memset(c, 0, sizeof(*c));
}

/* Gives packed claims strings of their own, before a change that needs to
 * grow them. On TG_CLAIMS_ERR_NOMEM c is unchanged. */
static int claims_unpack(tg_claims *c) {
  tg_ns_role *ns = NULL;
  char *subject = NULL;
  size_t k = 0;

  if (!c->packed)
    return 0;
  if (c->nns) {
    ns = malloc(c->nns * sizeof(*ns));
    if (!ns)
      goto fail;
    for (k = 0; k < c->nns; k++) {
      ns[k] = c->ns[k];
      ns[k].ns = claims_dup(c->ns[k].ns, c->ns[k].len);
      if (!ns[k].ns)
        goto fail;
    }
  }
  if (c->subject && !(subject = claims_dup(c->subject, strlen(c->subject))))
    goto fail;
  free(c->packed);
  c->packed = NULL;
  c->ns = ns;
  c->cap = c->nns;
  c->subject = subject;
  return 0;
fail:
  while (k-- > 0)
    free(ns[k].ns);
  free(ns);
  return TG_CLAIMS_ERR_NOMEM;
}

int tg_claims_set_subject(tg_claims *c, const char *s, size_t len) {
  if (c->subject)
    return 0;
  if (claims_unpack(c) != 0)
    return TG_CLAIMS_ERR_NOMEM;
  c->subject = claims_dup(s, len);
  return c->subject ? 0 : TG_CLAIMS_ERR_NOMEM;
}

int tg_claims_grant(tg_claims *c, const char *ns, size_t len, uint8_t role) {
  int found;
  size_t i = claims_ns_find(c, ns, len, &found);
  if (found) {
    c->ns[i].role |= role;
    return 0;
  }
  if (claims_unpack(c) != 0)
    return TG_CLAIMS_ERR_NOMEM;
  if (c->nns == c->cap) {
    size_t cap = c->cap ? c->cap * 2 : 4;
    if (cap < c->cap || cap > SIZE_MAX / sizeof(*c->ns))
      return TG_CLAIMS_ERR_NOMEM;
    tg_ns_role *grown = realloc(c->ns, cap * sizeof(*c->ns));
    if (!grown)
      return TG_CLAIMS_ERR_NOMEM;
    c->ns = grown;
    c->cap = cap;
  }
  char *copy = claims_dup(ns, len);
  if (!copy)
    return TG_CLAIMS_ERR_NOMEM;
  memmove(&c->ns[i + 1], &c->ns[i], (c->nns - i) * sizeof(*c->ns));
  c->ns[i].ns = copy;
  c->ns[i].len = len;
  c->ns[i].role = role;
  c->nns++;
  return 0;
}

uint8_t tg_claims_ns_role(const tg_claims *c, const char *ns, size_t len) {
  int found;
  size_t i = claims_ns_find(c, ns, len, &found);
  return found ? c->ns[i].role : 0;
}

/* The next entry of the union of a and b (both sorted) from *i, *j on:
 * its name and, for a name in both, the roles OR-ed. */
static const tg_ns_role *claims_next(const tg_claims *a, const tg_claims *b,
                                     size_t *i, size_t *j, uint8_t *role) {
  const tg_ns_role *x = *i < a->nns ? &a->ns[*i] : NULL;
  const tg_ns_role *y = *j < b->nns ? &b->ns[*j] : NULL;
  int r = !x ? 1 : !y ? -1 : claims_ns_cmp(x->ns, x->len, y->ns, y->len);
  if (r < 0) {
    ++*i;
    *role = x->role;
    return x;
  }
  ++*j;
  if (r > 0) {
    *role = y->role;
    return y;
  }
  ++*i;
  *role = (uint8_t)(x->role | y->role);
  return x;
}

/* A merge makes one block: the namespace array, then every name, then the
 * subject. A cached token's claims are copied for every call, so this is
 * one allocation (and one free) instead of one per string; and a failed
 * allocation leaves dst exactly as it was. */
int tg_claims_merge(tg_claims *dst, const tg_claims *src) {
  const char *subject = dst->subject ? dst->subject : src->subject;
  size_t n = 0, i = 0, j = 0, bytes = 0, slen = 0, total;
  uint8_t role;

  if (dst == src)
    return 0;
  if (src->nns || (!dst->subject && src->subject)) {
    while (i < dst->nns || j < src->nns) {
      const tg_ns_role *e = claims_next(dst, src, &i, &j, &role);
      if (e->len >= SIZE_MAX - bytes)
        return TG_CLAIMS_ERR_NOMEM;
      bytes += e->len + 1;
      n++;
    }
    slen = subject ? strlen(subject) + 1 : 0;
    if (bytes > SIZE_MAX - slen ||
        n > (SIZE_MAX - bytes - slen) / sizeof(tg_ns_role))
      return TG_CLAIMS_ERR_NOMEM;
    total = n * sizeof(tg_ns_role) + bytes + slen;
    char *block = malloc(total ? total : 1);
    if (!block)
      return TG_CLAIMS_ERR_NOMEM;
    tg_ns_role *ns = (tg_ns_role *)(void *)block;
    char *str = block + n * sizeof(*ns);
    for (size_t k = i = j = 0; k < n; k++) {
      const tg_ns_role *e = claims_next(dst, src, &i, &j, &role);
      memcpy(str, e->ns, e->len);
      str[e->len] = '\0';
      ns[k].ns = str;
      ns[k].len = e->len;
      ns[k].role = role;
      str += e->len + 1;
    }
    if (subject)
      memcpy(str, subject, slen);
    claims_free_storage(dst);
    dst->packed = block;
    dst->ns = n ? ns : NULL;
    dst->nns = dst->cap = n;
    dst->subject = subject ? str : NULL;
  }
  dst->kinds |= src->kinds;
  dst->system |= src->system;
  if (src->not_after && (!dst->not_after || src->not_after < dst->not_after))
    dst->not_after = src->not_after;
  return 0;
}

int tg_claims_copy(tg_claims *dst, const tg_claims *src) {
  return tg_claims_merge(dst, src);
}

/* ASCII only, where Go's strings.ToLower also folds U+0130 to 'i' and
 * U+212A to 'k' ("WR\u0130TE" is write to Temporal): such a role grants
 * nothing here, which errs on the side of less access. */
static int claims_ascii_ieq(const char *s, size_t len, const char *lit) {
  size_t n = strlen(lit);
  if (len != n)
    return 0;
  for (size_t i = 0; i < n; i++) {
    char ch = s[i];
    if (ch >= 'A' && ch <= 'Z')
      ch = (char)(ch - 'A' + 'a');
    if (ch != lit[i])
      return 0;
  }
  return 1;
}

uint8_t tg_perm_role(const char *s, size_t len) {
  if (claims_ascii_ieq(s, len, "read"))
    return TG_ROLE_READ;
  if (claims_ascii_ieq(s, len, "write"))
    return TG_ROLE_WRITE;
  if (claims_ascii_ieq(s, len, "admin"))
    return TG_ROLE_ADMIN;
  if (claims_ascii_ieq(s, len, "worker"))
    return TG_ROLE_WORKER;
  return 0;
}

int tg_perm_is_system(const char *ns, size_t len, const tg_perm_opts *opts) {
  const char *const *names = claims_default_system;
  size_t n = 1;
  if (opts && opts->system_names) {
    names = opts->system_names;
    n = opts->nsystem_names;
  }
  for (size_t i = 0; i < n; i++) {
    if (names[i] && strlen(names[i]) == len &&
        (len == 0 || memcmp(names[i], ns, len) == 0))
      return 1;
  }
  return 0;
}

/* Go's FindStringSubmatch yields "" for a group that did not take part in
 * the match; so does this. Returns 1 on a match, 0 on none, or NOMEM. */
static int claims_regex_split(const tg_perm_regex *re, const char *s,
                              size_t len, const char **ns, size_t *nslen,
                              const char **role, size_t *rolelen) {
  pcre2_match_data *md = pcre2_match_data_create_from_pattern(re->code, NULL);
  if (!md)
    return TG_CLAIMS_ERR_NOMEM;
  int rc =
      pcre2_match(re->code, (PCRE2_SPTR)(s ? s : ""), len, 0, 0, md, re->mctx);
  if (rc <= 0) {
    pcre2_match_data_free(md);
    return rc == PCRE2_ERROR_NOMEMORY ? TG_CLAIMS_ERR_NOMEM : 0;
  }
  const PCRE2_SIZE *ov = pcre2_get_ovector_pointer(md);
  uint32_t groups[2] = {re->ns_group, re->role_group};
  const char **starts[2] = {ns, role};
  size_t *lens[2] = {nslen, rolelen};
  for (int k = 0; k < 2; k++) {
    PCRE2_SIZE a = PCRE2_UNSET, b = PCRE2_UNSET;
    if (groups[k] < (uint32_t)rc) {
      a = ov[2 * groups[k]];
      b = ov[2 * groups[k] + 1];
    }
    if (a == PCRE2_UNSET || b == PCRE2_UNSET || b < a) {
      *starts[k] = s;
      *lens[k] = 0;
    } else {
      *starts[k] = s + a;
      *lens[k] = b - a;
    }
  }
  pcre2_match_data_free(md);
  return 1;
}

int tg_perm_apply(tg_claims *c, const char *perm, size_t len,
                  const tg_perm_opts *opts) {
  const char *ns, *role;
  size_t nslen, rolelen;

  if (opts && opts->regex) {
    int rc = claims_regex_split(opts->regex, perm, len, &ns, &nslen, &role,
                                &rolelen);
    if (rc <= 0)
      return rc;
  } else {
    const char *colon = len ? memchr(perm, ':', len) : NULL;
    if (!colon)
      return 0;
    ns = perm;
    nslen = (size_t)(colon - perm);
    role = colon + 1;
    rolelen = len - nslen - 1;
  }
  /* Temporal records "" as a namespace; no request can name it, so tgate
   * skips it. A NUL would cut the name short for anyone reading it as a C
   * string. */
  if (nslen == 0 || memchr(ns, '\0', nslen))
    return 0;
  uint8_t bits = tg_perm_role(role, rolelen);
  if (tg_perm_is_system(ns, nslen, opts)) {
    c->system |= bits;
    return 1;
  }
  return tg_claims_grant(c, ns, nslen, bits) == 0 ? 1 : TG_CLAIMS_ERR_NOMEM;
}

static void claims_set_err(char *err, size_t errlen, const char *fmt, ...) {
  if (!err || errlen == 0)
    return;
  va_list ap;
  va_start(ap, fmt);
  vsnprintf(err, errlen, fmt, ap);
  va_end(ap);
}

/* PCRE2_DOLLAR_ENDONLY: in Go, '$' matches only at the very end of the
 * text, never before a final newline. */
tg_perm_regex *tg_perm_regex_new(const char *pattern, char *err,
                                 size_t errlen) {
  tg_perm_regex *re = NULL;
  int ecode, n;
  PCRE2_SIZE eoff;
  PCRE2_UCHAR msg[128];

  if (!pattern) {
    claims_set_err(err, errlen, "no permissions regex");
    return NULL;
  }
  re = calloc(1, sizeof(*re));
  if (!re)
    goto nomem;
  re->code = pcre2_compile((PCRE2_SPTR)pattern, PCRE2_ZERO_TERMINATED,
                           PCRE2_DOLLAR_ENDONLY, &ecode, &eoff, NULL);
  if (!re->code && ecode == PCRE2_ERROR_HEAP_FAILED)
    goto nomem;
  if (!re->code) {
    if (pcre2_get_error_message(ecode, msg, sizeof(msg)) == PCRE2_ERROR_BADDATA)
      strcpy((char *)msg, "unknown error");
    claims_set_err(err, errlen, "invalid permissions regex at offset %zu: %s",
                   (size_t)eoff, (const char *)msg);
    goto fail;
  }
  n = pcre2_substring_number_from_name(re->code, (PCRE2_SPTR) "namespace");
  if (n <= 0) {
    claims_set_err(err, errlen,
                   "permissions regex needs one named group \"namespace\"");
    goto fail;
  }
  re->ns_group = (uint32_t)n;
  n = pcre2_substring_number_from_name(re->code, (PCRE2_SPTR) "role");
  if (n <= 0) {
    claims_set_err(err, errlen,
                   "permissions regex needs one named group \"role\"");
    goto fail;
  }
  re->role_group = (uint32_t)n;
  re->mctx = pcre2_match_context_create(NULL);
  if (!re->mctx)
    goto nomem;
  pcre2_set_match_limit(re->mctx, CLAIMS_RE_MATCH_LIMIT);
  pcre2_set_depth_limit(re->mctx, CLAIMS_RE_DEPTH_LIMIT);
  pcre2_set_heap_limit(re->mctx, CLAIMS_RE_HEAP_LIMIT_KIB);
  return re;

nomem:
  claims_set_err(err, errlen, "out of memory");
fail:
  tg_perm_regex_free(re);
  return NULL;
}

void tg_perm_regex_free(tg_perm_regex *re) {
  if (!re)
    return;
  pcre2_match_context_free(re->mctx);
  pcre2_code_free(re->code);
  free(re);
}
