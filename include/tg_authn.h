/*
 * tg_authn: authentication of one call: which credentials it presents
 * (verified client certificate, JWT, API key), whether they are valid, and
 * the claims they map to, OR-ed together. Every credential is checked before
 * a byte of the call is forwarded.
 *
 * - The token comes from the configured header (default "authorization") as
 *   "Bearer <token>": scheme case-insensitive, exactly one space, no space
 *   or tab in the token (Temporal splits at the first space and fails to
 *   parse the rest); an empty header means no token; several such headers
 *   are refused. A token with two dots is a JWT, anything else an API key.
 *   api_key_header, when set, may carry a bare API key instead.
 * - Methods in exempt_methods need no credentials and are not checked.
 * - A missing required credential, or any presented credential that is not
 *   valid, fails the call with UNAUTHENTICATED (16) and a short reason that
 *   never contains the credential; when no verification keys could be
 *   loaded yet, the call fails with UNAVAILABLE (14).
 *
 * tg_authn is built once from the configuration and shared read-only by all
 * workers; tg_authn_local is one worker's (its token cache).
 */
#ifndef TG_AUTHN_H
#define TG_AUTHN_H
#include <openssl/ssl.h>
#include <stdatomic.h>
#include <stdint.h>

#include "tg_claims.h"
#include "tg_config.h"
#include "tg_hdrs.h"
#include "tg_keystore.h"

typedef struct tg_authn tg_authn;
typedef struct tg_authn_local tg_authn_local;

/* Builds the mappers (certificate rules, permissions regex, API keys file).
 * keystore may be NULL when no JWT is configured. NULL with a reason. */
tg_authn *tg_authn_new(const tg_config *cfg, tg_keystore *keystore, char *err,
                       size_t errlen);
void tg_authn_free(tg_authn *a); /* NULL-safe */

/* Counters of one worker's authentications, written by the worker and read
 * by /metrics on the main thread (relaxed atomics). */
typedef struct tg_authn_counters {
  atomic_uint_least64_t cache_hits, cache_misses, verified, rejected;
} tg_authn_counters;

/* A worker's token cache for a; counts into n, which the caller owns and
 * keeps alive longer than the result (so that counts survive a reload). */
tg_authn_local *tg_authn_local_new(const tg_authn *a, tg_authn_counters *n);
void tg_authn_local_free(tg_authn_local *l); /* NULL-safe */

int tg_authn_is_exempt(const tg_authn *a, const char *path, size_t len);

/* Maps a TLS peer once per connection: *out gets the client-certificate
 * claims (kind TG_CRED_CLIENT_CERT when a verified certificate is present,
 * with whatever the rules grant). 0, or TG_CLAIMS_ERR_NOMEM. */
int tg_authn_peer_claims(const tg_authn *a, SSL *ssl, tg_claims *out);

/* The claims of an (already verified) client certificate; for
 * tg_authn_peer_claims and `tgate explain`. 0 or TG_CLAIMS_ERR_NOMEM. */
int tg_authn_cert_claims(const tg_authn *a, X509 *cert, tg_claims *out);

/* Result codes of tg_authn_call. */
#define TG_AUTHN_OK 0
#define TG_AUTHN_UNAUTHENTICATED 16
#define TG_AUTHN_UNAVAILABLE 14

/* Authenticates a call: ssl is the downstream TLS connection (NULL for
 * h2c), peer its tg_authn_peer_claims(). Plugins run after the token and
 * API key. On TG_AUTHN_OK *out (initialised, empty) holds the merged
 * claims; otherwise *reason says why. */
int tg_authn_call(const tg_authn *a, tg_authn_local *l, const tg_hdrs *h,
                  SSL *ssl, const tg_claims *peer, int64_t now, tg_claims *out,
                  const char **reason);

#endif
