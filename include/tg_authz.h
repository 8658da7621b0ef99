/*
 * tg_authz: the per-call decision point. The relay asks once the request
 * headers are complete and, when the answer is TG_AUTHZ_NEED_MESSAGE, again
 * once the first gRPC message has arrived (or the request ended without
 * one). Until the answer is ALLOW nothing of the call reaches the upstream.
 *
 * Pure with respect to I/O: decisions are computed from the call and the
 * (read-only, shared) configuration only.
 */
#ifndef TG_AUTHZ_H
#define TG_AUTHZ_H
#include <openssl/ssl.h>
#include <stddef.h>
#include <stdint.h>

#include "tg_claims.h"
#include "tg_config.h"
#include "tg_hdrs.h"

typedef enum tg_authz_result {
  TG_AUTHZ_ALLOW,
  TG_AUTHZ_DENY,         /* answer locally with verdict->grpc_status */
  TG_AUTHZ_NEED_MESSAGE, /* ask again with the first message */
} tg_authz_result;

typedef struct tg_call_info {
  const tg_hdrs *headers;
  /* ":path", e.g. /temporal.api.workflowservice.v1.WorkflowService/Start... */
  const char *path;
  size_t path_len;
  const uint8_t *msg; /* first message payload (without the 5-byte prefix) */
  size_t msg_len;
  int msg_compressed;
  int have_msg;            /* 0 on the first (headers-only) ask */
  SSL *ssl;                /* downstream TLS connection, NULL for h2c */
  const tg_claims *claims; /* the authenticated caller's claims */
} tg_call_info;

typedef struct tg_verdict {
  int grpc_status;     /* for DENY */
  const char *message; /* static string, for DENY */
} tg_verdict;

tg_authz_result tg_authz_decide(const tg_config *cfg, const tg_call_info *call,
                                tg_verdict *v);
#endif
