/*
 * tg_authz: the per-call authorization decision point, between the relay
 * and the policy. The relay asks once the request headers are complete and,
 * when the answer is TG_AUTHZ_NEED_MESSAGE, again once the first gRPC
 * message has arrived (or the request ended without one). Until the answer
 * is ALLOW nothing of the call reaches the upstream.
 *
 * What it reads from the call, with the same care as the frontend would:
 * - the method from :path, exactly (no case folding or normalisation: a
 *   path that is not byte-for-byte a known method is unknown and denied);
 * - the first message, decompressed per grpc-encoding (gzip, deflate,
 *   identity; another encoding: UNIMPLEMENTED naming it) within
 *   max_message_bytes (beyond: RESOURCE_EXHAUSTED); then the namespace, task
 *   queue and workflow type at the method's fields (tg_pb: last occurrence
 *   wins, malformed: INVALID_ARGUMENT), and for RespondWorkflowTaskCompleted
 *   every namespace its commands name;
 * - a temporal-namespace header that differs from the body's namespace is
 *   denied; so is a unary call carrying more than one message, or none.
 * Denials answer PERMISSION_DENIED "Request unauthorized." (Temporal's
 * message) unless expose_reasons; the reason is always logged. In shadow
 * mode a would-be denial is logged and the call allowed.
 *
 * tg_authz is built once and shared read-only by all workers.
 */
#ifndef TG_AUTHZ_H
#define TG_AUTHZ_H
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
  size_t body_extra;       /* request bytes received after the first message */
  const tg_claims *claims; /* the authenticated caller's claims */
  /* 1: nobody will read the reason of an ALLOW (no access log, no debug
   * log, no audit of allows): the verdict's reason is then just "allowed"
   * and costs no formatting. Denials, shadow mode's would-be denials
   * included, always carry the full reason. 0 (a zeroed struct): full
   * reasons for every verdict. */
  int terse_allow;
} tg_call_info;

typedef struct tg_verdict {
  int grpc_status;     /* for DENY */
  const char *message; /* for DENY: what the client is told */
  char reason[256];    /* what the log says (allow or deny) */
  int shadow_denied;   /* ALLOW only because the mode is shadow */
  char ns[128];        /* the namespace read from the request, for logs */
} tg_verdict;

typedef struct tg_authz tg_authz;

/* NULL with a reason when the policy does not compile. */
tg_authz *tg_authz_new(const tg_config *cfg, char *err, size_t errlen);
void tg_authz_free(tg_authz *a); /* NULL-safe */

tg_authz_result tg_authz_decide(const tg_authz *a, const tg_call_info *call,
                                tg_verdict *v);
#endif
