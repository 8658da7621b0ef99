/*
 * tg_tls: OpenSSL 3 contexts for the downstream listener and the upstream
 * client, built once from the configuration and shared read-only by all
 * workers (an SSL_CTX is safe to use from several threads once configured).
 *
 * Downstream: TLS 1.2 minimum, ALPN "h2" only (a client offering only other
 * protocols fails the handshake with a no_application_protocol alert; one
 * offering none is let through and refused by the HTTP/2 preface check),
 * optional client-certificate verification against client_ca_file.
 * Upstream: TLS 1.2 minimum, ALPN "h2", peer verification against ca_file or
 * the system store, optional client certificate.
 *
 * Building a context tries every file it names even after one failed, so
 * that all of their problems are reported at once.
 */
#ifndef TG_TLS_H
#define TG_TLS_H
#include <openssl/ssl.h>
#include <stddef.h>

#include "tg_config.h"

/* Receives one problem: the configuration key naming the file it is about
 * (TG_CFK_COUNT for one about no file: no memory, no system trust store),
 * and a one-line reason that starts with that key's name and includes
 * OpenSSL's ("listen.tls.key_file: cannot load private key /k.pem: ..."). */
typedef void (*tg_tls_problem_fn)(void *arg, tg_config_file_key key,
                                  const char *msg);

/* Build the listener's and the upstream client's context from conf. Each
 * problem goes to problem(arg, ...); returns the context (the caller frees
 * it with SSL_CTX_free), or NULL after at least one problem. */
SSL_CTX *tg_tls_server_ctx_new(const tg_listen_tls *conf,
                               tg_tls_problem_fn problem, void *arg);
SSL_CTX *tg_tls_client_ctx_new(const tg_upstream_tls *conf,
                               tg_tls_problem_fn problem, void *arg);

/* A client SSL for one upstream connection: SNI (for DNS names) and host or
 * IP verification set to name. NULL on failure. */
SSL *tg_tls_client_ssl_new(SSL_CTX *ctx, const char *name);

/* Describes the peer certificate subject of ssl into out ("CN=..,O=.."), or
 * "-" when there is none. */
void tg_tls_peer_subject(SSL *ssl, char *out, size_t outlen);
#endif
