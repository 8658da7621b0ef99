/*
 * tg_audit: the tamper-evident audit log writer. Every entry is one line of
 * JSON appended to a file, chained to the line before it by SHA-256, so an
 * entry cannot be altered, removed, inserted or moved without breaking the
 * chain (`tgate audit verify`, tg_audit_verify.h, says what that proves).
 *
 * Entry format: one JSON object per line, compact, keys in this order:
 *   {"seq":N,"time":"YYYY-MM-DDTHH:MM:SS.mmmZ","event":"...",
 *    ...the caller's fields, in the caller's order...,"prev":"HEX"}
 * for example (wrapped here, one line in the file):
 *   {"seq":42,"time":"2026-11-23T04:05:06.123Z","event":"deny","subject":
 *   "alice","method":"/temporal.api.workflowservice.v1.WorkflowService/
 *   TerminateWorkflowExecution","namespace":"payments","reason":"no
 *   permission","peer":"10.0.0.7:51234","prev":"9f2c41...(64 digits)"}
 * - seq counts from 1 without gaps (a refused or dropped entry takes none);
 * - time is UTC with milliseconds, taken when the entry joined the chain;
 * - prev is the lowercase hex SHA-256 of the previous entry's line bytes
 *   (without its '\n'); the first entry of a chain has 64 zeros (genesis).
 * The bytes are those of json_dumps(JSON_COMPACT | JSON_PRESERVE_ORDER) of
 * that object (strings stay UTF-8, control characters are escaped), so a
 * line never contains a raw newline. A line is at most TG_AUDIT_MAX_LINE
 * bytes.
 *
 * Writing: tg_audit_log formats the entry and assigns its seq and prev in
 * the caller's thread, under one mutex, in queue order, so concurrent
 * callers build one valid chain; it never does file I/O (it costs a parse
 * and a dump of json_fields, then, under the mutex, one SHA-256 of the
 * line: microseconds). A writer thread appends queued entries as they
 * come and calls fdatasync at most every TG_AUDIT_SYNC_MS (and on rotation
 * and close). The queue holds at most TG_AUDIT_QUEUE_MAX entries.
 *
 * Failures: a failed write (ENOSPC, EIO, ...) or fdatasync marks the log
 * unhealthy and is retried every TG_AUDIT_RETRY_MS, resuming exactly where
 * the write stopped, so the file gets no gap and no torn line; entries wait
 * in the queue meanwhile. The log is healthy again once a retry succeeds
 * (an fdatasync error may mean earlier entries were not made durable: it
 * is logged). With fail_closed, tg_audit_log refuses entries while the log
 * is unhealthy or the queue is full, so the caller can deny the action;
 * with fail_open it drops them (counted) and the caller carries on.
 *
 * The file: opened with O_APPEND, created with mode 0600. A file that
 * already has entries is continued: its last line's hash becomes the next
 * prev and its seq + 1 the next seq (only the last line is read; verify the
 * whole file with `tgate audit verify`). A file that is not a regular file
 * (/dev/stdout, a pipe) starts a new chain and is never synced or
 * truncated.
 *
 * Rotation: rename the file, then call tg_audit_reopen (tgate: SIGUSR1).
 * Entries queued before the call go to the renamed file, later ones to the
 * new file, whose first entry continues the chain, so `tgate audit verify
 * old new` checks both as one chain. Do not rotate by copy-and-truncate:
 * entries written between the copy and the truncation would be lost. If
 * tgate is (re)started on an empty file, a new chain starts at seq 1.
 *
 * Thread-safety: tg_audit_log, tg_audit_reopen, tg_audit_healthy,
 * tg_audit_stats and tg_audit_head may be called from any thread at the
 * same time; tg_audit_close once, after every other call has returned.
 */
#ifndef TG_AUDIT_H
#define TG_AUDIT_H
#include <stddef.h>
#include <stdint.h>

#define TG_AUDIT_MAX_LINE 65536 /* bytes per entry line, without '\n' */
#define TG_AUDIT_QUEUE_MAX 65536
#define TG_AUDIT_SYNC_MS 100
#define TG_AUDIT_RETRY_MS 1000

/* tg_audit_log results (negative: the entry is not in the log). */
#define TG_AUDIT_REFUSED (-1) /* fail_closed: queue full or log unhealthy */
#define TG_AUDIT_EINVAL (-2)  /* bad event or fields, or line too long */

typedef struct tg_audit tg_audit;

typedef struct tg_audit_counters {
  uint64_t written;  /* entries written to a file */
  uint64_t dropped;  /* entries not logged: refused or dropped (full queue,
                        unhealthy, out of memory), or lost at close */
  uint64_t failures; /* failed write or fdatasync calls */
  uint64_t queued;   /* entries waiting for the writer now */
  uint64_t seq;      /* seq of the last entry in the chain (0: none yet) */
} tg_audit_counters;

/* Opens (creating it, 0600) the log at path and starts the writer thread.
 * fail_closed selects what tg_audit_log does when it cannot accept an
 * entry (see above). If the file's last line is an incomplete write
 * without '\n' (a crash), it is cut off, or completed with its '\n' when it
 * is a whole entry, and err says so: on success err is "" or a warning to
 * log. Returns NULL with err set when the file cannot be opened or read,
 * or its last line is not an audit entry (the chain cannot be continued:
 * move the file away). The path is copied. */
tg_audit *tg_audit_open(const char *path, int fail_closed, char *err,
                        size_t errlen);

/* Adds an entry: event (e.g. "deny", "allow", "config"; a non-empty
 * string) and json_fields, the text of a JSON object whose members follow
 * "event" in their order (NULL or "" for none; the keys "seq", "time",
 * "event" and "prev" are reserved). Returns
 * - 0 when the entry is queued, or (fail_open) dropped because the queue
 *   is full or memory ran out;
 * - TG_AUDIT_EINVAL when event or json_fields is not valid (not UTF-8, not
 *   an object, a duplicate or reserved key), the line would exceed
 *   TG_AUDIT_MAX_LINE, or jansson ran out of memory;
 * - TG_AUDIT_REFUSED (fail_closed only) when the queue is full, the log is
 *   unhealthy, or memory ran out.
 * A caller that must not act without a record denies on any negative
 * result. */
int tg_audit_log(tg_audit *a, const char *event, const char *json_fields);

/* The same for a record of something that happens whatever the log's
 * state (a denial, a reload, start and stop): in fail_closed it is queued
 * while the log cannot be written too (as in fail_open), to be written
 * when it can, and only a full queue or no memory loses it (counted as
 * dropped; TG_AUDIT_REFUSED in fail_closed). */
int tg_audit_log_keep(tg_audit *a, const char *event, const char *json_fields);

/* Starts a new file at the same path after the old one was renamed; the
 * new file's first entry continues the chain. If the path still names the
 * file being written (not rotated), nothing changes. Returns 0 (err ""),
 * or -1 with err set (the path cannot be opened, or names a non-empty
 * file of another chain); writing then goes on to the previous file. */
int tg_audit_reopen(tg_audit *a, char *err, size_t errlen);

/* 1 while every write and fdatasync has succeeded (or a retry has since),
 * 0 after a failure. */
int tg_audit_healthy(tg_audit *a);

/* Counters, consistent with each other at one instant. */
void tg_audit_stats(tg_audit *a, tg_audit_counters *st);

/* The head of the chain as assigned so far (possibly still queued): the
 * last entry's seq (0 when none) and the hex SHA-256 of its line (the
 * genesis zeros when none). Record it elsewhere (e.g. the process log on
 * rotation and shutdown) to make changes to the last entries detectable. */
void tg_audit_head(tg_audit *a, uint64_t *seq, char hex[65]);

/* Writes every queued entry (retrying a failing write once more, then
 * counting what is left as dropped and logging it), syncs, closes the
 * file, joins the writer thread and frees a. NULL-safe. */
void tg_audit_close(tg_audit *a);
#endif
