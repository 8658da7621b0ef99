#include "tg_plugins.h"

#include <dlfcn.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "tgate_plugin.h"

typedef struct loaded {
  void *handle;
  const tgate_plugin *api;
  void *state;
} loaded;

struct tg_plugins {
  loaded *v;
  size_t n;
};

tg_plugins *tg_plugins_load(const tg_plugin_cfg *cfgs, size_t n, char *err,
                            size_t errlen) {
  tg_plugins *p = calloc(1, sizeof *p);
  if (!p || !(p->v = calloc(n ? n : 1, sizeof *p->v))) {
    snprintf(err, errlen, "out of memory");
    free(p);
    return NULL;
  }
  for (size_t i = 0; i < n; i++) {
    loaded *l = &p->v[i];
    const char *path = cfgs[i].path;
    l->handle = dlopen(path, RTLD_NOW | RTLD_LOCAL);
    if (!l->handle) {
      snprintf(err, errlen, "plugin %s: %s", path, dlerror());
      goto fail;
    }
    p->n = i + 1;
    tgate_plugin_entry_fn entry;
    /* POSIX: a function pointer read through the object pointer dlsym gives */
    *(void **)&entry = dlsym(l->handle, TGATE_PLUGIN_ENTRY);
    if (!entry) {
      snprintf(err, errlen, "plugin %s: no %s() entry point", path,
               TGATE_PLUGIN_ENTRY);
      goto fail;
    }
    l->api = entry();
    if (!l->api || l->api->abi_version != TGATE_PLUGIN_ABI_VERSION ||
        !l->api->get_claims) {
      snprintf(err, errlen, "plugin %s: ABI version %u, tgate speaks %u", path,
               l->api ? l->api->abi_version : 0, TGATE_PLUGIN_ABI_VERSION);
      l->api = NULL;
      goto fail;
    }
    if (l->api->init) {
      int ok = 0;
      char why[256] = "";
      l->state = l->api->init(cfgs[i].config, &ok, why, sizeof why);
      if (!ok) {
        snprintf(err, errlen, "plugin %s (%s): %s", path,
                 l->api->name ? l->api->name : "?", why);
        l->api = NULL;
        goto fail;
      }
    }
  }
  return p;
fail:
  tg_plugins_free(p);
  return NULL;
}

void tg_plugins_free(tg_plugins *p) {
  if (!p)
    return;
  for (size_t i = 0; i < p->n; i++) {
    loaded *l = &p->v[i];
    if (l->api && l->api->destroy)
      l->api->destroy(l->state);
    if (l->handle)
      dlclose(l->handle);
  }
  free(p->v);
  free(p);
}

static int set_subject(void *ctx, const char *s, size_t len) {
  return tg_claims_set_subject(ctx, s, len) == 0 ? 0 : -1;
}

static int grant(void *ctx, const char *ns, size_t len, uint32_t roles) {
  tg_claims *c = ctx;
  if (!ns || len == 0) {
    c->system |= (uint8_t)(roles & 15u);
    return 0;
  }
  if (memchr(ns, '\0', len))
    return 0;
  return tg_claims_grant(c, ns, len, (uint8_t)(roles & 15u)) == 0 ? 0 : -1;
}

int tg_plugins_apply(const tg_plugins *p, const char *path, size_t plen,
                     const tg_hdrs *h, SSL *ssl, tg_claims *out,
                     const char **reason) {
  tgate_plugin_header *hv = calloc(h->n ? h->n : 1, sizeof *hv);
  unsigned char *der = NULL;
  int rv = 0;
  if (!hv)
    return TG_CLAIMS_ERR_NOMEM;
  for (size_t i = 0; i < h->n; i++) {
    hv[i].name = h->arena + h->ents[i].name_off;
    hv[i].name_len = h->ents[i].name_len;
    hv[i].value = h->arena + h->ents[i].value_off;
    hv[i].value_len = h->ents[i].value_len;
  }
  tgate_plugin_call call = {
      .method = path, .method_len = plen, .headers = hv, .nheaders = h->n};
  X509 *cert = ssl ? SSL_get0_peer_certificate(ssl) : NULL;
  if (cert && SSL_get_verify_result(ssl) == X509_V_OK) {
    int n = i2d_X509(cert, &der);
    if (n > 0) {
      call.peer_cert_der = der;
      call.peer_cert_der_len = (size_t)n;
    }
  }
  for (size_t i = 0; i < p->n && rv == 0; i++) {
    tg_claims c;
    tg_claims_init(&c);
    tgate_plugin_claims b = {
        .ctx = &c, .set_subject = set_subject, .grant = grant};
    const char *why = "rejected by a plugin";
    int r = p->v[i].api->get_claims(p->v[i].state, &call, &b, &why);
    if (r == TGATE_PLUGIN_OK) {
      c.kinds |= TG_CRED_PLUGIN;
      if (tg_claims_merge(out, &c) != 0)
        rv = TG_CLAIMS_ERR_NOMEM;
    } else if (r != TGATE_PLUGIN_NONE) {
      *reason = why;
      rv = 1;
    }
    tg_claims_clear(&c);
  }
  OPENSSL_free(der);
  free(hv);
  return rv;
}
