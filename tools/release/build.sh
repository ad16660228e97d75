#!/usr/bin/env bash
# Builds the release tools — helm (the chart's tests and `helm template` renders) and crane (the
# daemonless image build of `make images`) — from this Go module, into a cache outside the work
# tree keyed by what they are built from (go.mod, go.sum, this script). Prints the cache's bin
# directory on stdout; progress goes to stderr.
#
#   tools/release/build.sh            build what is missing, print the bin directory
#   tools/release/build.sh --print    print the bin directory only (exit 1 when not built yet)
set -euo pipefail
here="$(cd "$(dirname "$0")" && pwd)"
cd "$here"

helm_version="$(awk '$1 == "helm.sh/helm/v4" { print $2 }' go.mod)"
key="$(cat go.mod go.sum build.sh | sha256sum | cut -c1-16)"
cache="${PORTCULLIS_CACHE:-${XDG_CACHE_HOME:-$HOME/.cache}/portcullis}"
bin="$cache/release-tools-$key/bin"

tools=(
  "helm helm.sh/helm/v4/cmd/helm"
  "crane github.com/google/go-containerregistry/cmd/crane"
)

built() {
  local t
  for t in "${tools[@]}"; do [[ -x "$bin/${t%% *}" ]] || return 1; done
}
if [[ "${1:-}" == "--print" ]]; then
  built || exit 1
  echo "$bin"
  exit 0
fi
if built; then
  echo "$bin"
  exit 0
fi

# One build at a time per cache (tests run in parallel); the others wait, then reuse it.
mkdir -p "$cache"
exec 9>"$cache/release-tools.lock"
flock 9
if built; then
  echo "$bin"
  exit 0
fi

# The committed go.sum pins every module: nothing is resolved anew.
export CGO_ENABLED=0 GOFLAGS="-mod=readonly -buildvcs=false"
command -v go >/dev/null || export PATH="$PATH:/usr/local/go/bin"
# `helm version` reads the stamped version; unstamped it reports only major.minor.
stamp="-X helm.sh/helm/v4/internal/version.version=$helm_version"
mkdir -p "$bin.partial"
i=0
for t in "${tools[@]}"; do
  i=$((i + 1))
  name="${t%% *}"; pkg="${t#* }"
  echo "==> [release tools $i/${#tools[@]}] go build $pkg (about 2 min the first time on a machine)" >&2
  start=$SECONDS
  go build -trimpath -ldflags "-s -w $stamp" -o "$bin.partial/$name" "$pkg"
  echo "    built $name in $((SECONDS - start))s" >&2
done
mkdir -p "$bin"
for t in "${tools[@]}"; do
  mv "$bin.partial/${t%% *}" "$bin/"
done
rmdir "$bin.partial" 2>/dev/null || true
echo "$bin"
