/*
 * libFuzzer harness for the authorization policy.
 *
 * Input: five bytes (flags, method selector, system role, role on the
 * request's namespace, roles on the command namespaces), then lines: the
 * request's namespace, task queues and workflow types (comma-separated, at
 * most 8 each; flags 64 and 128 mark each list overflowed), subject, the
 * command namespaces (comma-separated), then policy lines. A policy line's
 * first byte is an op: 0x80 set starts a rule (allow when bit 0 is set); else
 * op % 6 picks the list (methods, namespaces, subjects, task_queues,
 * workflow_types of the current rule, or disabled_methods) and the rest of
 * the line is the pattern, or, with 0x40 set on a method list, the bytes
 * after op choose a table method and whether to use its name, its path or
 * a prefix of its name followed by '*'.
 *
 * Checks: compiling either fails with a message or succeeds; the verdict
 * equals a naive reference decider's (methods matched by name at call time,
 * globs by dynamic programming); tracing does not change the verdict;
 * reasons and trace lines are printable; tg_glob_match agrees with a plain
 * recursive matcher on short inputs. Nothing may leak or be slow.
 */
#include "tg_policy.h"

#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>

#define FUZZ_MAX_RULES 16
#define FUZZ_MAX_PATTERNS 32
#define FUZZ_MAX_EXTRA 64
#define FUZZ_MAX_NAMES 8
#define FUZZ_REC_MAX 16 /* the recursive reference is exponential */

typedef struct fuzz_str {
  const uint8_t *p;
  size_t len;
} fuzz_str;

/* ---- references ---- */

static int fuzz_glob_rec(const char *pat, const uint8_t *s, size_t len) {
  if (!*pat)
    return len == 0;
  if (*pat == '*')
    return fuzz_glob_rec(pat + 1, s, len) ||
           (len > 0 && fuzz_glob_rec(pat, s + 1, len - 1));
  return len > 0 && (uint8_t)*pat == s[0] &&
         fuzz_glob_rec(pat + 1, s + 1, len - 1);
}

/* Dynamic programming over (pattern position, subject position). */
static int fuzz_glob_dp(const char *pat, const uint8_t *s, size_t len) {
  size_t m = strlen(pat);
  unsigned char *row = calloc(len + 1, 1), *next = calloc(len + 1, 1);
  int r;
  if (!row || !next)
    abort();
  row[len] = 1; /* empty pattern matches the empty rest */
  for (size_t i = m; i-- > 0;) {
    for (size_t j = len + 1; j-- > 0;) {
      if (pat[i] == '*')
        next[j] = row[j] || (j < len && next[j + 1]);
      else
        next[j] = j < len && (uint8_t)pat[i] == s[j] && row[j + 1];
    }
    unsigned char *t = row;
    row = next;
    next = t;
  }
  r = row[0];
  free(row);
  free(next);
  return r;
}

static size_t fuzz_stars(const char *pat) {
  size_t n = 0;
  for (; *pat; pat++)
    n += *pat == '*';
  return n;
}

static void fuzz_check_glob(const char *pat, const uint8_t *s, size_t len) {
  int got = tg_glob_match(pat, (const char *)s, len);
  if (got != fuzz_glob_dp(pat, s, len))
    abort();
  if (strlen(pat) <= FUZZ_REC_MAX && len <= FUZZ_REC_MAX &&
      fuzz_stars(pat) <= 6 && got != fuzz_glob_rec(pat, s, len))
    abort();
}

static int fuzz_method_match(const char *pat, const tg_method *m) {
  if (pat[0] == '@') {
    if (!strcasecmp(pat, "@read"))
      return m->required == TG_ROLE_READ;
    if (!strcasecmp(pat, "@write"))
      return m->required == TG_ROLE_WRITE;
    if (!strcasecmp(pat, "@admin"))
      return m->required == TG_ROLE_ADMIN;
    if (!strcasecmp(pat, "@worker"))
      return m->worker != 0;
    return 0;
  }
  return fuzz_glob_dp(pat, (const uint8_t *)m->name, strlen(m->name)) ||
         fuzz_glob_dp(pat, (const uint8_t *)m->path, strlen(m->path));
}

static int fuzz_list_methods(const tg_strlist *l, const tg_method *m) {
  for (size_t i = 0; i < l->n; i++)
    if (fuzz_method_match(l->v[i], m))
      return 1;
  return 0;
}

static int fuzz_list_any(const tg_strlist *l, const void *s, size_t len) {
  for (size_t i = 0; i < l->n; i++)
    if (fuzz_glob_dp(l->v[i], s, len))
      return 1;
  return 0;
}

/* A rule's task_queues / workflow_types list, when the method cannot name
 * one: allow rules not restricted, deny rules not matched; overflow: allow
 * no, deny yes; allow: every value in the list; deny: any value. */
static int fuzz_names_match(const tg_strlist *l, int allow, size_t carries,
                            const tg_names *x) {
  int all = 1, any = 0;
  if (!carries)
    return allow;
  if (x->overflow)
    return !allow;
  for (size_t i = 0; i < x->n; i++) {
    int hit = fuzz_list_any(l, x->v[i].p, x->v[i].len);
    all &= hit;
    any |= hit;
  }
  return allow ? all : any;
}

static int fuzz_rule_match(const tg_authz_rule_cfg *r, const tg_method *m,
                           const tg_authz_request *rq, const void *ns,
                           size_t nslen) {
  const char *subj = rq->claims ? rq->claims->subject : NULL;
  if (r->methods.n && !fuzz_list_methods(&r->methods, m))
    return 0;
  if (r->namespaces.n && (!nslen || !fuzz_list_any(&r->namespaces, ns, nslen)))
    return 0;
  if (r->subjects.n &&
      (!subj || !fuzz_list_any(&r->subjects, subj, strlen(subj))))
    return 0;
  if (r->task_queues.n && !fuzz_names_match(&r->task_queues, r->allow,
                                            m->ntask_queues, &rq->task_queues))
    return 0;
  if (r->workflow_types.n &&
      !fuzz_names_match(&r->workflow_types, r->allow, m->nworkflow_types,
                        &rq->workflow_types))
    return 0;
  return 1;
}

static int fuzz_granted(const tg_config *cfg, const tg_method *m,
                        const tg_authz_request *rq, const void *ns,
                        size_t nslen, int builtin_ok) {
  int allowed = builtin_ok;
  for (size_t i = 0; i < cfg->nauthz_rules; i++) {
    const tg_authz_rule_cfg *r = &cfg->authz_rules[i];
    if (!fuzz_rule_match(r, m, rq, ns, nslen))
      continue;
    if (!r->allow)
      return 0;
    allowed = 1;
  }
  return allowed;
}

static uint8_t fuzz_held(const tg_claims *c, const void *ns, size_t nslen) {
  if (!c)
    return 0;
  return (uint8_t)(c->system | (nslen ? tg_claims_ns_role(c, ns, nslen) : 0));
}

static int fuzz_table_entry(const tg_method *m) {
  for (size_t i = 0; i < tg_methods_count(); i++)
    if (tg_method_at(i) == m)
      return 1;
  return 0;
}

static int fuzz_decide(const tg_config *cfg, const tg_authz_request *rq) {
  const tg_method *m = rq->method;
  uint8_t held;
  int ok;
  if (!m || !fuzz_table_entry(m))
    return 0;
  if (fuzz_list_methods(&cfg->disabled_methods, m))
    return 0;
  if (m->always_allowed)
    return fuzz_granted(cfg, m, rq, rq->ns.p, rq->ns.len, 1);
  if (m->scope == TG_SCOPE_CLUSTER)
    held = rq->claims ? rq->claims->system : 0;
  else if (m->scope == TG_SCOPE_NAMESPACE)
    held = fuzz_held(rq->claims, rq->ns.p, rq->ns.len);
  else
    return 0;
  ok = held >= m->required ||
       (cfg->worker_role_extended && m->worker && (held & TG_ROLE_WORKER));
  if (!fuzz_granted(cfg, m, rq, rq->ns.p, rq->ns.len, ok))
    return 0;
  for (size_t i = 0; i < rq->nextra_ns; i++) {
    const tg_slice *x = &rq->extra_ns[i];
    const void *ns = x->len ? (const void *)x->p : (const void *)rq->ns.p;
    size_t nslen = x->len ? x->len : rq->ns.len;
    if (!fuzz_granted(cfg, m, rq, ns, nslen,
                      fuzz_held(rq->claims, ns, nslen) >= TG_ROLE_WRITE))
      return 0;
  }
  return 1;
}

/* ---- input ---- */

static void fuzz_printable(const char *s) {
  for (; *s; s++)
    if ((unsigned char)*s < 0x20 || (unsigned char)*s >= 0x7f)
      abort();
}

static void fuzz_trace(void *arg, const char *line) {
  size_t *n = arg;
  fuzz_printable(line);
  (*n)++;
}

static int fuzz_next_line(const uint8_t **p, const uint8_t *end,
                          fuzz_str *out) {
  const uint8_t *nl;
  if (*p >= end)
    return 0;
  nl = memchr(*p, '\n', (size_t)(end - *p));
  out->p = *p;
  out->len = nl ? (size_t)(nl - *p) : (size_t)(end - *p);
  *p = nl ? nl + 1 : end;
  return 1;
}

static void fuzz_push(tg_strlist *l, char *s) {
  if (!s)
    abort();
  if (l->n == FUZZ_MAX_PATTERNS) {
    free(s);
    return;
  }
  if (!l->v && !(l->v = calloc(FUZZ_MAX_PATTERNS, sizeof(*l->v))))
    abort();
  l->v[l->n++] = s;
}

static char *fuzz_method_pattern(fuzz_str l) {
  const tg_method *m;
  size_t n = tg_methods_count();
  uint8_t sel = l.len > 1 ? l.p[1] : 0, kind = l.len > 2 ? l.p[2] : 0,
          cut = l.len > 3 ? l.p[3] : 0;
  char *s;
  if (!n)
    return strdup("*");
  m = tg_method_at(sel % n);
  if (kind % 3 == 0)
    return strdup(m->name);
  if (kind % 3 == 1)
    return strdup(m->path);
  n = strlen(m->name);
  n = cut % (n + 1);
  if (!(s = malloc(n + 2)))
    return NULL;
  memcpy(s, m->name, n);
  s[n] = '*';
  s[n + 1] = '\0';
  return s;
}

/* A comma-separated list of distinct values, as tg_names. */
static tg_names fuzz_names(fuzz_str l, tg_slice *v, int overflow) {
  const uint8_t *s = l.p, *e = l.p + l.len;
  size_t n = 0;
  for (;;) {
    const uint8_t *comma = memchr(s, ',', (size_t)(e - s));
    size_t len = comma ? (size_t)(comma - s) : (size_t)(e - s), i;
    for (i = 0; i < n; i++)
      if (v[i].len == len && (!len || !memcmp(v[i].p, s, len)))
        break;
    if (i == n && n < FUZZ_MAX_NAMES) {
      v[n].p = s;
      v[n].len = len;
      n++;
    }
    if (!comma)
      break;
    s = comma + 1;
  }
  return (tg_names){v, n, overflow != 0};
}

static void fuzz_free_list(tg_strlist *l) {
  for (size_t i = 0; i < l->n; i++)
    free(l->v[i]);
  free(l->v);
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size) {
  tg_config cfg;
  tg_authz_rule_cfg rules[FUZZ_MAX_RULES];
  tg_slice extra[FUZZ_MAX_EXTRA], tqs[FUZZ_MAX_NAMES], wts[FUZZ_MAX_NAMES];
  fuzz_str fields[5];
  tg_claims claims;
  tg_authz_request rq;
  tg_authz_verdict v, vt;
  tg_method copy;
  tg_policy *p;
  const uint8_t *cur, *end = data + size;
  char err[256];
  size_t nfields = 0, ntrace = 0;
  uint8_t flags, sel, sysrole, nsrole, xroles;

  if (size < 5)
    return 0;
  flags = data[0];
  sel = data[1];
  sysrole = data[2];
  nsrole = data[3];
  xroles = data[4];
  cur = data + 5;

  memset(&cfg, 0, sizeof(cfg));
  memset(rules, 0, sizeof(rules));
  memset(fields, 0, sizeof(fields));
  cfg.worker_role_extended = flags & 1;
  cfg.authz_rules = rules;
  while (nfields < 5 && fuzz_next_line(&cur, end, &fields[nfields]))
    nfields++;
  {
    fuzz_str l;
    while (fuzz_next_line(&cur, end, &l)) {
      uint8_t op;
      tg_strlist *list;
      tg_authz_rule_cfg *r;
      if (!l.len)
        continue;
      op = l.p[0];
      if (op & 0x80) {
        if (cfg.nauthz_rules == FUZZ_MAX_RULES)
          continue;
        r = &rules[cfg.nauthz_rules++];
        r->allow = op & 1;
        r->line = cfg.nauthz_rules * 10;
        continue;
      }
      if (op % 6 != 5 && !cfg.nauthz_rules) {
        rules[0].allow = 1;
        rules[0].line = 1;
        cfg.nauthz_rules = 1;
      }
      r = &rules[cfg.nauthz_rules ? cfg.nauthz_rules - 1 : 0];
      switch (op % 6) {
      case 0:
        list = &r->methods;
        break;
      case 1:
        list = &r->namespaces;
        break;
      case 2:
        list = &r->subjects;
        break;
      case 3:
        list = &r->task_queues;
        break;
      case 4:
        list = &r->workflow_types;
        break;
      default:
        list = &cfg.disabled_methods;
        break;
      }
      if ((op & 0x40) && (list == &r->methods || list == &cfg.disabled_methods))
        fuzz_push(list, fuzz_method_pattern(l));
      else
        fuzz_push(list, strndup((const char *)l.p + 1, l.len - 1));
    }
  }

  /* glob cross-checks: every pattern against every request string */
  for (size_t i = 0; i < cfg.nauthz_rules; i++) {
    tg_strlist *ls[] = {&rules[i].namespaces, &rules[i].subjects,
                        &rules[i].task_queues, &rules[i].workflow_types};
    for (size_t k = 0; k < 4; k++)
      for (size_t j = 0; j < ls[k]->n; j++)
        for (size_t f = 0; f < nfields; f++)
          fuzz_check_glob(ls[k]->v[j], fields[f].p, fields[f].len);
  }

  memset(err, 'x', sizeof(err));
  p = tg_policy_new(&cfg, err, sizeof(err));
  if (!p) {
    if (!memchr(err, '\0', sizeof(err)) || !err[0])
      abort();
    goto end;
  }

  tg_claims_init(&claims);
  memset(&rq, 0, sizeof(rq));
  rq.claims = (flags & 8) ? NULL : &claims;
  claims.system = sysrole & 15;
  if (nfields > 0) {
    rq.ns.p = fields[0].p;
    rq.ns.len = fields[0].len;
    if (rq.ns.len && !memchr(rq.ns.p, '\0', rq.ns.len) &&
        tg_claims_grant(&claims, (const char *)rq.ns.p, rq.ns.len, nsrole & 15))
      abort();
  }
  if (nfields > 1 && (flags & 2))
    rq.task_queues = fuzz_names(fields[1], tqs, flags & 64);
  if (nfields > 2 && (flags & 4))
    rq.workflow_types = fuzz_names(fields[2], wts, flags & 128);
  if (nfields > 3 && (flags & 16) &&
      tg_claims_set_subject(&claims, (const char *)fields[3].p, fields[3].len))
    abort();
  if (nfields > 4 && (flags & 32)) {
    const uint8_t *s = fields[4].p, *e = s + fields[4].len;
    while (rq.nextra_ns < FUZZ_MAX_EXTRA) {
      const uint8_t *comma = memchr(s, ',', (size_t)(e - s));
      size_t len = comma ? (size_t)(comma - s) : (size_t)(e - s);
      uint8_t role = (uint8_t)((xroles >> (rq.nextra_ns % 2 * 4)) & 15);
      extra[rq.nextra_ns].p = s;
      extra[rq.nextra_ns].len = len;
      rq.nextra_ns++;
      if (len && !memchr(s, '\0', len) &&
          tg_claims_grant(&claims, (const char *)s, len, role))
        abort();
      if (!comma)
        break;
      s = comma + 1;
    }
    rq.extra_ns = extra;
  }

  {
    size_t n = tg_methods_count();
    size_t k = n ? sel % (n + 2) : 0;
    if (k < n) {
      rq.method = tg_method_at(k);
    } else if (k == n + 1 && n) {
      copy = *tg_method_at(sel % n);
      rq.method = &copy;
    }
    rq.path = rq.method ? rq.method->path : (const char *)data;
    rq.path_len = rq.method ? strlen(rq.path) : 5;
  }

  if (tg_policy_decide(p, &rq, &v, NULL, NULL) != 0 ||
      tg_policy_decide(p, &rq, &vt, fuzz_trace, &ntrace) != 0)
    abort();
  if (v.allow != vt.allow || v.rule != vt.rule || strcmp(v.reason, vt.reason))
    abort();
  if (ntrace < 3 || !memchr(v.reason, '\0', sizeof(v.reason)))
    abort();
  fuzz_printable(v.reason);
  if (v.rule < -1 || v.rule >= (int)cfg.nauthz_rules)
    abort();
  if (v.allow != fuzz_decide(&cfg, &rq))
    abort();
  if (strncmp(v.reason, v.allow ? "allowed" : "denied", v.allow ? 7 : 6))
    abort();

  tg_policy_free(p);
  tg_claims_clear(&claims);
end:
  for (size_t i = 0; i < cfg.nauthz_rules; i++) {
    fuzz_free_list(&rules[i].methods);
    fuzz_free_list(&rules[i].namespaces);
    fuzz_free_list(&rules[i].subjects);
    fuzz_free_list(&rules[i].task_queues);
    fuzz_free_list(&rules[i].workflow_types);
  }
  fuzz_free_list(&cfg.disabled_methods);
  return 0;
}
