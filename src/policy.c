/*
 * tg_policy: the authorization decision (see include/tg_policy.h).
 *
 * Method patterns are resolved once, when the policy is compiled, into a
 * bitmap over the method table: deciding then costs one bit test per rule
 * for the method, and glob matching only for the request's own strings.
 */
#include "tg_policy.h"

#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>

/* How much of a request's string (namespace, subject...) goes into a reason
 * or a trace line: they reach logs and possibly clients. */
#define POL_SHOW_MAX 64
#define POL_LINE_MAX 1024
#define POL_TRACE_NS_MAX 16
#define POL_ROLE_MAX 32 /* "admin+write+read+worker+0xf0" fits */

typedef struct pol_globs {
  char **v;
  size_t n;
} pol_globs;

typedef struct pol_rule {
  int allow;
  size_t line;
  uint64_t *methods; /* NULL: the rule names no methods, so any matches */
  pol_globs ns, subjects, task_queues, workflow_types;
} pol_rule;

struct tg_policy {
  size_t nmethods, nwords;
  uintptr_t table; /* address of the method table's first entry */
  uint64_t *disabled;
  pol_rule *rules;
  size_t nrules;
  int worker_extended;
};

/* ---- glob ---- */

/* With '*' as the only wildcard, matching the literal segments between
 * stars greedily, each at its leftmost occurrence, is exact: the first
 * segment is anchored at the start, the last at the end. memmem keeps each
 * search linear, so a hostile subject cannot make a match quadratic. */
int tg_glob_match(const char *pat, const char *s, size_t len) {
  const char *first = strchr(pat, '*');
  const char *last, *q;
  size_t head, tail, end, pos;

  if (!s)
    s = "";
  if (!first) {
    size_t plen = strlen(pat);
    return plen == len && (len == 0 || memcmp(pat, s, len) == 0);
  }
  head = (size_t)(first - pat);
  if (head > len || (head && memcmp(pat, s, head) != 0))
    return 0;
  last = strrchr(pat, '*');
  tail = strlen(last + 1);
  if (tail > len - head)
    return 0;
  end = len - tail;
  if (tail && memcmp(s + end, last + 1, tail) != 0)
    return 0;
  pos = head;
  for (q = first + 1; q <= last;) {
    const char *e = strchr(q, '*');
    size_t seg = (size_t)(e - q);
    if (seg) {
      const char *f = memmem(s + pos, end - pos, q, seg);
      if (!f)
        return 0;
      pos = (size_t)(f - s) + seg;
    }
    q = e + 1;
  }
  return 1;
}

static int pol_globs_any(const pol_globs *g, const void *s, size_t len) {
  for (size_t i = 0; i < g->n; i++)
    if (tg_glob_match(g->v[i], s, len))
      return 1;
  return 0;
}

/* ---- formatting ---- */

static void pol_err(char *err, size_t errlen, const char *fmt, ...) {
  va_list ap;
  if (!err || !errlen)
    return;
  va_start(ap, fmt);
  vsnprintf(err, errlen, fmt, ap);
  va_end(ap);
}

static void pol_trace(tg_explain_fn trace, void *arg, const char *fmt, ...) {
  char line[POL_LINE_MAX];
  va_list ap;
  if (!trace)
    return;
  va_start(ap, fmt);
  vsnprintf(line, sizeof(line), fmt, ap);
  va_end(ap);
  trace(arg, line);
}

/* Request bytes made safe for a log line: printable ASCII kept, anything
 * else '?', at most POL_SHOW_MAX bytes. dst holds POL_SHOW_MAX + 4. */
static const char *pol_show(char *dst, const void *p, size_t len) {
  const unsigned char *s = p;
  size_t n = len > POL_SHOW_MAX ? POL_SHOW_MAX : len, i;
  for (i = 0; i < n; i++)
    dst[i] = (s[i] >= 0x20 && s[i] < 0x7f) ? (char)s[i] : '?';
  if (n < len) {
    memcpy(dst + n, "...", 3);
    n += 3;
  }
  dst[n] = '\0';
  return dst;
}

/* Role bits as names, highest first: "write+read", "none". buf holds
 * POL_ROLE_MAX. */
static const char *pol_role(char *buf, uint8_t r) {
  static const struct {
    uint8_t bit;
    const char *name;
  } names[] = {{TG_ROLE_ADMIN, "admin"},
               {TG_ROLE_WRITE, "write"},
               {TG_ROLE_READ, "read"},
               {TG_ROLE_WORKER, "worker"}};
  size_t n = 0;
  buf[0] = '\0';
  for (size_t i = 0; i < sizeof(names) / sizeof(names[0]); i++) {
    if (!(r & names[i].bit))
      continue;
    n += (size_t)sprintf(buf + n, "%s%s", n ? "+" : "", names[i].name);
  }
  if (r & 0xf0u)
    sprintf(buf + n, "%s0x%02x", n ? "+" : "", (unsigned)(r & 0xf0u));
  else if (!n)
    strcpy(buf, "none");
  return buf;
}

/* ---- the built-in Authorizer ---- */

enum pol_how { POL_ALWAYS, POL_ROLE, POL_WORKER, POL_LOW, POL_NOSCOPE };

static uint8_t pol_held(const tg_claims *c, const void *ns, size_t nslen) {
  if (!c)
    return 0;
  if (!nslen)
    return c->system;
  return (uint8_t)(c->system | tg_claims_ns_role(c, ns, nslen));
}

/* The request's own target: 1 allow, 0 deny; *held and *how say why. */
static int pol_builtin_main(const tg_method *m, const tg_claims *c,
                            const void *ns, size_t nslen, int worker_extended,
                            uint8_t *held, enum pol_how *how) {
  *held = 0;
  if (m->always_allowed) {
    *how = POL_ALWAYS;
    return 1;
  }
  if (m->scope == TG_SCOPE_CLUSTER) {
    *held = c ? c->system : 0;
  } else if (m->scope == TG_SCOPE_NAMESPACE) {
    *held = pol_held(c, ns, nslen);
  } else {
    *how = POL_NOSCOPE;
    return 0;
  }
  if (*held >= m->required) {
    *how = POL_ROLE;
    return 1;
  }
  if (worker_extended && m->worker && (*held & TG_ROLE_WORKER)) {
    *how = POL_WORKER;
    return 1;
  }
  *how = POL_LOW;
  return 0;
}

/* A namespace named by a command; empty means the call's own namespace. */
static void pol_extra_ns(const tg_slice *x, const void *ns, size_t nslen,
                         const void **out, size_t *outlen) {
  if (x->len) {
    *out = x->p;
    *outlen = x->len;
  } else {
    *out = ns;
    *outlen = nslen;
  }
}

int tg_authz_builtin(const tg_method *m, const tg_claims *c, const char *ns,
                     size_t nslen, int worker_extended,
                     const tg_slice *extra_ns, size_t nextra_ns,
                     const char **why) {
  uint8_t held;
  enum pol_how how;
  const char *dummy;

  if (!why)
    why = &dummy;
  if (!m) {
    *why = "unknown method";
    return 0;
  }
  if (!pol_builtin_main(m, c, ns, nslen, worker_extended, &held, &how)) {
    *why = how == POL_NOSCOPE ? "method has no scope" : "insufficient role";
    return 0;
  }
  if (how == POL_ALWAYS) {
    *why = "always allowed method";
    return 1;
  }
  for (size_t i = 0; i < nextra_ns; i++) {
    const void *x;
    size_t xlen;
    pol_extra_ns(&extra_ns[i], ns, nslen, &x, &xlen);
    if (pol_held(c, x, xlen) < TG_ROLE_WRITE) {
      *why = "command targets a namespace without write";
      return 0;
    }
  }
  *why =
      how == POL_WORKER ? "worker role on a worker method" : "role sufficient";
  return 1;
}

/* ---- compiling ---- */

/* The table index of m, when m is an entry of the method table: computed
 * from the address, then checked against the entry at that index, so any
 * other pointer (one into the table's middle included) is refused. */
static int pol_method_index(const tg_policy *p, const tg_method *m,
                            size_t *out) {
  size_t i = ((uintptr_t)m - p->table) / sizeof(*m);
  if (i >= p->nmethods || tg_method_at(i) != m)
    return 0;
  *out = i;
  return 1;
}

static int pol_bit(const uint64_t *bits, size_t i) {
  return (int)((bits[i / 64] >> (i % 64)) & 1u);
}

/* Sets in bits every method pat names. Returns how many it names, or -1
 * for an unknown @category. */
static long pol_mark(const tg_policy *p, const char *pat, uint64_t *bits) {
  int category = pat[0] == '@';
  uint8_t required = 0;
  int worker = 0;
  long hits = 0;

  if (category) {
    if (!strcasecmp(pat, "@read"))
      required = TG_ROLE_READ;
    else if (!strcasecmp(pat, "@write"))
      required = TG_ROLE_WRITE;
    else if (!strcasecmp(pat, "@admin"))
      required = TG_ROLE_ADMIN;
    else if (!strcasecmp(pat, "@worker"))
      worker = 1;
    else
      return -1;
  }
  for (size_t i = 0; i < p->nmethods; i++) {
    const tg_method *m = tg_method_at(i);
    int hit;
    if (category)
      hit = worker ? m->worker != 0 : m->required == required;
    else
      hit = tg_glob_match(pat, m->name, strlen(m->name)) ||
            tg_glob_match(pat, m->path, strlen(m->path));
    if (hit) {
      bits[i / 64] |= (uint64_t)1 << (i % 64);
      hits++;
    }
  }
  return hits;
}

/* The family entry (tg_method.family) whose service pat names, by its
 * "Service/" name or its path prefix; NULL when none. */
static const tg_method *pol_family_of(const tg_policy *p, const char *pat) {
  for (size_t i = 0; i < p->nmethods; i++) {
    const tg_method *m = tg_method_at(i);
    if (m->family && (!strncmp(pat, m->name, strlen(m->name) - 1) ||
                      !strncmp(pat, m->path, m->path_len - 1)))
      return m;
  }
  return NULL;
}

/* Compiles a list of method patterns into a new bitmap. what names the list
 * in error messages. */
static uint64_t *pol_methods(const tg_policy *p, const tg_strlist *l,
                             const char *what, char *err, size_t errlen) {
  uint64_t *bits = calloc(p->nwords, sizeof(*bits));
  if (!bits) {
    pol_err(err, errlen, "out of memory");
    goto fail;
  }
  for (size_t i = 0; i < l->n; i++) {
    const char *pat = l->v[i] ? l->v[i] : "";
    long hits = pol_mark(p, pat, bits);
    if (hits < 0) {
      pol_err(err, errlen,
              "%s: unknown method category \"%s\" (expected @read, @write, "
              "@admin or @worker)",
              what, pat);
      goto fail;
    }
    if (hits == 0) {
      const tg_method *fam = pol_family_of(p, pat);
      if (fam)
        pol_err(err, errlen,
                "%s: method pattern \"%s\" matches no known method (the "
                "methods of a service whose descriptors tgate does not have "
                "are one entry: \"%s\")",
                what, pat, fam->name);
      else
        pol_err(err, errlen,
                "%s: method pattern \"%s\" matches no known method", what, pat);
      goto fail;
    }
  }
  return bits;
fail:
  free(bits);
  return NULL;
}

static int pol_globs_copy(pol_globs *g, const tg_strlist *l) {
  if (!l->n)
    return 0;
  g->v = calloc(l->n, sizeof(*g->v));
  if (!g->v)
    return -1;
  for (size_t i = 0; i < l->n; i++) {
    g->v[i] = strdup(l->v[i] ? l->v[i] : "");
    if (!g->v[i])
      return -1;
    g->n++;
  }
  return 0;
}

static void pol_globs_clear(pol_globs *g) {
  for (size_t i = 0; i < g->n; i++)
    free(g->v[i]);
  free(g->v);
}

void tg_policy_free(tg_policy *p) {
  if (!p)
    return;
  for (size_t i = 0; i < p->nrules; i++) {
    pol_rule *r = &p->rules[i];
    free(r->methods);
    pol_globs_clear(&r->ns);
    pol_globs_clear(&r->subjects);
    pol_globs_clear(&r->task_queues);
    pol_globs_clear(&r->workflow_types);
  }
  free(p->rules);
  free(p->disabled);
  free(p);
}

tg_policy *tg_policy_new(const tg_config *cfg, char *err, size_t errlen) {
  tg_policy *p = calloc(1, sizeof(*p));
  char what[64];

  if (!p)
    goto nomem;
  p->worker_extended = cfg->worker_role_extended != 0;
  p->nmethods = tg_methods_count();
  p->nwords = p->nmethods ? (p->nmethods + 63) / 64 : 1;
  p->table = (uintptr_t)tg_method_at(0);

  p->disabled =
      pol_methods(p, &cfg->disabled_methods, "disabled_methods", err, errlen);
  if (!p->disabled)
    goto fail;

  if (cfg->nauthz_rules) {
    p->rules = calloc(cfg->nauthz_rules, sizeof(*p->rules));
    if (!p->rules)
      goto nomem;
  }
  for (size_t i = 0; i < cfg->nauthz_rules; i++) {
    const tg_authz_rule_cfg *rc = &cfg->authz_rules[i];
    pol_rule *r = &p->rules[i];
    p->nrules++;
    r->allow = rc->allow != 0;
    r->line = rc->line;
    if (rc->methods.n) {
      snprintf(what, sizeof(what), "rule %zu (line %zu)", i + 1, rc->line);
      r->methods = pol_methods(p, &rc->methods, what, err, errlen);
      if (!r->methods)
        goto fail;
    }
    if (pol_globs_copy(&r->ns, &rc->namespaces) ||
        pol_globs_copy(&r->subjects, &rc->subjects) ||
        pol_globs_copy(&r->task_queues, &rc->task_queues) ||
        pol_globs_copy(&r->workflow_types, &rc->workflow_types))
      goto nomem;
  }
  return p;
nomem:
  pol_err(err, errlen, "out of memory");
fail:
  tg_policy_free(p);
  return NULL;
}

/* ---- deciding ---- */

/* Does a rule's task_queues (workflow_types) list g match the values x the
 * request names? carries: the method's request type can name one; when it
 * cannot, an allow rule's list does not restrict (a worker's completions and
 * heartbeats name no queue) and a deny rule's list has nothing to match.
 * what ("task queue") and list ("task_queues") word the reason in why. */
static int pol_names_match(const pol_globs *g, int allow, size_t carries,
                           const tg_names *x, const char *what,
                           const char *list, char *why, size_t whylen) {
  char show[POL_SHOW_MAX + 4];
  if (!carries) {
    if (allow)
      return 1;
    if (why)
      snprintf(why, whylen, "this method's request cannot name a %s", what);
    return 0;
  }
  if (x->overflow) {
    if (!allow)
      return 1;
    if (why)
      snprintf(why, whylen, "request names more than %d %ss", TG_NAMES_MAX,
               what);
    return 0;
  }
  for (size_t i = 0; i < x->n; i++) {
    int hit = pol_globs_any(g, x->v[i].p, x->v[i].len);
    if (hit && !allow)
      return 1;
    if (!hit && allow) {
      if (why)
        snprintf(why, whylen, "%s %s not in its %s", what,
                 pol_show(show, x->v[i].p, x->v[i].len), list);
      return 0;
    }
  }
  if (allow)
    return 1;
  if (!why)
    return 0;
  if (x->n == 0)
    snprintf(why, whylen, "request names no %s", what);
  else if (x->n == 1)
    snprintf(why, whylen, "%s %s not in its %s", what,
             pol_show(show, x->v[0].p, x->v[0].len), list);
  else
    snprintf(why, whylen, "none of the request's %zu %ss in its %s", x->n, what,
             list);
  return 0;
}

/* Does rule r match the request with namespace ns (the request's own, or
 * one a command names)? When why is given, says why not. */
static int pol_rule_match(const pol_rule *r, size_t mi,
                          const tg_authz_request *rq, const void *ns,
                          size_t nslen, char *why, size_t whylen) {
  char show[POL_SHOW_MAX + 4];
  const char *subject = rq->claims ? rq->claims->subject : NULL;

  if (r->methods && !pol_bit(r->methods, mi)) {
    if (why)
      snprintf(why, whylen, "method not in its methods");
    return 0;
  }
  if (r->ns.n) {
    if (!nslen) {
      if (why)
        snprintf(why, whylen, "request has no namespace");
      return 0;
    }
    if (!pol_globs_any(&r->ns, ns, nslen)) {
      if (why)
        snprintf(why, whylen, "namespace %s not in its namespaces",
                 pol_show(show, ns, nslen));
      return 0;
    }
  }
  if (r->subjects.n) {
    if (!subject) {
      if (why)
        snprintf(why, whylen, "claims have no subject");
      return 0;
    }
    if (!pol_globs_any(&r->subjects, subject, strlen(subject))) {
      if (why)
        snprintf(why, whylen, "subject %s not in its subjects",
                 pol_show(show, subject, strlen(subject)));
      return 0;
    }
  }
  if (r->task_queues.n &&
      !pol_names_match(&r->task_queues, r->allow, rq->method->ntask_queues,
                       &rq->task_queues, "task queue", "task_queues", why,
                       whylen))
    return 0;
  if (r->workflow_types.n &&
      !pol_names_match(&r->workflow_types, r->allow,
                       rq->method->nworkflow_types, &rq->workflow_types,
                       "workflow type", "workflow_types", why, whylen))
    return 0;
  return 1;
}

/* Evaluates the rules for one target. Without a trace it stops at the first
 * deny rule and skips allow rules once an allow is known (builtin_ok or an
 * earlier allow rule): the outcome is the same, only cheaper. */
static void pol_rules(const tg_policy *p, size_t mi, const tg_authz_request *rq,
                      const void *ns, size_t nslen, int builtin_ok,
                      const char *label, int *allow_rule, int *deny_rule,
                      tg_explain_fn trace, void *arg) {
  char why[POL_LINE_MAX / 2];
  *allow_rule = -1;
  *deny_rule = -1;
  for (size_t i = 0; i < p->nrules; i++) {
    const pol_rule *r = &p->rules[i];
    if (!trace) {
      if (r->allow && (builtin_ok || *allow_rule >= 0))
        continue;
      if (!pol_rule_match(r, mi, rq, ns, nslen, NULL, 0))
        continue;
      if (r->allow) {
        *allow_rule = (int)i;
        continue;
      }
      *deny_rule = (int)i;
      return;
    }
    if (pol_rule_match(r, mi, rq, ns, nslen, why, sizeof(why))) {
      /* only allow rules match a method that cannot name the values */
      int tq_na = r->task_queues.n && !rq->method->ntask_queues;
      int wt_na = r->workflow_types.n && !rq->method->nworkflow_types;
      pol_trace(trace, arg, "%srule %zu (line %zu, %s): matches%s%s%s%s", label,
                i + 1, r->line, r->allow ? "allow" : "deny",
                tq_na || wt_na ? " (this method's request cannot name " : "",
                tq_na ? "a task queue" : "", tq_na && wt_na ? " or " : "",
                tq_na || wt_na ? (wt_na ? "a workflow type: not restricted)"
                                        : ": not restricted)")
                               : "");
      if (r->allow && *allow_rule < 0)
        *allow_rule = (int)i;
      if (!r->allow && *deny_rule < 0)
        *deny_rule = (int)i;
    } else {
      pol_trace(trace, arg, "%srule %zu (line %zu, %s): no match: %s", label,
                i + 1, r->line, r->allow ? "allow" : "deny", why);
    }
  }
}

static void pol_trace_claims(const tg_claims *c, tg_explain_fn trace,
                             void *arg) {
  char line[POL_LINE_MAX], show[POL_SHOW_MAX + 4], role[POL_ROLE_MAX];
  size_t n, i;

  if (!trace)
    return;
  if (!c) {
    trace(arg, "claims: none");
    return;
  }
  n = (size_t)snprintf(
      line, sizeof(line), "claims: subject %s, system %s",
      c->subject ? pol_show(show, c->subject, strlen(c->subject)) : "(none)",
      pol_role(role, c->system));
  for (i = 0; i < c->nns && i < POL_TRACE_NS_MAX && n < sizeof(line); i++)
    n += (size_t)snprintf(line + n, sizeof(line) - n, "%s%s=%s",
                          i ? ", " : ", namespaces ",
                          pol_show(show, c->ns[i].ns, c->ns[i].len),
                          pol_role(role, c->ns[i].role));
  if (i < c->nns && n < sizeof(line))
    snprintf(line + n, sizeof(line) - n, ", +%zu more", c->nns - i);
  trace(arg, line);
}

/* Describes the built-in result for the request's own target, as a reason
 * ("allowed: ..." / "denied: ..."). */
static void pol_builtin_reason(char *out, size_t outlen, const tg_method *m,
                               const void *ns, size_t nslen, uint8_t held,
                               enum pol_how how) {
  char show[POL_SHOW_MAX + 4], h[POL_ROLE_MAX], need[POL_ROLE_MAX],
      where[POL_SHOW_MAX + 48];

  if (m->scope == TG_SCOPE_NAMESPACE && nslen)
    snprintf(where, sizeof(where), "namespace %s", pol_show(show, ns, nslen));
  else if (m->scope == TG_SCOPE_NAMESPACE)
    snprintf(where, sizeof(where), "the system scope (no namespace)");
  else
    snprintf(where, sizeof(where), "the system scope");
  pol_role(h, held);
  pol_role(need, m->required);
  switch (how) {
  case POL_ALWAYS:
    snprintf(out, outlen, "allowed: always allowed method");
    break;
  case POL_ROLE:
    snprintf(out, outlen, "allowed: %s on %s (needs %s)", h, where, need);
    break;
  case POL_WORKER:
    snprintf(out, outlen, "allowed: %s on %s (worker method)", h, where);
    break;
  case POL_NOSCOPE:
    snprintf(out, outlen, "denied: method has no scope");
    break;
  case POL_LOW:
    snprintf(out, outlen, "denied: needs %s on %s, holds %s", need, where, h);
    break;
  }
}

static void pol_verdict(tg_authz_verdict *v, int allow, int rule,
                        tg_explain_fn trace, void *arg, const char *fmt, ...) {
  va_list ap;
  v->allow = allow;
  v->rule = rule;
  va_start(ap, fmt);
  vsnprintf(v->reason, sizeof(v->reason), fmt, ap);
  va_end(ap);
  pol_trace(trace, arg, "decision: %s", v->reason);
}

int tg_policy_decide(const tg_policy *p, const tg_authz_request *rq,
                     tg_authz_verdict *v, tg_explain_fn trace, void *arg) {
  const tg_method *m = rq->method;
  const void *ns = rq->ns.p;
  size_t nslen = rq->ns.len, mi = 0, i;
  char reason[sizeof(v->reason)], show[POL_SHOW_MAX + 4], h[POL_ROLE_MAX],
      label[POL_SHOW_MAX + 40];
  uint8_t held;
  enum pol_how how;
  int disabled, builtin_ok, allow_rule, deny_rule, main_ok;
  int xfail = -1, xdeny = -1;

  v->allow = 0;
  v->rule = -1;
  v->reason[0] = '\0';
  pol_trace_claims(rq->claims, trace, arg);
  if (!m || !pol_method_index(p, m, &mi)) {
    if (trace)
      pol_trace(trace, arg, "method: %s: unknown",
                pol_show(show, rq->path, rq->path ? rq->path_len : 0));
    pol_verdict(v, 0, -1, trace, arg, "denied: unknown method");
    return 0;
  }
  if (trace)
    pol_trace(trace, arg, "method: %s (%s scope, needs %s%s%s%s)", m->name,
              m->scope == TG_SCOPE_CLUSTER     ? "cluster"
              : m->scope == TG_SCOPE_NAMESPACE ? "namespace"
                                               : "no",
              pol_role(h, m->required), m->worker ? ", worker method" : "",
              m->always_allowed ? ", always allowed" : "",
              m->inspect_commands ? ", commands inspected" : "");
  disabled = pol_bit(p->disabled, mi);
  if (disabled && !trace) {
    pol_verdict(v, 0, -1, NULL, NULL, "denied: method disabled");
    return 0;
  }

  builtin_ok = pol_builtin_main(m, rq->claims, ns, nslen, p->worker_extended,
                                &held, &how);
  /* Formatted when read: by the trace, a denial, or an allow that wants
   * its reason. */
  reason[0] = '\0';
  if (trace) {
    pol_builtin_reason(reason, sizeof(reason), m, ns, nslen, held, how);
    pol_trace(trace, arg, "built-in: %s", reason);
  }
  pol_rules(p, mi, rq, ns, nslen, builtin_ok, "", &allow_rule, &deny_rule,
            trace, arg);
  main_ok = (builtin_ok || allow_rule >= 0) && deny_rule < 0;

  /* Every namespace a command names is a target of its own: it needs write
   * there (or an allow rule for it), and deny rules for it apply. */
  if (how != POL_ALWAYS && (main_ok || trace)) {
    for (i = 0; i < rq->nextra_ns; i++) {
      const void *x;
      size_t xlen;
      uint8_t xheld;
      int xok, xa, xd;
      pol_extra_ns(&rq->extra_ns[i], ns, nslen, &x, &xlen);
      xheld = pol_held(rq->claims, x, xlen);
      label[0] = '\0';
      if (trace) {
        snprintf(label, sizeof(label), "command namespace %s: ",
                 xlen ? pol_show(show, x, xlen) : "(none)");
        pol_trace(trace, arg, "%sbuilt-in: %s (holds %s, needs write)", label,
                  xheld >= TG_ROLE_WRITE ? "allow" : "deny",
                  pol_role(h, xheld));
      }
      pol_rules(p, mi, rq, x, xlen, xheld >= TG_ROLE_WRITE, label, &xa, &xd,
                trace, arg);
      xok = (xheld >= TG_ROLE_WRITE || xa >= 0) && xd < 0;
      if (!xok && xfail < 0) {
        xfail = (int)i;
        xdeny = xd;
        if (!trace)
          break;
      }
    }
  }
  pol_trace(trace, arg, "disabled: %s", disabled ? "yes" : "no");

  if (disabled) {
    pol_verdict(v, 0, -1, trace, arg, "denied: method disabled");
  } else if (deny_rule >= 0) {
    pol_verdict(v, 0, deny_rule, trace, arg, "denied by rule %d (line %zu)",
                deny_rule + 1, p->rules[deny_rule].line);
  } else if (!main_ok) {
    if (!trace)
      pol_builtin_reason(reason, sizeof(reason), m, ns, nslen, held, how);
    pol_verdict(v, 0, -1, trace, arg, "%s", reason);
  } else if (xfail >= 0) {
    const void *x;
    size_t xlen;
    pol_extra_ns(&rq->extra_ns[xfail], ns, nslen, &x, &xlen);
    pol_show(show, x, xlen);
    if (xdeny >= 0)
      pol_verdict(v, 0, xdeny, trace, arg,
                  "denied by rule %d (line %zu) for command namespace %s",
                  xdeny + 1, p->rules[xdeny].line, show);
    else
      pol_verdict(v, 0, -1, trace, arg,
                  "denied: command targets namespace %s without write", show);
  } else if (rq->terse_allow && !trace) {
    v->allow = 1;
    v->rule = builtin_ok ? -1 : allow_rule;
    memcpy(v->reason, TG_POLICY_TERSE_ALLOW, sizeof(TG_POLICY_TERSE_ALLOW));
  } else if (builtin_ok) {
    if (!trace)
      pol_builtin_reason(reason, sizeof(reason), m, ns, nslen, held, how);
    pol_verdict(v, 1, -1, trace, arg, "%s", reason);
  } else {
    pol_verdict(v, 1, allow_rule, trace, arg, "allowed by rule %d (line %zu)",
                allow_rule + 1, p->rules[allow_rule].line);
  }
  return 0;
}
