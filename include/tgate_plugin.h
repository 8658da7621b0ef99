/*
 * tgate_plugin.h: the C ABI for ClaimMapper plugins (shared objects loaded
 * with dlopen from authentication.plugins). Version 1.
 *
 * A plugin exports one function:
 *
 *   const tgate_plugin *tgate_plugin_v1(void);
 *
 * returning a static description. tgate calls init() once at start with the
 * plugin's `config` string, get_claims() for every authenticated call (from
 * several worker threads at once: it must be thread-safe and must not
 * block), and destroy() at exit.
 *
 * get_claims() sees the call's request headers and the verified TLS peer
 * certificate (DER), and contributes claims through the builder callbacks
 * (set_subject, grant). It returns:
 *   TGATE_PLUGIN_OK          it recognised a credential; its grants apply and
 *                            the call counts as presenting a "plugin"
 * credential TGATE_PLUGIN_NONE        nothing for this plugin here (no grants)
 *   TGATE_PLUGIN_REJECT      the credential it understands is invalid: the call
 *                            fails with UNAUTHENTICATED and *reason (a static
 *                            string, never containing the credential)
 * Strings passed to the plugin are not NUL-terminated (use the lengths) and
 * live only during the call. This header is self-contained (no tgate types)
 * so plugins build against it alone.
 */
#ifndef TGATE_PLUGIN_H
#define TGATE_PLUGIN_H
#include <stddef.h>
#include <stdint.h>

#define TGATE_PLUGIN_ABI_VERSION 1

#define TGATE_PLUGIN_OK 0
#define TGATE_PLUGIN_NONE 1
#define TGATE_PLUGIN_REJECT 2

/* Temporal's role bits. */
#define TGATE_ROLE_WORKER 1u
#define TGATE_ROLE_READ 2u
#define TGATE_ROLE_WRITE 4u
#define TGATE_ROLE_ADMIN 8u

typedef struct tgate_plugin_header {
  const char *name; /* lower case */
  size_t name_len;
  const char *value;
  size_t value_len;
} tgate_plugin_header;

typedef struct tgate_plugin_call {
  /* the gRPC path, e.g. /temporal.api.workflowservice.v1.WorkflowService/... */
  const char *method;
  size_t method_len;
  const tgate_plugin_header *headers; /* pseudo-headers included */
  size_t nheaders;
  const unsigned char *peer_cert_der; /* verified client certificate, or NULL */
  size_t peer_cert_der_len;
} tgate_plugin_call;

/* The builder handed to get_claims. Each callback returns 0, or -1 when
 * memory runs out (get_claims should then return TGATE_PLUGIN_REJECT). */
typedef struct tgate_plugin_claims {
  void *ctx;
  int (*set_subject)(void *ctx, const char *s, size_t len);
  /* ns NULL (len 0) grants on the system scope. */
  int (*grant)(void *ctx, const char *ns, size_t len, uint32_t roles);
} tgate_plugin_claims;

typedef struct tgate_plugin {
  uint32_t abi_version; /* TGATE_PLUGIN_ABI_VERSION */
  const char *name;
  /* Returns the plugin's state (may be NULL for none) and sets *ok to 1, or
   * sets *ok to 0 and writes a reason into err. */
  void *(*init)(const char *config, int *ok, char *err, size_t errlen);
  int (*get_claims)(void *state, const tgate_plugin_call *call,
                    const tgate_plugin_claims *out, const char **reason);
  void (*destroy)(void *state);
} tgate_plugin;

typedef const tgate_plugin *(*tgate_plugin_entry_fn)(void);
#define TGATE_PLUGIN_ENTRY "tgate_plugin_v1"
#endif
