/*
 * tg_claims: who a caller is and which Temporal roles it holds, as
 * Temporal's authorization.Claims: a subject, a system role and a map
 * namespace -> role, with Temporal's role bits. Also the parsing of
 * Temporal's "namespace:role" permission strings, shared by every
 * ClaimMapper (JWT, client certificates, API keys, plugins).
 *
 * Semantics follow Temporal's default JWT ClaimMapper
 * (common/authorization/default_jwt_claim_mapper.go):
 * - a permission is split at the FIRST ':' into namespace and role (or, with
 *   a permissions regex, taken from its named groups "namespace" and "role",
 *   unanchored, first match); a string without ':' (or not matching) is
 *   skipped;
 * - the role is compared case-insensitively with read, write, worker, admin;
 *   an unknown role grants nothing (the namespace is still recorded with
 *   role 0, as Temporal does);
 * - a namespace equal to one of the system-scope names (default
 *   "temporal-system"; older deployments used "system") grants on the system
 *   role instead; namespace names are case-sensitive byte strings;
 * - several grants for one namespace are OR-ed.
 *
 * Memory: a tg_claims owns its strings: each allocated on its own, or,
 * after tg_claims_merge/copy, all in one block (one allocation to make and
 * free per call that copies cached claims). Functions returning int give
 * 0, or TG_CLAIMS_ERR_NOMEM. Not thread-safe; a value belongs to one call or to
 * a cache entry.
 */
#ifndef TG_CLAIMS_H
#define TG_CLAIMS_H
#include <stddef.h>
#include <stdint.h>

#define TG_ROLE_WORKER 1u
#define TG_ROLE_READ 2u
#define TG_ROLE_WRITE 4u
#define TG_ROLE_ADMIN 8u

/* Kinds of credential that contributed to a tg_claims. */
#define TG_CRED_CLIENT_CERT 1u
#define TG_CRED_JWT 2u
#define TG_CRED_API_KEY 4u
#define TG_CRED_PLUGIN 8u

#define TG_CLAIMS_ERR_NOMEM -1

typedef struct tg_ns_role {
  char *ns; /* NUL-terminated copy; may contain any byte but NUL */
  size_t len;
  uint8_t role;
} tg_ns_role;

typedef struct tg_claims {
  char *subject;  /* NULL until a mapper sets it */
  uint32_t kinds; /* TG_CRED_* */
  uint8_t system; /* role bits on the system scope */
  tg_ns_role *ns; /* sorted bytewise by name, names unique */
  size_t nns, cap;
  int64_t not_after; /* unix seconds after which these claims are void
                        (the earliest expiry of the credentials); 0: none */
  /* NULL, or the one block holding ns[], every name and the subject (the
   * result of a merge or copy); a change that adds a string first gives
   * them allocations of their own. Internal to tg_claims. */
  void *packed;
} tg_claims;

void tg_claims_init(tg_claims *c);
void tg_claims_clear(tg_claims *c); /* frees; c may be reused after init */

/* Sets the subject if none is set yet (the first mapper's subject wins). */
int tg_claims_set_subject(tg_claims *c, const char *s, size_t len);

/* ORs role into namespace ns (len bytes; must not contain NUL). */
int tg_claims_grant(tg_claims *c, const char *ns, size_t len, uint8_t role);

/* The role bits held on namespace ns, not counting the system role. */
uint8_t tg_claims_ns_role(const tg_claims *c, const char *ns, size_t len);

/* ORs src into dst: roles, kinds; subject if dst has none; not_after is the
 * earlier of the two (0 counts as "none"). On TG_CLAIMS_ERR_NOMEM dst is
 * unchanged. */
int tg_claims_merge(tg_claims *dst, const tg_claims *src);

/* dst (initialised, empty) becomes a deep copy of src. */
int tg_claims_copy(tg_claims *dst, const tg_claims *src);

/* ---- permission strings ---- */

typedef struct tg_perm_regex tg_perm_regex; /* compiled permissions_regex */

typedef struct tg_perm_opts {
  const char *const *system_names; /* NULL: {"temporal-system"} */
  size_t nsystem_names;
  const tg_perm_regex *regex; /* NULL: split at the first ':' */
} tg_perm_opts;

/* Role bit of a role name (case-insensitive), or 0 when unknown. */
uint8_t tg_perm_role(const char *s, size_t len);

/* Applies one permission string to c. Returns 1 when applied, 0 when
 * skipped (no ':' / no regex match / empty namespace / a NUL byte in the
 * namespace), or TG_CLAIMS_ERR_NOMEM. */
int tg_perm_apply(tg_claims *c, const char *perm, size_t len,
                  const tg_perm_opts *opts);

/* Is ns one of the system-scope names of opts? */
int tg_perm_is_system(const char *ns, size_t len, const tg_perm_opts *opts);

/* Compiles a permissions regex (PCRE2, Go/RE2-compatible syntax such as
 * "(?P<namespace>[a-z-]+)\\.(?P<role>[a-z]+)"). It must have the named
 * groups "namespace" and "role". NULL with a reason in err otherwise.
 * As in Go, '$' matches only at the very end. Unlike RE2, PCRE2 backtracks:
 * a match that exceeds its match/depth/heap limits counts as no match.
 * A compiled regex may be shared by threads. */
tg_perm_regex *tg_perm_regex_new(const char *pattern, char *err, size_t errlen);
void tg_perm_regex_free(tg_perm_regex *re); /* NULL-safe */
#endif
