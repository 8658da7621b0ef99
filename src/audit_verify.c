#include "tg_audit_verify.h"

#include <errno.h>
#include <jansson.h>
#include <openssl/evp.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

static void to_hex(const unsigned char d[32], char hex[65]) {
  static const char digits[] = "0123456789abcdef";
  for (size_t i = 0; i < 32; i++) {
    hex[2 * i] = digits[d[i] >> 4];
    hex[2 * i + 1] = digits[d[i] & 15];
  }
  hex[64] = '\0';
}

static int sha256(const char *buf, size_t len, unsigned char d[32]) {
  return EVP_Digest(buf, len, d, NULL, EVP_sha256(), NULL) == 1 ? 0 : -1;
}

int tg_audit_sha256_hex(const char *buf, size_t len, char hex[65]) {
  unsigned char d[32];
  if (sha256(buf, len, d) != 0)
    return -1;
  to_hex(d, hex);
  return 0;
}

static int is_lower_hex64(const char *s) {
  size_t i = 0;
  for (; s[i]; i++)
    if (i >= 64 ||
        !((s[i] >= '0' && s[i] <= '9') || (s[i] >= 'a' && s[i] <= 'f')))
      return 0;
  return i == 64;
}

int tg_audit_parse_entry(const char *line, size_t len, uint64_t *seq,
                         char prev_hex[65], const char **err_desc) {
  json_error_t jerr;
  json_t *o = NULL, *v;
  int rv = -1;
  if (len == 0) {
    *err_desc = "empty line";
    return -1;
  }
  o = json_loadb(line, len, JSON_REJECT_DUPLICATES, &jerr);
  if (!o) {
    *err_desc = "not a JSON object (invalid JSON, or a duplicate key)";
    goto end;
  }
  if (!json_is_object(o)) {
    *err_desc = "not a JSON object";
    goto end;
  }
  v = json_object_get(o, "seq");
  if (!json_is_integer(v) || json_integer_value(v) < 1) {
    *err_desc = "\"seq\" is missing or not a positive integer";
    goto end;
  }
  if (seq)
    *seq = (uint64_t)json_integer_value(v);
  if (!json_is_string(json_object_get(o, "time"))) {
    *err_desc = "\"time\" is missing or not a string";
    goto end;
  }
  if (!json_is_string(json_object_get(o, "event"))) {
    *err_desc = "\"event\" is missing or not a string";
    goto end;
  }
  v = json_object_get(o, "prev");
  if (!json_is_string(v) || !is_lower_hex64(json_string_value(v))) {
    *err_desc = "\"prev\" is missing or not 64 lowercase hex digits";
    goto end;
  }
  if (prev_hex)
    memcpy(prev_hex, json_string_value(v), 65);
  rv = 0;
end:
  json_decref(o);
  return rv;
}

void tg_audit_verify_init(tg_audit_verify_state *st) {
  memset(st, 0, sizeof(*st));
}

/* Writes "entry N (line L of NAME): " and the message into report; -1. */
static int bad(const tg_audit_verify_state *st, char *report, size_t reportlen,
               const char *fmt, ...) __attribute__((format(printf, 4, 5)));
static int bad(const tg_audit_verify_state *st, char *report, size_t reportlen,
               const char *fmt, ...) {
  va_list ap;
  if (!report || reportlen == 0)
    return -1;
  int n = snprintf(report, reportlen, "entry %llu (line %llu of %s): ",
                   (unsigned long long)st->entries + 1,
                   (unsigned long long)st->line, st->name ? st->name : "input");
  if (n < 0 || (size_t)n >= reportlen)
    return -1;
  va_start(ap, fmt);
  vsnprintf(report + n, reportlen - (size_t)n, fmt, ap);
  va_end(ap);
  return -1;
}

int tg_audit_verify_line(tg_audit_verify_state *st, const char *line,
                         size_t len, int has_newline, char *report,
                         size_t reportlen) {
  uint64_t seq = 0;
  char prev[65], head[65];
  const char *why = NULL;
  st->line++;
  if (!has_newline)
    return bad(st, report, reportlen,
               "incomplete final line (no newline): a write was interrupted "
               "or the file was cut");
  if (tg_audit_parse_entry(line, len, &seq, prev, &why) != 0)
    return bad(st, report, reportlen, "not an audit entry: %s", why);
  unsigned long long s = seq, last = st->last_seq;
  int genesis = strcmp(prev, TG_AUDIT_GENESIS) == 0;
  if (st->last_seq == 0) {
    if (!genesis)
      return bad(st, report, reportlen,
                 "continues an earlier chain (seq %llu, prev is not the "
                 "genesis value): verify it after the files before it",
                 s);
    if (seq != 1)
      return bad(st, report, reportlen,
                 "seq %llu with the genesis prev: altered (a chain starts at "
                 "seq 1)",
                 s);
  } else {
    if (seq == 1 && genesis)
      return bad(st, report, reportlen,
                 "a new chain starts here (seq 1 after seq %llu): tgate was "
                 "started on an empty file, or the end of the chain before "
                 "was removed; verify the files separately",
                 last);
    if (seq > st->last_seq + 1)
      return bad(st, report, reportlen,
                 "removed entries before it (seq %llu follows %llu), or "
                 "entries moved elsewhere",
                 s, last);
    if (seq <= st->last_seq)
      return bad(st, report, reportlen,
                 "reordered or repeated entries (seq %llu follows %llu)", s,
                 last);
    to_hex(st->head, head);
    if (strcmp(prev, head) != 0)
      return bad(st, report, reportlen,
                 "altered, or the entry before it was altered (prev does not "
                 "match)");
  }
  unsigned char d[32];
  if (sha256(line, len, d) != 0)
    return bad(st, report, reportlen, "cannot compute SHA-256 (out of memory)");
  memcpy(st->head, d, sizeof d);
  st->last_seq = seq;
  st->entries++;
  return 0;
}

static void ok_report(const tg_audit_verify_state *st, char *report,
                      size_t reportlen) {
  char head[65];
  if (!report || reportlen == 0)
    return;
  to_hex(st->head, head);
  snprintf(report, reportlen, "ok: %llu entries, chain head %s",
           (unsigned long long)st->entries, head);
}

int tg_audit_verify_buf(const char *buf, size_t len, tg_audit_verify_state *st,
                        char *report, size_t reportlen) {
  size_t off = 0;
  st->line = 0;
  while (off < len) {
    const char *nl = memchr(buf + off, '\n', len - off);
    size_t n = nl ? (size_t)(nl - (buf + off)) : len - off;
    if (tg_audit_verify_line(st, buf + off, n, nl != NULL, report, reportlen) !=
        0)
      return -1;
    off += n + 1;
  }
  ok_report(st, report, reportlen);
  return 0;
}

/* Verifies one file, streamed line by line. 0, 1 (a problem, printed) or 2
 * (cannot read, printed). */
static int verify_file(tg_audit_verify_state *st, const char *path) {
  FILE *f = strcmp(path, "-") == 0 ? stdin : fopen(path, "rb");
  char *line = NULL, report[512];
  size_t cap = 0;
  ssize_t n;
  int rc = 0;
  if (!f) {
    fprintf(stderr, "tgate audit verify: %s: %s\n", path, strerror(errno));
    return 2;
  }
  st->name = f == stdin ? "stdin" : path;
  st->line = 0;
  while ((n = getline(&line, &cap, f)) > 0) {
    int has_nl = line[n - 1] == '\n';
    if (tg_audit_verify_line(st, line, (size_t)n - (size_t)has_nl, has_nl,
                             report, sizeof report) != 0) {
      fprintf(stderr, "tgate audit verify: %s\n", report);
      rc = 1;
      goto end;
    }
  }
  if (ferror(f)) {
    fprintf(stderr, "tgate audit verify: %s: read error\n", path);
    rc = 2;
  }
end:
  free(line);
  if (f != stdin)
    fclose(f);
  return rc;
}

static void usage(FILE *out) {
  fputs("usage: tgate audit verify FILE...\n"
        "  Checks that the audit files, oldest first (after rotations: the\n"
        "  rotated files, then the current one), form one hash chain; prints\n"
        "  \"ok: N entries, chain head HASH\" or the first bad entry.\n"
        "  Changes to the last entry show only against a chain head recorded\n"
        "  elsewhere (tgate logs it on rotation and shutdown): compare it.\n"
        "  Exit status: 0 valid, 1 a problem found, 2 usage or read error.\n",
        out);
}

int tg_audit_verify_main(int argc, char **argv) {
  tg_audit_verify_state st;
  char report[512];
  if (argc >= 1 &&
      (strcmp(argv[0], "-h") == 0 || strcmp(argv[0], "--help") == 0)) {
    usage(stdout);
    return 0;
  }
  if (argc < 2 || strcmp(argv[0], "verify") != 0) {
    usage(stderr);
    return 2;
  }
  tg_audit_verify_init(&st);
  for (int i = 1; i < argc; i++) {
    int rc = verify_file(&st, argv[i]);
    if (rc != 0)
      return rc;
  }
  ok_report(&st, report, sizeof report);
  printf("%s\n", report);
  return 0;
}
