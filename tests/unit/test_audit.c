#include <errno.h>
#include <fcntl.h>
#include <jansson.h>
#include <pthread.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/resource.h>
#include <sys/stat.h>
#include <sys/wait.h>
#include <unistd.h>

#include "tg_audit.h"
#include "tg_audit_verify.h"
#include "tg_test.h"

#include "tg_failmalloc_tracked.h"

static char dir[64];

static const char *path_in(const char *name) {
  static char buf[4][160];
  static int k;
  char *p = buf[k++ % 4];
  snprintf(p, 160, "%s/%s", dir, name);
  return p;
}

static char *read_all(const char *path, size_t *len) {
  FILE *f = fopen(path, "rb");
  char *buf = NULL;
  size_t cap = 0, n = 0;
  if (!f)
    return NULL;
  for (;;) {
    if (n + 4096 > cap) {
      char *nb = realloc(buf, cap = cap * 2 + 8192);
      if (!nb)
        break;
      buf = nb;
    }
    size_t r = fread(buf + n, 1, cap - n - 1, f);
    if (r == 0)
      break;
    n += r;
  }
  fclose(f);
  if (buf)
    buf[n] = '\0';
  *len = n;
  return buf;
}

static void write_all(const char *path, const char *buf, size_t len) {
  FILE *f = fopen(path, "wb");
  if (!f)
    return;
  fwrite(buf, 1, len, f);
  fclose(f);
}

/* Verifies files in order as one chain; 0 or -1 with report. */
static int verify_files(const char **paths, int n, char *report,
                        size_t reportlen, uint64_t *entries) {
  tg_audit_verify_state st;
  tg_audit_verify_init(&st);
  for (int i = 0; i < n; i++) {
    size_t len = 0;
    char *buf = read_all(paths[i], &len);
    if (!buf) {
      snprintf(report, reportlen, "cannot read %s", paths[i]);
      return -1;
    }
    st.name = paths[i];
    int rv = tg_audit_verify_buf(buf, len, &st, report, reportlen);
    free(buf);
    if (rv != 0)
      return -1;
  }
  if (entries)
    *entries = st.entries;
  return 0;
}

static int verify_one(const char *path, char *report, size_t reportlen,
                      uint64_t *entries) {
  return verify_files(&path, 1, report, reportlen, entries);
}

static int verify_mem(const char *buf, char *report, size_t reportlen) {
  tg_audit_verify_state st;
  tg_audit_verify_init(&st);
  st.name = "audit.jsonl";
  return tg_audit_verify_buf(buf, strlen(buf), &st, report, reportlen);
}

/* Writes n entries {"i":k} to a fresh log at path. */
static int make_log(const char *path, int n) {
  char err[256], fields[64];
  unlink(path);
  tg_audit *a = tg_audit_open(path, 1, err, sizeof err);
  if (!a)
    return -1;
  for (int i = 1; i <= n; i++) {
    snprintf(fields, sizeof fields, "{\"subject\":\"user%d\",\"i\":%d}", i, i);
    if (tg_audit_log(a, "deny", fields) != 0)
      return -1;
  }
  tg_audit_close(a);
  return 0;
}

/* Line k (1-based) of buf: start and length (without '\n'). */
static const char *line_at(const char *buf, int k, size_t *len) {
  const char *p = buf;
  for (int i = 1; i < k && p; i++) {
    p = strchr(p, '\n');
    if (p)
      p++;
  }
  if (!p || !*p)
    return NULL;
  const char *e = strchr(p, '\n');
  *len = e ? (size_t)(e - p) : strlen(p);
  return p;
}

/* buf with its lines reordered / dropped as order lists them (1-based;
 * 0 ends the list). */
static char *relines(const char *buf, const int *order) {
  size_t total = strlen(buf) + 1, o = 0, len;
  char *out = malloc(total);
  for (int i = 0; out && order[i]; i++) {
    const char *l = line_at(buf, order[i], &len);
    if (!l || o + len + 1 >= total)
      break;
    memcpy(out + o, l, len);
    o += len;
    out[o++] = '\n';
  }
  if (out)
    out[o] = '\0';
  return out;
}

static int wait_unhealthy(tg_audit *a) {
  for (int i = 0; i < 5000; i++) {
    if (!tg_audit_healthy(a))
      return 1;
    usleep(1000);
  }
  return 0;
}

TG_TEST(entry_format_is_compact_ordered_json) {
  const char *p = path_in("format.jsonl");
  char err[256];
  unlink(p);
  tg_audit *a = tg_audit_open(p, 1, err, sizeof err);
  TG_CHECK(a && err[0] == '\0');
  if (!a)
    return;
  TG_CHECK(tg_audit_log(a, "deny",
                        "{\"subject\":\"al\\u00efce\\n\",\"method\":\"/a.B/"
                        "C\",\"namespace\":\"ns\",\"n\":1.5,\"x\":[1,{}]}") ==
           0);
  TG_CHECK(tg_audit_log(a, "config", NULL) == 0);
  TG_CHECK(tg_audit_log(a, "allow", "{}") == 0);
  uint64_t seq = 0;
  char head[65];
  tg_audit_head(a, &seq, head);
  TG_CHECK(seq == 3);
  tg_audit_close(a);

  size_t len = 0, l1;
  char *buf = read_all(p, &len);
  TG_CHECK(buf != NULL);
  if (!buf)
    return;
  const char *line = line_at(buf, 1, &l1);
  TG_CHECK(line && strncmp(line, "{\"seq\":1,\"time\":\"", 17) == 0);
  /* "YYYY-MM-DDTHH:MM:SS.mmmZ" */
  TG_CHECK(line && line[17 + 4] == '-' && line[17 + 10] == 'T' &&
           line[17 + 19] == '.' && line[17 + 23] == 'Z' &&
           line[17 + 24] == '"');
  TG_CHECK_STR_CONTAINS(
      buf,
      "\"event\":\"deny\",\"subject\":\"al\xc3\xaf"
      "ce\\n\",\"method\":\"/a.B/C\",\"namespace\":"
      "\"ns\",\"n\":1.5,\"x\":[1,{}],\"prev\":\"" TG_AUDIT_GENESIS "\"}\n");
  /* Re-serializing with jansson gives the very same bytes. */
  json_t *o = json_loadb(line, l1, 0, NULL);
  char *again = json_dumps(o, JSON_COMPACT | JSON_PRESERVE_ORDER);
  TG_CHECK(again && strlen(again) == l1 && memcmp(again, line, l1) == 0);
  free(again);
  json_decref(o);
  /* The second entry's prev is the SHA-256 of the first line. */
  char hex[65];
  tg_audit_sha256_hex(line, l1, hex);
  size_t l2;
  const char *line2 = line_at(buf, 2, &l2);
  TG_CHECK(line2 && strstr(line2, "\"event\":\"config\",\"prev\":\"") &&
           strncmp(line2 + l2 - 66, hex, 64) == 0);
  const char *line3 = line_at(buf, 3, &l2);
  TG_CHECK(line3 && strstr(line3, "\"event\":\"allow\",\"prev\""));
  tg_audit_sha256_hex(line3, l2, hex);
  TG_CHECK(strcmp(hex, head) == 0);

  char report[512];
  uint64_t n = 0;
  TG_CHECK(verify_one(p, report, sizeof report, &n) == 0 && n == 3);
  TG_CHECK_STR_CONTAINS(report, "ok: 3 entries, chain head ");
  TG_CHECK_STR_CONTAINS(report, head);
  free(buf);
}

TG_TEST(invalid_fields_are_rejected) {
  const char *p = path_in("invalid.jsonl");
  char err[256];
  unlink(p);
  tg_audit *a = tg_audit_open(p, 1, err, sizeof err);
  TG_CHECK(a != NULL);
  if (!a)
    return;
  static const char *bad[] = {
      "not json",
      "[1,2]",
      "\"s\"",
      "{\"a\":1",
      "{\"a\":1,\"a\":2}",
      "{\"seq\":7}",
      "{\"prev\":\"x\"}",
      "{\"time\":1}",
      "{\"event\":\"x\"}",
  };
  for (size_t i = 0; i < sizeof bad / sizeof bad[0]; i++)
    TG_CHECK(tg_audit_log(a, "deny", bad[i]) == TG_AUDIT_EINVAL);
  TG_CHECK(tg_audit_log(a, "", "{}") == TG_AUDIT_EINVAL);
  TG_CHECK(tg_audit_log(a, NULL, "{}") == TG_AUDIT_EINVAL);
  TG_CHECK(tg_audit_log(a, "\xff\xfe", "{}") == TG_AUDIT_EINVAL);
  size_t big = TG_AUDIT_MAX_LINE;
  char *huge = malloc(big + 32);
  if (huge) {
    memset(huge, 'a', big + 32);
    memcpy(huge, "{\"s\":\"", 6);
    memcpy(huge + big + 29, "\"}", 3);
    TG_CHECK(tg_audit_log(a, "deny", huge) == TG_AUDIT_EINVAL);
    free(huge);
  }
  TG_CHECK(tg_audit_log(a, "deny", "{\"ok\":true}") == 0);
  tg_audit_counters st;
  tg_audit_stats(a, &st);
  TG_CHECK(st.seq == 1 && st.dropped == 0);
  tg_audit_close(a);
  char report[512];
  uint64_t n = 0;
  TG_CHECK(verify_one(p, report, sizeof report, &n) == 0 && n == 1);
}

#define NTHREADS 4
#define PER_THREAD 2500

typedef struct {
  tg_audit *a;
  int id;
  int failed;
} worker_arg;

static void *worker(void *arg) {
  worker_arg *w = arg;
  char fields[128];
  for (int i = 0; i < PER_THREAD; i++) {
    snprintf(fields, sizeof fields,
             "{\"thread\":%d,\"i\":%d,\"subject\":\"worker-%d\"}", w->id, i,
             w->id);
    if (tg_audit_log(w->a, i % 2 ? "allow" : "deny", fields) != 0)
      w->failed++;
  }
  return NULL;
}

TG_TEST(concurrent_writers_build_one_chain) {
  const char *p = path_in("concurrent.jsonl");
  char err[256], report[512];
  unlink(p);
  tg_audit *a = tg_audit_open(p, 1, err, sizeof err);
  TG_CHECK(a != NULL);
  if (!a)
    return;
  pthread_t t[NTHREADS];
  worker_arg w[NTHREADS];
  for (int i = 0; i < NTHREADS; i++) {
    w[i] = (worker_arg){a, i, 0};
    pthread_create(&t[i], NULL, worker, &w[i]);
  }
  for (int i = 0; i < NTHREADS; i++) {
    pthread_join(t[i], NULL);
    TG_CHECK(w[i].failed == 0);
  }
  tg_audit_counters st;
  tg_audit_stats(a, &st);
  TG_CHECK(st.seq == NTHREADS * PER_THREAD && st.dropped == 0);
  tg_audit_close(a);

  uint64_t n = 0;
  TG_CHECK(verify_one(p, report, sizeof report, &n) == 0);
  TG_CHECK(n == NTHREADS * PER_THREAD);
  if (n != NTHREADS * PER_THREAD)
    fprintf(stderr, "  %s\n", report);
  /* Each thread's entries appear in the order it logged them. */
  size_t len = 0;
  char *buf = read_all(p, &len);
  int next[NTHREADS] = {0}, order_ok = 1;
  for (char *l = buf; l && *l;) {
    char *e = strchr(l, '\n');
    json_t *o = json_loadb(l, (size_t)(e - l), 0, NULL);
    int id = (int)json_integer_value(json_object_get(o, "thread"));
    int i = (int)json_integer_value(json_object_get(o, "i"));
    if (id < 0 || id >= NTHREADS || i != next[id]++)
      order_ok = 0;
    json_decref(o);
    l = e + 1;
  }
  TG_CHECK(order_ok);
  for (int i = 0; i < NTHREADS; i++)
    TG_CHECK(next[i] == PER_THREAD);
  free(buf);
}

TG_TEST(reopening_a_file_continues_its_chain) {
  const char *p = path_in("continue.jsonl");
  char err[256], report[512], head[65];
  uint64_t seq = 0, n = 0;
  TG_CHECK(make_log(p, 3) == 0);
  tg_audit *a = tg_audit_open(p, 0, err, sizeof err);
  TG_CHECK(a && err[0] == '\0');
  if (!a)
    return;
  tg_audit_head(a, &seq, head);
  TG_CHECK(seq == 3);
  TG_CHECK(tg_audit_log(a, "allow", "{\"subject\":\"bob\"}") == 0);
  TG_CHECK(tg_audit_log(a, "deny", "{\"subject\":\"eve\"}") == 0);
  tg_audit_head(a, &seq, head);
  tg_audit_close(a);
  TG_CHECK(seq == 5);
  TG_CHECK(verify_one(p, report, sizeof report, &n) == 0 && n == 5);
  TG_CHECK_STR_CONTAINS(report, head);
  size_t len = 0, ll;
  char *buf = read_all(p, &len);
  const char *l4 = buf ? line_at(buf, 4, &ll) : NULL;
  TG_CHECK(l4 && strncmp(l4, "{\"seq\":4,", 9) == 0);
  free(buf);
}

TG_TEST(rotation_continues_the_chain_in_the_new_file) {
  const char *p = path_in("rot.jsonl"), *old = path_in("rot.jsonl.1");
  char err[256], report[512];
  uint64_t n = 0;
  unlink(p);
  unlink(old);
  tg_audit *a = tg_audit_open(p, 1, err, sizeof err);
  TG_CHECK(a != NULL);
  if (!a)
    return;
  for (int i = 0; i < 5; i++)
    TG_CHECK(tg_audit_log(a, "deny", "{\"subject\":\"a\"}") == 0);
  /* Not renamed: nothing changes. */
  TG_CHECK(tg_audit_reopen(a, err, sizeof err) == 0);
  TG_CHECK(rename(p, old) == 0);
  TG_CHECK(tg_audit_reopen(a, err, sizeof err) == 0);
  TG_CHECK(tg_audit_reopen(a, err, sizeof err) == 0); /* twice: no-op */
  for (int i = 0; i < 4; i++)
    TG_CHECK(tg_audit_log(a, "allow", "{\"subject\":\"b\"}") == 0);
  uint64_t seq;
  char head[65];
  tg_audit_head(a, &seq, head);
  tg_audit_close(a);
  TG_CHECK(seq == 9);
  struct stat sb;
  TG_CHECK(stat(p, &sb) == 0 && (sb.st_mode & 0777) == 0600);

  const char *both[2] = {old, p};
  TG_CHECK(verify_files(both, 2, report, sizeof report, &n) == 0 && n == 9);
  TG_CHECK_STR_CONTAINS(report, head);
  TG_CHECK(verify_one(old, report, sizeof report, &n) == 0 && n == 5);
  TG_CHECK(verify_one(p, report, sizeof report, &n) == -1);
  TG_CHECK_STR_CONTAINS(report, "entry 1 (line 1 of ");
  TG_CHECK_STR_CONTAINS(report, "continues an earlier chain (seq 6");
  /* The wrong order fails too. */
  const char *swapped[2] = {p, old};
  TG_CHECK(verify_files(swapped, 2, report, sizeof report, &n) == -1);

  /* A reopen onto a non-empty file of another chain is refused; writing
   * goes on in the current file. */
  const char *other = path_in("other.jsonl");
  TG_CHECK(make_log(other, 2) == 0);
  a = tg_audit_open(p, 1, err, sizeof err);
  TG_CHECK(a != NULL);
  if (!a)
    return;
  TG_CHECK(rename(p, path_in("rot.jsonl.2")) == 0);
  TG_CHECK(rename(other, p) == 0);
  TG_CHECK(tg_audit_reopen(a, err, sizeof err) == -1);
  TG_CHECK_STR_CONTAINS(err, "not empty");
  TG_CHECK(tg_audit_log(a, "deny", "{}") == 0);
  tg_audit_close(a);
  const char *three[3] = {old, path_in("rot.jsonl.2"), NULL};
  TG_CHECK(verify_files(three, 2, report, sizeof report, &n) == 0 && n == 10);
}

TG_TEST(tampering_is_reported_at_the_first_bad_entry) {
  const char *p = path_in("tamper.jsonl");
  char report[512];
  size_t len = 0, ll;
  TG_CHECK(make_log(p, 10) == 0);
  char *buf = read_all(p, &len);
  TG_CHECK(buf != NULL);
  if (!buf)
    return;
  TG_CHECK(verify_mem(buf, report, sizeof report) == 0);

  /* Altered entry 5: seen at entry 6, whose prev no longer matches. */
  char *alt = strdup(buf);
  char *l5 = (char *)line_at(alt, 5, &ll);
  char *u = strstr(l5, "user5");
  u[4] = '6';
  TG_CHECK(verify_mem(alt, report, sizeof report) == -1);
  TG_CHECK_STR_CONTAINS(report, "entry 6 (line 6 of audit.jsonl): altered, "
                                "or the entry before it was altered (prev "
                                "does not match)");
  /* Altered seq of entry 5. */
  strcpy(alt, buf);
  l5 = (char *)line_at(alt, 5, &ll);
  l5[7] = '8';
  TG_CHECK(verify_mem(alt, report, sizeof report) == -1);
  TG_CHECK_STR_CONTAINS(report, "entry 5 (line 5 of audit.jsonl): removed "
                                "entries before it (seq 8 follows 4)");
  /* Broken syntax. */
  strcpy(alt, buf);
  l5 = (char *)line_at(alt, 5, &ll);
  l5[0] = '[';
  TG_CHECK(verify_mem(alt, report, sizeof report) == -1);
  TG_CHECK_STR_CONTAINS(report, "entry 5 (line 5 of audit.jsonl): not an "
                                "audit entry");
  /* Changed prev of the first entry. */
  strcpy(alt, buf);
  char *g = strstr(alt, TG_AUDIT_GENESIS);
  g[10] = '1';
  TG_CHECK(verify_mem(alt, report, sizeof report) == -1);
  TG_CHECK_STR_CONTAINS(report, "entry 1 (line 1 of audit.jsonl): continues "
                                "an earlier chain");
  free(alt);

  static const int removed[] = {1, 2, 3, 4, 6, 7, 8, 9, 10, 0};
  static const int swapped[] = {1, 2, 3, 5, 4, 6, 7, 8, 9, 10, 0};
  static const int far_swap[] = {1, 2, 7, 4, 5, 6, 3, 8, 9, 10, 0};
  static const int repeated[] = {1, 2, 3, 4, 5, 5, 6, 7, 8, 9, 10, 0};
  static const int first_gone[] = {2, 3, 4, 0};
  static const int last_gone[] = {1, 2, 3, 4, 5, 6, 7, 8, 9, 0};
  static const int restarted[] = {1, 2, 3, 1, 2, 0};
  struct {
    const int *order;
    const char *want;
  } cases[] = {
      {removed, "entry 5 (line 5 of audit.jsonl): removed entries before it "
                "(seq 6 follows 4)"},
      {swapped, "entry 4 (line 4 of audit.jsonl): removed entries before it "
                "(seq 5 follows 3), or entries moved elsewhere"},
      {far_swap, "entry 3 (line 3 of audit.jsonl): removed entries before it "
                 "(seq 7 follows 2)"},
      {repeated, "entry 6 (line 6 of audit.jsonl): reordered or repeated "
                 "entries (seq 5 follows 5)"},
      {first_gone, "entry 1 (line 1 of audit.jsonl): continues an earlier "
                   "chain (seq 2"},
      {restarted, "entry 4 (line 4 of audit.jsonl): a new chain starts here "
                  "(seq 1 after seq 3)"},
  };
  for (size_t i = 0; i < sizeof cases / sizeof cases[0]; i++) {
    char *t = relines(buf, cases[i].order);
    TG_CHECK(t && verify_mem(t, report, sizeof report) == -1);
    TG_CHECK_STR_CONTAINS(report, cases[i].want);
    free(t);
  }
  /* Removing (or altering) the last entry leaves a valid, shorter chain:
   * only a chain head recorded elsewhere shows it. */
  char head10[80];
  TG_CHECK(verify_mem(buf, head10, sizeof head10) == 0);
  char *t = relines(buf, last_gone);
  TG_CHECK(t && verify_mem(t, report, sizeof report) == 0);
  TG_CHECK_STR_CONTAINS(report, "ok: 9 entries");
  TG_CHECK(strcmp(strchr(report, ','), strchr(head10, ',')) != 0);
  free(t);

  /* A torn final line. */
  t = strndup(buf, len - 20);
  TG_CHECK(t && verify_mem(t, report, sizeof report) == -1);
  TG_CHECK_STR_CONTAINS(report, "entry 10 (line 10 of audit.jsonl): "
                                "incomplete final line (no newline)");
  free(t);
  /* An empty line. */
  t = relines(buf, (const int[]){1, 2, 0});
  char two_and_blank[4096];
  snprintf(two_and_blank, sizeof two_and_blank, "%s\n", t ? t : "");
  TG_CHECK(verify_mem(two_and_blank, report, sizeof report) == -1);
  TG_CHECK_STR_CONTAINS(report, "entry 3 (line 3 of audit.jsonl): not an "
                                "audit entry: empty line");
  free(t);
  TG_CHECK(verify_mem("", report, sizeof report) == 0);
  TG_CHECK_STR_CONTAINS(report, "ok: 0 entries, chain head " TG_AUDIT_GENESIS);
  free(buf);
}

TG_TEST(parse_entry_rules) {
  const char *why = NULL;
  uint64_t seq = 0;
  char prev[65];
  const char *good = "{\"seq\":3,\"time\":\"t\",\"event\":\"e\",\"prev\":"
                     "\"" TG_AUDIT_GENESIS "\"}";
  TG_CHECK(tg_audit_parse_entry(good, strlen(good), &seq, prev, &why) == 0);
  TG_CHECK(seq == 3 && strcmp(prev, TG_AUDIT_GENESIS) == 0);
  static const char *bad[] = {
      "{\"seq\":0,\"time\":\"t\",\"event\":\"e\",\"prev\":\"" TG_AUDIT_GENESIS
      "\"}",
      "{\"seq\":1.0,\"time\":\"t\",\"event\":\"e\",\"prev\":"
      "\"" TG_AUDIT_GENESIS "\"}",
      "{\"seq\":1,\"time\":2,\"event\":\"e\",\"prev\":\"" TG_AUDIT_GENESIS
      "\"}",
      "{\"seq\":1,\"time\":\"t\",\"prev\":\"" TG_AUDIT_GENESIS "\"}",
      "{\"seq\":1,\"time\":\"t\",\"event\":\"e\",\"prev\":\"00\"}",
      "{\"seq\":1,\"time\":\"t\",\"event\":\"e\",\"prev\":"
      "\"000000000000000000000000000000000000000000000000000000000000000A\"}",
      "{\"seq\":1,\"seq\":1,\"time\":\"t\",\"event\":\"e\",\"prev\":"
      "\"" TG_AUDIT_GENESIS "\"}",
      "[]",
      "{} {}",
  };
  for (size_t i = 0; i < sizeof bad / sizeof bad[0]; i++) {
    why = NULL;
    TG_CHECK(tg_audit_parse_entry(bad[i], strlen(bad[i]), NULL, NULL, &why) ==
                 -1 &&
             why && *why);
  }
}

TG_TEST(torn_last_line_is_repaired_on_open) {
  const char *p = path_in("torn.jsonl");
  char err[256], report[512];
  size_t len = 0, ll;
  uint64_t n = 0;
  TG_CHECK(make_log(p, 4) == 0);
  char *buf = read_all(p, &len);
  if (!buf)
    return;
  /* An interrupted write: half of a fifth line. */
  static const char frag[] = "{\"seq\":5,\"time\":\"2026-";
  char *torn = malloc(len + sizeof frag);
  if (!torn)
    return;
  memcpy(torn, buf, len);
  memcpy(torn + len, frag, sizeof frag - 1);
  write_all(p, torn, len + sizeof frag - 1);
  tg_audit *a = tg_audit_open(p, 1, err, sizeof err);
  TG_CHECK(a != NULL);
  TG_CHECK_STR_CONTAINS(err, "cut off an incomplete last line (22 bytes)");
  if (a) {
    TG_CHECK(tg_audit_log(a, "deny", "{\"after\":\"crash\"}") == 0);
    tg_audit_close(a);
  }
  TG_CHECK(verify_one(p, report, sizeof report, &n) == 0 && n == 5);

  /* A whole entry that only lacks its '\n' is kept and completed. */
  write_all(p, buf, len - 1);
  a = tg_audit_open(p, 1, err, sizeof err);
  TG_CHECK(a != NULL);
  TG_CHECK_STR_CONTAINS(err, "the last entry (seq 4) lacked its newline");
  if (a) {
    TG_CHECK(tg_audit_log(a, "deny", NULL) == 0);
    tg_audit_close(a);
  }
  TG_CHECK(verify_one(p, report, sizeof report, &n) == 0 && n == 5);

  /* A file that is nothing but a torn line starts a new chain. */
  write_all(p, "{\"seq\":1,\"ti", 12);
  a = tg_audit_open(p, 1, err, sizeof err);
  TG_CHECK(a != NULL);
  TG_CHECK_STR_CONTAINS(err, "cut off an incomplete last line (12 bytes)");
  if (a) {
    TG_CHECK(tg_audit_log(a, "deny", NULL) == 0);
    tg_audit_close(a);
  }
  TG_CHECK(verify_one(p, report, sizeof report, &n) == 0 && n == 1);

  /* A complete last line that is not an entry: refused. */
  const char *l2 = line_at(buf, 2, &ll);
  memcpy(torn, buf, (size_t)(l2 - buf));
  memcpy(torn + (l2 - buf), "garbage\n", 8);
  write_all(p, torn, (size_t)(l2 - buf) + 8);
  a = tg_audit_open(p, 1, err, sizeof err);
  TG_CHECK(a == NULL);
  TG_CHECK_STR_CONTAINS(err, "the last line is not an audit entry");
  tg_audit_close(a);
  free(torn);
  free(buf);
}

TG_TEST(unwritable_path_fails_to_open) {
  char err[256];
  tg_audit *a =
      tg_audit_open("/nonexistent-tgate-dir/audit.jsonl", 1, err, sizeof err);
  TG_CHECK(a == NULL);
  TG_CHECK_STR_CONTAINS(err, "No such file or directory");
}

static int wait_written(tg_audit *a, uint64_t n) {
  tg_audit_counters st;
  for (int i = 0; i < 5000; i++) {
    tg_audit_stats(a, &st);
    if (st.written == n && tg_audit_healthy(a))
      return 1;
    usleep(1000);
  }
  return 0;
}

/* Runs body in a child process: RLIMIT_FSIZE, used to make writes fail,
 * would also cut this process's stdout and stderr when they are files.
 * 1 when the body's checks passed. */
static int in_child(void (*body)(void)) {
  int status = 0;
  fflush(NULL);
  pid_t pid = fork();
  if (pid < 0)
    return 0;
  if (pid == 0) {
    tg_test_failed_now = 0;
    body();
    _exit(tg_test_failed_now ? 1 : 0);
  }
  if (waitpid(pid, &status, 0) != pid)
    return 0;
  return WIFEXITED(status) && WEXITSTATUS(status) == 0;
}

/* RLIMIT_FSIZE cuts a write short (then EFBIG): the retry resumes where
 * the write stopped, so the file has no torn line and no gap. */
static void partial_write(void) {
  const char *p = path_in("partial.jsonl");
  char err[256], report[512];
  struct rlimit orig, lim;
  struct stat sb;
  uint64_t n = 0;
  unlink(p);
  signal(SIGXFSZ, SIG_IGN);
  TG_CHECK(getrlimit(RLIMIT_FSIZE, &orig) == 0);
  tg_audit *a = tg_audit_open(p, 0, err, sizeof err);
  TG_CHECK(a != NULL);
  if (!a)
    return;
  for (int i = 0; i < 3; i++)
    TG_CHECK(tg_audit_log(a, "deny", "{\"subject\":\"before\"}") == 0);
  TG_CHECK(wait_written(a, 3));
  TG_CHECK(stat(p, &sb) == 0);
  lim = orig;
  lim.rlim_cur = (rlim_t)sb.st_size + 100; /* part of the next line */
  TG_CHECK(setrlimit(RLIMIT_FSIZE, &lim) == 0);
  for (int i = 0; i < 5; i++)
    TG_CHECK(tg_audit_log(a, "deny", "{\"subject\":\"during\"}") == 0);
  TG_CHECK(wait_unhealthy(a));
  TG_CHECK(stat(p, &sb) == 0 && (rlim_t)sb.st_size == lim.rlim_cur);
  tg_audit_counters st;
  tg_audit_stats(a, &st);
  TG_CHECK(st.written == 3 && st.queued == 5 && st.failures >= 1);
  TG_CHECK(setrlimit(RLIMIT_FSIZE, &orig) == 0);
  TG_CHECK(wait_written(a, 8)); /* within TG_AUDIT_RETRY_MS */
  tg_audit_close(a);
  signal(SIGXFSZ, SIG_DFL);
  TG_CHECK(verify_one(p, report, sizeof report, &n) == 0 && n == 8);
  if (n != 8)
    fprintf(stderr, "  %s\n", report);
}

TG_TEST(write_resumes_after_a_partial_write) {
  TG_CHECK(in_child(partial_write));
}

/* /dev/full: every write fails with ENOSPC. */
TG_TEST(write_failures_make_fail_closed_refuse) {
  char err[256];
  printf("# two audit errors about /dev/full are expected next\n");
  fflush(stdout);
  tg_audit *a = tg_audit_open("/dev/full", 1, err, sizeof err);
  TG_CHECK(a != NULL);
  if (!a)
    return;
  TG_CHECK(tg_audit_healthy(a));
  TG_CHECK(tg_audit_log(a, "deny", "{\"n\":1}") == 0); /* queued */
  TG_CHECK(wait_unhealthy(a));
  TG_CHECK(tg_audit_log(a, "deny", "{\"n\":2}") == TG_AUDIT_REFUSED);
  tg_audit_counters st;
  tg_audit_stats(a, &st);
  TG_CHECK(st.failures >= 1 && st.dropped == 1 && st.written == 0);
  TG_CHECK(st.queued == 1 && st.seq == 1);
  tg_audit_close(a); /* gives the queued entry up */

  a = tg_audit_open("/dev/full", 0, err, sizeof err);
  TG_CHECK(a != NULL);
  if (!a)
    return;
  TG_CHECK(tg_audit_log(a, "deny", "{\"n\":1}") == 0);
  TG_CHECK(wait_unhealthy(a));
  TG_CHECK(tg_audit_log(a, "deny", "{\"n\":2}") == 0); /* fail_open */
  tg_audit_stats(a, &st);
  TG_CHECK(st.queued == 2 && st.dropped == 0);
  tg_audit_close(a);
}

typedef struct {
  int fd;
  char *buf;
  size_t len, cap;
} drain_arg;

static void *drain(void *arg) {
  drain_arg *d = arg;
  for (;;) {
    if (d->len + 65536 > d->cap) {
      char *nb = realloc(d->buf, d->cap = d->cap * 2 + 65536 + 1);
      if (!nb)
        return NULL;
      d->buf = nb;
    }
    ssize_t n = read(d->fd, d->buf + d->len, d->cap - d->len - 1);
    if (n < 0 && errno == EINTR)
      continue;
    if (n <= 0)
      break;
    d->len += (size_t)n;
  }
  if (d->buf)
    d->buf[d->len] = '\0';
  return NULL;
}

/* A FIFO nobody reads: the writer blocks, the queue fills up. Then the
 * reader starts, and close must still deliver every accepted entry. */
static void full_queue(int fail_closed) {
  const char *p = path_in(fail_closed ? "fifo-closed" : "fifo-open");
  char err[256], report[512];
  unlink(p);
  TG_CHECK(mkfifo(p, 0600) == 0);
  drain_arg d = {.fd = open(p, O_RDONLY | O_NONBLOCK | O_CLOEXEC)};
  TG_CHECK(d.fd >= 0);
  tg_audit *a = tg_audit_open(p, fail_closed, err, sizeof err);
  TG_CHECK(a != NULL);
  if (!a || d.fd < 0)
    return;
  fcntl(d.fd, F_SETFL, 0);
  tg_audit_counters st = {0};
  int rv = 0, accepted = 0;
  for (int i = 0; i < 4 * TG_AUDIT_QUEUE_MAX && st.dropped == 0; i++) {
    rv = tg_audit_log(a, "deny", "{\"subject\":\"flood\"}");
    tg_audit_stats(a, &st);
    if (st.dropped == 0)
      accepted++;
  }
  TG_CHECK(st.dropped == 1);
  TG_CHECK(rv == (fail_closed ? TG_AUDIT_REFUSED : 0));
  TG_CHECK(st.queued == TG_AUDIT_QUEUE_MAX);
  TG_CHECK(st.seq == (uint64_t)accepted);
  TG_CHECK(tg_audit_healthy(a));
  pthread_t t;
  pthread_create(&t, NULL, drain, &d);
  tg_audit_close(a);
  pthread_join(t, NULL);
  close(d.fd);
  tg_audit_verify_state vs;
  tg_audit_verify_init(&vs);
  TG_CHECK(d.buf &&
           tg_audit_verify_buf(d.buf, d.len, &vs, report, sizeof report) == 0);
  TG_CHECK(vs.entries == (uint64_t)accepted);
  free(d.buf);
  unlink(p);
}

TG_TEST(full_queue_fail_closed_refuses) {
  full_queue(1);
}

TG_TEST(full_queue_fail_open_drops) {
  full_queue(0);
}

TG_TEST(verify_command) {
  const char *p = path_in("cmd.jsonl"), *bad = path_in("cmd-bad.jsonl");
  TG_CHECK(make_log(p, 3) == 0);
  write_all(bad, "{}\n", 3);
  char *ok[] = {"verify", (char *)p};
  char *bad_args[] = {"verify", (char *)p, (char *)bad};
  char *missing[] = {"verify", (char *)path_in("missing.jsonl")};
  char *none[] = {"verify"};
  char *other[] = {"check", (char *)p};
  /* Its messages are not wanted in the test output. */
  fflush(stderr);
  int saved = dup(2), null = open("/dev/null", O_WRONLY);
  if (saved >= 0 && null >= 0)
    dup2(null, 2);
  TG_CHECK(tg_audit_verify_main(2, ok) == 0);
  TG_CHECK(tg_audit_verify_main(3, bad_args) == 1);
  TG_CHECK(tg_audit_verify_main(2, missing) == 2);
  TG_CHECK(tg_audit_verify_main(1, none) == 2);
  TG_CHECK(tg_audit_verify_main(2, other) == 2);
  TG_CHECK(tg_audit_verify_main(0, NULL) == 2);
  fflush(stderr);
  if (saved >= 0)
    dup2(saved, 2);
  if (saved >= 0)
    close(saved);
  if (null >= 0)
    close(null);
}

#ifdef TG_TEST_MALLOC_HOOK
static int malloc_hook_works(void) {
  hook_arm(1);
  void *volatile probe = malloc(1);
  hook_armed = 0;
  free(probe);
  if (probe)
    printf("# skipped: malloc is not replaceable here\n");
  return probe == NULL;
}
#endif

/* Every allocation of tg_audit_log fails in turn: nothing leaks, and an
 * entry either joins the chain whole or not at all, so the file is still
 * one valid chain. The writer is held off meanwhile (RLIMIT_FSIZE), so only
 * this thread allocates. */
#ifdef TG_TEST_MALLOC_HOOK
static void oom_in_log(void) {
  const char *p = path_in("oom.jsonl");
  char err[256], report[512];
  struct rlimit orig, lim;
  struct stat sb;
  tg_audit_counters before, after;
  uint64_t n = 0, queued = 0;
  unlink(p);
  signal(SIGXFSZ, SIG_IGN);
  TG_CHECK(getrlimit(RLIMIT_FSIZE, &orig) == 0);
  tg_audit *a = tg_audit_open(p, 0, err, sizeof err);
  TG_CHECK(a != NULL);
  if (!a)
    return;
  TG_CHECK(tg_audit_log(a, "deny", "{\"n\":0}") == 0);
  TG_CHECK(wait_written(a, 1));
  TG_CHECK(stat(p, &sb) == 0);
  lim = orig;
  lim.rlim_cur = (rlim_t)sb.st_size;
  TG_CHECK(setrlimit(RLIMIT_FSIZE, &lim) == 0);
  TG_CHECK(tg_audit_log(a, "deny", "{\"n\":1}") == 0);
  TG_CHECK(wait_unhealthy(a));
  long k;
  for (k = 1; k < 10000; k++) {
    tg_audit_stats(a, &before);
    hook_arm(k);
    int rv = tg_audit_log(a, "deny",
                          "{\"subject\":\"alice\",\"tags\":[\"a\",{\"b\":2}]}");
    int failed = hook_failed;
    hook_settle();
    tg_audit_stats(a, &after);
    int joined = after.seq == before.seq + 1;
    queued += (uint64_t)joined;
    TG_CHECK(hook_live == (joined ? 1 : 0)); /* the queued entry */
    TG_CHECK(rv == 0 || rv == TG_AUDIT_EINVAL);
    TG_CHECK(joined ? rv == 0 && after.queued == before.queued + 1
                    : after.queued == before.queued);
    if (!failed) {
      TG_CHECK(rv == 0 && joined);
      break;
    }
  }
  TG_CHECK(k > 1 && k < 10000);
  TG_CHECK(setrlimit(RLIMIT_FSIZE, &orig) == 0);
  TG_CHECK(wait_written(a, 2 + queued));
  tg_audit_close(a);
  signal(SIGXFSZ, SIG_DFL);
  TG_CHECK(verify_one(p, report, sizeof report, &n) == 0 && n == 2 + queued);
}
#endif

TG_TEST(out_of_memory_in_log_keeps_the_chain) {
#ifdef TG_TEST_MALLOC_HOOK
  if (!malloc_hook_works())
    return;
  TG_CHECK(in_child(oom_in_log));
#endif
}

/* Every allocation of a verification fails in turn: nothing leaks, and a
 * tampered chain is never reported valid. */
TG_TEST(out_of_memory_in_verify_never_passes_a_bad_chain) {
#ifdef TG_TEST_MALLOC_HOOK
  if (!malloc_hook_works())
    return;
  const char *p = path_in("oom-verify.jsonl");
  char report[512];
  size_t len = 0;
  TG_CHECK(make_log(p, 3) == 0);
  char *good = read_all(p, &len);
  if (!good)
    return;
  char *bad = strdup(good);
  char *u = bad ? strstr(bad, "user2") : NULL;
  if (u)
    u[4] = '9';
  for (int which = 0; which < 2 && bad; which++) {
    const char *buf = which ? bad : good;
    long k;
    for (k = 1; k < 10000; k++) {
      tg_audit_verify_state st;
      tg_audit_verify_init(&st);
      hook_arm(k);
      int rv = tg_audit_verify_buf(buf, len, &st, report, sizeof report);
      int failed = hook_failed;
      hook_settle();
      TG_CHECK(hook_live == 0);
      TG_CHECK(rv == -1 || (which == 0 && st.entries == 3));
      if (!failed) {
        TG_CHECK(rv == (which ? -1 : 0));
        break;
      }
    }
    TG_CHECK(k > 1 && k < 10000);
  }
  free(bad);
  free(good);
#endif
}

static void cleanup(void) {
  static const char *names[] = {
      "format.jsonl",  "invalid.jsonl", "concurrent.jsonl", "continue.jsonl",
      "rot.jsonl",     "rot.jsonl.1",   "rot.jsonl.2",      "other.jsonl",
      "tamper.jsonl",  "torn.jsonl",    "partial.jsonl",    "cmd.jsonl",
      "cmd-bad.jsonl", "oom.jsonl",     "oom-verify.jsonl"};
  for (size_t i = 0; i < sizeof names / sizeof names[0]; i++)
    unlink(path_in(names[i]));
  rmdir(dir);
}

int main(void) {
  snprintf(dir, sizeof dir, "/tmp/tg_audit_test_XXXXXX");
  if (!mkdtemp(dir)) {
    perror("mkdtemp");
    return 1;
  }
  TG_RUN(entry_format_is_compact_ordered_json);
  TG_RUN(invalid_fields_are_rejected);
  TG_RUN(concurrent_writers_build_one_chain);
  TG_RUN(reopening_a_file_continues_its_chain);
  TG_RUN(rotation_continues_the_chain_in_the_new_file);
  TG_RUN(tampering_is_reported_at_the_first_bad_entry);
  TG_RUN(parse_entry_rules);
  TG_RUN(torn_last_line_is_repaired_on_open);
  TG_RUN(unwritable_path_fails_to_open);
  TG_RUN(write_resumes_after_a_partial_write);
  TG_RUN(write_failures_make_fail_closed_refuse);
  TG_RUN(full_queue_fail_closed_refuses);
  TG_RUN(full_queue_fail_open_drops);
  TG_RUN(verify_command);
  TG_RUN(out_of_memory_in_log_keeps_the_chain);
  TG_RUN(out_of_memory_in_verify_never_passes_a_bad_chain);
  cleanup();
  return TG_DONE();
}
