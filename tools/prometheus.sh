#!/usr/bin/env bash
# Prints the path of a Prometheus server binary for the tests and the demo: $PROMETHEUS, or
# `prometheus` on PATH, or Debian's package installed on the spot (as root, with apt-get; its
# progress on stderr).
set -euo pipefail
if [[ -n ${PROMETHEUS:-} ]]; then
  echo "$PROMETHEUS"
  exit 0
fi
if ! command -v prometheus >/dev/null; then
  if [[ $(id -u) -eq 0 ]] && command -v apt-get >/dev/null; then
    echo "[prometheus] installing Debian's package: apt-get install -y --no-install-recommends prometheus" >&2
    export DEBIAN_FRONTEND=noninteractive
    # apt-get's progress goes to stderr: stdout carries only the path.
    apt-get install -y --no-install-recommends prometheus >&2 ||
      { apt-get update >&2 && apt-get install -y --no-install-recommends prometheus >&2; }
  else
    echo "tools/prometheus.sh: no prometheus; install it: apt-get install -y --no-install-recommends prometheus (or set PROMETHEUS)" >&2
    exit 1
  fi
fi
command -v prometheus
