/*
 * tg_certmap: the client-certificate ClaimMapper. Rules match fields of the
 * verified leaf certificate and grant a subject and permissions.
 *
 * Fields: cn, o, ou (subject attributes; a certificate may carry several O
 * and OU), dns_san, uri_san, email_san (subjectAltName entries). A rule
 * matches when every field it names matches at least one of the
 * certificate's values for that field.
 *
 * Patterns: literal characters match themselves (case-sensitive); '*'
 * matches one or more characters other than '/'; "{name}" is a named '*'.
 * Every '*' and "{name}" is a capture, numbered from 1 in the order the
 * fields are listed above and, within a field, left to right. A name is
 * [A-Za-z_][A-Za-z0-9_]*, unique in the rule and not a field name; two
 * wildcards may not be adjacent ("**" is refused); at most 32 per pattern.
 * Where a value splits several ways, earlier captures take as much as they
 * can. Captures come from the first value of the field that matches.
 *
 * Templates (the rule's subject and each permission) substitute "{N}" and
 * "{name}" with captures; "{cn}" ... "{uri_san}" with the matched value of
 * that field (for a field the rule does not match: the certificate's first
 * value; a template naming a field the certificate lacks is not used). A
 * permission whose namespace comes from a capture or a field value (a
 * placeholder before the template's first literal ':'; with a permissions
 * regex, any placeholder) is never allowed to name the system scope (a
 * certificate must not grant itself cluster roles through a crafted SAN):
 * such a permission is skipped. An unknown placeholder is an error when the
 * rule is added.
 *
 * All matching rules contribute (roles OR-ed); the subject comes from the
 * first matching rule whose subject expands to a non-empty string (default
 * template: "{uri_san}" if the rule matched a URI SAN, else "{cn}"), and
 * only when out has none yet. Pure: no I/O; an immutable map may be shared
 * by threads.
 */
#ifndef TG_CERTMAP_H
#define TG_CERTMAP_H
#include <openssl/x509.h>
#include <stddef.h>

#include "tg_claims.h"

enum tg_cert_field {
  TG_CF_CN,
  TG_CF_O,
  TG_CF_OU,
  TG_CF_DNS_SAN,
  TG_CF_URI_SAN,
  TG_CF_EMAIL_SAN,
  TG_CF_COUNT
};

/* The values of each field of one certificate (pure input for matching). */
typedef struct tg_cert_fields {
  const char *const *values[TG_CF_COUNT];
  size_t nvalues[TG_CF_COUNT];
} tg_cert_fields;

typedef struct tg_cert_rule_conf {
  const char
      *match[TG_CF_COUNT]; /* NULL: field not matched; at least one set */
  const char *subject;     /* template; NULL: default */
  const char *const *permissions; /* templates of "namespace:role" */
  size_t npermissions;
} tg_cert_rule_conf;

typedef struct tg_certmap tg_certmap;

tg_certmap *tg_certmap_new(void);
void tg_certmap_free(tg_certmap *m); /* NULL-safe */

/* Adds a rule (copied). 0, or -1 with a reason in err (bad pattern,
 * unknown placeholder, no field, out of memory). */
int tg_certmap_add(tg_certmap *m, const tg_cert_rule_conf *conf, char *err,
                   size_t errlen);

/* Applies every matching rule to out (kind TG_CRED_CLIENT_CERT is added when
 * one matches). Returns the number of rules that matched, or
 * TG_CLAIMS_ERR_NOMEM (out may then hold part of the grants: discard it). */
int tg_certmap_apply(const tg_certmap *m, const tg_cert_fields *f,
                     const tg_perm_opts *popts, tg_claims *out);

/* Extracts the fields of cert into a heap block; *out must be freed with
 * tg_cert_fields_free(). Returns 0 or -1 (no memory). Values are UTF-8;
 * values containing NUL bytes are dropped (never matched), as are subject
 * attributes that do not decode and SAN entries with non-ASCII bytes (not
 * an IA5String). Leaves the thread's OpenSSL error queue as it was. */
int tg_cert_fields_from_x509(X509 *cert, tg_cert_fields **out);
void tg_cert_fields_free(tg_cert_fields *f);
#endif
