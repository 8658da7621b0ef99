/*
 * tg_admin: the admin HTTP/1.1 listener on the main thread's event loop.
 * GET /health/live  -> 200 "live" while the process runs.
 * GET /health/ready -> 200 "ready" when the configuration is loaded, the
 *                      gateway is not shutting down and at least one upstream
 *                      connection is up; otherwise 503 with the reason.
 * No credentials are ever required here. Anything else: 404; other methods
 * on these paths: 405.
 */
#ifndef TG_ADMIN_H
#define TG_ADMIN_H
#include "tg_worker.h"

typedef struct tg_admin tg_admin;

/* Binds addr. NULL with a reason in err on failure. */
tg_admin *tg_admin_new(tg_app *app, const tg_addr *addr, char *err,
                       size_t errlen);
void tg_admin_free(tg_admin *a); /* NULL-safe */
#endif
