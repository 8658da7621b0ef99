/*
 * tg_policy: the authorization decision for one call.
 *
 * 1. The built-in Authorizer, Temporal's semantics
 *    (common/authorization/default_authorizer.go):
 *    - always_allowed methods (GetSystemInfo, health check) pass, even
 *      without claims (c == NULL, which otherwise holds nothing);
 *    - an unknown method (m == NULL) is denied;
 *    - held role: cluster scope -> claims.system; namespace scope ->
 *      claims.system | role on that exact namespace (an empty namespace:
 *      the system role alone); a method of neither scope is denied;
 *    - allowed iff held >= required, compared as numbers (write covers
 *      reads, admin covers all; worker alone (1) allows nothing);
 *    - worker_role extended: additionally, a method marked worker is allowed
 *      when the held role has the worker bit.
 *    - inspect_commands (RespondWorkflowTaskCompleted): every namespace named
 *      by a command (extra_ns) additionally needs write (4) there: held
 *      there = system | role on it, compared as numbers (so the worker
 *      extension does not apply). An empty extra_ns entry is the call's own
 *      namespace (Temporal's default for a command without one).
 * 2. Rules (authorization.rules), each allow or deny, matching when every
 *    list it sets matches: methods, namespaces, subjects (the claims'
 *    subject), task_queues and workflow_types; all but methods are globs
 *    matched when deciding. A rule naming namespaces or subjects matches
 *    only requests that carry one (a non-empty namespace, a subject).
 *    task_queues is matched against every task queue the request names
 *    (rq->task_queues), workflow_types alike against rq->workflow_types:
 *    - when the method's request type can name none (m->ntask_queues 0),
 *      the list does not restrict: it matches;
 *    - when the request names more than TG_NAMES_MAX (overflow), an allow
 *      rule does not match and a deny rule does (fail closed);
 *    - an allow rule matches when every value matches one of its globs
 *      (vacuously when the request names none);
 *    - a deny rule matches when any value matches one of its globs.
 *    Method patterns: the "Service/Method" name or the full path, either
 *    with '*' globs, or a category: @read, @write, @admin (the method's
 *    required role equals it) or @worker (the method's worker flag);
 *    categories are case-insensitive. They are resolved against the method
 *    table when compiling.
 * 3. disabled_methods (same pattern syntax): denied for everyone.
 * Unknown methods (m == NULL, or a pointer that is not an entry of the
 * method table) are ALWAYS denied: no allow rule, not even methods: ["*"],
 * reaches them.
 *
 * Decision. The call's targets are its own namespace (needing what the
 * built-in says) and each extra_ns (needing write, see 1). A target is
 * granted iff (the built-in allows it or an allow rule matches the request
 * with that namespace) and no deny rule does. Allowed iff the method is
 * known, every target is granted and the method is not disabled. Without
 * extra_ns this is: (built-in allows or an allow rule matches) and no deny
 * rule matches and the method is not disabled.
 *
 * The verdict's reason is the first that applies of: "denied: unknown
 * method"; "denied: method disabled"; "denied by rule N (line L)" (the
 * first matching deny rule); the built-in's denial ("denied: needs write on
 * namespace payments, holds read") when no allow rule matches; for the
 * first command namespace not granted, "denied by rule N (line L) for
 * command namespace X" or "denied: command targets namespace X without
 * write"; else the built-in's grant ("allowed: write on namespace payments
 * (needs write)") or "allowed by rule N (line L)" (the first matching allow
 * rule, when the built-in denies). Rules are numbered from 1 in text;
 * verdict.rule is the 0-based index of the deny rule that denied or of the
 * allow rule that allowed (-1 otherwise). Request strings in reasons are
 * cut to 64 bytes, bytes outside printable ASCII shown as '?'. With
 * rq->terse_allow and no trace, an allow's reason is just "allowed" (the
 * rule is still set); denials keep theirs.
 *
 * The compiled policy is immutable and shared by all workers.
 */
#ifndef TG_POLICY_H
#define TG_POLICY_H
#include <stddef.h>
#include <stdint.h>

#include "tg_claims.h"
#include "tg_config.h"
#include "tg_methods.h"
#include "tg_pb.h"

typedef struct tg_policy tg_policy;

/* Compiles cfg's authorization section (worker_role_extended,
 * disabled_methods, authz_rules; cfg is not referenced afterwards). NULL
 * with a reason in err: a method pattern of a rule or of disabled_methods
 * that matches no known method (a typo must not silently disable a rule),
 * an unknown @category, or out of memory. */
tg_policy *tg_policy_new(const tg_config *cfg, char *err, size_t errlen);
void tg_policy_free(tg_policy *p); /* NULL-safe */

/* The most distinct task queues (workflow types) a request's values hold;
 * a request naming more is decided fail-closed (overflow). */
#define TG_NAMES_MAX 32

/* The distinct task queues (or workflow types) a request names at the
 * places its method's request type has (tg_methods.h). Not owned. */
typedef struct tg_names {
  const tg_slice *v; /* n values, no two equal */
  size_t n;
  int overflow; /* 1: it names more than TG_NAMES_MAX; v holds the first */
} tg_names;

typedef struct tg_authz_request {
  const tg_method *method; /* NULL: unknown method */
  const char *path;        /* as received */
  size_t path_len;
  const tg_claims *claims;
  tg_slice ns; /* the request's namespace; len 0: empty */
  tg_names task_queues;
  tg_names workflow_types;
  const tg_slice *extra_ns; /* namespaces named by commands */
  size_t nextra_ns;
  /* 1: nobody reads the reason of an allow: an allowed verdict's reason is
   * then TG_POLICY_TERSE_ALLOW, and nothing is formatted. A denial's reason
   * is always the full one, and so is every reason when a trace is given.
   * 0 (a zeroed request): full reasons. */
  int terse_allow;
} tg_authz_request;

/* The reason of an allowed verdict when the request says terse_allow. */
#define TG_POLICY_TERSE_ALLOW "allowed"

typedef struct tg_authz_verdict {
  int allow;
  int rule;         /* index of the deciding rule, or -1 */
  char reason[256]; /* for logs (and clients with expose_reasons) */
} tg_authz_verdict;

/* Optional trace for `tgate explain`: called with one line per step, in
 * order: "claims: ...", "method: ...", "built-in: ...", one "rule N (line
 * L, allow|deny): matches" or "...: no match: <why>" per rule, for each
 * command namespace its "command namespace X: built-in: ..." and rule
 * lines, "disabled: yes|no", and "decision: <reason>". The line is valid
 * only during the call. */
typedef void (*tg_explain_fn)(void *arg, const char *line);

/* Decides rq. Returns 0 (verdict filled) always; v->allow says the answer.
 * Costs O(rules x (1 + nextra_ns)) glob matches of the request's strings
 * (each task queue and workflow type counting as one);
 * methods are never string-matched. Thread-safe (p is read only). */
int tg_policy_decide(const tg_policy *p, const tg_authz_request *rq,
                     tg_authz_verdict *v, tg_explain_fn trace, void *arg);

/* The built-in Authorizer alone (step 1), extra_ns included. 1 allow,
 * 0 deny; *why (when why is not NULL) a static phrase. Pure. */
int tg_authz_builtin(const tg_method *m, const tg_claims *c, const char *ns,
                     size_t nslen, int worker_extended,
                     const tg_slice *extra_ns, size_t nextra_ns,
                     const char **why);

/* Does NUL-terminated pat match the len bytes at s? '*' matches any run
 * (empty included), everything else is literal and case-sensitive. Pure;
 * no recursion, O(strlen(pat) + len) (segments between stars are found
 * with memmem), so hostile input cannot make it quadratic. */
int tg_glob_match(const char *pat, const char *s, size_t len);
#endif
