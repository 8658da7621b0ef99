#include "tg_metrics.h"

#include <pthread.h>
#include <stdlib.h>
#include <string.h>

/* ---- namespace labels ---- */

typedef struct ns_name {
  uint32_t slot;
  size_t len;
  char s[]; /* NUL-terminated */
} ns_name;

struct tg_nslabels {
  uint32_t max, cap; /* cap: a power of two >= 2 * max */
  pthread_mutex_t mu;
  atomic_uint used;             /* names registered */
  _Atomic(ns_name *) *table;    /* open addressing, never shrinks */
  _Atomic(const char *) *names; /* by slot - 2 */
};

static uint32_t hash(const char *s, size_t len) {
  uint32_t h = 2166136261u;
  for (size_t i = 0; i < len; i++)
    h = (h ^ (uint8_t)s[i]) * 16777619u;
  return h;
}

tg_nslabels *tg_nslabels_new(uint32_t max) {
  tg_nslabels *l = calloc(1, sizeof *l);
  if (!l)
    return NULL;
  l->max = max;
  l->cap = 16;
  while (l->cap < 2 * (uint64_t)max)
    l->cap *= 2;
  l->table = calloc(l->cap, sizeof *l->table);
  l->names = calloc(max ? max : 1, sizeof *l->names);
  if (!l->table || !l->names) {
    tg_nslabels_free(l);
    return NULL;
  }
  pthread_mutex_init(&l->mu, NULL);
  return l;
}

void tg_nslabels_free(tg_nslabels *l) {
  if (!l)
    return;
  for (uint32_t i = 0; l->table && i < l->cap; i++)
    free(atomic_load(&l->table[i]));
  free(l->table);
  free(l->names);
  if (l->names && l->table)
    pthread_mutex_destroy(&l->mu);
  free(l);
}

/* The entry for ns, or the index of the empty cell where it would go. */
static ns_name *probe(tg_nslabels *l, const char *ns, size_t len,
                      uint32_t *empty) {
  uint32_t i = hash(ns, len) & (l->cap - 1);
  for (;;) {
    ns_name *e = atomic_load_explicit(&l->table[i], memory_order_acquire);
    if (!e) {
      *empty = i;
      return NULL;
    }
    if (e->len == len && memcmp(e->s, ns, len) == 0)
      return e;
    i = (i + 1) & (l->cap - 1);
  }
}

uint32_t tg_nslabels_slot(tg_nslabels *l, const char *ns, size_t len, int add) {
  if (len == 0)
    return TG_NS_NONE;
  uint32_t empty;
  ns_name *e = probe(l, ns, len, &empty);
  if (e)
    return e->slot;
  if (!add || atomic_load_explicit(&l->used, memory_order_relaxed) >= l->max)
    return TG_NS_OTHER;
  uint32_t slot = TG_NS_OTHER;
  pthread_mutex_lock(&l->mu);
  e = probe(l, ns, len, &empty); /* again, under the lock */
  if (e) {
    slot = e->slot;
  } else if (atomic_load(&l->used) < l->max &&
             (e = malloc(sizeof *e + len + 1)) != NULL) {
    uint32_t n = atomic_load(&l->used);
    e->slot = n + 2;
    e->len = len;
    memcpy(e->s, ns, len);
    e->s[len] = '\0';
    atomic_store_explicit(&l->names[n], e->s, memory_order_release);
    atomic_store_explicit(&l->table[empty], e, memory_order_release);
    atomic_store_explicit(&l->used, n + 1, memory_order_release);
    slot = e->slot;
  }
  pthread_mutex_unlock(&l->mu);
  return slot;
}

const char *tg_nslabels_name(const tg_nslabels *l, uint32_t slot) {
  if (slot == TG_NS_NONE)
    return "";
  if (slot == TG_NS_OTHER ||
      slot - 2 >= atomic_load_explicit(&l->used, memory_order_acquire))
    return "other";
  return atomic_load_explicit(&l->names[slot - 2], memory_order_acquire);
}

/* ---- call counters ---- */

typedef struct cs_cell {
  uint64_t key; /* 0: empty */
  uint64_t n;
} cs_cell;

struct tg_callstats {
  pthread_mutex_t mu;
  size_t used;
  cs_cell cell[TG_CALLSTATS_CAPACITY];
};

/* method 16 bits, slot 24, decision 8, status 8; +1 so no key is 0. */
static uint64_t pack(uint32_t method, uint32_t slot, uint32_t decision,
                     uint32_t status) {
  return (((uint64_t)(method & 0xffff) << 40) |
          ((uint64_t)(slot & 0xffffff) << 16) |
          ((uint64_t)(decision & 0xff) << 8) | (status & 0xff)) +
         1;
}

static tg_callstat unpack(uint64_t key, uint64_t n) {
  key -= 1;
  tg_callstat c = {(uint32_t)(key >> 40) & 0xffff,
                   (uint32_t)(key >> 16) & 0xffffff,
                   (uint32_t)(key >> 8) & 0xff, (uint32_t)key & 0xff, n};
  return c;
}

tg_callstats *tg_callstats_new(void) {
  tg_callstats *s = calloc(1, sizeof *s);
  if (s)
    pthread_mutex_init(&s->mu, NULL);
  return s;
}

void tg_callstats_free(tg_callstats *s) {
  if (!s)
    return;
  pthread_mutex_destroy(&s->mu);
  free(s);
}

static cs_cell *find_cell(tg_callstats *s, uint64_t key, int insert) {
  uint64_t h = key * 0x9E3779B97F4A7C15ull;
  size_t i = (size_t)(h >> 32) & (TG_CALLSTATS_CAPACITY - 1);
  for (size_t k = 0; k < TG_CALLSTATS_CAPACITY; k++) {
    cs_cell *c = &s->cell[i];
    if (c->key == key)
      return c;
    if (c->key == 0) {
      /* Keep a quarter free (probes stay short) but for the overflow keys
       * (insert 2), at most decisions x statuses of them. */
      if (!insert || s->used >= (insert == 2 ? TG_CALLSTATS_CAPACITY - 1
                                             : TG_CALLSTATS_CAPACITY * 3 / 4))
        return NULL;
      c->key = key;
      s->used++;
      return c;
    }
    i = (i + 1) & (TG_CALLSTATS_CAPACITY - 1);
  }
  return NULL;
}

void tg_callstats_add(tg_callstats *s, uint32_t method, uint32_t ns_slot,
                      uint32_t decision, uint32_t status) {
  uint64_t key = pack(method, ns_slot, decision, status);
  pthread_mutex_lock(&s->mu);
  cs_cell *c = find_cell(s, key, 1);
  if (!c) /* full: the overflow keys have room */
    c = find_cell(s, pack(0, TG_NS_OTHER, decision, status), 2);
  if (c)
    c->n++;
  pthread_mutex_unlock(&s->mu);
}

int tg_callstats_collect(tg_callstats *s, tg_callstat **v, size_t *len,
                         size_t *cap) {
  int rv = 0;
  pthread_mutex_lock(&s->mu);
  for (size_t i = 0; i < TG_CALLSTATS_CAPACITY && rv == 0; i++) {
    const cs_cell *c = &s->cell[i];
    if (!c->key || !c->n)
      continue;
    if (*len == *cap) {
      size_t ncap = *cap ? *cap * 2 : 256;
      tg_callstat *nv = realloc(*v, ncap * sizeof *nv);
      if (!nv) {
        rv = -1;
        break;
      }
      *v = nv;
      *cap = ncap;
    }
    (*v)[(*len)++] = unpack(c->key, c->n);
  }
  pthread_mutex_unlock(&s->mu);
  return rv;
}

static int cmp_stat(const void *a, const void *b) {
  const tg_callstat *x = a, *y = b;
  uint64_t kx = pack(x->method, x->ns_slot, x->decision, x->status);
  uint64_t ky = pack(y->method, y->ns_slot, y->decision, y->status);
  return kx < ky ? -1 : kx > ky;
}

size_t tg_callstats_merge(tg_callstat *v, size_t len) {
  if (len == 0)
    return 0;
  qsort(v, len, sizeof *v, cmp_stat);
  size_t out = 0;
  for (size_t i = 1; i < len; i++) {
    if (cmp_stat(&v[out], &v[i]) == 0)
      v[out].n += v[i].n;
    else
      v[++out] = v[i];
  }
  return out + 1;
}

/* ---- histograms ---- */

#define US 1000ull
#define MS 1000000ull
#define S 1000000000ull

const tg_hist_spec tg_hist_added = {
    13,
    {10 * US, 25 * US, 50 * US, 100 * US, 250 * US, 500 * US, 1 * MS, 2500 * US,
     5 * MS, 10 * MS, 25 * MS, 50 * MS, 100 * MS}};
const tg_hist_spec tg_hist_upstream = {
    15,
    {1 * MS, 5 * MS, 10 * MS, 25 * MS, 50 * MS, 100 * MS, 250 * MS, 500 * MS,
     1 * S, 2500 * MS, 5 * S, 10 * S, 30 * S, 60 * S, 120 * S}};

void tg_hist_observe(tg_hist *h, const tg_hist_spec *spec, uint64_t ns) {
  size_t i = 0;
  while (i < spec->n && ns > spec->le_ns[i])
    i++;
  atomic_fetch_add_explicit(&h->bucket[i], 1, memory_order_relaxed);
  atomic_fetch_add_explicit(&h->sum_ns, ns, memory_order_relaxed);
  atomic_fetch_add_explicit(&h->count, 1, memory_order_relaxed);
}
