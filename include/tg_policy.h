/*
 * tg_policy: the authorization decision for one call.
 *
 * 1. The built-in Authorizer, Temporal's semantics
 *    (common/authorization/default_authorizer.go):
 *    - always_allowed methods (GetSystemInfo, health check) pass;
 *    - an unknown method (m == NULL) is denied;
 *    - held role: cluster scope -> claims.system; namespace scope ->
 *      claims.system | role on that exact namespace (an empty namespace:
 *      the system role alone);
 *    - allowed iff held >= required, compared as numbers (write covers
 *      reads, admin covers all; worker alone (1) allows nothing);
 *    - worker_role extended: additionally, a method marked worker is allowed
 *      when the held role has the worker bit.
 *    - inspect_commands (RespondWorkflowTaskCompleted): every namespace named
 *      by a command (extra_ns) additionally needs write (4) there, or system
 *      write.
 * 2. Rules (authorization.rules), each allow or deny, matching when every
 *    list it sets matches: methods (the "Service/Method" name or the full
 *    path, '*' globs, or @read/@write/@admin (the method's required role)
 *    and @worker), namespaces, subjects (the claims' subject), task_queues
 *    and workflow_types (a rule naming these matches only requests that
 *    carry them). Globs: '*' matches any run of characters.
 * 3. disabled_methods: denied for everyone.
 * Decision: allowed iff (built-in allows or an allow rule matches) and no
 * deny rule matches and the method is not disabled.
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

/* Compiles cfg's authorization section. NULL with a reason (e.g. a rule's
 * method pattern that matches no known method, an unknown @category). */
tg_policy *tg_policy_new(const tg_config *cfg, char *err, size_t errlen);
void tg_policy_free(tg_policy *p); /* NULL-safe */

typedef struct tg_authz_request {
  const tg_method *method; /* NULL: unknown method */
  const char *path;        /* as received */
  size_t path_len;
  const tg_claims *claims;
  tg_slice ns;             /* the request's namespace; len 0: empty */
  int has_task_queue;
  tg_slice task_queue;
  int has_workflow_type;
  tg_slice workflow_type;
  const tg_slice *extra_ns; /* namespaces named by commands */
  size_t nextra_ns;
} tg_authz_request;

typedef struct tg_authz_verdict {
  int allow;
  int rule;          /* index of the deciding rule, or -1 */
  char reason[256];  /* for logs (and clients with expose_reasons) */
} tg_authz_verdict;

/* Optional trace for `tgate explain`: called with one line per step. */
typedef void (*tg_explain_fn)(void *arg, const char *line);

/* Decides rq. Returns 0 (verdict filled) always; v->allow says the answer. */
int tg_policy_decide(const tg_policy *p, const tg_authz_request *rq,
                     tg_authz_verdict *v, tg_explain_fn trace, void *arg);

/* The built-in Authorizer alone (step 1). 1 allow, 0 deny; *why static. */
int tg_authz_builtin(const tg_method *m, const tg_claims *c, const char *ns,
                     size_t nslen, int worker_extended,
                     const tg_slice *extra_ns, size_t nextra_ns,
                     const char **why);

/* Glob match ('*' any run, everything else literal). Pure. */
int tg_glob_match(const char *pat, const char *s, size_t len);
#endif
