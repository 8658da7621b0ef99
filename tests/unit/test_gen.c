#include <stdlib.h>
#include <string.h>

#include "tg_config.h"
#include "tg_gen.h"
#include "tg_test.h"

#define BASE                                                                   \
  "listen:\n  address: \"127.0.0.1:7233\"\n"                                   \
  "upstream:\n  addresses: [\"127.0.0.1:7234\"]\n"

static tg_config *load(const char *yaml) {
  tg_config *cfg = NULL;
  char *errors = NULL;
  if (tg_config_parse(yaml, strlen(yaml), "t.yaml", &cfg, &errors) != 0)
    fprintf(stderr, "%s", errors ? errors : "?");
  free(errors);
  return cfg;
}

static int restart_only(const char *a, const char *b, char *err) {
  tg_config *x = load(a), *y = load(b);
  int rv = x && y ? tg_gen_restart_only(x, y, err, 256) : 99;
  tg_config_free(x);
  tg_config_free(y);
  return rv;
}

TG_TEST(reloadable_changes_pass) {
  char err[256];
  TG_CHECK(restart_only(BASE, BASE, err) == 0);
  TG_CHECK(restart_only(BASE,
                        BASE "authorization:\n  mode: off\n"
                             "logging:\n  level: debug\n"
                             "limits:\n  max_connections: 9\n"
                             "shutdown_grace_period: 1s\n",
                        err) == 0);
}

TG_TEST(restart_only_changes_are_named) {
  char err[256];
  TG_CHECK(restart_only(BASE,
                        "listen:\n  address: \"127.0.0.1:7000\"\n"
                        "upstream:\n  addresses: [\"127.0.0.1:7234\"]\n",
                        err) == -1);
  TG_CHECK_STR_CONTAINS(err, "listen.address changed");
  TG_CHECK(restart_only(BASE,
                        "listen:\n  address: \"127.0.0.1:7233\"\n"
                        "upstream:\n  addresses: [\"127.0.0.1:7235\"]\n",
                        err) == -1);
  TG_CHECK_STR_CONTAINS(err, "upstream.addresses");
  TG_CHECK(restart_only(BASE, BASE "workers: 3\n", err) == -1);
  TG_CHECK_STR_CONTAINS(err, "workers");
  TG_CHECK(restart_only(BASE, BASE "admin:\n  address: \"127.0.0.1:9\"\n",
                        err) == -1);
  TG_CHECK_STR_CONTAINS(err, "admin.address");
  TG_CHECK(restart_only(BASE, BASE "audit:\n  file: /tmp/a\n", err) == -1);
  TG_CHECK_STR_CONTAINS(err, "audit.file");
  TG_CHECK(restart_only(BASE, BASE "logging:\n  access_log: stdout\n", err) ==
           -1);
  TG_CHECK_STR_CONTAINS(err, "logging.access_log");
  TG_CHECK_STR_CONTAINS(err, "restart");
}

int main(void) {
  TG_RUN(reloadable_changes_pass);
  TG_RUN(restart_only_changes_are_named);
  return TG_DONE();
}
