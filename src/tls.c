#include "tg_tls.h"

#include <arpa/inet.h>
#include <errno.h>
#include <openssl/err.h>
#include <openssl/x509v3.h>
#include <stdio.h>
#include <string.h>
#include <unistd.h>

/* Where the problems of one context go, and how many there were. */
typedef struct tls_report {
  tg_tls_problem_fn fn;
  void *arg;
  int n;
} tls_report;

/* Reports a failed step: what (which names the key), the file it was about
 * (or NULL) and OpenSSL's reason, which it takes off the error queue. */
static void tls_problem(tls_report *r, tg_config_file_key key, const char *what,
                        const char *file) {
  char ossl[256] = "", msg[1024];
  unsigned long e = ERR_peek_last_error();
  if (e)
    ERR_error_string_n(e, ossl, sizeof(ossl));
  ERR_clear_error();
  /* OpenSSL says only "system lib" for a file it cannot open. */
  if (file && access(file, R_OK) != 0)
    snprintf(ossl, sizeof(ossl), "%s", strerror(errno));
  snprintf(msg, sizeof msg, "%s%s%s%s%s", what, file ? " " : "",
           file ? file : "", *ossl ? ": " : "", ossl);
  r->fn(r->arg, key, msg);
  r->n++;
}

/* Whether the last error is a private key that does not belong to the
 * certificate loaded before it (SSL_CTX_use_PrivateKey_file checks that). */
static int key_mismatch(void) {
  unsigned long e = ERR_peek_last_error();
  return ERR_GET_LIB(e) == ERR_LIB_X509 &&
         ERR_GET_REASON(e) == X509_R_KEY_VALUES_MISMATCH;
}

/* Loads a certificate chain and its private key, each tried even when the
 * other failed so that both are reported; cert_name and key_name are the
 * configuration keys that named them. */
static void load_pair(SSL_CTX *ctx, tls_report *r, const char *cert,
                      tg_config_file_key cert_key, const char *key,
                      tg_config_file_key key_key, const char *cert_name,
                      const char *key_name) {
  char what[768];
  int cert_ok = SSL_CTX_use_certificate_chain_file(ctx, cert) == 1;
  if (!cert_ok) {
    snprintf(what, sizeof what, "%s: cannot load certificate", cert_name);
    tls_problem(r, cert_key, what, cert);
  }
  if (SSL_CTX_use_PrivateKey_file(ctx, key, SSL_FILETYPE_PEM) != 1) {
    int mismatch = cert_ok && key_mismatch();
    if (mismatch)
      snprintf(what, sizeof what,
               "%s: the private key in %s does not match the certificate in "
               "%s",
               key_name, key, cert);
    else
      snprintf(what, sizeof what, "%s: cannot load private key", key_name);
    tls_problem(r, key_key, what, mismatch ? NULL : key);
    return;
  }
  /* A key of another type than the certificate's loads without a check. */
  if (cert_ok && SSL_CTX_check_private_key(ctx) != 1) {
    snprintf(what, sizeof what,
             "%s: the private key in %s does not match the certificate in %s",
             key_name, key, cert);
    tls_problem(r, key_key, what, NULL);
  }
}

static int alpn_select(SSL *ssl, const unsigned char **out,
                       unsigned char *outlen, const unsigned char *in,
                       unsigned int inlen, void *arg) {
  (void)ssl;
  (void)arg;
  static const unsigned char h2[] = "\x02h2";
  if (SSL_select_next_proto((unsigned char **)out, outlen, h2, sizeof(h2) - 1,
                            in, inlen) != OPENSSL_NPN_NEGOTIATED)
    return SSL_TLSEXT_ERR_ALERT_FATAL;
  return SSL_TLSEXT_ERR_OK;
}

SSL_CTX *tg_tls_server_ctx_new(const tg_listen_tls *conf,
                               tg_tls_problem_fn problem, void *arg) {
  tls_report r = {problem, arg, 0};
  SSL_CTX *ctx = SSL_CTX_new(TLS_server_method());
  if (!ctx) {
    tls_problem(&r, TG_CFK_COUNT, "listen.tls: cannot create TLS context",
                NULL);
    return NULL;
  }
  SSL_CTX_set_min_proto_version(ctx, TLS1_2_VERSION);
  SSL_CTX_set_options(ctx, SSL_OP_NO_RENEGOTIATION |
                               SSL_OP_CIPHER_SERVER_PREFERENCE |
                               SSL_OP_NO_COMPRESSION);
  SSL_CTX_set_mode(ctx, SSL_MODE_RELEASE_BUFFERS);
  /* Without a session id context, OpenSSL answers a TLS 1.2 client that
   * resumes a session (ticket or id) of a server that verifies client
   * certificates with a fatal internal_error alert: such a client could
   * never reconnect. Sessions and tickets belong to this context; a
   * reload builds a new one (new ticket keys, empty cache), so a session
   * never outlives the CA bundle that verified its certificate. */
  static const unsigned char sid_ctx[] = "tgate";
  SSL_CTX_set_session_id_context(ctx, sid_ctx, sizeof sid_ctx - 1);
  load_pair(ctx, &r, conf->cert_file, TG_CFK_LISTEN_CERT, conf->key_file,
            TG_CFK_LISTEN_KEY, "listen.tls.cert_file", "listen.tls.key_file");
  if (conf->client_ca_file) {
    STACK_OF(X509_NAME) *names = NULL;
    if (SSL_CTX_load_verify_locations(ctx, conf->client_ca_file, NULL) != 1)
      tls_problem(&r, TG_CFK_LISTEN_CA,
                  "listen.tls.client_ca_file: cannot load CA certificates from",
                  conf->client_ca_file);
    else if (!(names = SSL_load_client_CA_file(conf->client_ca_file)))
      tls_problem(&r, TG_CFK_LISTEN_CA,
                  "listen.tls.client_ca_file: no CA certificate in",
                  conf->client_ca_file);
    else
      SSL_CTX_set_client_CA_list(ctx, names);
    SSL_CTX_set_verify(
        ctx,
        SSL_VERIFY_PEER |
            (conf->require_client_cert ? SSL_VERIFY_FAIL_IF_NO_PEER_CERT : 0),
        NULL);
  }
  SSL_CTX_set_alpn_select_cb(ctx, alpn_select, NULL);
  if (r.n == 0)
    return ctx;
  SSL_CTX_free(ctx);
  return NULL;
}

SSL_CTX *tg_tls_client_ctx_new(const tg_upstream_tls *conf,
                               tg_tls_problem_fn problem, void *arg) {
  tls_report r = {problem, arg, 0};
  SSL_CTX *ctx = SSL_CTX_new(TLS_client_method());
  if (!ctx) {
    tls_problem(&r, TG_CFK_COUNT, "upstream.tls: cannot create TLS context",
                NULL);
    return NULL;
  }
  SSL_CTX_set_min_proto_version(ctx, TLS1_2_VERSION);
  SSL_CTX_set_options(ctx, SSL_OP_NO_RENEGOTIATION | SSL_OP_NO_COMPRESSION);
  SSL_CTX_set_mode(ctx, SSL_MODE_RELEASE_BUFFERS);
  if (conf->ca_file) {
    if (SSL_CTX_load_verify_locations(ctx, conf->ca_file, NULL) != 1)
      tls_problem(&r, TG_CFK_UPSTREAM_CA,
                  "upstream.tls.ca_file: cannot load CA certificates from",
                  conf->ca_file);
  } else if (SSL_CTX_set_default_verify_paths(ctx) != 1) {
    tls_problem(&r, TG_CFK_COUNT,
                "upstream.tls: cannot load the system trust store", NULL);
  }
  if (conf->cert_file)
    load_pair(ctx, &r, conf->cert_file, TG_CFK_UPSTREAM_CERT, conf->key_file,
              TG_CFK_UPSTREAM_KEY, "upstream.tls.cert_file",
              "upstream.tls.key_file");
  SSL_CTX_set_verify(ctx, SSL_VERIFY_PEER, NULL);
  static const unsigned char h2[] = "\x02h2";
  if (SSL_CTX_set_alpn_protos(ctx, h2, sizeof(h2) - 1) != 0)
    tls_problem(&r, TG_CFK_COUNT, "upstream.tls: cannot set ALPN", NULL);
  if (r.n == 0)
    return ctx;
  SSL_CTX_free(ctx);
  return NULL;
}

SSL *tg_tls_client_ssl_new(SSL_CTX *ctx, const char *name) {
  SSL *ssl = SSL_new(ctx);
  if (!ssl)
    return NULL;
  unsigned char buf[sizeof(struct in6_addr)];
  int is_ip =
      inet_pton(AF_INET, name, buf) == 1 || inet_pton(AF_INET6, name, buf) == 1;
  if (is_ip) {
    X509_VERIFY_PARAM *param = SSL_get0_param(ssl);
    if (X509_VERIFY_PARAM_set1_ip_asc(param, name) != 1)
      goto fail;
  } else {
    if (SSL_set_tlsext_host_name(ssl, name) != 1 ||
        SSL_set1_host(ssl, name) != 1)
      goto fail;
  }
  return ssl;
fail:
  SSL_free(ssl);
  return NULL;
}

void tg_tls_peer_subject(SSL *ssl, char *out, size_t outlen) {
  X509 *cert = ssl ? SSL_get0_peer_certificate(ssl) : NULL;
  if (!cert) {
    snprintf(out, outlen, "-");
    return;
  }
  X509_NAME_oneline(X509_get_subject_name(cert), out, (int)outlen);
}
