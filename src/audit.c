#include "tg_audit.h"

#include <errno.h>
#include <fcntl.h>
#include <jansson.h>
#include <openssl/evp.h>
#include <pthread.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <sys/uio.h>
#include <time.h>
#include <unistd.h>

#include "tg_audit_verify.h"
#include "tg_log.h"

#define BATCH 256 /* entries per writev */

/* A queued entry (fd < 0), or a rotation marker: switch to file fd. */
typedef struct item {
  struct item *next;
  int fd;
  int regular;
  size_t len; /* line bytes, '\n' included */
  char line[];
} item;

struct tg_audit {
  char *path;
  int fail_closed;
  EVP_MD *md;
  pthread_t thread;
  pthread_mutex_t mu;
  pthread_cond_t cv;
  /* Under mu. */
  item *head, *tail;
  size_t nqueued; /* entries, markers not counted */
  uint64_t seq;
  char head_hex[65];
  dev_t dev; /* the file at path, as last opened */
  ino_t ino;
  int closing;
  int healthy;
  uint64_t written, dropped, failures;
  /* Writer thread only (and open/close, before and after it runs). */
  int fd;
  int regular;
  size_t head_off; /* bytes of the head entry already written */
  int dirty;       /* written since the last fdatasync */
  struct timespec last_sync;
};

static void set_err(char *err, size_t errlen, const char *fmt, ...)
    __attribute__((format(printf, 3, 4)));
static void set_err(char *err, size_t errlen, const char *fmt, ...) {
  va_list ap;
  if (!err || errlen == 0)
    return;
  va_start(ap, fmt);
  vsnprintf(err, errlen, fmt, ap);
  va_end(ap);
}

/* 0, or -1 when OpenSSL fails (out of memory). */
static int sha256_hex(const EVP_MD *md, const char *buf, size_t len,
                      char hex[65]) {
  static const char digits[] = "0123456789abcdef";
  unsigned char d[32];
  if (EVP_Digest(buf, len, d, NULL, md, NULL) != 1)
    return -1;
  for (size_t i = 0; i < 32; i++) {
    hex[2 * i] = digits[d[i] >> 4];
    hex[2 * i + 1] = digits[d[i] & 15];
  }
  hex[64] = '\0';
  return 0;
}

static struct timespec ts_add_ms(struct timespec t, long ms) {
  t.tv_sec += ms / 1000;
  t.tv_nsec += (ms % 1000) * 1000000L;
  if (t.tv_nsec >= 1000000000L) {
    t.tv_sec++;
    t.tv_nsec -= 1000000000L;
  }
  return t;
}

static int ts_before(struct timespec a, struct timespec b) {
  return a.tv_sec < b.tv_sec || (a.tv_sec == b.tv_sec && a.tv_nsec < b.tv_nsec);
}

static struct timespec mono_now(void) {
  struct timespec t;
  clock_gettime(CLOCK_MONOTONIC, &t);
  return t;
}

/* A new directory entry is durable only once its directory is synced. */
static void sync_parent_dir(const char *path) {
  const char *slash = strrchr(path, '/');
  char dir[4096];
  if (!slash)
    snprintf(dir, sizeof dir, ".");
  else if (slash == path)
    snprintf(dir, sizeof dir, "/");
  else if ((size_t)(slash - path) < sizeof dir)
    snprintf(dir, sizeof dir, "%.*s", (int)(slash - path), path);
  else
    return;
  int fd = open(dir, O_RDONLY | O_DIRECTORY | O_CLOEXEC);
  if (fd < 0)
    return;
  fsync(fd);
  close(fd);
}

static int pread_full(int fd, char *buf, size_t len, off_t off) {
  size_t done = 0;
  while (done < len) {
    ssize_t n = pread(fd, buf + done, len - done, off + (off_t)done);
    if (n < 0 && errno == EINTR)
      continue;
    if (n <= 0) {
      if (n == 0)
        errno = EIO; /* the file shrank */
      return -1;
    }
    done += (size_t)n;
  }
  return 0;
}

/* Reads the last line of a regular file to continue its chain: sets seq
 * and head_hex (genesis for an empty file). An unterminated last line is
 * completed when it is a whole entry, else cut off; warn says which. */
static int load_head(tg_audit *a, char *err, size_t errlen, char *warn,
                     size_t warnlen) {
  char *buf = NULL;
  int rv = -1;
  for (int round = 0; round < 2; round++) {
    struct stat st;
    const char *why = "";
    uint64_t seq;
    if (fstat(a->fd, &st) != 0) {
      set_err(err, errlen, "%s: %s", a->path, strerror(errno));
      goto end;
    }
    if (st.st_size == 0) {
      a->seq = 0;
      memcpy(a->head_hex, TG_AUDIT_GENESIS, 65);
      rv = 0;
      goto end;
    }
    size_t size = (size_t)st.st_size;
    size_t win = size < TG_AUDIT_MAX_LINE + 2 ? size : TG_AUDIT_MAX_LINE + 2;
    free(buf);
    buf = malloc(win);
    if (!buf) {
      set_err(err, errlen, "%s: out of memory", a->path);
      goto end;
    }
    if (pread_full(a->fd, buf, win, (off_t)(size - win)) != 0) {
      set_err(err, errlen, "%s: cannot read its last line: %s", a->path,
              strerror(errno));
      goto end;
    }
    int terminated = buf[win - 1] == '\n';
    size_t end = terminated ? win - 1 : win;
    const char *nl = memrchr(buf, '\n', end);
    size_t start = nl ? (size_t)(nl - buf) + 1 : 0;
    if (!nl && win < size) {
      set_err(err, errlen,
              "%s: the last line is longer than %d bytes: not an audit "
              "entry; move the file away",
              a->path, TG_AUDIT_MAX_LINE);
      goto end;
    }
    int valid =
        tg_audit_parse_entry(buf + start, end - start, &seq, NULL, &why) == 0 &&
        seq < (uint64_t)INT64_MAX;
    if (!terminated && valid) {
      if (write(a->fd, "\n", 1) != 1) {
        set_err(err, errlen, "%s: cannot complete the last line: %s", a->path,
                strerror(errno));
        goto end;
      }
      set_err(warn, warnlen,
              "%s: the last entry (seq %llu) lacked its newline (interrupted "
              "write); completed it",
              a->path, (unsigned long long)seq);
    } else if (!terminated) {
      if (ftruncate(a->fd, (off_t)(size - (end - start))) != 0) {
        set_err(err, errlen, "%s: cannot cut off an incomplete last line: %s",
                a->path, strerror(errno));
        goto end;
      }
      set_err(warn, warnlen,
              "%s: cut off an incomplete last line (%zu bytes) left by an "
              "interrupted write",
              a->path, end - start);
      continue;
    } else if (!valid) {
      set_err(err, errlen,
              "%s: the last line is not an audit entry (%s): cannot continue "
              "its chain; move the file away and check it with `tgate audit "
              "verify`",
              a->path, *why ? why : "seq too large");
      goto end;
    }
    if (sha256_hex(a->md, buf + start, end - start, a->head_hex) != 0) {
      set_err(err, errlen, "%s: cannot hash the last line", a->path);
      goto end;
    }
    a->seq = seq;
    rv = 0;
    goto end;
  }
  set_err(err, errlen, "%s: cannot find a complete last line", a->path);
end:
  free(buf);
  return rv;
}

static int open_file(const char *path, int *regular, struct stat *st, char *err,
                     size_t errlen) {
  int fd = open(path, O_RDWR | O_APPEND | O_CREAT | O_CLOEXEC, 0600);
  if (fd < 0) {
    set_err(err, errlen, "%s: %s", path, strerror(errno));
    return -1;
  }
  if (fstat(fd, st) != 0) {
    set_err(err, errlen, "%s: %s", path, strerror(errno));
    close(fd);
    return -1;
  }
  *regular = S_ISREG(st->st_mode);
  return fd;
}

static void *writer_main(void *arg);

tg_audit *tg_audit_open(const char *path, int fail_closed, char *err,
                        size_t errlen) {
  struct stat st;
  char warn[512] = "";
  int mu_ok = 0, cv_ok = 0;
  pthread_condattr_t ca;
  tg_audit *a = calloc(1, sizeof(*a));
  set_err(err, errlen, "%s", "");
  if (!a)
    goto nomem;
  a->fd = -1;
  a->fail_closed = fail_closed;
  a->healthy = 1;
  a->path = strdup(path);
  a->md = EVP_MD_fetch(NULL, "SHA256", NULL);
  if (!a->path || !a->md)
    goto nomem;
  a->fd = open_file(path, &a->regular, &st, err, errlen);
  if (a->fd < 0)
    goto fail;
  a->dev = st.st_dev;
  a->ino = st.st_ino;
  memcpy(a->head_hex, TG_AUDIT_GENESIS, 65);
  if (a->regular && load_head(a, err, errlen, warn, sizeof warn) != 0)
    goto fail;
  if (a->regular && st.st_size == 0)
    sync_parent_dir(path);
  if (pthread_mutex_init(&a->mu, NULL) != 0)
    goto nomem;
  mu_ok = 1;
  if (pthread_condattr_init(&ca) != 0)
    goto nomem;
  pthread_condattr_setclock(&ca, CLOCK_MONOTONIC);
  cv_ok = pthread_cond_init(&a->cv, &ca) == 0;
  pthread_condattr_destroy(&ca);
  if (!cv_ok)
    goto nomem;
  a->last_sync = mono_now();
  if (pthread_create(&a->thread, NULL, writer_main, a) != 0) {
    set_err(err, errlen, "%s: cannot start the audit writer thread", path);
    goto fail;
  }
  set_err(err, errlen, "%s", warn);
  return a;
nomem:
  set_err(err, errlen, "%s: out of memory", path);
fail:
  if (a) {
    if (cv_ok)
      pthread_cond_destroy(&a->cv);
    if (mu_ok)
      pthread_mutex_destroy(&a->mu);
    if (a->fd >= 0)
      close(a->fd);
    EVP_MD_free(a->md);
    free(a->path);
    free(a);
  }
  return NULL;
}

/* "2026-11-23T04:05:06.123Z" into ts (32 bytes); its length. */
static size_t format_time(char ts[32]) {
  struct timespec t;
  struct tm tm;
  clock_gettime(CLOCK_REALTIME, &t);
  gmtime_r(&t.tv_sec, &tm);
  size_t n = strftime(ts, 32, "%Y-%m-%dT%H:%M:%S", &tm);
  int m = snprintf(ts + n, 32 - n, ".%03ldZ", t.tv_nsec / 1000000L);
  return m > 0 && n + (size_t)m < 32 ? n + (size_t)m : 0;
}

static const char *const reserved[] = {"seq", "time", "event", "prev"};

static int log_entry(tg_audit *a, const char *event, const char *json_fields,
                     int keep) {
  static const char p_seq[] = "{\"seq\":", p_time[] = ",\"time\":\"",
                    p_event[] = "\",\"event\":", p_prev[] = ",\"prev\":\"";
  json_t *ev = NULL, *fields = NULL;
  char *evs = NULL, *fs = NULL, ts[32], hex[65];
  const char *inner = "";
  size_t innerlen = 0;
  item *it = NULL;
  int rv = TG_AUDIT_EINVAL;
  json_error_t jerr;

  if (!event || !*event || !(ev = json_string(event)))
    goto end;
  evs = json_dumps(ev, JSON_ENCODE_ANY | JSON_COMPACT);
  if (!evs)
    goto end;
  if (json_fields && *json_fields) {
    fields = json_loads(json_fields, JSON_REJECT_DUPLICATES, &jerr);
    if (!json_is_object(fields))
      goto end;
    for (size_t i = 0; i < sizeof reserved / sizeof reserved[0]; i++)
      if (json_object_get(fields, reserved[i]))
        goto end;
    fs = json_dumps(fields, JSON_COMPACT | JSON_PRESERVE_ORDER);
    if (!fs)
      goto end;
    /* The members of the object, without its braces, follow "event". */
    inner = fs + 1;
    innerlen = strlen(fs) - 2;
  }
  size_t evlen = strlen(evs);
  size_t max = sizeof p_seq - 1 + 20 + sizeof p_time - 1 + 31 + sizeof p_event -
               1 + evlen + (innerlen ? 1 + innerlen : 0) + sizeof p_prev - 1 +
               64 + 2;
  if (max > TG_AUDIT_MAX_LINE)
    goto end;
  it = malloc(sizeof(*it) + max + 1);

  pthread_mutex_lock(&a->mu);
  if (!it || a->nqueued >= TG_AUDIT_QUEUE_MAX ||
      (a->fail_closed && !a->healthy && !keep)) {
    a->dropped++;
    pthread_mutex_unlock(&a->mu);
    rv = a->fail_closed ? TG_AUDIT_REFUSED : 0;
    goto end;
  }
  size_t tlen = format_time(ts);
  char *p = it->line;
  p += snprintf(p, max, "%s%llu", p_seq, (unsigned long long)a->seq + 1);
  memcpy(p, p_time, sizeof p_time - 1);
  p += sizeof p_time - 1;
  memcpy(p, ts, tlen);
  p += tlen;
  memcpy(p, p_event, sizeof p_event - 1);
  p += sizeof p_event - 1;
  memcpy(p, evs, evlen);
  p += evlen;
  if (innerlen) {
    *p++ = ',';
    memcpy(p, inner, innerlen);
    p += innerlen;
  }
  memcpy(p, p_prev, sizeof p_prev - 1);
  p += sizeof p_prev - 1;
  memcpy(p, a->head_hex, 64);
  p += 64;
  *p++ = '"';
  *p++ = '}';
  it->len = (size_t)(p - it->line);
  /* Only an entry that got its hash joins the chain. */
  if (sha256_hex(a->md, it->line, it->len, hex) != 0) {
    a->dropped++;
    pthread_mutex_unlock(&a->mu);
    rv = a->fail_closed ? TG_AUDIT_REFUSED : 0;
    goto end;
  }
  memcpy(a->head_hex, hex, sizeof hex);
  it->line[it->len++] = '\n';
  it->next = NULL;
  it->fd = -1;
  a->seq++;
  if (a->tail)
    a->tail->next = it;
  else
    a->head = it;
  a->tail = it;
  a->nqueued++;
  pthread_cond_signal(&a->cv);
  pthread_mutex_unlock(&a->mu);
  it = NULL;
  rv = 0;
end:
  free(it);
  free(fs);
  free(evs);
  json_decref(fields);
  json_decref(ev);
  return rv;
}

int tg_audit_log(tg_audit *a, const char *event, const char *json_fields) {
  return log_entry(a, event, json_fields, 0);
}

int tg_audit_log_keep(tg_audit *a, const char *event, const char *json_fields) {
  return log_entry(a, event, json_fields, 1);
}

int tg_audit_reopen(tg_audit *a, char *err, size_t errlen) {
  struct stat st;
  int regular = 0;
  item *m = NULL;
  set_err(err, errlen, "%s", "");
  int fd = open_file(a->path, &regular, &st, err, errlen);
  if (fd < 0)
    return -1;
  pthread_mutex_lock(&a->mu);
  int same = st.st_dev == a->dev && st.st_ino == a->ino;
  pthread_mutex_unlock(&a->mu);
  if (same)
    goto keep;
  if (regular && st.st_size > 0) {
    set_err(err, errlen,
            "%s: exists and is not empty, so its entries are not this chain's; "
            "still writing to the previous file",
            a->path);
    goto fail;
  }
  m = malloc(sizeof(*m));
  if (!m) {
    set_err(err, errlen, "%s: out of memory", a->path);
    goto fail;
  }
  m->next = NULL;
  m->fd = fd;
  m->regular = regular;
  m->len = 0;
  pthread_mutex_lock(&a->mu);
  if (st.st_dev == a->dev && st.st_ino == a->ino) {
    pthread_mutex_unlock(&a->mu); /* a concurrent reopen got there first */
    free(m);
    goto keep;
  }
  a->dev = st.st_dev;
  a->ino = st.st_ino;
  if (a->tail)
    a->tail->next = m;
  else
    a->head = m;
  a->tail = m;
  pthread_cond_signal(&a->cv);
  pthread_mutex_unlock(&a->mu);
  if (regular)
    sync_parent_dir(a->path);
  return 0;
keep:
  close(fd);
  return 0;
fail:
  close(fd);
  return -1;
}

int tg_audit_healthy(tg_audit *a) {
  pthread_mutex_lock(&a->mu);
  int h = a->healthy;
  pthread_mutex_unlock(&a->mu);
  return h;
}

void tg_audit_stats(tg_audit *a, tg_audit_counters *st) {
  pthread_mutex_lock(&a->mu);
  st->written = a->written;
  st->dropped = a->dropped;
  st->failures = a->failures;
  st->queued = a->nqueued;
  st->seq = a->seq;
  pthread_mutex_unlock(&a->mu);
}

void tg_audit_head(tg_audit *a, uint64_t *seq, char hex[65]) {
  pthread_mutex_lock(&a->mu);
  *seq = a->seq;
  memcpy(hex, a->head_hex, 65);
  pthread_mutex_unlock(&a->mu);
}

/* Writer: records a failed write or fdatasync; logs the first of a run. */
static void note_failure(tg_audit *a, const char *op, int errnum) {
  pthread_mutex_lock(&a->mu);
  int was = a->healthy;
  a->healthy = 0;
  a->failures++;
  pthread_mutex_unlock(&a->mu);
  if (was)
    tg_err("audit: %s %s: %s; retrying every %d ms%s", op, a->path,
           strerror(errnum), TG_AUDIT_RETRY_MS,
           a->fail_closed ? "; refusing new entries meanwhile" : "");
}

static void note_success(tg_audit *a) {
  pthread_mutex_lock(&a->mu);
  int was = a->healthy;
  a->healthy = 1;
  pthread_mutex_unlock(&a->mu);
  if (!was)
    tg_warn("audit: writing %s works again", a->path);
}

/* Writer: syncs the current file if it has unsynced entries. 0 or -1. */
static int sync_file(tg_audit *a) {
  if (!a->dirty)
    return 0;
  if (a->regular && fdatasync(a->fd) != 0) {
    note_failure(a, "fdatasync", errno);
    return -1;
  }
  a->dirty = 0;
  a->last_sync = mono_now();
  return 0;
}

/* Writer: writes the entries at the head of the queue up to the next
 * marker (at most BATCH), or acts on a marker at the head. Sets *more when
 * items remain. 0, or -1 after a failed write (the written part of the
 * batch is off the queue; head_off marks where to resume). */
static int write_batch(tg_audit *a, int *more) {
  item *v[BATCH];
  struct iovec iov[BATCH];
  size_t n = 0, done = 0, total = 0;
  int rv = 0, errnum = 0;

  pthread_mutex_lock(&a->mu);
  for (item *it = a->head; it && n < BATCH; it = it->next) {
    if (it->fd >= 0 && n > 0)
      break;
    v[n++] = it;
    if (it->fd >= 0)
      break;
  }
  pthread_mutex_unlock(&a->mu);
  *more = 0;
  if (n == 0)
    return 0;

  if (v[0]->fd >= 0) {
    if (a->fd >= 0 && sync_file(a) != 0)
      a->dirty = 0; /* that file is done with; the failure is counted */
    if (a->fd >= 0)
      close(a->fd);
    a->fd = v[0]->fd;
    a->regular = v[0]->regular;
    a->head_off = 0;
    done = 1;
    goto pop;
  }

  for (size_t i = 0; i < n; i++) {
    size_t off = i == 0 ? a->head_off : 0;
    iov[i].iov_base = v[i]->line + off;
    iov[i].iov_len = v[i]->len - off;
    total += iov[i].iov_len;
  }
  size_t first = 0;
  while (total > 0) {
    ssize_t w = writev(a->fd, iov + first, (int)(n - first));
    if (w < 0 && errno == EINTR)
      continue;
    if (w <= 0) {
      errnum = w < 0 ? errno : EIO;
      rv = -1;
      break;
    }
    a->dirty = 1;
    total -= (size_t)w;
    while (w > 0 && first < n) {
      if ((size_t)w >= iov[first].iov_len) {
        w -= (ssize_t)iov[first].iov_len;
        iov[first].iov_len = 0;
        first++;
        a->head_off = 0;
      } else {
        iov[first].iov_base = (char *)iov[first].iov_base + w;
        iov[first].iov_len -= (size_t)w;
        a->head_off = v[first]->len - iov[first].iov_len;
        w = 0;
      }
    }
  }
  done = first;

pop:
  pthread_mutex_lock(&a->mu);
  if (done > 0) {
    a->head = v[done - 1]->next;
    if (!a->head)
      a->tail = NULL;
    if (v[0]->fd < 0) {
      a->nqueued -= done;
      a->written += done;
    }
  }
  *more = a->head != NULL;
  pthread_mutex_unlock(&a->mu);
  for (size_t i = 0; i < done; i++)
    free(v[i]);
  if (rv != 0)
    note_failure(a, "write", errnum);
  return rv;
}

/* Writer at close, when writing keeps failing: gives up on what is left. */
static void give_up(tg_audit *a) {
  uint64_t lost = 0;
  pthread_mutex_lock(&a->mu);
  item *it = a->head;
  a->head = a->tail = NULL;
  lost = a->nqueued;
  a->dropped += lost;
  a->nqueued = 0;
  pthread_mutex_unlock(&a->mu);
  while (it) {
    item *next = it->next;
    if (it->fd >= 0)
      close(it->fd);
    free(it);
    it = next;
  }
  if (lost)
    tg_err("audit: closing with %llu entr%s that could not be written to %s",
           (unsigned long long)lost, lost == 1 ? "y" : "ies", a->path);
}

static void *writer_main(void *arg) {
  tg_audit *a = arg;
  int failing = 0, retried_at_close = 0, more = 0;
  struct timespec retry_at = {0};
  for (;;) {
    pthread_mutex_lock(&a->mu);
    while (!a->closing && !(a->head && !failing)) {
      struct timespec dl;
      if (failing)
        dl = retry_at;
      else if (a->dirty)
        dl = ts_add_ms(a->last_sync, TG_AUDIT_SYNC_MS);
      else {
        pthread_cond_wait(&a->cv, &a->mu);
        continue;
      }
      if (pthread_cond_timedwait(&a->cv, &a->mu, &dl) == ETIMEDOUT)
        break;
    }
    int closing = a->closing;
    more = a->head != NULL;
    pthread_mutex_unlock(&a->mu);

    struct timespec now = mono_now();
    if (failing && !ts_before(now, retry_at))
      failing = 0;
    if (closing && failing) {
      if (retried_at_close)
        break;
      retried_at_close = 1;
      failing = 0;
    }
    if (failing)
      continue;
    if (more) {
      if (write_batch(a, &more) != 0) {
        failing = 1;
        retry_at = ts_add_ms(now, TG_AUDIT_RETRY_MS);
        continue;
      }
    }
    if (a->dirty &&
        (!ts_before(now, ts_add_ms(a->last_sync, TG_AUDIT_SYNC_MS)) ||
         (closing && !more))) {
      if (sync_file(a) != 0) {
        failing = 1;
        retry_at = ts_add_ms(now, TG_AUDIT_RETRY_MS);
        continue;
      }
    }
    if (!failing && !more)
      note_success(a);
    if (closing && !more && !a->dirty)
      break;
  }
  give_up(a);
  return NULL;
}

void tg_audit_close(tg_audit *a) {
  if (!a)
    return;
  pthread_mutex_lock(&a->mu);
  a->closing = 1;
  pthread_cond_signal(&a->cv);
  pthread_mutex_unlock(&a->mu);
  pthread_join(a->thread, NULL);
  if (a->fd >= 0)
    close(a->fd);
  pthread_cond_destroy(&a->cv);
  pthread_mutex_destroy(&a->mu);
  EVP_MD_free(a->md);
  free(a->path);
  free(a);
}
