#include "tg_hdrs.h"

#include <stdlib.h>
#include <string.h>

void tg_hdrs_init(tg_hdrs *h) {
  memset(h, 0, sizeof(*h));
}

void tg_hdrs_clear(tg_hdrs *h) {
  free(h->arena);
  free(h->ents);
  free(h->nv);
  memset(h, 0, sizeof(*h));
}

void tg_hdrs_reset(tg_hdrs *h) {
  if (h->arena_cap > TG_HDRS_KEEP) {
    tg_hdrs_clear(h);
    return;
  }
  h->n = 0;
  h->arena_len = 0;
}

static int arena_reserve(tg_hdrs *h, size_t extra) {
  if (h->arena_len + extra <= h->arena_cap)
    return 0;
  size_t cap = h->arena_cap ? h->arena_cap : 512;
  while (cap < h->arena_len + extra)
    cap *= 2;
  char *p = realloc(h->arena, cap);
  if (!p)
    return -1;
  h->arena = p;
  h->arena_cap = cap;
  return 0;
}

int tg_hdrs_add(tg_hdrs *h, const uint8_t *name, size_t namelen,
                const uint8_t *value, size_t valuelen, uint8_t flags) {
  if (namelen > UINT32_MAX / 2 || valuelen > UINT32_MAX / 2)
    return -1;
  if (h->n == h->cap) {
    size_t cap = h->cap ? h->cap * 2 : 16;
    tg_hdr_ent *e = realloc(h->ents, cap * sizeof(*e));
    if (!e)
      return -1;
    h->ents = e;
    h->cap = cap;
  }
  if (arena_reserve(h, namelen + valuelen) != 0)
    return -1;
  tg_hdr_ent *e = &h->ents[h->n++];
  e->name_off = (uint32_t)h->arena_len;
  e->name_len = (uint32_t)namelen;
  if (namelen)
    memcpy(h->arena + h->arena_len, name, namelen);
  h->arena_len += namelen;
  e->value_off = (uint32_t)h->arena_len;
  e->value_len = (uint32_t)valuelen;
  if (valuelen)
    memcpy(h->arena + h->arena_len, value, valuelen);
  h->arena_len += valuelen;
  e->flags = flags;
  return 0;
}

int tg_hdrs_add_str(tg_hdrs *h, const char *name, const char *value) {
  return tg_hdrs_add(h, (const uint8_t *)name, strlen(name),
                     (const uint8_t *)value, strlen(value),
                     NGHTTP2_NV_FLAG_NONE);
}

const char *tg_hdrs_get(const tg_hdrs *h, const char *name, size_t *len) {
  size_t nlen = strlen(name);
  for (size_t i = 0; i < h->n; i++) {
    const tg_hdr_ent *e = &h->ents[i];
    if (e->name_len == nlen &&
        memcmp(h->arena + e->name_off, name, nlen) == 0) {
      *len = e->value_len;
      return h->arena + e->value_off;
    }
  }
  return NULL;
}

size_t tg_hdrs_count(const tg_hdrs *h, const char *name) {
  size_t nlen = strlen(name), n = 0;
  for (size_t i = 0; i < h->n; i++)
    n += h->ents[i].name_len == nlen &&
         memcmp(h->arena + h->ents[i].name_off, name, nlen) == 0;
  return n;
}

size_t tg_hdrs_size(const tg_hdrs *h) {
  return h->arena_len + 32 * h->n;
}

nghttp2_nv *tg_hdrs_nv(tg_hdrs *h) {
  if (h->nv_cap < h->n || !h->nv) {
    size_t cap = h->n ? h->n : 1;
    nghttp2_nv *nv = realloc(h->nv, cap * sizeof(*nv));
    if (!nv)
      return NULL;
    h->nv = nv;
    h->nv_cap = cap;
  }
  for (size_t i = 0; i < h->n; i++) {
    const tg_hdr_ent *e = &h->ents[i];
    h->nv[i].name = (uint8_t *)h->arena + e->name_off;
    h->nv[i].namelen = e->name_len;
    h->nv[i].value = (uint8_t *)h->arena + e->value_off;
    h->nv[i].valuelen = e->value_len;
    h->nv[i].flags = e->flags;
  }
  return h->nv;
}
