/*
 * libFuzzer harness for tg_certmap: a rule from the first part of the input,
 * certificate fields from the rest.
 *
 * Input lines: six match patterns (cn, o, ou, dns_san, uri_san, email_san;
 * an empty line leaves the field out), the subject template (empty: the
 * default), then permission templates up to a line "--"; every later line
 * is a field value, its first byte choosing the field (mod 6). The rule is
 * added twice, so that two matching rules are seen too. An input of odd
 * length uses the system names {"system", "temporal-system"}.
 *
 * Checks: adding fails only with a reason; claims stay well formed; the
 * system scope is reached only by a template that names it literally; the
 * number of matches is 0 or 2. Nothing may leak.
 */
#include "tg_certmap.h"

#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#define FUZZ_MAX_PERMS 16
#define FUZZ_MAX_VALUES 32

static char *fuzz_cstr(const char *p, size_t len) {
  char *s = malloc(len + 1);
  if (!s)
    return NULL;
  memcpy(s, p, len);
  s[len] = '\0';
  return s;
}

static void fuzz_check_claims(const tg_claims *c) {
  if (c->nns > c->cap || (c->nns && !c->ns) || c->system > 15)
    abort();
  for (size_t i = 0; i < c->nns; i++) {
    const tg_ns_role *e = &c->ns[i];
    if (!e->ns || e->len == 0 || e->ns[e->len] != '\0' ||
        strlen(e->ns) != e->len || e->role > 15)
      abort();
    if (i > 0) {
      const tg_ns_role *d = &c->ns[i - 1];
      size_t n = d->len < e->len ? d->len : e->len;
      int r = memcmp(d->ns, e->ns, n);
      if (r > 0 || (r == 0 && d->len >= e->len))
        abort();
    }
  }
  if (c->subject && !*c->subject)
    abort();
}

/* Does template t start with "<system name>:" for one of o's names? */
static int fuzz_literal_system(const char *t, const tg_perm_opts *o) {
  const char *colon = strchr(t, ':');
  return colon && !memchr(t, '{', (size_t)(colon - t)) &&
         tg_perm_is_system(t, (size_t)(colon - t), o);
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size) {
  static const char *const sysnames[] = {"system", "temporal-system"};
  char *match[TG_CF_COUNT] = {0}, *subject = NULL;
  char *perms[FUZZ_MAX_PERMS] = {0};
  char *vals[FUZZ_MAX_VALUES] = {0};
  const char *byfield[TG_CF_COUNT][FUZZ_MAX_VALUES];
  size_t nperms = 0, nvals = 0, line = 0;
  int in_values = 0;
  tg_cert_fields f;
  tg_perm_opts o = {0};
  tg_certmap *m = NULL;
  tg_claims c;

  memset(&f, 0, sizeof(f));
  tg_claims_init(&c);
  if (size % 2) {
    o.system_names = sysnames;
    o.nsystem_names = 2;
  }
  const char *s = (const char *)data, *end = s + size;
  while (s < end) {
    const char *nl = memchr(s, '\n', (size_t)(end - s));
    if (!nl)
      nl = end;
    size_t len = (size_t)(nl - s);
    if (line < TG_CF_COUNT) {
      if (len && !(match[line] = fuzz_cstr(s, len)))
        goto end;
    } else if (line == TG_CF_COUNT) {
      if (len && !(subject = fuzz_cstr(s, len)))
        goto end;
    } else if (!in_values && len == 2 && memcmp(s, "--", 2) == 0) {
      in_values = 1;
    } else if (!in_values) {
      if (nperms < FUZZ_MAX_PERMS && !(perms[nperms++] = fuzz_cstr(s, len)))
        goto end;
    } else if (len && nvals < FUZZ_MAX_VALUES) {
      int field = (unsigned char)s[0] % TG_CF_COUNT;
      if (!(vals[nvals] = fuzz_cstr(s + 1, len - 1)))
        goto end;
      byfield[field][f.nvalues[field]++] = vals[nvals++];
    }
    line++;
    s = nl + 1;
  }
  for (int i = 0; i < TG_CF_COUNT; i++)
    f.values[i] = byfield[i];

  tg_cert_rule_conf conf = {.subject = subject,
                            .permissions = (const char *const *)perms,
                            .npermissions = nperms};
  int any = 0;
  for (int i = 0; i < TG_CF_COUNT; i++) {
    conf.match[i] = match[i];
    any |= match[i] != NULL;
  }
  char err[256];
  err[0] = '\0';
  if (!(m = tg_certmap_new()))
    goto end;
  int added = 0;
  for (int k = 0; k < 2; k++) {
    int rc = tg_certmap_add(m, &conf, err, sizeof(err));
    if (rc != 0 && (rc != -1 || !err[0]))
      abort();
    if (rc != 0 && !any && !strstr(err, "at least one"))
      abort();
    added += rc == 0;
  }
  if (added == 1 && !strstr(err, "out of memory"))
    abort(); /* the same rule cannot be refused once and taken once */

  int rc = tg_certmap_apply(m, &f, &o, &c);
  if (rc == TG_CLAIMS_ERR_NOMEM)
    goto end;
  if (rc < 0 || rc > added || (added == 2 && rc == 1))
    abort();
  fuzz_check_claims(&c);
  if (rc == 0 && (c.kinds || c.nns || c.system || c.subject))
    abort();
  if (rc > 0 && c.kinds != TG_CRED_CLIENT_CERT)
    abort();
  if (c.system) {
    int literal = 0;
    for (size_t i = 0; i < nperms; i++)
      literal |= fuzz_literal_system(perms[i], &o);
    if (!literal)
      abort();
  }

end:
  tg_claims_clear(&c);
  tg_certmap_free(m);
  for (int i = 0; i < TG_CF_COUNT; i++)
    free(match[i]);
  free(subject);
  for (size_t i = 0; i < nperms; i++)
    free(perms[i]);
  for (size_t i = 0; i < nvals; i++)
    free(vals[i]);
  return 0;
}
