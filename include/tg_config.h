/*
 * tg_config: the gateway's YAML configuration, parsed and validated.
 *
 * Contract
 * - tg_config_parse() is a pure function over bytes: no I/O, no globals, safe
 *   to call from any thread and to fuzz. It never opens the files the
 *   configuration names; checking that certificates load is the TLS module's
 *   job (tg_tls_*), done by `tgate --check-config` after parsing.
 * - Every problem found is reported, not only the first: each as one line
 *   "FILE:LINE:COLUMN: message\n" (1-based line and column of the offending
 *   node) appended to *errors. Unknown keys, wrong types, duplicate keys and
 *   out-of-range values are all errors.
 * - On success returns 0 and stores a new tg_config in *out (caller owns it,
 *   release with tg_config_free()). On failure returns a negative
 * TG_CONFIG_ERR_* code, *out is NULL and *errors (caller frees with free())
 * holds at least one line. *errors is NULL when there is nothing to report.
 * - All strings in a tg_config are NUL-terminated heap copies owned by it.
 *
 * Thread-safety: a loaded tg_config is immutable and shared read-only by all
 * worker threads.
 */
#ifndef TG_CONFIG_H
#define TG_CONFIG_H

#include <stddef.h>
#include <stdint.h>

#define TG_CONFIG_ERR_SYNTAX -1  /* YAML could not be parsed */
#define TG_CONFIG_ERR_INVALID -2 /* YAML parsed, but the contents are wrong */
#define TG_CONFIG_ERR_NOMEM -3
#define TG_CONFIG_ERR_IO -4 /* tg_config_load_file() could not read FILE */

/* A "host:port" or "[v6]:port" address. host is a name, an IPv4 literal or
 * an IPv6 literal without brackets; port is 1..65535. */
typedef struct tg_addr {
  char *host;
  uint16_t port;
} tg_addr;

typedef struct tg_listen_tls {
  char *cert_file;         /* required */
  char *key_file;          /* required */
  char *client_ca_file;    /* optional; NULL when absent */
  int require_client_cert; /* default 0; 1 requires client_ca_file */
} tg_listen_tls;

typedef struct tg_upstream_tls {
  char *ca_file;     /* optional: NULL means the system trust store */
  char *cert_file;   /* optional client certificate for an mTLS frontend */
  char *key_file;    /* required iff cert_file is set */
  char *server_name; /* optional: SNI and name to verify; default: the address
                        host */
} tg_upstream_tls;

/* A list of strings (each a NUL-terminated heap copy). */
typedef struct tg_strlist {
  char **v;
  size_t n;
} tg_strlist;

/* Credential kinds for authentication.require (the same bits as
 * TG_CRED_* in tg_claims.h). */
#define TG_AUTHN_CLIENT_CERT 1u
#define TG_AUTHN_JWT 2u
#define TG_AUTHN_API_KEY 4u
#define TG_AUTHN_PLUGIN 8u

/* authentication.client_certs[i]: match fields in tg_certmap's order
 * (cn, o, ou, dns_san, uri_san, email_san); NULL when not matched. */
#define TG_CERT_MATCH_FIELDS 6
typedef struct tg_cert_rule_cfg {
  char *match[TG_CERT_MATCH_FIELDS];
  char *subject;          /* template; NULL: default */
  tg_strlist permissions; /* "namespace:role" templates */
  size_t line;            /* where the rule starts, for messages */
} tg_cert_rule_cfg;

typedef struct tg_jwt_cfg {
  tg_strlist key_sources;       /* https://, http:// (loopback only), file:PATH,
                                   or pem:PATH (a PEM public key) */
  uint64_t refresh_interval_ms; /* refresh_interval, default 1m, 1s..24h */
  char *permissions_claim;      /* default "permissions" */
  char *permissions_regex;      /* NULL: split at the first ':' */
  char *subject_claim;          /* default "sub" */
  char *issuer;                 /* NULL: not checked */
  tg_strlist audiences; /* audience: a string or a list; empty: not checked */
  uint64_t leeway_ms;   /* leeway, default 60s, 0..10m */
  int require_exp;      /* require_exp, default true */
  uint32_t max_token_bytes; /* max_token_size, default 16384, 256..1048576 */
  uint32_t cache_size;      /* cache_size: verified tokens kept per worker,
                               default 10000, 0 (no cache)..10000000 */
  char *ca_file; /* ca_file: PEM bundle that verifies https:// key sources
                    (then the only trust anchors); NULL: the system store.
                    Loaded by tg_keystore, not here. */
} tg_jwt_cfg;

/* authentication.plugins[i] */
typedef struct tg_plugin_cfg {
  char *path;   /* shared object to dlopen */
  char *config; /* handed to the plugin's init; NULL when absent */
} tg_plugin_cfg;

typedef struct tg_authn_cfg {
  uint32_t require;             /* TG_AUTHN_* every call must present */
  tg_strlist exempt_methods;    /* full gRPC paths needing no credentials;
                                   default: WorkflowService/GetSystemInfo and
                                   grpc.health.v1.Health/Check */
  tg_strlist system_namespaces; /* default ["temporal-system"] */
  char *token_header;           /* header carrying "Bearer <token|key>",
                                   default "authorization" */
  tg_jwt_cfg *jwt;              /* NULL when authentication.jwt is absent */
  tg_cert_rule_cfg *cert_rules;
  size_t ncert_rules;
  char *api_keys_file;    /* NULL when absent */
  char *api_key_header;   /* a header carrying the bare key; NULL: only
                             token_header's "Bearer <key>" */
  tg_plugin_cfg *plugins; /* ClaimMapper plugins, run in order */
  size_t nplugins;
} tg_authn_cfg;

typedef enum tg_authz_mode {
  TG_AUTHZ_OFF = 0,     /* every (authenticated) call passes */
  TG_AUTHZ_ENFORCE = 1, /* decide; deny with PERMISSION_DENIED */
  TG_AUTHZ_SHADOW = 2,  /* decide and log would-be denials, but let all pass */
} tg_authz_mode;

/* authorization.rules[i]; a list left out (n == 0) matches anything (an
 * explicit empty list is a configuration error). */
typedef struct tg_authz_rule_cfg {
  int allow; /* effect: allow (1) or deny (0) */
  tg_strlist methods, namespaces, subjects, task_queues, workflow_types;
  size_t line;
} tg_authz_rule_cfg;

typedef enum tg_fwd_authorization {
  TG_FWD_AUTH_FORWARD = 0, /* the client's authorization header goes upstream */
  TG_FWD_AUTH_STRIP = 1,
} tg_fwd_authorization;

/* The keys naming a file that tgate opens once the configuration is
 * parsed (tg_gen, tg_tls); tg_config.file_at[] keeps where each was written
 * so that a problem with the file is reported as FILE:LINE:COLUMN. */
typedef enum tg_config_file_key {
  TG_CFK_LISTEN_CERT,    /* listen.tls.cert_file */
  TG_CFK_LISTEN_KEY,     /* listen.tls.key_file */
  TG_CFK_LISTEN_CA,      /* listen.tls.client_ca_file */
  TG_CFK_UPSTREAM_CA,    /* upstream.tls.ca_file */
  TG_CFK_UPSTREAM_CERT,  /* upstream.tls.cert_file */
  TG_CFK_UPSTREAM_KEY,   /* upstream.tls.key_file */
  TG_CFK_UPSTREAM_TOKEN, /* upstream.credentials.bearer_token_file */
  TG_CFK_JWT,            /* authentication.jwt (its key sources) */
  TG_CFK_API_KEYS,       /* authentication.api_keys_file */
  TG_CFK_PLUGINS,        /* authentication.plugins */
  TG_CFK_COUNT
} tg_config_file_key;

/* 1-based line and column of a key; line 0 when the value did not come from
 * the file (a default, or an environment override). */
typedef struct tg_config_pos {
  uint32_t line;
  uint32_t col;
} tg_config_pos;

typedef enum tg_log_level {
  TG_LOG_ERROR = 0,
  TG_LOG_WARN = 1,
  TG_LOG_INFO = 2,
  TG_LOG_DEBUG = 3,
} tg_log_level;

typedef struct tg_config {
  /* listen: */
  tg_addr listen_address;          /* required */
  tg_listen_tls *listen_tls;       /* NULL when listen.tls is absent (h2c) */
  uint32_t max_concurrent_streams; /* listen.max_concurrent_streams, default
                                      1000, 1..1000000 */

  /* upstream: */
  tg_addr *upstream_addresses; /* required, at least one */
  size_t upstream_naddresses;
  tg_upstream_tls *upstream_tls; /* NULL when upstream.tls is absent (h2c) */
  uint32_t upstream_max_connections; /* upstream.max_connections per address per
                                        worker, default 8, 1..1024 */
  uint64_t
      upstream_connect_timeout_ms; /* upstream.connect_timeout, default 5s */
  /* upstream.credentials.bearer_token_file: what tgate presents to the
   * frontend instead of the client's credentials ("Bearer <file content>",
   * e.g. a Temporal Cloud API key); NULL: the client's go through. */
  char *upstream_token_file;
  /* upstream.credentials.header, lower-cased; NULL: "authorization" */
  char *upstream_token_header;
  /* upstream.health_check.enabled: 1, 0, or -1 (the default: on when there
   * are two or more addresses) */
  int upstream_hc_enabled;
  /* upstream.health_check.interval, default 10s, 100ms..1h */
  uint64_t upstream_hc_interval_ms;
  /* upstream.health_check.timeout, default 2s, 1ms..interval */
  uint64_t upstream_hc_timeout_ms;
  /* upstream.health_check.service, default Temporal's WorkflowService
   * (never NULL; "" asks about the whole server) */
  char *upstream_hc_service;
  /* upstream.health_check.unhealthy_threshold (default 2) and
   * healthy_threshold (default 1): checks in a row, 1..100 */
  uint32_t upstream_hc_unhealthy_threshold;
  uint32_t upstream_hc_healthy_threshold;
  /* upstream.dns_refresh_interval, default 30s; 0 disables; else 100ms..24h */
  uint64_t upstream_dns_refresh_ms;
  /* upstream.resolv_conf: the resolver configuration for upstream names;
   * NULL (the default): /etc/resolv.conf */
  char *upstream_resolv_conf;

  /* admin: (optional section) */
  tg_addr *admin_address; /* NULL when admin is absent */
  /* admin.metrics_max_namespaces: namespaces with a label of their own in
   * /metrics; the rest are "other". Default 100, 0..100000 */
  uint32_t metrics_max_namespaces;

  uint32_t workers; /* 0 (the default) = one per online CPU; max 256 */
  uint64_t shutdown_grace_ms; /* shutdown_grace_period, default 30s */
  /* busy_poll: after a read, a worker keeps polling (epoll with no
   * timeout) for this long before it sleeps; 0 (the default) = off;
   * 0us..1ms. Reloadable. */
  uint32_t busy_poll_us;

  /* authentication: (optional section; NULL: calls are not authenticated) */
  tg_authn_cfg *authn;

  /* authorization: (optional section) */
  tg_authz_mode authz_mode; /* mode: enforce | shadow | off; default off */
  int worker_role_extended; /* worker_role: extended (1, default) | temporal */
  tg_strlist disabled_methods; /* "Service/Method" names or globs */
  tg_authz_rule_cfg *authz_rules;
  size_t nauthz_rules;
  uint32_t max_message_bytes; /* first message inspected, default 4 MiB */
  int expose_reasons;         /* deny reason to the client, default false */
  char *subject_header;       /* add the verified subject upstream; NULL: no */
  tg_fwd_authorization forward_authorization; /* forward (default) | strip */

  /* logging.access_log: "stdout", a file path, or NULL ("off", the
   * default): one JSON line per call */
  char *access_log;

  /* audit: (optional section) */
  char *audit_file;         /* audit.file; NULL: no audit log */
  int audit_include_allows; /* audit.include_allows, default false */
  int audit_fail_closed;    /* audit.on_write_failure: fail_closed (1, default)
                               | fail_open (0) */

  /* logging: (optional section) */
  tg_log_level
      log_level; /* logging.level: error|warn|info|debug, default info */

  /* reload.watch_interval: how often the files the configuration names
   * (and the configuration itself) are checked for changes, which reload
   * it; default 2s, 0 turns watching off (SIGHUP still reloads) */
  uint64_t reload_watch_ms;

  /* limits: (optional section); a call refused by one of them is answered
   * with grpc-status 8 (RESOURCE_EXHAUSTED) */
  /* limits.max_connections: client connections open at once, whole
   * gateway; default 0 (no limit) */
  uint32_t max_connections;
  /* limits.max_header_list_size: bytes of a request's header list (names +
   * values + 32 per field, as HTTP/2 counts), default 65536 */
  uint32_t max_header_list_size;
  /* limits.max_message_size: bytes of any one request message on the wire,
   * default 64 MiB, 1 KiB..1 GiB (with authorization on, the first message
   * is also bounded by max_message_bytes) */
  uint32_t max_message_size;
  /* limits.max_calls_per_subject: calls in flight at once per
   * authenticated subject, whole gateway; default 0 (no limit) */
  uint32_t max_calls_per_subject;

  /* The name the file was parsed under (tg_config_parse's filename) and
   * where its file keys were, for messages about the files they name. */
  char *file;
  tg_config_pos file_at[TG_CFK_COUNT];
} tg_config;

/* Parses a YAML document of len bytes (need not be NUL-terminated). filename is
 * used only in error messages. See the contract above for return values. */
int tg_config_parse(const char *buf, size_t len, const char *filename,
                    tg_config **out, char **errors);

/* Reads path and calls tg_config_parse(). TG_CONFIG_ERR_IO when the file cannot
 * be read (the message in *errors says why). */
int tg_config_load_file(const char *path, tg_config **out, char **errors);

/* Parses a duration: a decimal integer followed by one unit of ms, s, m, h
 * ("30s", "500ms", "2m"). Returns 0 and stores milliseconds, or -1. Pure. */
int tg_config_parse_duration(const char *s, uint64_t *ms);
/* The same with microseconds, which also takes the unit "us". */
int tg_config_parse_duration_us(const char *s, uint64_t *us);

/* Parses "host:port" or "[v6]:port" into out (out->host is malloc'd).
 * Returns 0 or -1 with *err_desc set to a static reason. Pure. */
int tg_config_parse_addr(const char *s, tg_addr *out, const char **err_desc);

/* Environment overrides, for containers, applied after the file:
 *   TGATE_LISTEN_ADDRESS, TGATE_ADMIN_ADDRESS, TGATE_UPSTREAM_ADDRESSES
 *   (comma-separated), TGATE_WORKERS, TGATE_LOG_LEVEL; and the variables
 *   Temporal's server image reads for JWT authorization:
 *   TEMPORAL_JWT_KEY_SOURCE1..64 (replace authentication.jwt.key_sources),
 *   TEMPORAL_JWT_PERMISSIONS_CLAIM, TEMPORAL_JWT_KEY_REFRESH (creating the
 *   authentication.jwt section with its defaults when the file has none).
 * get returns a variable's value or NULL (getenv, or a table in tests).
 * Returns 0, or TG_CONFIG_ERR_INVALID / _NOMEM with one line per problem
 * ("environment NAME: message") in *errors (caller frees). cfg may be
 * partly updated on failure; callers then stop. */
int tg_config_apply_env(tg_config *cfg, const char *(*get)(const char *name),
                        char **errors);

/* NULL-safe. */
void tg_config_free(tg_config *cfg);

/*
 * The API keys file (authentication.api_keys_file): keys are stored only as
 * the SHA-256 of the key, never in clear.
 *   keys:
 *     - id: ci-deployer                 # optional name, for logs
 *       sha256: "<64 hex digits>"
 *       subject: ci
 *       permissions: ["default:write"]
 *       expires: 2027-01-31T00:00:00Z   # optional, UTC; or 2027-01-31
 * Parsed with the same rules and error format as the configuration.
 */
typedef struct tg_apikey_entry {
  uint8_t sha256[32];
  char *id; /* NULL when absent */
  char *subject;
  tg_strlist permissions;
  int64_t expires; /* unix seconds; 0: never */
} tg_apikey_entry;

typedef struct tg_apikeys_file {
  tg_apikey_entry *v;
  size_t n;
} tg_apikeys_file;

int tg_apikeys_file_parse(const char *buf, size_t len, const char *filename,
                          tg_apikeys_file **out, char **errors);
int tg_apikeys_file_load(const char *path, tg_apikeys_file **out,
                         char **errors);
void tg_apikeys_file_free(tg_apikeys_file *f); /* NULL-safe */
void tg_authn_cfg_free(tg_authn_cfg *a); /* NULL-safe; part of tg_config_free */

#endif /* TG_CONFIG_H */
