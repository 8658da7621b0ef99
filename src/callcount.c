#include "tg_callcount.h"

#include <pthread.h>
#include <stdlib.h>
#include <string.h>

#define NBUCKETS 1024

typedef struct entry {
  struct entry *next;
  uint32_t n;
  char subject[]; /* NUL-terminated */
} entry;

struct tg_callcount {
  pthread_mutex_t mu;
  entry *buckets[NBUCKETS];
};

/* FNV-1a: subjects are short and chosen by the identity provider, not by
 * the caller, so a flooding attack needs valid credentials per subject. */
static size_t bucket(const char *s) {
  uint32_t h = 2166136261u;
  for (; *s; s++)
    h = (h ^ (uint8_t)*s) * 16777619u;
  return h % NBUCKETS;
}

tg_callcount *tg_callcount_new(void) {
  tg_callcount *c = calloc(1, sizeof *c);
  if (c)
    pthread_mutex_init(&c->mu, NULL);
  return c;
}

void tg_callcount_free(tg_callcount *c) {
  if (!c)
    return;
  for (size_t i = 0; i < NBUCKETS; i++) {
    entry *e = c->buckets[i];
    while (e) {
      entry *next = e->next;
      free(e);
      e = next;
    }
  }
  pthread_mutex_destroy(&c->mu);
  free(c);
}

static entry **find(tg_callcount *c, const char *subject) {
  entry **pe = &c->buckets[bucket(subject)];
  while (*pe && strcmp((*pe)->subject, subject) != 0)
    pe = &(*pe)->next;
  return pe;
}

int tg_callcount_acquire(tg_callcount *c, const char *subject, uint32_t max) {
  int rv = 0;
  pthread_mutex_lock(&c->mu);
  entry **pe = find(c, subject);
  if (*pe) {
    if ((*pe)->n >= max)
      rv = 1;
    else
      (*pe)->n++;
  } else if (max == 0) {
    rv = 1;
  } else {
    size_t len = strlen(subject);
    entry *e = malloc(sizeof *e + len + 1);
    if (e) {
      memcpy(e->subject, subject, len + 1);
      e->n = 1;
      e->next = NULL;
      *pe = e;
    } else {
      rv = -1;
    }
  }
  pthread_mutex_unlock(&c->mu);
  return rv;
}

void tg_callcount_release(tg_callcount *c, const char *subject) {
  pthread_mutex_lock(&c->mu);
  entry **pe = find(c, subject);
  entry *e = *pe;
  if (e && --e->n == 0) {
    *pe = e->next;
    free(e);
  }
  pthread_mutex_unlock(&c->mu);
}

uint32_t tg_callcount_get(tg_callcount *c, const char *subject) {
  pthread_mutex_lock(&c->mu);
  entry *e = *find(c, subject);
  uint32_t n = e ? e->n : 0;
  pthread_mutex_unlock(&c->mu);
  return n;
}
