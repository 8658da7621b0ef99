/*
 * tg_gen: one generation of everything a configuration builds (the parsed
 * configuration, the TLS contexts, the JWT key store, the authenticator and
 * the authorizer), so that a reload can swap all of it at once.
 *
 * Lifetime
 * - Built on the main thread by tg_gen_new(), which takes ownership of cfg.
 * - Shared by reference: a worker holds its current generation, and every
 *   call (tg_relay) holds the generation it started under until it ends, so
 *   a call in flight finishes under the configuration it started with.
 *   tg_gen_ref/tg_gen_unref are atomic and may run on any thread; unref
 *   never frees.
 * - Only the main thread frees, with tg_gen_free(), once tg_gen_refs() is 0
 *   (the key store lives on the main loop and must die there).
 *
 * What a reload may change and what needs a restart is decided by
 * tg_gen_restart_only(): listening sockets, worker count, the admin
 * listener, the upstream addresses and connection settings, the audit file
 * and the access log destination are fixed at start.
 */
#ifndef TG_GEN_H
#define TG_GEN_H
#include <event2/event.h>
#include <openssl/ssl.h>
#include <stdatomic.h>
#include <stdint.h>

#include "tg_config.h"
#include "tg_keystore.h"

struct tg_authn;
struct tg_authz;

typedef struct tg_gen {
  atomic_uint refs;
  uint64_t id; /* 1 for the configuration tgate started with, then +1 */
  tg_config *cfg;
  SSL_CTX *server_ctx;    /* NULL for h2c */
  SSL_CTX *client_ctx;    /* NULL for an h2c upstream */
  tg_keystore *keystore;  /* NULL without authentication.jwt */
  struct tg_authn *authn; /* NULL without an authentication section */
  struct tg_authz *authz; /* always set */
  /* upstream.credentials: the field tgate sends the frontend instead of
   * the client's credentials ("Bearer <token>"); NULL without */
  char *upstream_cred;
  const char *upstream_cred_header; /* its name */
} tg_gen;

/* Builds a generation from cfg (taken over, also on failure). base is the
 * main loop (for the key store). prev, when not NULL, seeds the new key
 * store with the documents prev's store last fetched from the same URLs,
 * so that a reload never starts with an empty key set. Returns the new
 * generation with one reference (the caller's), or NULL with the reasons in
 * err: every part is built even after another failed, and each problem is
 * one line ('\n'-separated, no final newline), those about a file the
 * configuration names starting with "FILE:LINE:COLUMN: " of the key that
 * named it (see tg_config.file_at); lines that do not fit in errlen are
 * counted on a last line. */
tg_gen *tg_gen_new(tg_config *cfg, uint64_t id, struct event_base *base,
                   const tg_gen *prev, char *err, size_t errlen);

tg_gen *tg_gen_ref(tg_gen *g); /* returns g */
void tg_gen_unref(tg_gen *g);  /* NULL-safe; never frees */
unsigned tg_gen_refs(const tg_gen *g);
void tg_gen_free(tg_gen *g); /* main thread; NULL-safe; refs must be 0 */
/* Main thread: frees all but the configuration, for a generation nothing
 * uses any more but for its configuration's fixed settings. */
void tg_gen_strip(tg_gen *g);

/* Compares what only a restart can change. Returns 0 when next may replace
 * cur, else -1 with the first difference in err ("listen.address changed
 * (needs a restart)"). Pure. */
int tg_gen_restart_only(const tg_config *cur, const tg_config *next, char *err,
                        size_t errlen);
#endif
