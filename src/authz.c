#include "tg_authz.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "tg_decompress.h"
#include "tg_grpc.h"
#include "tg_methods.h"
#include "tg_pb.h"
#include "tg_policy.h"

#define MAX_COMMAND_NAMESPACES 64

struct tg_authz {
  const tg_config *cfg;
  tg_policy *policy; /* NULL when mode is off */
};

tg_authz *tg_authz_new(const tg_config *cfg, char *err, size_t errlen) {
  tg_authz *a = calloc(1, sizeof *a);
  if (!a) {
    snprintf(err, errlen, "out of memory");
    return NULL;
  }
  a->cfg = cfg;
  if (cfg->authz_mode != TG_AUTHZ_OFF &&
      !(a->policy = tg_policy_new(cfg, err, errlen))) {
    free(a);
    return NULL;
  }
  return a;
}

void tg_authz_free(tg_authz *a) {
  if (!a)
    return;
  tg_policy_free(a->policy);
  free(a);
}

static tg_authz_result deny(tg_verdict *v, int status, const char *client_msg,
                            const char *reason) {
  v->grpc_status = status;
  v->message = client_msg;
  if (reason != v->reason)
    snprintf(v->reason, sizeof v->reason, "%s", reason);
  return TG_AUTHZ_DENY;
}

/* A policy denial: Temporal's message unless reasons are exposed; shadow
 * mode turns it into an allow that is logged. */
static tg_authz_result policy_deny(const tg_authz *a, tg_verdict *v,
                                   const char *reason) {
  if (v->reason != reason)
    snprintf(v->reason, sizeof v->reason, "%s", reason);
  if (a->cfg->authz_mode == TG_AUTHZ_SHADOW) {
    v->shadow_denied = 1;
    return TG_AUTHZ_ALLOW;
  }
  v->grpc_status = TG_GRPC_PERMISSION_DENIED;
  v->message = a->cfg->expose_reasons ? v->reason : "Request unauthorized.";
  return TG_AUTHZ_DENY;
}

typedef struct cmd_scan {
  const uint8_t *ns;
  size_t nslen;
  tg_slice found[MAX_COMMAND_NAMESPACES];
  size_t n;
  int overflow;
} cmd_scan;

static int scan_command(const uint8_t *p, size_t len, void *arg) {
  cmd_scan *s = arg;
  for (size_t i = 0; i < tg_command_namespaces_len; i++) {
    tg_field_path path = {.len = 2,
                          .f = {tg_command_namespaces[i].attr_field,
                                tg_command_namespaces[i].ns_field}};
    tg_slice ns;
    int rv = tg_pb_get_string(p, len, &path, &ns);
    if (rv < 0)
      return rv;
    /* A command naming no namespace acts on the task's own namespace. */
    if (rv == 0 || ns.len == 0 ||
        (ns.len == s->nslen && memcmp(ns.p, s->ns, ns.len) == 0))
      continue;
    /* Each namespace is one target, however many commands name it. */
    size_t k = 0;
    while (k < s->n && !(s->found[k].len == ns.len &&
                         memcmp(s->found[k].p, ns.p, ns.len) == 0))
      k++;
    if (k < s->n)
      continue;
    if (s->n == MAX_COMMAND_NAMESPACES) {
      s->overflow = 1;
      return 1;
    }
    s->found[s->n++] = ns;
  }
  return 0;
}

static int is_identity(const char *enc, size_t len) {
  return len == 8 && memcmp(enc, "identity", 8) == 0;
}

/* The policy's verdict, as the caller's. */
static tg_authz_result judge(const tg_authz *a, const tg_call_info *call,
                             tg_authz_request *rq, tg_verdict *v) {
  tg_authz_verdict pv;
  rq->terse_allow = call->terse_allow;
  tg_policy_decide(a->policy, rq, &pv, NULL, NULL);
  _Static_assert(sizeof v->reason == sizeof pv.reason, "reason sizes");
  if (pv.allow && rq->terse_allow)
    memcpy(v->reason, TG_POLICY_TERSE_ALLOW, sizeof TG_POLICY_TERSE_ALLOW);
  else
    strcpy(v->reason, pv.reason);
  return pv.allow ? TG_AUTHZ_ALLOW : policy_deny(a, v, v->reason);
}

/* The headers the decision reads, found in one pass. */
typedef struct call_hdrs {
  const char *enc, *ns; /* grpc-encoding, temporal-namespace: the first */
  size_t enc_len, ns_len;
  int nenc, nns;
} call_hdrs;

static void read_hdrs(const tg_hdrs *h, call_hdrs *out) {
  memset(out, 0, sizeof *out);
  for (size_t i = 0; i < h->n; i++) {
    const tg_hdr_ent *e = &h->ents[i];
    const char *name = h->arena + e->name_off;
    const char *val = h->arena + e->value_off;
    if (e->name_len == 13 && memcmp(name, "grpc-encoding", 13) == 0) {
      if (!out->nenc++) {
        out->enc = val;
        out->enc_len = e->value_len;
      }
    } else if (e->name_len == 18 &&
               memcmp(name, "temporal-namespace", 18) == 0) {
      if (!out->nns++) {
        out->ns = val;
        out->ns_len = e->value_len;
      }
    }
  }
}

/* The namespace, as a C string for logs: as "%.*s" would print it, cut to
 * the buffer. */
static void copy_ns(tg_verdict *v, const tg_slice *ns) {
  size_t n = ns->len < sizeof v->ns - 1 ? ns->len : sizeof v->ns - 1;
  n = n ? strnlen((const char *)ns->p, n) : 0;
  if (n)
    memcpy(v->ns, ns->p, n);
  v->ns[n] = '\0';
}

/* The distinct values found at a method's places, up to TG_NAMES_MAX. */
typedef struct names_acc {
  tg_slice v[TG_NAMES_MAX];
  size_t n;
  int overflow;
} names_acc;

static void names_add(names_acc *a, const uint8_t *p, size_t len) {
  for (size_t i = 0; i < a->n; i++)
    if (a->v[i].len == len && (len == 0 || memcmp(a->v[i].p, p, len) == 0))
      return;
  if (a->n == TG_NAMES_MAX) {
    a->overflow = 1;
    return;
  }
  a->v[a->n].p = p;
  a->v[a->n].len = len;
  a->n++;
}

/* One place being read: pl, whose steps before from are behind us. */
typedef struct place_walk {
  const tg_name_place *pl;
  unsigned from;
  names_acc *acc;
} place_walk;

/* The value of the place inside buf, where its remaining steps are singular
 * (the last occurrence wins, as tg_pb merges): a string; a WorkflowType's
 * name; a TaskQueue's name, or for kind STICKY its non-empty normal_name
 * (a sticky queue carries a per-worker name; the queue it belongs to is
 * what rules match; a client cannot choose normal_name for any other
 * kind). Adds it when present. 0, or -1 malformed. */
static int place_value(const uint8_t *buf, size_t len, void *arg) {
  const place_walk *w = arg;
  const tg_name_place *pl = w->pl;
  tg_field_path p = {.len = 0};
  tg_slice v;
  int rv;
  for (unsigned i = w->from; i < pl->len; i++)
    p.f[p.len++] = pl->f[i];
  if (pl->leaf == TG_PLACE_STRING && p.len == 0) {
    names_add(w->acc, buf, len); /* a repeated string's element */
    return 0;
  }
  if (pl->leaf != TG_PLACE_STRING)
    p.f[p.len++] = pl->leaf == TG_PLACE_TASK_QUEUE ? TG_TASK_QUEUE_NAME
                                                   : TG_WORKFLOW_TYPE_NAME;
  rv = tg_pb_get_string(buf, len, &p, &v);
  if (rv <= 0)
    return rv;
  if (pl->leaf == TG_PLACE_TASK_QUEUE) {
    uint64_t kind = 0;
    tg_slice normal;
    p.f[p.len - 1] = TG_TASK_QUEUE_KIND;
    rv = tg_pb_get_varint(buf, len, &p, &kind);
    if (rv < 0)
      return rv;
    if (rv == 1 && kind == TG_TASK_QUEUE_KIND_STICKY) {
      p.f[p.len - 1] = TG_TASK_QUEUE_NORMAL_NAME;
      rv = tg_pb_get_string(buf, len, &p, &normal);
      if (rv < 0)
        return rv;
      if (rv == 1 && normal.len)
        v = normal;
    }
  }
  names_add(w->acc, v.p, v.len);
  return 0;
}

/* Adds the values at every place of pls to acc: every element of a
 * repeated step counts; below the last repeated step, the last occurrence
 * wins. 0, or -1 malformed. */
static int collect_names(const uint8_t *body, size_t blen,
                         const tg_name_place *pls, size_t n, names_acc *acc) {
  for (size_t i = 0; i < n; i++) {
    const tg_name_place *pl = &pls[i];
    unsigned rep = 0; /* steps up to the last repeated one */
    for (unsigned k = 0; k < pl->len; k++)
      if (pl->repeated & (1u << k))
        rep = k + 1;
    place_walk w = {.pl = pl, .from = rep, .acc = acc};
    int rv =
        rep ? tg_pb_foreach_path(body, blen, pl->f, rep,
                                 pl->leaf == TG_PLACE_STRING && rep == pl->len,
                                 place_value, &w)
            : place_value(body, blen, &w);
    if (rv < 0)
      return -1;
  }
  return 0;
}

/* Reads what the policy needs from the (decompressed) first message. */
static tg_authz_result inspect(const tg_authz *a, const tg_call_info *call,
                               const call_hdrs *ch, const tg_method *m,
                               const uint8_t *body, size_t blen,
                               tg_verdict *v) {
  tg_authz_request rq;
  memset(&rq, 0, sizeof rq);
  rq.method = m;
  rq.path = call->path;
  rq.path_len = call->path_len;
  rq.claims = call->claims;
  /* Finding the namespace walks every top-level field (tg_pb.h), so it
   * validates what tg_pb_validate does: that runs alone only without a
   * namespace to find, or to tell which reason a failure gets. */
  int rv = m->ns.len ? tg_pb_get_string(body, blen, &m->ns, &rq.ns) : 0;
  if ((rv < 0 || !m->ns.len) && tg_pb_validate(body, blen) < 0)
    return deny(v, TG_GRPC_INVALID_ARGUMENT, "malformed request message",
                "malformed protobuf in the request message");
  if (rv < 0)
    return deny(v, TG_GRPC_INVALID_ARGUMENT, "malformed request message",
                "malformed namespace field");
  copy_ns(v, &rq.ns);
  size_t hlen = ch->ns_len;
  const char *hns = ch->ns;
  if (hns && m->ns.len &&
      (hlen != rq.ns.len || memcmp(hns, rq.ns.p, hlen) != 0)) {
    snprintf(v->reason, sizeof v->reason,
             "denied: temporal-namespace header '%.*s' differs from the "
             "request's namespace '%.*s'",
             (int)(hlen > 64 ? 64 : hlen), hns,
             (int)(rq.ns.len > 64 ? 64 : rq.ns.len), (const char *)rq.ns.p);
    return policy_deny(a, v, v->reason);
  }
  names_acc tqs, wts; /* v[] is read only up to n */
  tqs.n = wts.n = 0;
  tqs.overflow = wts.overflow = 0;
  if (collect_names(body, blen, m->task_queues, m->ntask_queues, &tqs) < 0)
    return deny(v, TG_GRPC_INVALID_ARGUMENT, "malformed request message",
                "malformed task queue field");
  if (collect_names(body, blen, m->workflow_types, m->nworkflow_types, &wts) <
      0)
    return deny(v, TG_GRPC_INVALID_ARGUMENT, "malformed request message",
                "malformed workflow type field");
  rq.task_queues = (tg_names){tqs.v, tqs.n, tqs.overflow};
  rq.workflow_types = (tg_names){wts.v, wts.n, wts.overflow};
  cmd_scan scan; /* found[] is read only up to n */
  if (m->inspect_commands) {
    scan.ns = rq.ns.p;
    scan.nslen = rq.ns.len;
    scan.n = 0;
    scan.overflow = 0;
    rv = tg_pb_foreach(body, blen, tg_commands_field, scan_command, &scan);
    if (rv < 0)
      return deny(v, TG_GRPC_INVALID_ARGUMENT, "malformed request message",
                  "malformed command in the request message");
    if (scan.overflow)
      return policy_deny(a, v, "denied: commands name too many namespaces");
    rq.extra_ns = scan.found;
    rq.nextra_ns = scan.n;
  }
  return judge(a, call, &rq, v);
}

tg_authz_result tg_authz_decide(const tg_authz *a, const tg_call_info *call,
                                tg_verdict *v) {
  const tg_config *cfg = a->cfg;
  v->shadow_denied = 0;
  v->reason[0] = '\0';
  v->ns[0] = '\0';
  if (cfg->authz_mode == TG_AUTHZ_OFF)
    return TG_AUTHZ_ALLOW;

  const tg_method *m = tg_method_find(call->path, call->path_len);
  if (!m || m->always_allowed) {
    tg_authz_request rq;
    memset(&rq, 0, sizeof rq);
    rq.method = m;
    rq.path = call->path;
    rq.path_len = call->path_len;
    rq.claims = call->claims;
    return judge(a, call, &rq, v);
  }
  call_hdrs ch;
  read_hdrs(call->headers, &ch);
  /* The frontend may read either copy of a repeated header; tgate does not
   * guess which. */
  if (ch.nenc > 1 || ch.nns > 1)
    return deny(v, TG_GRPC_INVALID_ARGUMENT,
                "repeated grpc-encoding or temporal-namespace header",
                "repeated grpc-encoding or temporal-namespace header");
  size_t elen = ch.enc_len;
  const char *enc = ch.enc;
  if (enc && !tg_decompress_supported(enc, elen)) {
    snprintf(v->reason, sizeof v->reason,
             "grpc-encoding '%.*s' is not supported (gzip, deflate, identity)",
             (int)(elen > 32 ? 32 : elen), enc);
    return deny(v, TG_GRPC_UNIMPLEMENTED, v->reason, v->reason);
  }
  if (!call->have_msg)
    return TG_AUTHZ_NEED_MESSAGE;
  if (!call->msg)
    return deny(v, TG_GRPC_INVALID_ARGUMENT, "missing request message",
                "the request ended without a message");
  if (call->body_extra)
    return deny(v, TG_GRPC_INVALID_ARGUMENT,
                "more than one request message on a unary call",
                "more than one request message on a unary call");
  if (!call->msg_compressed)
    return inspect(a, call, &ch, m, call->msg, call->msg_len, v);
  if (!enc || is_identity(enc, elen))
    return deny(v, TG_GRPC_INVALID_ARGUMENT,
                "compressed message without grpc-encoding",
                "compressed message without grpc-encoding");
  uint8_t *body = NULL;
  size_t blen = 0;
  int rv = tg_decompress(enc, elen, call->msg, call->msg_len,
                         cfg->max_message_bytes, &body, &blen);
  if (rv == TG_DECOMP_ERR_TOO_BIG)
    return deny(v, TG_GRPC_RESOURCE_EXHAUSTED,
                "decompressed message larger than the limit",
                "decompressed message larger than max_message_bytes");
  if (rv == TG_DECOMP_ERR_NOMEM)
    return deny(v, TG_GRPC_UNAVAILABLE, "out of memory", "out of memory");
  if (rv != 0)
    return deny(v, TG_GRPC_INVALID_ARGUMENT, "corrupt compressed message",
                "corrupt compressed message");
  tg_authz_result r = inspect(a, call, &ch, m, body, blen, v);
  free(body);
  return r;
}
