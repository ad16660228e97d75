#!/usr/bin/env bash
# Renders deploy/base, deploy/metrics-only and every overlay with `kubectl kustomize` and checks
# the properties the install must have (deploy/check.py). Prints "N passed, M failed"; exits
# non-zero on failure.
set -euo pipefail
here="$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)"
command -v kubectl >/dev/null || { echo "deploy/check.sh: kubectl is needed (kustomize is built in)" >&2; exit 2; }
python3 -c 'import yaml' 2>/dev/null || { echo "deploy/check.sh: python3 with PyYAML is needed" >&2; exit 2; }
if [ ! -f "$here/crds/kustomization.yaml" ]; then
  echo "deploy/check.sh: deploy/crds/kustomization.yaml is missing; the base includes the CRDs as ../crds" >&2
  echo "  (it lists every crds/*.yaml; see deploy/README.md)" >&2
  echo "0 passed, 1 failed"
  exit 1
fi
out="$(mktemp -d)"
trap 'rm -rf "$out"' EXIT
targets=(base metrics-only)
for dir in "$here"/overlays/*/; do targets+=("overlays/$(basename "$dir")"); done
for t in "${targets[@]}"; do
  if ! kubectl kustomize "$here/$t" >"$out/$(echo "$t" | tr / _).yaml" 2>"$out/err"; then
    echo "FAIL $t: kubectl kustomize failed:" >&2
    cat "$out/err" >&2
    echo "0 passed, 1 failed"
    exit 1
  fi
done
args=()
for t in "${targets[@]}"; do args+=("$t=$out/$(echo "$t" | tr / _).yaml"); done
exec python3 "$here/check.py" --crds "$here/crds" "${args[@]}"
