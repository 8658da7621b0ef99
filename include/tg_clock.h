/*
 * tg_clock: the monotonic clock in the units the modules count in, and a
 * millisecond count as the struct timeval that libevent's timers take.
 * CLOCK_MONOTONIC: never steps with the wall clock, so timeouts, backoffs
 * and "how long ago" stay right across NTP corrections. Wall-clock time
 * (log and audit timestamps) is not here.
 */
#ifndef TG_CLOCK_H
#define TG_CLOCK_H
#include <stdint.h>
#include <sys/time.h>
#include <time.h>

/* Nanoseconds since an arbitrary fixed point. */
static inline uint64_t tg_mono_ns(void) {
  struct timespec ts;
  clock_gettime(CLOCK_MONOTONIC, &ts);
  return (uint64_t)ts.tv_sec * 1000000000u + (uint64_t)ts.tv_nsec;
}

/* Milliseconds since the same point. */
static inline uint64_t tg_mono_ms(void) {
  struct timespec ts;
  clock_gettime(CLOCK_MONOTONIC, &ts);
  return (uint64_t)ts.tv_sec * 1000 + (uint64_t)ts.tv_nsec / 1000000;
}

/* ms as a timeval for event_add/evtimer_add. */
static inline struct timeval tg_ms_tv(uint64_t ms) {
  struct timeval tv = {(time_t)(ms / 1000), (suseconds_t)(ms % 1000) * 1000};
  return tv;
}

#endif
