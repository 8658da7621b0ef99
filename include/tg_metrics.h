/*
 * tg_metrics: the labelled counters and latency histograms behind /metrics.
 *
 * Namespace labels (tg_nslabels): a gateway-wide registry that gives each
 * namespace name a small slot number, so that the label set stays bounded:
 * slot TG_NS_NONE is a call without a namespace, TG_NS_OTHER every name
 * beyond the configured number. Names are registered only by calls that
 * were allowed (a client cannot fill the registry with made-up names by
 * being denied); denied calls use a name's slot if it has one, else
 * "other". Lookups are lock-free (an append-only open-addressing table of
 * atomic pointers); registration takes a mutex. Names are never removed.
 *
 * Call counters (tg_callstats): one table per worker, keyed by (method,
 * namespace slot, decision, grpc-status), guarded by a mutex that only the
 * worker and /metrics take. The key space is bounded (known methods x
 * namespace slots x decisions x statuses); a full table folds new keys into
 * one overflow key (unknown method, "other" namespace).
 *
 * Histograms (tg_hist): fixed buckets of relaxed atomics, per worker;
 * /metrics sums them over workers.
 */
#ifndef TG_METRICS_H
#define TG_METRICS_H
#include <stdatomic.h>
#include <stddef.h>
#include <stdint.h>

#define TG_NS_NONE 0u
#define TG_NS_OTHER 1u

typedef struct tg_nslabels tg_nslabels;

/* Room for max names (0..100000). NULL on no memory. */
tg_nslabels *tg_nslabels_new(uint32_t max);
void tg_nslabels_free(tg_nslabels *l); /* NULL-safe */
/* The slot of ns (len bytes; len 0: TG_NS_NONE). A name without a slot
 * gets a new one when add is set and fewer than max exist; otherwise
 * TG_NS_OTHER. Any thread. */
uint32_t tg_nslabels_slot(tg_nslabels *l, const char *ns, size_t len, int add);
/* The name of a slot: "" for TG_NS_NONE, "other" for TG_NS_OTHER. */
const char *tg_nslabels_name(const tg_nslabels *l, uint32_t slot);

typedef struct tg_callstats tg_callstats;

#define TG_CALLSTATS_CAPACITY 8192

tg_callstats *tg_callstats_new(void);    /* NULL on no memory */
void tg_callstats_free(tg_callstats *s); /* NULL-safe */
/* method: tg_method index + 1, or 0 for an unknown method; status 0..16,
 * or 17 for none (the stream was reset). */
void tg_callstats_add(tg_callstats *s, uint32_t method, uint32_t ns_slot,
                      uint32_t decision, uint32_t status);

typedef struct tg_callstat {
  uint32_t method, ns_slot, decision, status;
  uint64_t n;
} tg_callstat;
/* Appends a copy of every non-zero counter to *v (growing it; *len and
 * *cap as for a vector). 0, or -1 on no memory. */
int tg_callstats_collect(tg_callstats *s, tg_callstat **v, size_t *len,
                         size_t *cap);
/* Sorts v by key and adds up duplicates; returns the new length. */
size_t tg_callstats_merge(tg_callstat *v, size_t len);

/* Histogram bucket bounds, in nanoseconds (the last bucket is +Inf). */
#define TG_HIST_MAX_BUCKETS 16
typedef struct tg_hist_spec {
  size_t n; /* finite bounds */
  uint64_t le_ns[TG_HIST_MAX_BUCKETS];
} tg_hist_spec;
extern const tg_hist_spec tg_hist_added;    /* 10us .. 100ms */
extern const tg_hist_spec tg_hist_upstream; /* 1ms .. 120s */

typedef struct tg_hist {
  atomic_uint_least64_t bucket[TG_HIST_MAX_BUCKETS + 1]; /* not cumulative */
  atomic_uint_least64_t sum_ns, count;
} tg_hist;

void tg_hist_observe(tg_hist *h, const tg_hist_spec *spec, uint64_t ns);
#endif
