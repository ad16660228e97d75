#!/usr/bin/env bash
# A real Kubernetes control plane on this machine: etcd, kube-apiserver (RBAC, admission webhooks,
# ServiceAccount tokens), kube-controller-manager, kube-scheduler, and kwok playing two nodes'
# kubelets (tools/kwok-stages.yaml), all local processes started by kwokctl from the binaries
# tools/build.sh builds.
#
#   tools/cluster.sh up [DIR]     start one in DIR (default $CLUSTER_DIR or target/cluster); returns
#                                 when /readyz is ok and the nodes are Ready. DIR/kubeconfig is the
#                                 admin kubeconfig, DIR/bin/kubectl the matching kubectl, DIR/audit.log
#                                 the API server's audit log of ServiceAccounts' requests.
#   tools/cluster.sh down [DIR]   stop every process of the cluster in DIR and remove its state
#
# Several clusters may run at once, each in its own DIR (the tests start one each).
set -euo pipefail
root="$(cd "$(dirname "$0")/.." && pwd)"
cmd="${1:-}"
dir="${2:-${CLUSTER_DIR:-$root/target/cluster}}"
mkdir -p "$dir"
dir="$(cd "$dir" && pwd)"
name=portcullis
export KWOK_WORKDIR="$dir/kwok"

case "$cmd" in
up)
  bin="$("$root/tools/build.sh")"
  export PATH="$bin:$PATH"
  if [[ -f "$KWOK_WORKDIR/clusters/$name/kwok.yaml" ]]; then
    kwokctl delete cluster --name "$name" >/dev/null 2>&1 || true
  fi
  rm -f "$dir/kubeconfig"
  mkdir -p "$dir/bin"
  ln -sf "$bin/kubectl" "$dir/bin/kubectl"
  # kwokctl picks each component's port by counting down from 32767 and taking the first one free:
  # clusters created at the same moment would pick the same. One creation at a time, each
  # returning once its components listen, keeps them apart.
  exec 8>"$bin/../create.lock"
  flock 8
  # The components kwokctl starts inherit the descriptor: unlock explicitly, also on failure.
  trap 'flock -u 8 2>/dev/null || true' EXIT
  # Opt-in (the scale benchmark, tests/tests/scale_bench.rs): how many pod and node stages kwok
  # plays at once (kwok's default, 4, ran ~50 pods a second here), and pods labelled
  # kwok.portcullis.dev/status=external left to their creator (the benchmark writes its filler
  # pods' status itself). The file replaces kwok's defaults of the other options, so they are
  # repeated (the pod CIDR larger).
  extra=()
  if [[ -n "${PORTCULLIS_KWOK_PARALLELISM:-}" ]]; then
    printf '%s\n' "apiVersion: config.kwok.x-k8s.io/v1alpha1" "kind: KwokConfiguration" "options:" \
      "  podPlayStageParallelism: $PORTCULLIS_KWOK_PARALLELISM" \
      "  nodePlayStageParallelism: $PORTCULLIS_KWOK_PARALLELISM" \
      "  nodeLeaseParallelism: 4" "  podsOnNodeSyncParallelism: 1" "  cidr: 10.0.0.0/12" \
      "  enableDebuggingHandlers: true" "  enableProfilingHandler: true" \
      "  enablePodsOnNodeSyncListPager: true" \
      "  disregardStatusWithLabelSelector: kwok.portcullis.dev/status=external" >"$dir/kwok-parallelism.yaml"
    extra+=(--config "$dir/kwok-parallelism.yaml")
  fi
  kwokctl create cluster --name "$name" --runtime binary \
    --kube-authorization=true --kube-admission=true --disable-qps-limits \
    --etcd-binary "$bin/etcd" \
    --kube-apiserver-binary "$bin/kube-apiserver" \
    --kube-controller-manager-binary "$bin/kube-controller-manager" \
    --kube-scheduler-binary "$bin/kube-scheduler" \
    --kwok-controller-binary "$bin/kwok" \
    --config "$root/tools/kwokctl.yaml" --config "$root/tools/kwok-stages.yaml" "${extra[@]}" \
    --kube-audit-policy "$root/tools/audit-policy.yaml" \
    --kubeconfig "$dir/kubeconfig" \
    --timeout 60s --wait 60s --quiet-pull >"$dir/kwokctl.log" 2>&1 ||
    { cat "$dir/kwokctl.log" >&2; exit 1; }
  kwokctl scale node --name "$name" --replicas 2 >>"$dir/kwokctl.log" 2>&1 ||
    { cat "$dir/kwokctl.log" >&2; exit 1; }
  flock -u 8
  ln -sf "$KWOK_WORKDIR/clusters/$name/logs/audit.log" "$dir/audit.log"
  export KUBECONFIG="$dir/kubeconfig" KUBECACHEDIR="$dir/kubectl-cache"
  end=$((SECONDS + 120))
  until [[ "$(kubectl get --raw /readyz 2>/dev/null)" == ok ]] &&
    kubectl wait --for=condition=Ready node --all --timeout=5s >/dev/null 2>&1 &&
    [[ "$(kubectl get nodes --no-headers 2>/dev/null | wc -l)" -eq 2 ]]; do
    ((SECONDS < end)) || { echo "the cluster in $dir did not become ready" >&2; exit 1; }
    sleep 0.2
  done
  ;;
down)
  if [[ -d "$KWOK_WORKDIR/clusters/$name" ]]; then
    bin="$("$root/tools/build.sh" --print 2>/dev/null || true)"
    [[ -n "$bin" ]] && export PATH="$bin:$PATH"
    kwokctl delete cluster --name "$name" >/dev/null 2>&1 || true
  fi
  rm -rf "$KWOK_WORKDIR" "$dir/kubeconfig" "$dir/audit.log" "$dir/kubectl-cache"
  ;;
*)
  echo "usage: tools/cluster.sh up|down [DIR]" >&2
  exit 2
  ;;
esac
