#!/usr/bin/env bash
# Builds the control plane the tests and the demo run on — etcd, kube-apiserver,
# kube-controller-manager, kube-scheduler, kubectl, kwok and kwokctl — from this Go module, into a
# cache outside the work tree keyed by what they are built from (go.mod, go.sum, this script).
# Prints the cache's bin directory on stdout; progress goes to stderr.
#
#   tools/build.sh            build what is missing, print the bin directory
#   tools/build.sh --print    print the bin directory only (exit 1 when not built yet)
set -euo pipefail
here="$(cd "$(dirname "$0")" && pwd)"
cd "$here"

k8s_version="$(awk '$1 == "k8s.io/kubernetes" { print $2 }' go.mod)"
key="$(cat go.mod go.sum build.sh | sha256sum | cut -c1-16)"
cache="${PORTCULLIS_CACHE:-${XDG_CACHE_HOME:-$HOME/.cache}/portcullis}"
bin="$cache/k8s-$k8s_version-$key/bin"

tools=(
  "kube-apiserver k8s.io/kubernetes/cmd/kube-apiserver"
  "kube-controller-manager k8s.io/kubernetes/cmd/kube-controller-manager"
  "kube-scheduler k8s.io/kubernetes/cmd/kube-scheduler"
  "kubectl k8s.io/kubernetes/cmd/kubectl"
  "etcd go.etcd.io/etcd/server/v3"
  "kwok sigs.k8s.io/kwok/cmd/kwok"
  "kwokctl sigs.k8s.io/kwok/cmd/kwokctl"
)

missing=()
for t in "${tools[@]}"; do
  [[ -x "$bin/${t%% *}" ]] || missing+=("$t")
done
if [[ "${1:-}" == "--print" ]]; then
  [[ ${#missing[@]} -eq 0 ]] || exit 1
  echo "$bin"
  exit 0
fi
if [[ ${#missing[@]} -eq 0 ]]; then
  echo "$bin"
  exit 0
fi

# One build at a time per cache (tests start clusters in parallel); the others wait, then reuse it.
mkdir -p "$cache"
exec 9>"$cache/build.lock"
flock 9
missing=()
for t in "${tools[@]}"; do
  [[ -x "$bin/${t%% *}" ]] || missing+=("$t")
done
if [[ ${#missing[@]} -eq 0 ]]; then
  echo "$bin"
  exit 0
fi

major="${k8s_version#v}"; major="${major%%.*}"
minor="${k8s_version#v*.}"; minor="${minor%%.*}"
# kubectl and kwokctl read the stamped version; unstamped binaries call themselves v0.0.0.
stamp=""
for pkg in k8s.io/component-base/version k8s.io/client-go/pkg/version; do
  stamp+=" -X $pkg.gitVersion=$k8s_version -X $pkg.gitMajor=$major -X $pkg.gitMinor=$minor"
  stamp+=" -X $pkg.gitTreeState=clean -X $pkg.buildDate=1970-01-01T00:00:00Z"
done

# The committed go.sum pins every module: nothing is resolved anew, so no checksum database is asked.
export CGO_ENABLED=0 GOFLAGS="-mod=readonly -buildvcs=false"
command -v go >/dev/null || export PATH="$PATH:/usr/local/go/bin"
mkdir -p "$bin.partial"
i=0
for t in "${missing[@]}"; do
  i=$((i + 1))
  name="${t%% *}"; pkg="${t#* }"
  echo "==> [control plane $i/${#missing[@]}] go build $pkg (the first build on a machine takes 10-20 min)" >&2
  start=$SECONDS
  go build -trimpath -tags selinux,notest -ldflags "-s -w$stamp" -o "$bin.partial/$name" "$pkg"
  echo "    built $name in $((SECONDS - start))s" >&2
done
mkdir -p "$bin"
for t in "${missing[@]}"; do
  mv "$bin.partial/${t%% *}" "$bin/"
done
rmdir "$bin.partial" 2>/dev/null || true
echo "$bin"
