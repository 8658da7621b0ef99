/*
 * tg_callcount: calls in flight per authenticated subject, across all
 * workers, for limits.max_calls_per_subject.
 *
 * A mutex-protected chained hash table keyed by the subject string; an
 * entry lives while its count is above zero. Every function is safe from
 * any thread. Cost: one lock, one hash and one short chain walk per call
 * start and end (only when the limit is configured).
 */
#ifndef TG_CALLCOUNT_H
#define TG_CALLCOUNT_H
#include <stdint.h>

typedef struct tg_callcount tg_callcount;

tg_callcount *tg_callcount_new(void);    /* NULL on no memory */
void tg_callcount_free(tg_callcount *c); /* NULL-safe */

/* Counts one more call for subject when fewer than max are in flight.
 * Returns 0 (counted: release it later), 1 (max reached: not counted), or
 * -1 (no memory: not counted; callers refuse the call). */
int tg_callcount_acquire(tg_callcount *c, const char *subject, uint32_t max);
/* Ends one call counted by tg_callcount_acquire. */
void tg_callcount_release(tg_callcount *c, const char *subject);
/* Calls in flight for subject (for tests). */
uint32_t tg_callcount_get(tg_callcount *c, const char *subject);
#endif
