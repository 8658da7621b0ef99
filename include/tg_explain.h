/*
 * tg_explain: `tgate explain`, the policy debugger. It maps the given
 * credential (a JWT, an API key, or a client certificate) to claims exactly
 * as a live call would (JWT keys are loaded from the configured sources
 * first), then runs the authorization policy on the given method,
 * namespace, task queues and workflow types and prints every step: the
 * claims, the built-in Authorizer's answer, each rule considered, and the
 * decision with its reason. No traffic is sent.
 *
 *   tgate explain -c FILE --method M [--namespace N] [--task-queue Q]...
 *                 [--workflow-type W]... [--token T | --api-key K | --cert PEM]
 *
 * M may be the full path, "Service/Method", or the bare method name (for
 * AdminService, any "AdminService/Method"). The request is the one a live
 * call would make: a --namespace for a method whose request has none
 * (cluster scope), or a --task-queue (--workflow-type) for one whose
 * request cannot name any, is ignored with a note; several --task-queue
 * are the several values one request names.
 * Exit status: 0 allowed, 1 denied, 2 usage or configuration error.
 */
#ifndef TG_EXPLAIN_H
#define TG_EXPLAIN_H

int tg_explain_main(int argc, char **argv);
#endif
