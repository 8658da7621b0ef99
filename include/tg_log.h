/*
 * tg_log: leveled logging to stderr, one line per message with an ISO-8601
 * UTC timestamp and the level. The level is set at start and on reload
 * (tg_log_set_level, an atomic store); tg_log() is thread-safe (one fprintf
 * per line, stdio locks the stream).
 */
#ifndef TG_LOG_H
#define TG_LOG_H
#include "tg_config.h"

void tg_log_set_level(tg_log_level level);
int tg_log_enabled(tg_log_level level);
void tg_log(tg_log_level level, const char *fmt, ...)
    __attribute__((format(printf, 2, 3)));

#define tg_err(...) tg_log(TG_LOG_ERROR, __VA_ARGS__)
#define tg_warn(...) tg_log(TG_LOG_WARN, __VA_ARGS__)
#define tg_info(...) tg_log(TG_LOG_INFO, __VA_ARGS__)
#define tg_debug(...)                                                          \
  do {                                                                         \
    if (tg_log_enabled(TG_LOG_DEBUG))                                          \
      tg_log(TG_LOG_DEBUG, __VA_ARGS__);                                       \
  } while (0)
#endif
