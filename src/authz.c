#include "tg_authz.h"

tg_authz_result tg_authz_decide(const tg_config *cfg, const tg_call_info *call,
                                tg_verdict *v) {
  (void)call;
  switch (cfg->authz_mode) {
  case TG_AUTHZ_OFF:
    return TG_AUTHZ_ALLOW;
  case TG_AUTHZ_ENFORCE:
  case TG_AUTHZ_SHADOW:
    break;
  }
  v->grpc_status = 7; /* PERMISSION_DENIED: an unknown mode never allows */
  v->message = "authorization mode not supported";
  return TG_AUTHZ_DENY;
}
