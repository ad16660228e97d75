#!/usr/bin/env bash
# Load run of the release webhook binary against a real control plane (tools/cluster.sh, through
# the e2e harness; see webhook/examples/loadrun.rs), run by `make bench-webhook`. Installs the load
# tool `oha` from crates.io when it is not on PATH.
# Environment: RATE (default 5000), DURATION (20s), CONNECTIONS (16), HTTP2=1 for HTTP/2.
set -euo pipefail
cd "$(dirname "$0")/../.."
CARGO=${CARGO:-cargo}
TOOLS="$PWD/target/tools"
OHA_VERSION=1.16.0
if command -v oha >/dev/null 2>&1; then
  OHA=$(command -v oha)
elif [ -x "$TOOLS/bin/oha" ]; then
  OHA="$TOOLS/bin/oha"
else
  echo "installing oha $OHA_VERSION from crates.io into $TOOLS" >&2
  "$CARGO" install oha --version "$OHA_VERSION" --locked --root "$TOOLS"
  OHA="$TOOLS/bin/oha"
fi
"$CARGO" build --release --locked -p webhook --bin portcullis-webhook --example loadrun
release="${CARGO_TARGET_DIR:-target}/release"
args=(--webhook-bin "$release/portcullis-webhook" --oha "$OHA"
      --rate "${RATE:-5000}" --duration "${DURATION:-20s}" --connections "${CONNECTIONS:-16}")
if [ "${HTTP2:-0}" = 1 ]; then args+=(--http2); fi
exec "$release/examples/loadrun" "${args[@]}"
