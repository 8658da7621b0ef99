#include "tg_keystore.h"

#include <arpa/inet.h>
#include <curl/curl.h>
#include <errno.h>
#include <openssl/bio.h>
#include <openssl/err.h>
#include <openssl/pem.h>
#include <openssl/x509.h>
#include <pthread.h>
#include <stdatomic.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include <time.h>

#include "tg_clock.h"
#include "tg_log.h"

enum src_kind { SRC_URL, SRC_FILE, SRC_PEM };

typedef struct ks_source {
  tg_keystore *ks;
  enum src_kind kind;
  const char *uri; /* as configured */
  char *path;      /* file/pem: the path; url: NULL */
  char *kid;       /* pem: the kid after '#', or NULL */
  char *good;      /* last good document */
  size_t good_len;
  CURL *easy; /* url: the fetch in flight */
  char *buf;
  size_t len, cap;
  int too_big;
  char errbuf[CURL_ERROR_SIZE];
} ks_source;

struct tg_keystore {
  struct event_base *base;
  const tg_jwt_cfg *cfg;
  ks_source *src;
  size_t nsrc;
  CURLM *multi;
  struct event *curl_timer, *refresh_timer, *early_ev, *early_timer;
  int inflight;
  int again;   /* an early refresh was asked for while a cycle was running */
  int changed; /* a source's document changed since the last publish */
  int64_t last_early;
  atomic_int early_pending;
  pthread_mutex_t mu; /* guards current, generation and the stats */
  tg_keyset *current;
  uint64_t generation;
  tg_keystore_stats stats;
};

static int64_t now_s(void) {
  return (int64_t)time(NULL);
}

/* Reads a whole file of at most TG_KEYSTORE_MAX_DOC bytes. */
static char *read_file(const char *path, size_t *len, char *err,
                       size_t errlen) {
  FILE *f = fopen(path, "rb");
  if (!f) {
    snprintf(err, errlen, "%s: %s", path, strerror(errno));
    return NULL;
  }
  char *buf = malloc(TG_KEYSTORE_MAX_DOC + 1);
  size_t n = buf ? fread(buf, 1, TG_KEYSTORE_MAX_DOC + 1, f) : 0;
  int bad = !buf || ferror(f);
  fclose(f);
  if (bad || n > TG_KEYSTORE_MAX_DOC) {
    snprintf(err, errlen, "%s: %s", path,
             !buf                      ? "out of memory"
             : n > TG_KEYSTORE_MAX_DOC ? "larger than 1 MiB"
                                       : "read error");
    free(buf);
    return NULL;
  }
  buf[n] = '\0';
  *len = n;
  return buf;
}

/* Adds a source's document to ks; returns the number of keys or -1. */
static int add_doc(tg_keyset *ks, const ks_source *s, const char *doc,
                   size_t len, char *err, size_t errlen) {
  if (s->kind == SRC_PEM)
    return tg_keyset_add_pem(ks, doc, len, s->kid, err, errlen) == 0 ? 1 : -1;
  size_t skipped = 0;
  int n = tg_keyset_add_jwks(ks, doc, len, &skipped, err, errlen);
  if (n == 0 && errlen)
    snprintf(err, errlen, "no usable key (%zu skipped)", skipped);
  return n;
}

/* Is doc a usable document for s (at least one key)? */
static int validate(const ks_source *s, const char *doc, size_t len, char *err,
                    size_t errlen) {
  tg_keyset *tmp = tg_keyset_new();
  if (!tmp) {
    snprintf(err, errlen, "out of memory");
    return -1;
  }
  int n = add_doc(tmp, s, doc, len, err, errlen);
  tg_keyset_unref(tmp);
  return n > 0 ? 0 : -1;
}

/* Takes doc as s's last good document; notes whether it differs. */
static void keep_good(ks_source *s, char *doc, size_t len) {
  if (s->good && s->good_len == len && memcmp(s->good, doc, len) == 0) {
    free(doc);
    return;
  }
  if (s->ks)
    s->ks->changed = 1;
  free(s->good);
  s->good = doc;
  s->good_len = len;
}

/* Ends a refresh cycle. The set is rebuilt, and the generation bumped
 * (which empties the workers' token caches), only when some source's
 * document changed: a refresh that found the same keys changes nothing. */
static void publish(tg_keystore *ks) {
  if (ks->current && !ks->changed) {
    pthread_mutex_lock(&ks->mu);
    ks->stats.refreshes++;
    ks->stats.loaded_at = now_s();
    pthread_mutex_unlock(&ks->mu);
    return;
  }
  tg_keyset *set = tg_keyset_new();
  char err[256];
  if (!set) {
    tg_err("JWKS: out of memory building the key set");
    return;
  }
  for (size_t i = 0; i < ks->nsrc; i++) {
    ks_source *s = &ks->src[i];
    if (s->good)
      add_doc(set, s, s->good, s->good_len, err, sizeof err);
  }
  ks->changed = 0;
  size_t n = tg_keyset_count(set);
  if (n == 0) {
    tg_keyset_unref(set);
    pthread_mutex_lock(&ks->mu);
    ks->stats.refreshes++;
    pthread_mutex_unlock(&ks->mu);
    tg_warn("JWKS: no verification key loaded yet; tokens are refused");
    return;
  }
  pthread_mutex_lock(&ks->mu);
  tg_keyset *old = ks->current;
  ks->current = set;
  ks->generation++;
  ks->stats.generation = ks->generation;
  ks->stats.refreshes++;
  ks->stats.loaded_at = now_s();
  ks->stats.nkeys = n;
  pthread_mutex_unlock(&ks->mu);
  tg_keyset_unref(old);
  tg_debug("JWKS: %zu key(s) published (generation %llu)", n,
           (unsigned long long)ks->generation);
}

static void source_failed(tg_keystore *ks, ks_source *s, const char *why) {
  pthread_mutex_lock(&ks->mu);
  ks->stats.failures++;
  pthread_mutex_unlock(&ks->mu);
  tg_warn("JWKS source %s: %s%s", s->uri, why,
          s->good ? "; keeping its last good keys" : "");
}

static void load_local(tg_keystore *ks, ks_source *s) {
  char err[256];
  size_t len;
  char *doc = read_file(s->path, &len, err, sizeof err);
  if (!doc) {
    source_failed(ks, s, err);
    return;
  }
  if (validate(s, doc, len, err, sizeof err) != 0) {
    free(doc);
    source_failed(ks, s, err);
    return;
  }
  keep_good(s, doc, len);
}

/* ---- libcurl multi on libevent ---- */

static void refresh(tg_keystore *ks);

static size_t write_cb(char *ptr, size_t size, size_t nmemb, void *userdata) {
  ks_source *s = userdata;
  size_t n = size * nmemb;
  if (s->len + n > TG_KEYSTORE_MAX_DOC) {
    s->too_big = 1;
    return 0;
  }
  if (s->len + n + 1 > s->cap) {
    size_t cap = s->cap ? s->cap * 2 : 16384;
    while (cap < s->len + n + 1)
      cap *= 2;
    char *b = realloc(s->buf, cap);
    if (!b)
      return 0;
    s->buf = b;
    s->cap = cap;
  }
  memcpy(s->buf + s->len, ptr, n);
  s->len += n;
  s->buf[s->len] = '\0';
  return n;
}

/* ca_file (may be NULL: the system store) verifies https:// sources. */
static CURL *make_easy(ks_source *s, const char *ca_file, char *errbuf) {
  CURL *e = curl_easy_init();
  if (!e)
    return NULL;
  if (ca_file) {
    curl_easy_setopt(e, CURLOPT_CAINFO, ca_file);
    curl_easy_setopt(e, CURLOPT_CAPATH, NULL);
  }
  curl_easy_setopt(e, CURLOPT_URL, s->uri);
  curl_easy_setopt(e, CURLOPT_PROTOCOLS_STR, "http,https");
  curl_easy_setopt(e, CURLOPT_REDIR_PROTOCOLS_STR, "https");
  curl_easy_setopt(e, CURLOPT_FOLLOWLOCATION, 1L);
  curl_easy_setopt(e, CURLOPT_MAXREDIRS, 3L);
  curl_easy_setopt(e, CURLOPT_NOSIGNAL, 1L);
  curl_easy_setopt(e, CURLOPT_TIMEOUT, (long)TG_KEYSTORE_FETCH_TIMEOUT_S);
  curl_easy_setopt(e, CURLOPT_CONNECTTIMEOUT, 5L);
  curl_easy_setopt(e, CURLOPT_MAXFILESIZE, (long)TG_KEYSTORE_MAX_DOC);
  curl_easy_setopt(e, CURLOPT_ACCEPT_ENCODING, "");
  curl_easy_setopt(e, CURLOPT_USERAGENT, "tgate/" TG_VERSION);
  curl_easy_setopt(e, CURLOPT_WRITEFUNCTION, write_cb);
  curl_easy_setopt(e, CURLOPT_WRITEDATA, s);
  curl_easy_setopt(e, CURLOPT_PRIVATE, s);
  curl_easy_setopt(e, CURLOPT_ERRORBUFFER, errbuf);
  errbuf[0] = '\0';
  return e;
}

/* Judges a finished fetch; returns 0 and moves the body into s->good when
 * it is a usable document. */
static int judge_fetch(ks_source *s, CURLcode rc, const char *curlerr,
                       char *err, size_t errlen) {
  long status = 0;
  curl_easy_getinfo(s->easy, CURLINFO_RESPONSE_CODE, &status);
  if (s->too_big || rc == CURLE_FILESIZE_EXCEEDED)
    snprintf(err, errlen, "document larger than 1 MiB");
  else if (rc != CURLE_OK)
    snprintf(err, errlen, "%s", curlerr[0] ? curlerr : curl_easy_strerror(rc));
  else if (status != 200)
    snprintf(err, errlen, "HTTP status %ld", status);
  else if (validate(s, s->buf ? s->buf : "", s->len, err, errlen) == 0) {
    keep_good(s, s->buf, s->len);
    s->buf = NULL;
    s->len = s->cap = 0;
    return 0;
  }
  return -1;
}

static void check_done(tg_keystore *ks) {
  CURLMsg *msg;
  int left;
  while ((msg = curl_multi_info_read(ks->multi, &left)) != NULL) {
    if (msg->msg != CURLMSG_DONE)
      continue;
    ks_source *s = NULL;
    curl_easy_getinfo(msg->easy_handle, CURLINFO_PRIVATE, (char **)&s);
    char err[CURL_ERROR_SIZE + 64];
    if (judge_fetch(s, msg->data.result, s->errbuf, err, sizeof err) != 0)
      source_failed(ks, s, err);
    curl_multi_remove_handle(ks->multi, s->easy);
    curl_easy_cleanup(s->easy);
    s->easy = NULL;
    free(s->buf);
    s->buf = NULL;
    s->len = s->cap = 0;
    s->too_big = 0;
    if (--ks->inflight == 0) {
      publish(ks);
      if (ks->again) {
        ks->again = 0;
        refresh(ks);
      }
    }
  }
}

static void sock_event_cb(evutil_socket_t fd, short what, void *arg) {
  tg_keystore *ks = arg;
  int running, flags = 0;
  if (what & EV_READ)
    flags |= CURL_CSELECT_IN;
  if (what & EV_WRITE)
    flags |= CURL_CSELECT_OUT;
  curl_multi_socket_action(ks->multi, fd, flags, &running);
  check_done(ks);
}

static int sock_cb(CURL *e, curl_socket_t s, int what, void *userp,
                   void *socketp) {
  tg_keystore *ks = userp;
  struct event *ev = socketp;
  if (what == CURL_POLL_REMOVE) {
    if (ev)
      event_free(ev);
    curl_multi_assign(ks->multi, s, NULL);
    return 0;
  }
  short kind = EV_PERSIST | ((what & CURL_POLL_IN) ? EV_READ : 0) |
               ((what & CURL_POLL_OUT) ? EV_WRITE : 0);
  if (ev) {
    event_del(ev);
    event_assign(ev, ks->base, s, kind, sock_event_cb, ks);
  } else {
    ev = event_new(ks->base, s, kind, sock_event_cb, ks);
    if (!ev)
      return -1;
    curl_multi_assign(ks->multi, s, ev);
  }
  event_add(ev, NULL);
  return 0;
}

static void curl_timer_cb(evutil_socket_t fd, short what, void *arg) {
  tg_keystore *ks = arg;
  int running;
  curl_multi_socket_action(ks->multi, CURL_SOCKET_TIMEOUT, 0, &running);
  check_done(ks);
}

static int timer_cb(CURLM *multi, long timeout_ms, void *userp) {
  tg_keystore *ks = userp;
  if (timeout_ms < 0) {
    evtimer_del(ks->curl_timer);
    return 0;
  }
  struct timeval tv = tg_ms_tv((uint64_t)timeout_ms);
  evtimer_add(ks->curl_timer, &tv);
  return 0;
}

/* ---- refresh cycle ---- */

static void refresh(tg_keystore *ks) {
  if (ks->inflight > 0)
    return; /* the cycle under way will publish */
  for (size_t i = 0; i < ks->nsrc; i++) {
    ks_source *s = &ks->src[i];
    if (s->kind != SRC_URL) {
      load_local(ks, s);
      continue;
    }
    s->easy = make_easy(s, ks->cfg->ca_file, s->errbuf);
    if (!s->easy || curl_multi_add_handle(ks->multi, s->easy) != CURLM_OK) {
      if (s->easy)
        curl_easy_cleanup(s->easy);
      s->easy = NULL;
      source_failed(ks, s, "cannot start the fetch");
      continue;
    }
    ks->inflight++;
  }
  if (ks->inflight == 0)
    publish(ks);
}

static void refresh_timer_cb(evutil_socket_t fd, short what, void *arg) {
  refresh(arg);
}

/* An unknown kid asks for keys now; within TG_KEYSTORE_MIN_EARLY_S of the
 * last early refresh the request is deferred to the end of that window
 * (not dropped), so a flood of made-up kids costs one fetch per window and
 * a real rotation is still picked up within it. */
static void early_cb(evutil_socket_t fd, short what, void *arg) {
  tg_keystore *ks = arg;
  int64_t now = now_s();
  if (ks->last_early && now - ks->last_early < TG_KEYSTORE_MIN_EARLY_S) {
    if (!evtimer_pending(ks->early_timer, NULL)) {
      struct timeval tv = {TG_KEYSTORE_MIN_EARLY_S - (now - ks->last_early), 0};
      evtimer_add(ks->early_timer, &tv);
    }
    return;
  }
  atomic_store(&ks->early_pending, 0);
  ks->last_early = now;
  tg_info("JWKS: unknown key id seen; refreshing early");
  /* A fetch under way may have left before the new key was published:
   * another cycle follows it rather than the ask being lost. */
  if (ks->inflight > 0)
    ks->again = 1;
  else
    refresh(ks);
}

/* ---- set-up ---- */

/* A name that merely starts with "127." (127.attacker.example) is a remote
 * host: only a literal address counts. */
int tg_keystore_is_loopback_url(const char *url) {
  CURLU *u = curl_url();
  char *host = NULL;
  struct in_addr a4;
  int ok = 0;
  if (u && curl_url_set(u, CURLUPART_URL, url, 0) == CURLUE_OK &&
      curl_url_get(u, CURLUPART_HOST, &host, 0) == CURLUE_OK)
    ok =
        strcasecmp(host, "localhost") == 0 || strcmp(host, "[::1]") == 0 ||
        (inet_pton(AF_INET, host, &a4) == 1 && (ntohl(a4.s_addr) >> 24) == 127);
  curl_free(host);
  curl_url_cleanup(u);
  return ok;
}

/* ca_file must hold at least one PEM certificate: a typo in the path would
 * otherwise show only as failed fetches, later. */
static int check_ca_file(const char *path, char *err, size_t errlen) {
  BIO *bio = BIO_new_file(path, "r");
  STACK_OF(X509_INFO) *infos = NULL;
  int ncerts = 0;
  if (!bio) {
    snprintf(err, errlen, "ca_file %s: %s", path,
             errno ? strerror(errno) : "cannot open");
    goto end;
  }
  infos = PEM_X509_INFO_read_bio(bio, NULL, NULL, NULL);
  for (int i = 0; infos && i < sk_X509_INFO_num(infos); i++)
    ncerts += sk_X509_INFO_value(infos, i)->x509 != NULL;
  if (ncerts == 0)
    snprintf(err, errlen, "ca_file %s: no PEM certificate in it", path);
end:
  sk_X509_INFO_pop_free(infos, X509_INFO_free);
  BIO_free(bio);
  ERR_clear_error();
  return ncerts > 0 ? 0 : -1;
}

static int init_sources(ks_source **out, size_t *nout, tg_keystore *ks,
                        const tg_jwt_cfg *cfg, char *err, size_t errlen) {
  size_t n = cfg->key_sources.n;
  ks_source *src = calloc(n ? n : 1, sizeof *src);
  if (!src) {
    snprintf(err, errlen, "out of memory");
    return -1;
  }
  *out = src;
  *nout = n;
  errno = 0;
  if (cfg->ca_file && check_ca_file(cfg->ca_file, err, errlen) != 0)
    return -1;
  for (size_t i = 0; i < n; i++) {
    const char *u = cfg->key_sources.v[i];
    ks_source *s = &src[i];
    s->ks = ks;
    s->uri = u;
    if (strncmp(u, "https://", 8) == 0) {
      s->kind = SRC_URL;
    } else if (strncmp(u, "http://", 7) == 0) {
      if (!tg_keystore_is_loopback_url(u)) {
        snprintf(err, errlen,
                 "key source %s: plain http:// is allowed only to a loopback "
                 "host (an address in 127.0.0.0/8, [::1] or localhost); use "
                 "https://",
                 u);
        return -1;
      }
      s->kind = SRC_URL;
    } else if (strncmp(u, "file:", 5) == 0) {
      s->kind = SRC_FILE;
      s->path = strdup(u + 5);
    } else if (strncmp(u, "pem:", 4) == 0) {
      s->kind = SRC_PEM;
      const char *hash = strrchr(u + 4, '#');
      s->path = hash ? strndup(u + 4, (size_t)(hash - (u + 4))) : strdup(u + 4);
      if (hash && !(s->kid = strdup(hash + 1))) {
        snprintf(err, errlen, "out of memory");
        return -1;
      }
    } else {
      snprintf(err, errlen, "key source %s: unsupported scheme", u);
      return -1;
    }
    if (s->kind != SRC_URL && !s->path) {
      snprintf(err, errlen, "out of memory");
      return -1;
    }
  }
  return 0;
}

static void free_sources(ks_source *src, size_t n) {
  for (size_t i = 0; src && i < n; i++) {
    free(src[i].path);
    free(src[i].kid);
    free(src[i].good);
    free(src[i].buf);
  }
  free(src);
}

/* URL sources start with the document seed's source of the same URL last
 * gave, if any. Returns how many were seeded, or -1 (no memory). */
static int seed_sources(tg_keystore *ks, const tg_keystore *seed) {
  int n = 0;
  for (size_t i = 0; seed && i < ks->nsrc; i++) {
    ks_source *s = &ks->src[i];
    for (size_t j = 0; s->kind == SRC_URL && j < seed->nsrc; j++) {
      const ks_source *o = &seed->src[j];
      if (o->kind != SRC_URL || !o->good || strcmp(o->uri, s->uri) != 0)
        continue;
      char *doc = malloc(o->good_len + 1);
      if (!doc)
        return -1;
      memcpy(doc, o->good, o->good_len);
      doc[o->good_len] = '\0';
      keep_good(s, doc, o->good_len);
      n++;
      break;
    }
  }
  return n;
}

tg_keystore *tg_keystore_new(struct event_base *base, const tg_jwt_cfg *cfg,
                             const tg_keystore *seed, char *err,
                             size_t errlen) {
  tg_keystore *ks = calloc(1, sizeof *ks);
  if (!ks) {
    snprintf(err, errlen, "out of memory");
    return NULL;
  }
  ks->base = base;
  ks->cfg = cfg;
  pthread_mutex_init(&ks->mu, NULL);
  if (init_sources(&ks->src, &ks->nsrc, ks, cfg, err, errlen) != 0)
    goto fail;
  ks->multi = curl_multi_init();
  ks->curl_timer = evtimer_new(base, curl_timer_cb, ks);
  ks->refresh_timer = event_new(base, -1, EV_PERSIST, refresh_timer_cb, ks);
  ks->early_ev = event_new(base, -1, 0, early_cb, ks);
  ks->early_timer = evtimer_new(base, early_cb, ks);
  if (!ks->multi || !ks->curl_timer || !ks->refresh_timer || !ks->early_ev ||
      !ks->early_timer) {
    snprintf(err, errlen, "cannot set up the JWKS fetcher");
    goto fail;
  }
  curl_multi_setopt(ks->multi, CURLMOPT_SOCKETFUNCTION, sock_cb);
  curl_multi_setopt(ks->multi, CURLMOPT_SOCKETDATA, ks);
  curl_multi_setopt(ks->multi, CURLMOPT_TIMERFUNCTION, timer_cb);
  curl_multi_setopt(ks->multi, CURLMOPT_TIMERDATA, ks);
  struct timeval tv = tg_ms_tv(cfg->refresh_interval_ms);
  event_add(ks->refresh_timer, &tv);
  int seeded = seed_sources(ks, seed);
  if (seeded < 0) {
    snprintf(err, errlen, "out of memory");
    goto fail;
  }
  if (seeded > 0) {
    for (size_t i = 0; i < ks->nsrc; i++)
      if (ks->src[i].kind != SRC_URL)
        load_local(ks, &ks->src[i]);
    publish(ks);
  }
  refresh(ks);
  return ks;
fail:
  tg_keystore_free(ks);
  return NULL;
}

void tg_keystore_free(tg_keystore *ks) {
  if (!ks)
    return;
  for (size_t i = 0; ks->src && i < ks->nsrc; i++) {
    if (ks->src[i].easy) {
      curl_multi_remove_handle(ks->multi, ks->src[i].easy);
      curl_easy_cleanup(ks->src[i].easy);
    }
  }
  if (ks->multi)
    curl_multi_cleanup(ks->multi);
  if (ks->curl_timer)
    event_free(ks->curl_timer);
  if (ks->refresh_timer)
    event_free(ks->refresh_timer);
  if (ks->early_ev)
    event_free(ks->early_ev);
  if (ks->early_timer)
    event_free(ks->early_timer);
  free_sources(ks->src, ks->nsrc);
  tg_keyset_unref(ks->current);
  pthread_mutex_destroy(&ks->mu);
  free(ks);
}

tg_keyset *tg_keystore_get(tg_keystore *ks, uint64_t *generation) {
  pthread_mutex_lock(&ks->mu);
  tg_keyset *set = ks->current ? tg_keyset_ref(ks->current) : NULL;
  if (generation)
    *generation = ks->generation;
  pthread_mutex_unlock(&ks->mu);
  return set;
}

void tg_keystore_request_refresh(tg_keystore *ks) {
  if (!atomic_exchange(&ks->early_pending, 1))
    event_active(ks->early_ev, EV_READ, 0);
}

void tg_keystore_stats_get(tg_keystore *ks, tg_keystore_stats *out) {
  pthread_mutex_lock(&ks->mu);
  *out = ks->stats;
  pthread_mutex_unlock(&ks->mu);
}

int tg_keystore_check(const tg_jwt_cfg *cfg, char *err, size_t errlen) {
  ks_source *src = NULL;
  size_t n = 0;
  int rc = -1;
  if (init_sources(&src, &n, NULL, cfg, err, errlen) != 0)
    goto end;
  for (size_t i = 0; i < n; i++) {
    ks_source *s = &src[i];
    char why[CURL_ERROR_SIZE + 64];
    if (s->kind != SRC_URL) {
      size_t len;
      char *doc = read_file(s->path, &len, why, sizeof why);
      if (!doc || validate(s, doc, len, why, sizeof why) != 0) {
        free(doc);
        snprintf(err, errlen, "key source %s: %s", s->uri, why);
        goto end;
      }
      free(doc);
      continue;
    }
    s->easy = make_easy(s, cfg->ca_file, s->errbuf);
    if (!s->easy) {
      snprintf(err, errlen, "key source %s: cannot start the fetch", s->uri);
      goto end;
    }
    CURLcode c = curl_easy_perform(s->easy);
    int bad = judge_fetch(s, c, s->errbuf, why, sizeof why) != 0;
    curl_easy_cleanup(s->easy);
    s->easy = NULL;
    if (bad) {
      snprintf(err, errlen, "key source %s: %s", s->uri, why);
      goto end;
    }
  }
  rc = 0;
end:
  free_sources(src, n);
  return rc;
}
