#!/usr/bin/env bash
# README's first command: installs what is needed, builds tgate, makes the
# development certificates (certs-dev/), starts the development Temporal
# frontend on 127.0.0.1:7234 when nothing listens there, and runs tgate with
# config/dev.yaml in the foreground (Ctrl-C stops both).
set -euo pipefail
cd "$(dirname "$0")/.."
scripts/install-deps.sh
[ -x .tools/node/bin/node ] && export PATH="$PWD/.tools/node/bin:$PATH"
make -s
certs-dev/gen.sh

fe_pid=""
if ! (exec 3<>/dev/tcp/127.0.0.1/7234) 2>/dev/null; then
  echo "dev-run: nothing listens on 127.0.0.1:7234; starting the development frontend there"
  node tests/frontend/frontend.js --listen 127.0.0.1:7234 --log &
  fe_pid=$!
  trap '[ -n "$fe_pid" ] && kill "$fe_pid" 2>/dev/null; wait' EXIT
fi
cat <<'MSG'
dev-run: tgate listens on 127.0.0.1:7233 (mTLS; client certs from certs-dev/),
         health on http://127.0.0.1:9233/health/ready.
         Try it from another terminal:  node scripts/dev-client.js
MSG
build/tgate -c config/dev.yaml
