/*
 * tg_hdrs: an owned list of HTTP/2 header fields, in arrival order.
 *
 * Names and values are copied into one growable arena; tg_hdrs_nv() builds an
 * nghttp2_nv array pointing into that arena, valid until the next add or
 * clear. Values may contain any byte (binary "-bin" metadata is base64 on the
 * wire, but nothing here assumes it).
 *
 * Errors: functions returning int give 0, or -1 when memory runs out.
 * Not thread-safe; a list belongs to one stream relay.
 */
#ifndef TG_HDRS_H
#define TG_HDRS_H
#include <nghttp2/nghttp2.h>
#include <stddef.h>
#include <stdint.h>

typedef struct tg_hdr_ent {
  uint32_t name_off, name_len, value_off, value_len;
  uint8_t flags; /* NGHTTP2_NV_FLAG_NO_INDEX is kept so sensitive values stay
                    out of the next hop's HPACK table */
} tg_hdr_ent;

typedef struct tg_hdrs {
  char *arena;
  size_t arena_len, arena_cap;
  tg_hdr_ent *ents;
  size_t n, cap;
  nghttp2_nv *nv; /* scratch for tg_hdrs_nv() */
  size_t nv_cap;
} tg_hdrs;

void tg_hdrs_init(tg_hdrs *h);
void tg_hdrs_clear(tg_hdrs *h); /* frees everything; h may be reused */
/* Empties h, keeping its buffers for reuse unless the arena grew beyond
 * TG_HDRS_KEEP bytes (then as tg_hdrs_clear). */
void tg_hdrs_reset(tg_hdrs *h);
#define TG_HDRS_KEEP 8192
int tg_hdrs_add(tg_hdrs *h, const uint8_t *name, size_t namelen,
                const uint8_t *value, size_t valuelen, uint8_t flags);
int tg_hdrs_add_str(tg_hdrs *h, const char *name, const char *value);

/* Returns the value of the first field called name (lower case), or NULL.
 * *len receives its length. The pointer is valid until the next add/clear. */
const char *tg_hdrs_get(const tg_hdrs *h, const char *name, size_t *len);

/* How many fields are called name (lower case). */
size_t tg_hdrs_count(const tg_hdrs *h, const char *name);

/* Total bytes of names and values, as HPACK's header list size counts them
 * (each field + 32). */
size_t tg_hdrs_size(const tg_hdrs *h);

/* Builds the nghttp2_nv view. Returns NULL when memory runs out. */
nghttp2_nv *tg_hdrs_nv(tg_hdrs *h);
#endif
