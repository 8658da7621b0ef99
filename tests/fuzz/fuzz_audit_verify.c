/* libFuzzer harness: the audit chain verifier (tg_audit_verify_buf).
 * Input: a mode byte, a split byte, then the log bytes. With an odd mode
 * byte, every line's first "prev":"P" is first replaced by the real hash
 * of the line before (the genesis value for the first), so the fuzzer
 * reaches the seq and ordering checks behind the hash check. Checks: the
 * result is 0 or -1 with a report; a valid log has one entry per line and
 * its head is the hash of the last line; verifying it as two files, split
 * after a line chosen by the split byte, gives the same answer and state
 * as verifying it whole. */
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include "tg_audit_verify.h"

static const char placeholder[] = "\"prev\":\"P\"";

/* Rewrites the placeholder in each line; returns a malloc'ed buffer. */
static char *chain(const char *in, size_t len, size_t *outlen) {
  size_t cap = len + (len / 10 + 1) * 64 + 1, o = 0, off = 0;
  char *out = malloc(cap), prev[65];
  if (!out)
    return NULL;
  memcpy(prev, TG_AUDIT_GENESIS, 65);
  while (off < len) {
    const char *nl = memchr(in + off, '\n', len - off);
    size_t n = nl ? (size_t)(nl - (in + off)) : len - off;
    size_t start = o;
    const char *ph = memmem(in + off, n, placeholder, sizeof placeholder - 1);
    if (ph) {
      size_t before = (size_t)(ph - (in + off)) + 8; /* through "prev":" */
      memcpy(out + o, in + off, before);
      o += before;
      memcpy(out + o, prev, 64);
      o += 64;
      memcpy(out + o, in + off + before + 1, n - before - 1);
      o += n - before - 1;
    } else {
      memcpy(out + o, in + off, n);
      o += n;
    }
    tg_audit_sha256_hex(out + start, o - start, prev);
    if (nl)
      out[o++] = '\n';
    off += n + 1;
  }
  *outlen = o;
  return out;
}

static int same_state(const tg_audit_verify_state *a,
                      const tg_audit_verify_state *b) {
  return a->entries == b->entries && a->last_seq == b->last_seq &&
         memcmp(a->head, b->head, 32) == 0;
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size) {
  char report[512], hex[65];
  tg_audit_verify_state st, st2;
  if (size < 2)
    return 0;
  int mode = data[0] & 1;
  unsigned split_at = data[1];
  const char *in = (const char *)data + 2;
  size_t len = size - 2;
  char *buf = NULL;
  if (mode) {
    buf = chain(in, len, &len);
    if (!buf)
      return 0;
    in = buf;
  }

  tg_audit_verify_init(&st);
  report[0] = '\0';
  int rv = tg_audit_verify_buf(in, len, &st, report, sizeof report);
  if ((rv != 0 && rv != -1) || !report[0])
    abort();
  if (rv == 0) {
    size_t lines = 0;
    const char *last = in;
    for (size_t i = 0; i < len; i++)
      if (in[i] == '\n') {
        lines++;
        if (i + 1 < len)
          last = in + i + 1;
      }
    if (st.entries != lines || (len > 0 && in[len - 1] != '\n'))
      abort();
    if (lines > 0) {
      tg_audit_sha256_hex(last, (size_t)(in + len - 1 - last), hex);
      if (!strstr(report, hex))
        abort();
    }
  }

  /* The same bytes as two files. */
  size_t cut = 0;
  for (size_t i = 0, k = 0; i < len; i++)
    if (in[i] == '\n' && k++ == split_at % 8) {
      cut = i + 1;
      break;
    }
  tg_audit_verify_init(&st2);
  int rv2 = tg_audit_verify_buf(in, cut, &st2, report, sizeof report);
  if (rv2 == 0)
    rv2 = tg_audit_verify_buf(in + cut, len - cut, &st2, report, sizeof report);
  if (rv2 != rv || !same_state(&st, &st2))
    abort();
  free(buf);
  return 0;
}
