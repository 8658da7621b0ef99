/*
 * tg_audit_verify: checks that audit log files (written by tg_audit, see
 * tg_audit.h for the entry format) form one unbroken hash chain, and
 * `tgate audit verify FILE...`.
 *
 * The rules, line by line (a line ends at '\n'):
 * - the line is one JSON object without duplicate keys, with "seq" (an
 *   integer >= 1), "time" (a string), "event" (a string) and "prev" (64
 *   lowercase hex digits);
 * - the first entry of a chain has seq 1 and prev = 64 zeros (the genesis
 *   value); every later entry has seq = the previous seq + 1 and prev = the
 *   hex SHA-256 of the previous line's bytes (without its '\n');
 * - the last line ends with '\n' (a final line without one is an
 *   interrupted write or a cut file).
 * Files verified one after another with the same state are checked as one
 * chain: after a rotation, `verify old new` checks that the new file's
 * first entry continues the old file's last one. A rotated file on its own
 * fails at its first entry ("continues an earlier chain"). A second
 * genesis entry inside the files (tgate started on an empty file) is
 * reported too: those files have to be verified separately.
 *
 * What the chain proves, and what it does not: any change to an entry
 * (including removing, inserting or reordering lines) breaks the chain at
 * or right after that entry, unless every later entry is rewritten too. So
 * - changing an entry in the middle is reported at the NEXT entry (its
 *   prev no longer matches), unless the change also breaks that entry's
 *   own syntax or seq;
 * - changing or removing the LAST entry(ies) leaves a valid shorter or
 *   different chain: it is only detectable against a chain head (seq and
 *   hash) recorded somewhere else, e.g. the head tgate logs on rotation and
 *   shutdown (tg_audit_head) or the "chain head" this verifier prints;
 * - someone able to rewrite the whole file can recompute every hash: the
 *   chain is tamper-evident relative to heads recorded elsewhere, not a
 *   signature.
 *
 * The checks are pure functions over bytes (no I/O, no globals); only
 * tg_audit_verify_main reads files. A state belongs to one caller.
 */
#ifndef TG_AUDIT_VERIFY_H
#define TG_AUDIT_VERIFY_H
#include <stddef.h>
#include <stdint.h>

#define TG_AUDIT_GENESIS                                                       \
  "0000000000000000000000000000000000000000000000000000000000000000"

/* Progress through one chain; set up with tg_audit_verify_init. */
typedef struct tg_audit_verify_state {
  uint64_t entries;       /* good entries so far, over every file */
  uint64_t last_seq;      /* seq of the last good entry; 0 before the first */
  unsigned char head[32]; /* SHA-256 of the last good line; zeros at first */
  const char *name;       /* file name for reports (borrowed); NULL: "input" */
  uint64_t line;          /* lines read so far in the current file */
} tg_audit_verify_state;

/* An empty chain: the next entry must be a genesis entry. */
void tg_audit_verify_init(tg_audit_verify_state *st);

/* Checks one audit line (len bytes, without its '\n'; has_newline says
 * whether one followed it) against the state and advances the state. The
 * line number is st->line + 1. Returns 0, or -1 with report set to e.g.
 * "entry 17 (line 17 of audit.jsonl): altered, or the entry before it was
 * altered (prev does not match)"; the state then stays at the last good
 * entry. report may be NULL. */
int tg_audit_verify_line(tg_audit_verify_state *st, const char *line,
                         size_t len, int has_newline, char *report,
                         size_t reportlen);

/* Checks a whole file's bytes (line numbers restart at 1), continuing the
 * chain held in st. Returns 0 with report "ok: N entries, chain head HEX"
 * (N counts every file verified with st so far), or -1 with the first
 * problem as for tg_audit_verify_line. An empty buffer is a file without
 * entries. */
int tg_audit_verify_buf(const char *buf, size_t len, tg_audit_verify_state *st,
                        char *report, size_t reportlen);

/* Parses one line as an entry (the syntax rule above, no chain checks).
 * Returns 0 with *seq and prev_hex (64 digits + NUL) set, or -1 with
 * *err_desc a static description. seq and prev_hex may be NULL. */
int tg_audit_parse_entry(const char *line, size_t len, uint64_t *seq,
                         char prev_hex[65], const char **err_desc);

/* Lowercase hex SHA-256 of len bytes into hex (64 digits + NUL). 0, or -1
 * when OpenSSL fails (out of memory). */
int tg_audit_sha256_hex(const char *buf, size_t len, char hex[65]);

/* `tgate audit verify FILE...` (argv[0] is "verify"; "-" reads stdin):
 * verifies the files in the order given as one chain (oldest first) and
 * prints "ok: N entries, chain head HEX" to stdout, or the first problem
 * to stderr. Exit status: 0 valid, 1 a problem found, 2 usage error or a
 * file that cannot be read. */
int tg_audit_verify_main(int argc, char **argv);
#endif
