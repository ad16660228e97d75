#!/usr/bin/env bash
# Renders the chart charts/portcullis with `helm template` for the default values and for each
# documented value set (charts/portcullis/ci/*-values.yaml), lints it, and checks the properties
# every render must have (deploy/check.py), the static manifest deploy/portcullis.yaml included.
# Prints "N passed, M failed"; exits non-zero on failure. Needs helm (HELM or PATH) and PyYAML.
set -euo pipefail
here="$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)"
chart="$here/../charts/portcullis"
helm="${HELM:-helm}"
command -v "$helm" >/dev/null || { echo "deploy/check.sh: helm is needed (tools/release/build.sh builds it)" >&2; exit 2; }
python3 -c 'import yaml' 2>/dev/null || { echo "deploy/check.sh: python3 with PyYAML is needed" >&2; exit 2; }
out="$(mktemp -d)"
trap 'rm -rf "$out"' EXIT
"$helm" lint --strict --quiet "$chart" >"$out/lint" 2>&1 || { cat "$out/lint" >&2; echo "0 passed, 1 failed"; exit 1; }
args=("static=$here/portcullis.yaml")
"$helm" template portcullis "$chart" -n portcullis-system >"$out/default.yaml"
args+=("default=$out/default.yaml")
for f in "$chart"/ci/*-values.yaml; do
  name="$(basename "$f" -values.yaml)"
  if ! "$helm" template portcullis "$chart" -n portcullis-system -f "$f" >"$out/$name.yaml" 2>"$out/err"; then
    echo "FAIL $name: helm template failed:" >&2
    cat "$out/err" >&2
    echo "0 passed, 1 failed"
    exit 1
  fi
  args+=("$name=$out/$name.yaml")
done
exec python3 "$here/check.py" --chart "$chart" "${args[@]}"
