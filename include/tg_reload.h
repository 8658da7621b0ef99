/*
 * tg_reload: configuration reloads on the main thread, from SIGHUP or from
 * a change to a watched file.
 *
 * A reload re-reads everything: the configuration file (and the environment
 * overrides), then every file it names, by building a complete new
 * generation (tg_gen: TLS contexts with their certificates and keys, API
 * keys, JWT key sources, policy). Only a generation that builds completely,
 * and that changes nothing that needs a restart (tg_gen_restart_only), is
 * swapped in: for every new call on every worker at once, while calls in
 * flight finish under the generation they started with. Anything else is
 * refused as a whole: the running generation stays, the error is logged
 * (with FILE:LINE:COL for configuration problems) and counted.
 * When the new generation names JWT key URLs the old one did not fetch, the
 * swap waits (up to TG_RELOAD_KEY_WAIT_MS) until its key store has keys.
 *
 * Watched files, polled every reload.watch_interval with stat() (so that a
 * Kubernetes ConfigMap or Secret update, an atomic symlink swap, is seen
 * too): the configuration file, listen.tls and upstream.tls certificates,
 * keys and CAs, authentication.api_keys_file, and the file: and pem: JWT
 * key sources. A change reloads once the files have stopped changing for
 * one interval.
 *
 * Every reload, good or bad, is an audit log entry ("config_reload").
 * Superseded generations are freed here once nothing refers to them.
 */
#ifndef TG_RELOAD_H
#define TG_RELOAD_H
#include <stdint.h>

#include "tg_worker.h"

#define TG_RELOAD_KEY_WAIT_MS 15000

typedef struct tg_reload tg_reload;

/* getenv_fn reads environment overrides (tg_config_apply_env). NULL with a
 * reason in err. The watch starts at once when the interval is not 0. */
tg_reload *tg_reload_new(tg_app *app, const char *path,
                         const char *(*getenv_fn)(const char *), char *err,
                         size_t errlen);

/* Starts a reload (main thread). why is logged ("SIGHUP", "file ... changed").
 * A reload already waiting for keys is abandoned for the new one. */
void tg_reload_request(tg_reload *rl, const char *why);

typedef struct tg_reload_stats {
  uint64_t succeeded, failed;
  int64_t last_success, last_failure; /* unix seconds; 0: never */
  int last_ok;                        /* the last reload succeeded (1) */
  uint64_t generation;                /* the current generation's id */
} tg_reload_stats;
void tg_reload_stats_get(const tg_reload *rl, tg_reload_stats *out);

/* Main thread, after the workers have stopped: frees every generation but
 * app->boot and app->gen (which the caller frees). NULL-safe. */
void tg_reload_free(tg_reload *rl);
#endif
