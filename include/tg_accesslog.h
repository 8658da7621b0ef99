/*
 * tg_accesslog: the access log: one JSON line per call, written when the
 * call ends:
 *   {"time":"2026-11-23T04:05:06.123Z","peer":"127.0.0.1:50312",
 *    "subject":"spiffe://...","credentials":["client_cert","jwt"],
 *    "method":"/temporal.api.workflowservice.v1.WorkflowService/...",
 *    "namespace":"payments","decision":"allowed","reason":"...",
 *    "grpc_status":0,"duration_ms":1.234,"bytes_in":123,"bytes_out":456}
 * decision: allowed | denied | unauthenticated | invalid | unavailable |
 * shadow_denied (allowed because the mode is shadow) | local (answered by
 * tgate for another reason). grpc_status is null when the stream was reset
 * (then "reset" carries the HTTP/2 error code).
 *
 * The destination is process-wide: stdout or a file opened O_APPEND; each
 * line is one write(2), so lines from several workers never interleave.
 * tg_accesslog_reopen() (on SIGUSR1, for log rotation) opens the path again
 * and dup2()s it over the same descriptor, so writers need no lock.
 */
#ifndef TG_ACCESSLOG_H
#define TG_ACCESSLOG_H
#include <stddef.h>

/* spec: "stdout" or a path; NULL disables. 0, or -1 with a reason. Call
 * before the workers start. */
int tg_accesslog_open(const char *spec, char *err, size_t errlen);
int tg_accesslog_enabled(void);
/* 0, or -1 with a reason (the old file stays in use). */
int tg_accesslog_reopen(char *err, size_t errlen);
void tg_accesslog_write(const char *line, size_t len);
void tg_accesslog_close(void);
#endif
