/*
 * tg_healthcheck: the messages of the gRPC health checking protocol
 * (grpc.health.v1.Health/Check) as tgate's upstream pool sends them to the
 * frontends, and the verdict on an answer. Pure functions over bytes: no
 * I/O, no globals; safe from any thread.
 *
 *   message HealthCheckRequest  { string service = 1; }
 *   message HealthCheckResponse { ServingStatus status = 1; }
 *   enum ServingStatus { UNKNOWN = 0; SERVING = 1; NOT_SERVING = 2;
 *                        SERVICE_UNKNOWN = 3; }
 *
 * A Temporal frontend answers for the service TG_HC_DEFAULT_SERVICE (its
 * WorkflowService: NOT_SERVING while it starts or drains) and for "" (the
 * server as a whole); other names get grpc-status NOT_FOUND (5).
 */
#ifndef TG_HEALTHCHECK_H
#define TG_HEALTHCHECK_H
#include <stddef.h>
#include <stdint.h>

#define TG_HC_PATH "/grpc.health.v1.Health/Check"
#define TG_HC_DEFAULT_SERVICE "temporal.api.workflowservice.v1.WorkflowService"
/* The longest service name (upstream.health_check.service) accepted. */
#define TG_HC_MAX_SERVICE 1024
/* Room for any request: gRPC prefix, tag, 2-byte length, the name. */
#define TG_HC_REQUEST_MAX (5 + 1 + 2 + TG_HC_MAX_SERVICE)

enum {
  TG_HC_UNKNOWN = 0,
  TG_HC_SERVING = 1,
  TG_HC_NOT_SERVING = 2,
  TG_HC_SERVICE_UNKNOWN = 3,
};

#define TG_HC_ERR_TOO_LONG -1
#define TG_HC_ERR_MALFORMED -2

/* Writes the request body for service (NUL-terminated; "" asks about the
 * whole server) into out: one uncompressed gRPC message holding a
 * HealthCheckRequest. Returns its length, or TG_HC_ERR_TOO_LONG when service
 * is longer than TG_HC_MAX_SERVICE or out (cap bytes) is too small. */
int tg_hc_encode_request(const char *service, uint8_t *out, size_t cap);

/* Reads a response body: exactly one uncompressed gRPC message holding a
 * HealthCheckResponse (an absent status is UNKNOWN, as in proto3). Returns 0
 * and *status (possibly a value this code does not name), or
 * TG_HC_ERR_MALFORMED with *err_desc set to a static reason. */
int tg_hc_parse_response(const uint8_t *body, size_t len, uint64_t *status,
                         const char **err_desc);

/* "SERVING", "NOT_SERVING", ...; "?" for a value without a name. */
const char *tg_hc_status_name(uint64_t status);

/* The verdict on one answered check: http_status is the response's :status
 * (0 when none came), grpc_status its grpc-status (-1 when none came),
 * body/len the response body. Returns 1 when the frontend is SERVING, else
 * 0 with a reason for the logs in why (NUL-terminated, cut to whylen). */
int tg_hc_verdict(int http_status, int grpc_status, const uint8_t *body,
                  size_t len, char *why, size_t whylen);
#endif
