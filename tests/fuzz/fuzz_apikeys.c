/*
 * libFuzzer harness for tg_apikeys_file_parse() (authentication.
 * api_keys_file): any bytes give either a key list whose every entry has a
 * subject, or error lines; nothing leaks or overruns.
 */
#include "tg_config.h"

#include <stdint.h>
#include <stdlib.h>
#include <string.h>

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size) {
  tg_apikeys_file *f = NULL;
  char *errors = NULL;
  int rv =
      tg_apikeys_file_parse((const char *)data, size, "k.yaml", &f, &errors);
  if (rv == 0) {
    if (!f)
      abort();
    for (size_t i = 0; i < f->n; i++) {
      const tg_apikey_entry *e = &f->v[i];
      if (!e->subject || !*e->subject || e->expires < 0)
        abort();
      for (size_t k = 0; k < e->permissions.n; k++)
        if (!e->permissions.v[k])
          abort();
    }
  } else {
    if (f || !errors || strncmp(errors, "k.yaml:", 7) != 0)
      abort();
  }
  tg_apikeys_file_free(f);
  free(errors);
  return 0;
}
