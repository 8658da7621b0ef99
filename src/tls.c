#include "tg_tls.h"

#include <arpa/inet.h>
#include <errno.h>
#include <openssl/err.h>
#include <openssl/x509v3.h>
#include <stdio.h>
#include <string.h>
#include <unistd.h>

static void tls_err(char *err, size_t errlen, const char *what,
                    const char *file) {
  char ossl[256] = "";
  unsigned long e = ERR_peek_last_error();
  if (e)
    ERR_error_string_n(e, ossl, sizeof(ossl));
  ERR_clear_error();
  /* OpenSSL says only "system lib" for a file it cannot open. */
  if (file && access(file, R_OK) != 0)
    snprintf(ossl, sizeof(ossl), "%s", strerror(errno));
  snprintf(err, errlen, "%s%s%s%s%s", what, file ? " " : "", file ? file : "",
           *ossl ? ": " : "", ossl);
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

SSL_CTX *tg_tls_server_ctx_new(const tg_listen_tls *conf, char *err,
                               size_t errlen) {
  SSL_CTX *ctx = SSL_CTX_new(TLS_server_method());
  if (!ctx) {
    tls_err(err, errlen, "cannot create TLS context", NULL);
    return NULL;
  }
  SSL_CTX_set_min_proto_version(ctx, TLS1_2_VERSION);
  SSL_CTX_set_options(ctx, SSL_OP_NO_RENEGOTIATION |
                               SSL_OP_CIPHER_SERVER_PREFERENCE |
                               SSL_OP_NO_COMPRESSION);
  SSL_CTX_set_mode(ctx, SSL_MODE_RELEASE_BUFFERS);
  if (SSL_CTX_use_certificate_chain_file(ctx, conf->cert_file) != 1) {
    tls_err(err, errlen, "cannot load certificate", conf->cert_file);
    goto fail;
  }
  if (SSL_CTX_use_PrivateKey_file(ctx, conf->key_file, SSL_FILETYPE_PEM) != 1) {
    tls_err(err, errlen, "cannot load private key", conf->key_file);
    goto fail;
  }
  if (SSL_CTX_check_private_key(ctx) != 1) {
    tls_err(err, errlen, "private key does not match certificate",
            conf->key_file);
    goto fail;
  }
  if (conf->client_ca_file) {
    if (SSL_CTX_load_verify_locations(ctx, conf->client_ca_file, NULL) != 1) {
      tls_err(err, errlen, "cannot load client CA file", conf->client_ca_file);
      goto fail;
    }
    STACK_OF(X509_NAME) *names = SSL_load_client_CA_file(conf->client_ca_file);
    if (!names) {
      tls_err(err, errlen, "no CA certificate in", conf->client_ca_file);
      goto fail;
    }
    SSL_CTX_set_client_CA_list(ctx, names);
    SSL_CTX_set_verify(
        ctx,
        SSL_VERIFY_PEER |
            (conf->require_client_cert ? SSL_VERIFY_FAIL_IF_NO_PEER_CERT : 0),
        NULL);
  }
  SSL_CTX_set_alpn_select_cb(ctx, alpn_select, NULL);
  return ctx;
fail:
  SSL_CTX_free(ctx);
  return NULL;
}

SSL_CTX *tg_tls_client_ctx_new(const tg_upstream_tls *conf, char *err,
                               size_t errlen) {
  SSL_CTX *ctx = SSL_CTX_new(TLS_client_method());
  if (!ctx) {
    tls_err(err, errlen, "cannot create TLS context", NULL);
    return NULL;
  }
  SSL_CTX_set_min_proto_version(ctx, TLS1_2_VERSION);
  SSL_CTX_set_options(ctx, SSL_OP_NO_RENEGOTIATION | SSL_OP_NO_COMPRESSION);
  SSL_CTX_set_mode(ctx, SSL_MODE_RELEASE_BUFFERS);
  if (conf->ca_file) {
    if (SSL_CTX_load_verify_locations(ctx, conf->ca_file, NULL) != 1) {
      tls_err(err, errlen, "cannot load upstream CA file", conf->ca_file);
      goto fail;
    }
  } else if (SSL_CTX_set_default_verify_paths(ctx) != 1) {
    tls_err(err, errlen, "cannot load the system trust store", NULL);
    goto fail;
  }
  if (conf->cert_file) {
    if (SSL_CTX_use_certificate_chain_file(ctx, conf->cert_file) != 1) {
      tls_err(err, errlen, "cannot load upstream client certificate",
              conf->cert_file);
      goto fail;
    }
    if (SSL_CTX_use_PrivateKey_file(ctx, conf->key_file, SSL_FILETYPE_PEM) !=
        1) {
      tls_err(err, errlen, "cannot load upstream client key", conf->key_file);
      goto fail;
    }
    if (SSL_CTX_check_private_key(ctx) != 1) {
      tls_err(err, errlen, "upstream client key does not match certificate",
              conf->key_file);
      goto fail;
    }
  }
  SSL_CTX_set_verify(ctx, SSL_VERIFY_PEER, NULL);
  static const unsigned char h2[] = "\x02h2";
  if (SSL_CTX_set_alpn_protos(ctx, h2, sizeof(h2) - 1) != 0) {
    tls_err(err, errlen, "cannot set ALPN", NULL);
    goto fail;
  }
  return ctx;
fail:
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
