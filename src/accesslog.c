#include "tg_accesslog.h"

#include <errno.h>
#include <fcntl.h>
#include <stdio.h>
#include <string.h>
#include <unistd.h>

static int log_fd = -1;      /* written by workers, never reassigned while
                                they run: reopen dup2()s over it */
static const char *log_path; /* NULL for stdout */

int tg_accesslog_open(const char *spec, char *err, size_t errlen) {
  if (!spec)
    return 0;
  if (strcmp(spec, "stdout") == 0) {
    log_fd = dup(STDOUT_FILENO);
    log_path = NULL;
  } else {
    log_fd = open(spec, O_WRONLY | O_APPEND | O_CREAT | O_CLOEXEC, 0640);
    log_path = spec;
  }
  if (log_fd < 0) {
    snprintf(err, errlen, "access log %s: %s", spec, strerror(errno));
    return -1;
  }
  return 0;
}

int tg_accesslog_enabled(void) {
  return log_fd >= 0;
}

int tg_accesslog_reopen(char *err, size_t errlen) {
  if (log_fd < 0 || !log_path)
    return 0;
  int fd = open(log_path, O_WRONLY | O_APPEND | O_CREAT | O_CLOEXEC, 0640);
  if (fd < 0) {
    snprintf(err, errlen, "access log %s: %s", log_path, strerror(errno));
    return -1;
  }
  int rv = dup2(fd, log_fd) < 0 ? -1 : 0;
  if (rv != 0)
    snprintf(err, errlen, "access log %s: %s", log_path, strerror(errno));
  close(fd);
  return rv;
}

void tg_accesslog_write(const char *line, size_t len) {
  if (log_fd < 0)
    return;
  /* One write: O_APPEND keeps concurrent lines whole. A short or failed
   * write loses this line only; the gateway does not stop for its log. */
  ssize_t n = write(log_fd, line, len);
  (void)n;
}

void tg_accesslog_close(void) {
  if (log_fd >= 0)
    close(log_fd);
  log_fd = -1;
}
