#!/usr/bin/env bash
# Development certificates for tgate (NOT for production).
#
# Usage: certs-dev/gen.sh [--force] [OUTDIR]
#   OUTDIR defaults to the directory this script lives in.
#   Without --force, a cert/key pair is generated only when one of its files
#   is missing, or the cert expires within a day, or it no longer verifies
#   against its CA (so a regenerated CA re-issues everything it signs).
#
# Creates (EC P-256 keys, SHA-256, validity <= 825 days):
#   ca.pem/ca.key                     dev CA, CN "tgate dev CA"
#   server.pem/server.key             CN localhost, SAN DNS:localhost, IP:127.0.0.1, IP:::1
#   worker-a.pem/worker-a.key         CN=worker-a, O=team-a, SAN URI:spiffe://tgate.dev/ns/team-a/worker-a
#   worker-b.pem/worker-b.key         CN=worker-b, O=team-b, SAN URI:spiffe://tgate.dev/ns/team-b/worker-b
#   gateway-client.pem/.key           CN=tgate-gateway (tgate's client cert towards an mTLS upstream)
#   other-ca.pem/.key                 an unrelated second CA
#   other-client.pem/.key             client cert signed by other-ca (must be refused)
#   expired-client.pem/.key           client cert from the dev CA, already expired
# Only the openssl CLI is used. Temporary files live in a mktemp dir.
set -euo pipefail

FORCE=0
OUTDIR=""
for arg in "$@"; do
  case "$arg" in
    --force|-f) FORCE=1 ;;
    -h|--help) awk 'NR > 1 && /^#/ { sub(/^# ?/, ""); print; next } NR > 1 { exit }' "$0"; exit 0 ;;
    -*) echo "gen.sh: unknown option: $arg" >&2; exit 2 ;;
    *) if [ -n "$OUTDIR" ]; then echo "gen.sh: only one OUTDIR allowed" >&2; exit 2; fi
       OUTDIR="$arg" ;;
  esac
done
if [ -z "$OUTDIR" ]; then
  OUTDIR="$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)"
fi
mkdir -p "$OUTDIR"
OUTDIR="$(cd "$OUTDIR" && pwd)"

command -v openssl >/dev/null || { echo "gen.sh: openssl not found" >&2; exit 1; }

TMP="$(mktemp -d "${TMPDIR:-/tmp}/tgate-certs.XXXXXX")"
trap 'rm -rf "$TMP"' EXIT
umask 077

DAYS=825
CA_DAYS=825

need() { # need NAME [ISSUER] -> true if NAME must be (re)generated
  local n="$1" issuer="${2:-}"
  [ "$FORCE" = 1 ] && return 0
  [ -s "$OUTDIR/$n.pem" ] && [ -s "$OUTDIR/$n.key" ] || return 0
  # Not parseable, or expiring within a day: regenerate.
  openssl x509 -noout -checkend 86400 -in "$OUTDIR/$n.pem" >/dev/null 2>&1 || return 0
  # No longer chains to its (possibly regenerated) issuer: regenerate.
  if [ -n "$issuer" ]; then
    openssl verify -CAfile "$OUTDIR/$issuer.pem" "$OUTDIR/$n.pem" >/dev/null 2>&1 || return 0
  fi
  return 1
}

need_expired() { # like need, for the deliberately expired cert
  local n="$1" issuer="$2"
  [ "$FORCE" = 1 ] && return 0
  [ -s "$OUTDIR/$n.pem" ] && [ -s "$OUTDIR/$n.key" ] || return 0
  # Must be signed by the current issuer (only the dates may fail).
  openssl verify -no_check_time -CAfile "$OUTDIR/$issuer.pem" "$OUTDIR/$n.pem" >/dev/null 2>&1 || return 0
  openssl x509 -noout -checkend 0 -in "$OUTDIR/$n.pem" >/dev/null 2>&1 && return 0
  return 1
}

newkey() { # newkey FILE
  openssl genpkey -algorithm EC -pkeyopt ec_paramgen_curve:P-256 \
    -pkeyopt ec_param_enc:named_curve -out "$1" 2>/dev/null
  chmod 0600 "$1"
}

install_pair() { # install_pair NAME  (moves $TMP/NAME.{pem,key} into OUTDIR)
  local n="$1"
  install -m 0644 "$TMP/$n.pem" "$OUTDIR/$n.pem"
  install -m 0600 "$TMP/$n.key" "$OUTDIR/$n.key"
  chmod 0600 "$OUTDIR/$n.key"
  echo "created $OUTDIR/$n.pem"
  echo "created $OUTDIR/$n.key"
}

make_ca() { # make_ca NAME CN
  local n="$1" cn="$2"
  newkey "$TMP/$n.key"
  cat >"$TMP/$n.cnf" <<EOF
[req]
distinguished_name = dn
prompt = no
x509_extensions = v3_ca
[dn]
O = tgate dev
CN = $cn
[v3_ca]
basicConstraints = critical, CA:TRUE, pathlen:0
keyUsage = critical, keyCertSign, cRLSign, digitalSignature
subjectKeyIdentifier = hash
authorityKeyIdentifier = keyid:always
EOF
  openssl req -new -x509 -sha256 -days "$CA_DAYS" -key "$TMP/$n.key" \
    -config "$TMP/$n.cnf" -set_serial "0x$(openssl rand -hex 16)" \
    -out "$TMP/$n.pem" 2>/dev/null
  install_pair "$n"
}

# issue NAME CA SUBJECT EKU SAN
#   SUBJECT like "/O=team-a/CN=worker-a"; SAN may be empty.
issue() {
  local n="$1" ca="$2" subj="$3" eku="$4" san="$5"
  newkey "$TMP/$n.key"
  openssl req -new -sha256 -key "$TMP/$n.key" -subj "$subj" -out "$TMP/$n.csr" 2>/dev/null
  {
    echo "basicConstraints = critical, CA:FALSE"
    echo "keyUsage = critical, digitalSignature"
    echo "extendedKeyUsage = $eku"
    echo "subjectKeyIdentifier = hash"
    echo "authorityKeyIdentifier = keyid, issuer"
    if [ -n "$san" ]; then echo "subjectAltName = $san"; fi
  } >"$TMP/$n.ext.cnf"
  openssl x509 -req -sha256 -days "$DAYS" -in "$TMP/$n.csr" \
    -CA "$OUTDIR/$ca.pem" -CAkey "$OUTDIR/$ca.key" \
    -set_serial "0x$(openssl rand -hex 16)" \
    -extfile "$TMP/$n.ext.cnf" -out "$TMP/$n.pem" 2>/dev/null
  install_pair "$n"
}

# An already-expired certificate. `openssl x509 -req` in OpenSSL 3.0 cannot
# set explicit dates, but `openssl ca` accepts -startdate/-enddate.
issue_expired() { # issue_expired NAME CA SUBJECT
  local n="$1" ca="$2" subj="$3" d="$TMP/ca-db"
  mkdir -p "$d/new"
  : >"$d/index.txt"
  openssl rand -hex 16 >"$d/serial"
  newkey "$TMP/$n.key"
  openssl req -new -sha256 -key "$TMP/$n.key" -subj "$subj" -out "$TMP/$n.csr" 2>/dev/null
  cat >"$TMP/expired-ca.cnf" <<EOF
[ca]
default_ca = dev
[dev]
dir = $d
database = $d/index.txt
new_certs_dir = $d/new
serial = $d/serial
certificate = $OUTDIR/$ca.pem
private_key = $OUTDIR/$ca.key
default_md = sha256
policy = any
unique_subject = no
copy_extensions = none
email_in_dn = no
x509_extensions = ext
[any]
organizationName = optional
commonName = supplied
[ext]
basicConstraints = critical, CA:FALSE
keyUsage = critical, digitalSignature
extendedKeyUsage = clientAuth
subjectKeyIdentifier = hash
authorityKeyIdentifier = keyid, issuer
EOF
  # Valid for 30 days, ended ~1 year ago (dates are UTC, YYMMDDHHMMSSZ).
  local start end
  start="$(date -u -d '-400 days' +%y%m%d%H%M%SZ)"
  end="$(date -u -d '-370 days' +%y%m%d%H%M%SZ)"
  openssl ca -batch -notext -config "$TMP/expired-ca.cnf" \
    -startdate "$start" -enddate "$end" \
    -in "$TMP/$n.csr" -out "$TMP/$n.pem" 2>/dev/null
  install_pair "$n"
}

if need ca; then
  make_ca ca "tgate dev CA"
fi
if need server ca; then
  issue server ca "/CN=localhost" "serverAuth, clientAuth" \
    "DNS:localhost, IP:127.0.0.1, IP:::1"
fi
if need worker-a ca; then
  issue worker-a ca "/O=team-a/CN=worker-a" clientAuth \
    "URI:spiffe://tgate.dev/ns/team-a/worker-a"
fi
if need worker-b ca; then
  issue worker-b ca "/O=team-b/CN=worker-b" clientAuth \
    "URI:spiffe://tgate.dev/ns/team-b/worker-b"
fi
if need gateway-client ca; then
  issue gateway-client ca "/O=tgate/CN=tgate-gateway" clientAuth \
    "URI:spiffe://tgate.dev/gateway"
fi
if need_expired expired-client ca; then
  issue_expired expired-client ca "/O=team-a/CN=expired-client"
fi
if need other-ca; then
  make_ca other-ca "tgate other (untrusted) CA"
fi
if need other-client other-ca; then
  issue other-client other-ca "/O=team-a/CN=other-client" clientAuth \
    "URI:spiffe://tgate.dev/ns/team-a/other-client"
fi
