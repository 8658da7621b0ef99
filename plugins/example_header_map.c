/*
 * example_header_map: an example ClaimMapper plugin for tgate's plugin ABI
 * (include/tgate_plugin.h). It maps the value of one request header to a
 * subject and Temporal permissions listed in its config string:
 *
 *   header=x-demo-user;alice=default:write,payments:read;ops=temporal-system:admin
 *
 * A call without the header gets TGATE_PLUGIN_NONE; a value not listed gets
 * TGATE_PLUGIN_REJECT. Only for demonstrating the ABI: a header proves
 * nothing unless a trusted hop in front of tgate sets it.
 */
#include <stdlib.h>
#include <string.h>
#include <strings.h>

#include "tgate_plugin.h"

#define MAX_USERS 64
#define MAX_PERMS 16

typedef struct perm {
  char *ns; /* NULL: system scope */
  uint32_t roles;
} perm;

typedef struct user {
  char *name;
  perm perms[MAX_PERMS];
  size_t nperms;
} user;

typedef struct state {
  char header[64];
  user users[MAX_USERS];
  size_t nusers;
} state;

static uint32_t role_bit(const char *r) {
  if (!strcasecmp(r, "read"))
    return TGATE_ROLE_READ;
  if (!strcasecmp(r, "write"))
    return TGATE_ROLE_WRITE;
  if (!strcasecmp(r, "worker"))
    return TGATE_ROLE_WORKER;
  if (!strcasecmp(r, "admin"))
    return TGATE_ROLE_ADMIN;
  return 0;
}

static void destroy(void *p) {
  state *s = p;
  if (!s)
    return;
  for (size_t i = 0; i < s->nusers; i++) {
    free(s->users[i].name);
    for (size_t j = 0; j < s->users[i].nperms; j++)
      free(s->users[i].perms[j].ns);
  }
  free(s);
}

static int parse_user(state *s, char *item, char *err, size_t errlen) {
  char *eq = strchr(item, '=');
  if (!eq || eq == item || s->nusers == MAX_USERS) {
    strncpy(err, "expected NAME=ns:role,...", errlen - 1);
    return -1;
  }
  *eq = '\0';
  user *u = &s->users[s->nusers++];
  if (!(u->name = strdup(item)))
    return -1;
  char *save = NULL;
  for (char *p = strtok_r(eq + 1, ",", &save); p;
       p = strtok_r(NULL, ",", &save)) {
    char *colon = strchr(p, ':');
    uint32_t bit = colon ? role_bit(colon + 1) : 0;
    if (!bit || colon == p || u->nperms == MAX_PERMS) {
      strncpy(err, "a permission must be ns:read|write|worker|admin",
              errlen - 1);
      return -1;
    }
    *colon = '\0';
    perm *pm = &u->perms[u->nperms++];
    pm->roles = bit;
    if (strcmp(p, "temporal-system") != 0 && !(pm->ns = strdup(p)))
      return -1;
  }
  return 0;
}

static void *init(const char *config, int *ok, char *err, size_t errlen) {
  state *s = calloc(1, sizeof *s);
  char *copy = config ? strdup(config) : NULL;
  char *save = NULL;
  *ok = 0;
  if (!s || !copy) {
    strncpy(err, config ? "out of memory" : "config is required", errlen - 1);
    goto fail;
  }
  for (char *item = strtok_r(copy, ";", &save); item;
       item = strtok_r(NULL, ";", &save)) {
    if (strncmp(item, "header=", 7) == 0) {
      size_t n = strlen(item + 7);
      if (n == 0 || n >= sizeof s->header) {
        strncpy(err, "bad header name", errlen - 1);
        goto fail;
      }
      for (size_t i = 0; i <= n; i++)
        s->header[i] = (char)((item[7 + i] >= 'A' && item[7 + i] <= 'Z')
                                  ? item[7 + i] - 'A' + 'a'
                                  : item[7 + i]);
    } else if (parse_user(s, item, err, errlen) != 0) {
      goto fail;
    }
  }
  if (!s->header[0]) {
    strncpy(err, "config names no header= ", errlen - 1);
    goto fail;
  }
  free(copy);
  *ok = 1;
  return s;
fail:
  free(copy);
  destroy(s);
  return NULL;
}

static int get_claims(void *p, const tgate_plugin_call *call,
                      const tgate_plugin_claims *out, const char **reason) {
  const state *s = p;
  size_t hlen = strlen(s->header);
  for (size_t i = 0; i < call->nheaders; i++) {
    const tgate_plugin_header *h = &call->headers[i];
    if (h->name_len != hlen || memcmp(h->name, s->header, hlen) != 0)
      continue;
    for (size_t u = 0; u < s->nusers; u++) {
      const user *us = &s->users[u];
      if (strlen(us->name) != h->value_len ||
          memcmp(us->name, h->value, h->value_len) != 0)
        continue;
      if (out->set_subject(out->ctx, us->name, strlen(us->name)) != 0)
        goto nomem;
      for (size_t j = 0; j < us->nperms; j++)
        if (out->grant(out->ctx, us->perms[j].ns,
                       us->perms[j].ns ? strlen(us->perms[j].ns) : 0,
                       us->perms[j].roles) != 0)
          goto nomem;
      return TGATE_PLUGIN_OK;
    }
    *reason = "unknown demo user";
    return TGATE_PLUGIN_REJECT;
  }
  return TGATE_PLUGIN_NONE;
nomem:
  *reason = "out of memory";
  return TGATE_PLUGIN_REJECT;
}

static const tgate_plugin plugin = {
    .abi_version = TGATE_PLUGIN_ABI_VERSION,
    .name = "example_header_map",
    .init = init,
    .get_claims = get_claims,
    .destroy = destroy,
};

const tgate_plugin *tgate_plugin_v1(void) {
  return &plugin;
}
