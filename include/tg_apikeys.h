/*
 * tg_apikeys: the API-key ClaimMapper. Keys are looked up by the SHA-256 of
 * the presented key, compared in constant time against every entry (no
 * early exit), so timing tells nothing about which entries exist.
 *
 * Key form: "tgk_" followed by 43 base64url characters (32 random bytes);
 * any string without dots is accepted as a key (a JWT has two), so keys
 * issued elsewhere can be listed too.
 * Thread-safe once built (read-only).
 */
#ifndef TG_APIKEYS_H
#define TG_APIKEYS_H
#include <stddef.h>
#include <stdint.h>

#include "tg_claims.h"
#include "tg_config.h"

#define TG_APIKEY_LEN 47 /* "tgk_" + 43 */

/* Checks key (len bytes) at time now. Returns 0 and adds subject,
 * permissions, kind TG_CRED_API_KEY and not_after = expires to out; or
 * TG_APIKEY_REJECTED with *reason ("unknown API key", "API key expired");
 * or TG_CLAIMS_ERR_NOMEM when memory runs out. */
#define TG_APIKEY_REJECTED 1
int tg_apikeys_check(const tg_apikeys_file *keys, const char *key, size_t len,
                     int64_t now, const tg_perm_opts *popts, tg_claims *out,
                     const char **reason);

/* Makes a new random key (NUL-terminated, TG_APIKEY_LEN chars) and the hex
 * SHA-256 to store. 0, or -1 when the random generator fails. */
int tg_apikey_generate(char key[TG_APIKEY_LEN + 1], char sha256_hex[65]);

/* The hex SHA-256 of any key. */
void tg_apikey_hash_hex(const char *key, size_t len, char sha256_hex[65]);
#endif
