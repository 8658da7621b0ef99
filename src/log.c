#include "tg_log.h"

#include <stdarg.h>
#include <stdatomic.h>
#include <stdio.h>
#include <sys/time.h>
#include <time.h>

/* Atomic: a reload changes it while workers log. */
static atomic_int log_level = TG_LOG_INFO;
static const char *const level_names[] = {"error", "warn", "info", "debug"};

void tg_log_set_level(tg_log_level level) {
  atomic_store_explicit(&log_level, (int)level, memory_order_relaxed);
}

int tg_log_enabled(tg_log_level level) {
  return (int)level <= atomic_load_explicit(&log_level, memory_order_relaxed);
}

void tg_log(tg_log_level level, const char *fmt, ...) {
  if (!tg_log_enabled(level))
    return;
  char msg[1024];
  va_list ap;
  va_start(ap, fmt);
  vsnprintf(msg, sizeof(msg), fmt, ap);
  va_end(ap);

  struct timeval tv;
  struct tm tm;
  gettimeofday(&tv, NULL);
  gmtime_r(&tv.tv_sec, &tm);
  char ts[32];
  strftime(ts, sizeof(ts), "%Y-%m-%dT%H:%M:%S", &tm);
  fprintf(stderr, "%s.%03ldZ tgate %s: %s\n", ts, (long)(tv.tv_usec / 1000),
          level_names[level], msg);
}
