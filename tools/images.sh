#!/usr/bin/env bash
# Container images without a container engine (`make images`, `make images-check`): for each of
# portcullis-webhook, -gate, -metrics and -certs, one layer made by tools/images.py from the built
# binary (the binary, the libraries `ldd` resolves, Debian's CA certificates, passwd/group with the
# nonroot user 65532, /tmp) appended with crane onto an empty OCI base, then the config set with
# `crane mutate` as the Dockerfile's stage has it (user 65532:65532, entrypoint, working directory,
# exposed ports, OCI labels). crane edits images in a registry, so a private in-memory one
# (`crane registry serve` on 127.0.0.1) holds them while they are made; it stops with the script.
#
#   tools/images.sh build PROFILE OUTDIR   binaries from ${CARGO_TARGET_DIR:-target}/PROFILE (built
#                                          before), archives OUTDIR/<name>.tar tagged
#                                          ghcr.io/portcullis/<name>:<crate version>
#   tools/images.sh check OUTDIR PROFILE   unpack each archive and run its entrypoint with --version
#                                          in the unpacked root as 65532, read-write and read-only
#                                          (needs root: chroot, unshare -m); every portcullis-*
#                                          binary of PROFILE prints "<name> <version>" for --version
#
# Each archive is an OCI image layout in a tar that also carries docker's manifest.json:
# `crane push OUTDIR/<name>.tar REF`, `docker load -i`, `podman load -i`, `skopeo copy
# oci-archive:…`, `ctr images import` and `kind load image-archive` read it.
set -euo pipefail
cd "$(dirname "$0")/.."

names=(portcullis-webhook portcullis-gate portcullis-metrics portcullis-certs)
source_url=https://github.com/portcullis/portcullis

usage() { sed -n '10,17p' "$0" | sed 's/^# \{0,1\}//' >&2; exit 2; }

# Every binary of the workspace and the version of the crate that builds it.
declare -A versions
while read -r bin version; do versions[$bin]=$version; done < <(
  cargo metadata --no-deps --format-version 1 --locked --offline | python3 -c '
import json, sys
for p in json.load(sys.stdin)["packages"]:
    for t in p["targets"]:
        if "bin" in t["kind"]:
            print(t["name"], p["version"])'
)
version_of() {
  local v="${versions[$1]:-}"
  [[ -n "$v" ]] || { echo "no binary $1 in the workspace" >&2; exit 1; }
  echo "$v"
}

build() {
  local profile="$1" out="$2"
  local bindir="${CARGO_TARGET_DIR:-target}/$profile"
  local crane arch
  crane="$(tools/release/build.sh)/crane"
  case "$(uname -m)" in x86_64) arch=amd64 ;; aarch64) arch=arm64 ;; *) arch="$(uname -m)" ;; esac
  for name in "${names[@]}"; do
    [[ -x "$bindir/$name" ]] || { echo "$bindir/$name is missing: build it first (make images does)" >&2; exit 1; }
  done

  work="$(mktemp -d "${TMPDIR:-/tmp}/portcullis-images.XXXXXX")"
  registry_pid=
  trap 'if [[ -n "$registry_pid" ]]; then kill "$registry_pid" 2>/dev/null || true; wait "$registry_pid" 2>/dev/null || true; fi; rm -rf "$work"' EXIT
  "$crane" registry serve --address 127.0.0.1:0 2>"$work/registry.log" &
  registry_pid=$!
  local port=
  for _ in $(seq 100); do
    port="$(sed -n 's/.*serving on port \([0-9]*\).*/\1/p' "$work/registry.log")"
    [[ -n "$port" ]] && break
    kill -0 "$registry_pid" 2>/dev/null || { cat "$work/registry.log" >&2; exit 1; }
    sleep 0.1
  done
  [[ -n "$port" ]] || { echo "crane registry serve did not start" >&2; cat "$work/registry.log" >&2; exit 1; }
  local registry="127.0.0.1:$port"

  mkdir -p "$out"
  for name in "${names[@]}"; do
    local version start ports=() port_flags=() digest
    version="$(version_of "$name")"
    start=$SECONDS
    python3 tools/images.py layer "$bindir/$name" "$name" "$work/$name.layer.tar"
    "$crane" append --oci-empty-base -f "$work/$name.layer.tar" -t "$registry/$name:layer" >/dev/null 2>"$work/crane.log" ||
      { cat "$work/crane.log" >&2; exit 1; }
    mapfile -t ports < <(python3 tools/images.py expose Dockerfile "${name#portcullis-}")
    for p in "${ports[@]}"; do port_flags+=(--exposed-ports "$p"); done
    "$crane" mutate "$registry/$name:layer" -t "$registry/$name:$version" \
      --set-platform "linux/$arch" \
      --entrypoint "/usr/local/bin/$name" --user 65532:65532 --workdir / "${port_flags[@]}" \
      -l "org.opencontainers.image.title=$name" \
      -l "org.opencontainers.image.source=$source_url" \
      -l "org.opencontainers.image.version=$version" \
      -l "org.opencontainers.image.licenses=Apache-2.0" >/dev/null 2>"$work/crane.log" ||
      { cat "$work/crane.log" >&2; exit 1; }
    "$crane" pull --format oci "$registry/$name:$version" "$work/$name.oci" 2>"$work/crane.log" ||
      { cat "$work/crane.log" >&2; exit 1; }
    python3 tools/images.py archive "$work/$name.oci" "ghcr.io/portcullis/$name:$version" "$out/$name.tar"
    digest="$("$crane" digest "$registry/$name:$version")"
    printf '%s  ghcr.io/portcullis/%s:%s  %s  %s bytes  %ss\n' \
      "$out/$name.tar" "$name" "$version" "$digest" "$(stat -c %s "$out/$name.tar")" "$((SECONDS - start))"
    rm -rf "$work/$name.layer.tar" "$work/$name.oci"
  done
}

check() {
  local out="$1" profile="$2" name want got
  [[ "$(id -u)" == 0 ]] || { echo "images check: needs root (chroot, unshare -m)" >&2; exit 1; }
  for name in "${names[@]}"; do
    python3 tools/images.py check "$out/$name.tar" "$name" "$(version_of "$name")" Dockerfile "${name#portcullis-}"
  done
  # Every portcullis-* binary answers --version, not only the four in images.
  for name in $(printf "%s\n" "${!versions[@]}" | sort); do
    [[ "$name" == portcullis-* ]] || continue
    want="$name ${versions[$name]}"
    # `make images` builds all of them for debug; a release build has only the four in images.
    [[ -x "${CARGO_TARGET_DIR:-target}/$profile/$name" || "$profile" != debug ]] || { echo "$name: not built" >&2; exit 1; }
    [[ -x "${CARGO_TARGET_DIR:-target}/$profile/$name" ]] || { echo "$name: not built for $profile, skipped"; continue; }
    got="$("${CARGO_TARGET_DIR:-target}/$profile/$name" --version)" || { echo "$name --version failed" >&2; exit 1; }
    [[ "$got" == "$want" ]] || { echo "$name --version printed '$got', want '$want'" >&2; exit 1; }
    echo "$name --version: $got"
  done
}

case "${1:-}" in
  build) [[ $# == 3 ]] || usage; build "$2" "$3" ;;
  check) [[ $# == 3 ]] || usage; check "$2" "$3" ;;
  *) usage ;;
esac
