/*
 * tg_plugins: loads the ClaimMapper plugins of authentication.plugins
 * (dlopen; ABI in tgate_plugin.h) and runs them for a call.
 *
 * A plugin whose entry point is missing, whose abi_version differs, or
 * whose init fails stops the start with a reason. Loaded plugins are shared
 * read-only by the workers; each plugin must be thread-safe.
 */
#ifndef TG_PLUGINS_H
#define TG_PLUGINS_H
#include <openssl/ssl.h>

#include "tg_claims.h"
#include "tg_config.h"
#include "tg_hdrs.h"

typedef struct tg_plugins tg_plugins;

tg_plugins *tg_plugins_load(const tg_plugin_cfg *cfgs, size_t n, char *err,
                            size_t errlen);
void tg_plugins_free(tg_plugins *p); /* NULL-safe */

/* Runs every plugin on the call. Returns 0 (grants merged into out; kind
 * TG_CRED_PLUGIN added when one recognised a credential), 1 when a plugin
 * rejected the call (*reason set), or TG_CLAIMS_ERR_NOMEM. */
int tg_plugins_apply(const tg_plugins *p, const char *path, size_t plen,
                     const tg_hdrs *h, SSL *ssl, tg_claims *out,
                     const char **reason);
#endif
