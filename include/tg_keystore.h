/*
 * tg_keystore: the JWT verification keys of authentication.jwt.key_sources,
 * kept fresh on the main thread's event loop and published to the workers.
 *
 * Sources: "https://..." and "http://..." JWKS URLs (http only to loopback
 * hosts), fetched with libcurl's multi interface driven by libevent, so
 * nothing blocks; "file:PATH" JWKS documents and "pem:PATH" PEM public keys,
 * read from disk. https:// is verified against cfg->ca_file when set (which
 * must hold at least one PEM certificate, checked by tg_keystore_new and
 * tg_keystore_check), else against the system trust store.
 *
 * - All sources are (re)loaded every refresh_interval. Each source keeps its
 *   last good document: a failed fetch or an unparsable document keeps what
 *   that source gave before. The published set is the union of every
 *   source's last good keys, parsed again only when a refresh brought a
 *   document that differs from the source's last good one.
 * - tg_keystore_request_refresh() (any thread; used on an unknown kid)
 *   triggers an early refresh, at most one per TG_KEYSTORE_MIN_EARLY_S;
 *   asked while a refresh is under way, another follows it.
 * - tg_keystore_get() (any thread) returns a reference to the current set
 *   (release with tg_keyset_unref), or NULL while no key was ever loaded.
 * - The generation number grows with every new set (never for a refresh
 *   that found the same documents), so caches can tell a verification done
 *   under older keys and keep the rest.
 * Counters for metrics are read with tg_keystore_stats().
 */
#ifndef TG_KEYSTORE_H
#define TG_KEYSTORE_H
#include <event2/event.h>
#include <stdint.h>

#include "tg_config.h"
#include "tg_jwks.h"

#define TG_KEYSTORE_MIN_EARLY_S 10
#define TG_KEYSTORE_MAX_DOC (1024 * 1024)
#define TG_KEYSTORE_FETCH_TIMEOUT_S 10

typedef struct tg_keystore tg_keystore;

typedef struct tg_keystore_stats {
  uint64_t refreshes, failures, generation;
  int64_t loaded_at; /* unix seconds of the last published set; 0: never */
  size_t nkeys;
} tg_keystore_stats;

/* Creates the store on base (the main loop) and starts the first load:
 * file and PEM sources are read at once, URLs are fetched in the
 * background. seed (may be NULL; a store on the same loop, e.g. the one a
 * reload replaces) lends its last good document of every URL the new store
 * also names, published at once, so the new store is never emptier than
 * the old while its own fetches run. NULL with a reason in err on failure
 * (no memory, curl). */
tg_keystore *tg_keystore_new(struct event_base *base, const tg_jwt_cfg *cfg,
                             const tg_keystore *seed, char *err, size_t errlen);
void tg_keystore_free(tg_keystore *ks); /* NULL-safe; main thread */

tg_keyset *tg_keystore_get(tg_keystore *ks, uint64_t *generation);
void tg_keystore_request_refresh(tg_keystore *ks);
void tg_keystore_stats_get(tg_keystore *ks, tg_keystore_stats *out);

/* Is url's host loopback: an IPv4 literal in 127.0.0.0/8, [::1] or
 * localhost (case-insensitive)? Anything else, including a name that
 * starts with "127.", is not. The rule for "http://" key sources. Pure. */
int tg_keystore_is_loopback_url(const char *url);

/* Loads every source once, synchronously, with a timeout per URL; for
 * `tgate --check-config`. 0 when every source gave at least one key, else
 * -1 with the first problem in err. */
int tg_keystore_check(const tg_jwt_cfg *cfg, char *err, size_t errlen);
#endif
