#!/usr/bin/env bash
# make demo: the whole Portcullis lifecycle on a real Kubernetes control plane, shown with kubectl.
#
#   demo/run.sh              a 3-service app passes its pre-deployment task, its pods are released,
#                            it deploys, its post-deployment evaluation (a KeptnMetric that
#                            portcullis-metrics fills from Prometheus) passes: exit 0
#   DEMO_FAIL=1 demo/run.sh  the pre-deployment task fails: the pods stay held and say why: exit 0
#
# Real: the whole control plane of Kubernetes v1.36 — etcd, kube-apiserver with its admission
# chain, RBAC and ServiceAccount tokens, kube-controller-manager (Deployment, ReplicaSet and Job
# controllers), kube-scheduler — and its kubectl, built by tools/build.sh and started in the work
# directory by tools/cluster.sh. portcullis-webhook, portcullis-gate and portcullis-metrics run as
# local processes, as their ServiceAccounts. A real Prometheus (the `prometheus` binary: $PROMETHEUS,
# else the PATH's, else Debian's package installed on the spot when run as root) runs as a local
# process too, and is the KeptnMetricsProvider that portcullis-metrics queries. Simulated: the two
# nodes and what their containers do. kwok plays the kubelets (tools/kwok-stages.yaml): no container
# runs, and a pod's outcome is chosen by a label and annotations (kwok.portcullis.dev/*) that a
# real cluster ignores. No shop serves traffic either, so the series the app's KeptnMetric queries
# is a Prometheus recording rule with a constant value (0.2, standing for the shop's 5xx rate).
#
# Exits non-zero when the demo does not reach the state it demonstrates (then the logs of the
# processes it started are printed). Everything it starts, the cluster included, is stopped on
# exit, also on failure or interrupt (the binaries and Prometheus listen on 127.0.0.1 ports chosen
# at run time; the cluster's components on ports kwokctl picks below 32768); it never touches your
# kubeconfig (nor ~/.kube). The first run builds the control plane (tools/build.sh: about 5-7 min on 2 cores, then
# cached in ~/.cache/portcullis) and the binaries (cargo); both show their progress.
# Knobs: DEMO_FAIL=1, DEMO_TIMEOUT (seconds for the rollout, default 180), DEMO_KEEP=1 (keep the
# work directory: logs, kubeconfigs, certificates, Prometheus' configuration and data, and a copy
# of the cluster's logs), CARGO, CARGO_TARGET_DIR, PROMETHEUS (the prometheus binary to run).
set -euo pipefail

ROOT=$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)
DEMO="$ROOT/demo"
NS=shop
APP_PODS=5 # frontend 2 + catalog 2 + checkout 1 (demo/app/workloads.yaml)
FAIL=${DEMO_FAIL:-0}
[[ $FAIL == 1 || $FAIL == true ]] && FAIL=1 || FAIL=0
ROLLOUT_TIMEOUT=${DEMO_TIMEOUT:-180}
CARGO=${CARGO:-cargo}
BIN="${CARGO_TARGET_DIR:-$ROOT/target}/debug"
OBSERVE=(python3 "$DEMO/observe.py")
SYSTEM_NS=portcullis-system
# The KeptnMetric's query (demo/app/checks.yaml) and the value Prometheus' recording rule gives it.
QUERY=shop:http_error_rate:percent5m
ERROR_RATE=0.2

if [[ -z ${EPOCHREALTIME:-} ]]; then
  echo "demo/run.sh needs bash 5 or newer" >&2
  exit 1
fi
T0=${EPOCHREALTIME/./}
BOLD='' RED='' PLAIN=''
if [[ -t 1 ]]; then BOLD=$'\033[1m' RED=$'\033[1;31m' PLAIN=$'\033[0m'; fi
# step TEXT: a progress line with the time since the start.
step() {
  local us=$((${EPOCHREALTIME/./} - T0))
  printf '\n%s==> [%3d.%ds] %s%s\n' "$BOLD" $((us / 1000000)) $((us / 100000 % 10)) "$*" "$PLAIN"
}
note() { printf '    %s\n' "$*"; }
# quoted WORD...: the words as a shell would need them (single quotes where plain is not enough).
quoted() {
  local w out=()
  for w in "$@"; do
    if [[ $w =~ ^[A-Za-z0-9_./:=,@%+-]+$ ]]; then out+=("$w"); else out+=("'${w//\'/\'\\\'\'}'"); fi
  done
  printf '%s' "${out[*]}"
}
# show CMD...: print a command (as one would type it), then run it with its output indented.
show() {
  printf '    $ %s\n' "$(quoted "$@")"
  "$@" 2>&1 | sed 's/^/      /' || fail "this command failed: $*"
}
# show_apply YAML: print `kubectl apply -f -` with YAML as its here-document, then run it.
show_apply() {
  printf '    $ kubectl apply -f - <<EOF\n'
  printf '%s\n' "$1" | sed 's/^/    /'
  printf '    EOF\n'
  kubectl apply -f - <<<"$1" 2>&1 | sed 's/^/      /' || fail "kubectl apply failed:"$'\n'"$1"
}

WORK=$(mktemp -d "${TMPDIR:-/tmp}/portcullis-demo.XXXXXX")
CLUSTER="$WORK/cluster"
PIDS=()
NAMES=()
GROUP=
CLUSTER_STARTED=

dump_logs() {
  local i
  for i in "${!NAMES[@]}"; do
    [[ ${NAMES[$i]} == ports ]] && continue
    printf '\n---- last lines of %s (%s) ----\n' "${NAMES[$i]}" "$WORK/${NAMES[$i]}.log" >&2
    tail -n 40 "$WORK/${NAMES[$i]}.log" >&2 2>/dev/null || true
  done
}

# fail WHY: explain, show the logs and the cluster's view, and exit non-zero.
fail() {
  printf '\n%sDEMO FAILED: %s%s\n' "$RED" "$*" "$PLAIN" >&2
  if [[ -s "$CLUSTER/kubeconfig" ]]; then
    printf '\n---- kubectl get kav,kwv,keptntasks,keptnevaluations,keptnmetrics,jobs,pods -n %s ----\n' \
      "$NS" >&2
    kubectl get kav,kwv,keptntasks,keptnevaluations,keptnmetrics,jobs,pods -n "$NS" -o wide >&2 2>&1 ||
      true
    printf '\n---- kubectl events -n %s ----\n' "$NS" >&2
    kubectl events -n "$NS" 2>&1 | tail -n 30 >&2 || true
  fi
  dump_logs
  DUMPED=1
  exit 1
}

cleanup() {
  local rc=$? pid i
  trap - EXIT
  # Stopping takes a moment; a second interrupt must not leave the cluster running.
  trap '' INT TERM
  # A command that failed outside `fail` (set -e) still gets its diagnosis.
  if ((rc != 0 && rc != 130 && rc != 143)) && [[ -z ${DUMPED:-} ]]; then dump_logs; fi
  # A build or the cluster's start still running: its whole process group.
  if [[ -n $GROUP ]]; then kill -TERM -- "-$GROUP" 2>/dev/null || true; fi
  for pid in "${PIDS[@]}"; do kill -TERM "$pid" 2>/dev/null || true; done
  # Give each process 5 s to stop on its own (the webhook drains), then kill it.
  for pid in "${PIDS[@]}"; do
    for i in $(seq 50); do kill -0 "$pid" 2>/dev/null || break; sleep 0.1; done
    kill -KILL "$pid" 2>/dev/null || true
    wait "$pid" 2>/dev/null || true
  done
  if [[ -n $CLUSTER_STARTED ]]; then
    if [[ ${DEMO_KEEP:-0} == 1 && -d "$CLUSTER/kwok/clusters/portcullis/logs" ]]; then
      cp -rL "$CLUSTER/kwok/clusters/portcullis/logs" "$WORK/cluster-logs" 2>/dev/null || true
    fi
    "$ROOT/tools/cluster.sh" down "$CLUSTER" >/dev/null 2>&1 ||
      echo "tools/cluster.sh down $CLUSTER failed" >&2
  fi
  if [[ ${DEMO_KEEP:-0} == 1 ]]; then
    echo "work directory kept: $WORK (the cluster was stopped; its logs are in cluster-logs/)" >&2
  else
    rm -rf "$WORK"
  fi
  exit "$rc"
}
trap cleanup EXIT
trap 'exit 130' INT
trap 'exit 143' TERM

# start NAME CMD...: run CMD in the background, output to $WORK/NAME.log.
start() {
  local name=$1
  shift
  "$@" >"$WORK/$name.log" 2>&1 &
  PIDS+=("$!")
  NAMES+=("$name")
}

# grouped OUT CMD...: run CMD in a process group of its own (so that an interrupt stops it with
# all its children: go, rustc, kwokctl), its stdout to the file OUT and its stderr (the progress)
# shown indented. It runs in the background so that an interrupt is handled at once (bash runs
# traps only between commands); returns CMD's status.
grouped() {
  local out=$1 rc=0
  shift
  setsid -w bash -c 'set -o pipefail; out=$1; shift; "$@" 2>&1 >"$out" | sed -u "s/^/    /"' \
    grouped "$out" "$@" &
  GROUP=$!
  wait "$GROUP" || rc=$?
  GROUP=
  return "$rc"
}

# rbac_clean: fail when the API server refused portcullis-webhook, portcullis-gate or
# portcullis-metrics anything (the chart's RBAC): no Forbidden in their logs, no 403 for their
# ServiceAccounts in the audit log.
rbac_clean() {
  local refused
  refused=$(grep -ih 'forbidden' "$WORK/webhook.log" "$WORK/gate.log" "$WORK/metrics.log" |
    head -n 5) || true
  [[ -z $refused ]] || fail "a ServiceAccount was refused by RBAC: $refused"
  refused=$("${OBSERVE[@]}" refused "$CLUSTER/audit.log" "system:serviceaccount:$SYSTEM_NS:") ||
    fail "the API server answered 403 to a Portcullis ServiceAccount (audit log):"$'\n'"$refused"
  note "RBAC: no request of portcullis-webhook, portcullis-gate or portcullis-metrics was refused"
  note "($refused)"
}

# alive: fail when a process the demo started has exited.
alive() {
  local i
  for i in "${!PIDS[@]}"; do
    kill -0 "${PIDS[$i]}" 2>/dev/null || fail "${NAMES[$i]} exited unexpectedly"
  done
}

# wait_until WHAT SECONDS CMD...: poll CMD every 0.5 s until it succeeds; fail after SECONDS.
wait_until() {
  local what=$1 secs=$2
  shift 2
  local end=$((SECONDS + secs))
  until "$@" >/dev/null 2>&1; do
    alive
    ((SECONDS < end)) || fail "timed out after ${secs}s waiting for $what"
    sleep 0.5
  done
}

for tool in python3 setsid "$CARGO"; do
  command -v "$tool" >/dev/null || fail "$tool is required on the PATH"
done

# Prometheus: as the tests find it (tools/prometheus.sh: $PROMETHEUS, else the PATH's, else
# Debian's package installed now when run as root, apt-get's progress shown).
if [[ -z ${PROMETHEUS:-} ]] && ! command -v prometheus >/dev/null; then
  step "Installing Prometheus, Debian's package (tools/prometheus.sh)"
fi
PROMETHEUS=$("$ROOT/tools/prometheus.sh") || fail "no Prometheus (see above)"
[[ -x $PROMETHEUS ]] || PROMETHEUS=$(command -v "$PROMETHEUS") || fail "PROMETHEUS=$PROMETHEUS: no such executable"
PROM_VERSION=$("$PROMETHEUS" --version 2>&1 | awk 'NR == 1 { print $3 }') && [[ -n $PROM_VERSION ]] ||
  fail "$PROMETHEUS --version failed: $("$PROMETHEUS" --version 2>&1 | head -n 3)"

# ---------------------------------------------------------------------------------------------
step "Building the control plane: kube-apiserver, kube-controller-manager, kube-scheduler, kubectl, etcd, kwok (tools/build.sh)"
if CP_BIN=$("$ROOT/tools/build.sh" --print 2>/dev/null); then
  note "already built: $CP_BIN"
else
  note "not built yet on this machine: building it from tools/go.mod (needs Go; about 5-7 min on 2 cores, once)"
  grouped "$WORK/build.out" "$ROOT/tools/build.sh" || fail "tools/build.sh failed"
  CP_BIN=$(tail -n 1 "$WORK/build.out")
  [[ -x "$CP_BIN/kube-apiserver" ]] || fail "tools/build.sh printed no bin directory: $(cat "$WORK/build.out")"
fi

step "Building portcullis-certs, portcullis-webhook, portcullis-gate and portcullis-metrics (cargo, debug)"
# The same selection as `make e2e`, so that `make test` builds the binaries once for both.
grouped "$WORK/cargo.out" "$CARGO" build --workspace --bins --locked ||
  fail "cargo build failed"
for b in portcullis-certs portcullis-webhook portcullis-gate portcullis-metrics; do
  [[ -x "$BIN/$b" ]] || fail "$BIN/$b was not built"
done

# ---------------------------------------------------------------------------------------------
step "Starting the control plane (tools/cluster.sh up: etcd, kube-apiserver, kube-controller-manager, kube-scheduler, kwok)"
CLUSTER_STARTED=1
for try in 1 2 3; do
  grouped "$WORK/cluster-up.out" "$ROOT/tools/cluster.sh" up "$CLUSTER" && break
  ((try < 3)) || fail "tools/cluster.sh up failed $try times"
  # kwokctl picks the components' ports by looking for free ones: a cluster starting at the same
  # moment elsewhere may have taken one. Another try picks others.
  note "tools/cluster.sh up failed; stopping what started and trying again"
  "$ROOT/tools/cluster.sh" down "$CLUSTER" >/dev/null 2>&1 || true
done
# kubectl is the cluster's own (the same release), the kubeconfig its admin one, and its discovery
# and HTTP caches are in the work directory too: nothing is read from or written to ~/.kube.
export PATH="$CLUSTER/bin:$PATH" KUBECONFIG="$CLUSTER/kubeconfig" KUBECACHEDIR="$WORK/kube-cache"
[[ -x "$CLUSTER/bin/kubectl" && -s "$KUBECONFIG" ]] || fail "tools/cluster.sh up wrote no kubeconfig or kubectl in $CLUSTER"
SERVER=$(kubectl config view --minify -o jsonpath='{.clusters[0].cluster.server}')
note "API server $SERVER, admin KUBECONFIG=$KUBECONFIG, kubectl=$CLUSTER/bin/kubectl"
note "RBAC and admission webhooks on; the two nodes are kwok's (no container runs)"
show kubectl version
show kubectl get nodes
# The ports of the webhook, the gate (admin and Keptn's metrics), Prometheus and portcullis-metrics
# are held from here on by a process that keeps them bound (SO_REUSEADDR, never listening): a port
# found free and released again could be taken (as the source port of one of the many connections
# made until the programs start) before they bind it. Their listeners bind with SO_REUSEADDR (Rust's
# tokio and Go's net package set it), so they can listen on it all the same.
start ports python3 -c '
import signal, socket
held = []
for _ in range(5):
    s = socket.socket()
    s.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
    s.bind(("127.0.0.1", 0))
    held.append(s)
print(*(s.getsockname()[1] for s in held), flush=True)
signal.pause()
'
wait_until "five ports held for the webhook, the gate, Keptn's metrics, Prometheus and portcullis-metrics" \
  30 test -s "$WORK/ports.log"
read -r WEBHOOK_PORT GATE_PORT KEPTN_PORT PROM_PORT METRICS_PORT <"$WORK/ports.log"
ports=("$WEBHOOK_PORT" "$GATE_PORT" "$KEPTN_PORT" "$PROM_PORT" "$METRICS_PORT")
[[ "${ports[*]}" =~ ^[0-9]+( [0-9]+){4}$ && $(printf '%s\n' "${ports[@]}" | sort -u | wc -l) == 5 ]] ||
  fail "no five distinct ports: $(cat "$WORK/ports.log")"

# ---------------------------------------------------------------------------------------------
step "Installing Portcullis with Helm: the chart, its values set for local processes"
HELM="$(cd "$ROOT" && tools/release/build.sh)/helm" || fail "building helm failed (tools/release/build.sh)"
export HELM_CONFIG_HOME="$WORK/helm/config" HELM_CACHE_HOME="$WORK/helm/cache" HELM_DATA_HOME="$WORK/helm/data"
# helm from tools/release (v4, built from the Go module proxy), shown as plain `helm`.
helm() { "$HELM" "$@"; }
note "demo/local/values.yaml: the Service portcullis-webhook is an ExternalName Service for localhost,"
note "on the local webhook's port, so the API server calls the local webhook through it, and the"
note "three Deployments have no replicas: the binaries run as local processes below, each as its"
note "ServiceAccount. No certificate step: the webhook makes its own and fills every caBundle."
show_apply "apiVersion: v1
kind: Namespace
metadata: {name: $SYSTEM_NS, labels: {pod-security.kubernetes.io/enforce: restricted}}"
show helm install portcullis "$ROOT/charts/portcullis" -n "$SYSTEM_NS" \
  -f "$DEMO/local/values.yaml" --set "portcullis.webhook.service.port=$WEBHOOK_PORT"
show kubectl get service portcullis-webhook -n "$SYSTEM_NS"
wait_until "the CRDs to be established" 60 \
  kubectl wait --for=condition=Established crd --all --timeout=5s
show kubectl apply -f "$DEMO/app/config.yaml"

# ---------------------------------------------------------------------------------------------
step "Starting portcullis-webhook and portcullis-gate as local processes, as their ServiceAccounts"
# sa_kubeconfig NAME: a kubeconfig for ServiceAccount portcullis-system/NAME, with a token from the
# TokenRequest API and the admin kubeconfig's server and CA; RBAC gives it what the chart grants.
sa_kubeconfig() {
  local sa=$1 file="$WORK/$1.kubeconfig" token ca
  token=$(kubectl create token "$sa" -n "$SYSTEM_NS" --duration=24h) ||
    fail "kubectl create token $sa failed"
  ca=$(kubectl config view --raw --minify --flatten -o jsonpath='{.clusters[0].cluster.certificate-authority-data}')
  [[ -n $token && -n $ca ]] || fail "no token or CA for $sa"
  (
    umask 077
    cat >"$file" <<KUBECONFIG
apiVersion: v1
kind: Config
clusters:
- name: portcullis-demo
  cluster:
    server: $SERVER
    certificate-authority-data: $ca
users:
- name: system:serviceaccount:$SYSTEM_NS:$sa
  user:
    token: $token
contexts:
- name: $sa
  context: {cluster: portcullis-demo, user: "system:serviceaccount:$SYSTEM_NS:$sa"}
current-context: $sa
KUBECONFIG
  )
  note "$file: ServiceAccount $SYSTEM_NS/$sa (kubectl create token $sa -n $SYSTEM_NS)"
}
sa_kubeconfig portcullis-webhook
sa_kubeconfig portcullis-gate
# The chart's environment of the webhook: it keeps its certificates in the Secret (A25).
start webhook env POD_NAME=portcullis-webhook-local POD_NAMESPACE="$SYSTEM_NS" \
  KUBECONFIG="$WORK/portcullis-webhook.kubeconfig" PORTCULLIS_CERT_SECRET=portcullis-webhook-tls \
  PORTCULLIS_CERT_SERVICE=portcullis-webhook PORTCULLIS_WEBHOOK_CONFIGURATIONS=portcullis-webhook \
  "$BIN/portcullis-webhook" --listen "127.0.0.1:$WEBHOOK_PORT"
start gate env POD_NAMESPACE="$SYSTEM_NS" PROMOTION_TASKS_ENABLED=false \
  "$BIN/portcullis-gate" --kubeconfig "$WORK/portcullis-gate.kubeconfig" --leader-elect \
  --lease-namespace "$SYSTEM_NS" --keptn-namespace "$SYSTEM_NS" \
  --identity portcullis-gate-local --admin-address "127.0.0.1:$GATE_PORT" \
  --keptn-metrics-port "$KEPTN_PORT"
wait_until "the webhook's CA in Secret portcullis-webhook-tls" 60 \
  sh -c "kubectl get secret portcullis-webhook-tls -n $SYSTEM_NS -o jsonpath='{.data.ca\\.crt}' | base64 -d >'$WORK/ca.crt' && test -s '$WORK/ca.crt'"
wait_until "portcullis-webhook /readyz (HTTPS, verified with the CA from that Secret)" 60 \
  "${OBSERVE[@]}" probe "https://127.0.0.1:$WEBHOOK_PORT/readyz" "$WORK/ca.crt" \
  portcullis-webhook.portcullis-system.svc
note "the caBundles the webhook wrote (the base64 of its CA, in every hook that calls it):"
kubectl get mutatingwebhookconfiguration,validatingwebhookconfiguration portcullis-webhook -o json |
  python3 -c 'import json, sys
for c in json.load(sys.stdin)["items"]:
    for w in c["webhooks"]:
        n = len(w["clientConfig"].get("caBundle", ""))
        print("      %s %s: caBundle of %d characters" % (c["kind"], w["name"], n))' ||
  fail "reading the webhook configurations failed"
note "portcullis-webhook ready on https://127.0.0.1:$WEBHOOK_PORT (log: webhook.log)"
wait_until "portcullis-gate /readyz" 60 "${OBSERVE[@]}" probe "http://127.0.0.1:$GATE_PORT/readyz"
note "portcullis-gate ready, admin on http://127.0.0.1:$GATE_PORT (/metrics), leader via Lease"
show kubectl get lease -n "$SYSTEM_NS"

# ---------------------------------------------------------------------------------------------
step "Starting Prometheus $PROM_VERSION as a local process ($PROMETHEUS): the shop's metrics backend"
PROM_DIR="$WORK/prometheus"
mkdir -p "$PROM_DIR"
cat >"$PROM_DIR/prometheus.yml" <<YAML
# demo/run.sh: Prometheus for the KeptnMetricsProvider of namespace $NS.
global:
  scrape_interval: 1s
  evaluation_interval: 1s
rule_files: [rules.yml]
scrape_configs:
  - job_name: prometheus
    static_configs:
      - targets: ["127.0.0.1:$PROM_PORT"]
YAML
cat >"$PROM_DIR/rules.yml" <<YAML
groups:
  - name: shop
    interval: 1s
    rules:
      # The shop's share of HTTP 5xx answers over 5 minutes, in percent: the series
      # that the KeptnMetric error-rate queries. No shop serves traffic in the demo
      # (kwok runs no container), so a constant stands for its 5xx rate: 0.2 %.
      - record: $QUERY
        expr: vector($ERROR_RATE)
YAML
show cat "$PROM_DIR/prometheus.yml"
show cat "$PROM_DIR/rules.yml"
PROM_CMD=("$PROMETHEUS" --config.file="$PROM_DIR/prometheus.yml" --storage.tsdb.path="$PROM_DIR/data"
  --web.listen-address="127.0.0.1:$PROM_PORT")
printf '    $ %s   (in the background, log: prometheus.log)\n' "$(quoted "${PROM_CMD[@]}")"
start prometheus "${PROM_CMD[@]}"
wait_until "Prometheus /-/ready" 60 "${OBSERVE[@]}" probe "http://127.0.0.1:$PROM_PORT/-/ready"
PROM_QUERY="http://127.0.0.1:$PROM_PORT/api/v1/query?query=$QUERY"
wait_until "Prometheus' recording rule to give $QUERY" 30 \
  "${OBSERVE[@]}" get "$PROM_QUERY" "data.result.0.value.1=$ERROR_RATE"
note "Prometheus ready on http://127.0.0.1:$PROM_PORT; it evaluates the rule every second:"
show "${OBSERVE[@]}" get "$PROM_QUERY" "data.result.0.value.1=$ERROR_RATE"

# ---------------------------------------------------------------------------------------------
step "Enabling namespace $NS (annotation and label keptn.sh/lifecycle-toolkit: enabled)"
show kubectl apply -f "$DEMO/app/namespace.yaml"

step "Defining the app's checks: KeptnAppContext, KeptnTaskDefinition, KeptnEvaluationDefinition, KeptnMetric, KeptnMetricsProvider"
show kubectl apply -f "$DEMO/app/checks.yaml"
if ((FAIL)); then
  note "DEMO_FAIL=1: the task's container is to exit 1. The label below is what kwok, playing the"
  note "kubelet, reads on the Job's pod (the definition's labels reach it; tools/kwok-stages.yaml)."
  show kubectl -n "$NS" label keptntaskdefinition check-dependencies kwok.portcullis.dev/outcome=fail
fi
note "The KeptnMetric's provider: the local Prometheus, whose port is chosen at run time (in a"
note "cluster, a Service such as http://prometheus.monitoring:9090). portcullis-metrics, a local"
note "process too, sends the queries; the API server never does."
show_apply "$(
  cat <<YAML
apiVersion: metrics.keptn.sh/v1
kind: KeptnMetricsProvider
metadata:
  name: prometheus
  namespace: $NS
spec:
  type: prometheus
  targetServer: http://127.0.0.1:$PROM_PORT
YAML
)"
show kubectl get keptnmetricsproviders,keptnmetrics -n "$NS"

# ---------------------------------------------------------------------------------------------
step "Starting portcullis-metrics as a local process, as its ServiceAccount: the KeptnMetric's value from Prometheus"
sa_kubeconfig portcullis-metrics
start metrics env POD_NAMESPACE="$SYSTEM_NS" \
  "$BIN/portcullis-metrics" --kubeconfig "$WORK/portcullis-metrics.kubeconfig" --leader-elect \
  --lease-namespace "$SYSTEM_NS" --identity portcullis-metrics-local \
  --address "127.0.0.1:$METRICS_PORT"
wait_until "portcullis-metrics /readyz" 60 "${OBSERVE[@]}" probe "http://127.0.0.1:$METRICS_PORT/readyz"
note "portcullis-metrics ready on http://127.0.0.1:$METRICS_PORT (port 9999 in a cluster, as Keptn's"
note "metrics operator; log: metrics.log), leader via Lease portcullis-metrics.keptn.sh:"
show kubectl get lease -n "$SYSTEM_NS"
note "The leader queries the provider every fetchIntervalSeconds (10) and writes the KeptnMetric's"
note "status:"
metric_fetched() {
  [[ $(kubectl get keptnmetric error-rate -n "$NS" -o jsonpath='{.status.value}') == "$ERROR_RATE" ]]
}
wait_until "KeptnMetric error-rate to show $ERROR_RATE (portcullis-metrics querying Prometheus)" 60 \
  metric_fetched
show kubectl get keptnmetric error-rate -n "$NS"
show kubectl get keptnmetric error-rate -n "$NS" \
  -o custom-columns=VALUE:.status.value,LASTUPDATED:.status.lastUpdated,ERRMSG:.status.errMsg
note "The same value as Keptn's metrics API serves it (what KEDA's metrics-api scaler reads):"
show "${OBSERVE[@]}" get "http://127.0.0.1:$METRICS_PORT/api/v1/metrics/$NS/error-rate" \
  "value=$ERROR_RATE"

# ---------------------------------------------------------------------------------------------
step "Deploying the app: three annotated Deployments (keptn.sh/app: shop)"
APPLIED=$EPOCHREALTIME
show kubectl apply -f "$DEMO/app/workloads.yaml"

step "Watching: kubectl get kav,kwv,keptntasks,keptnevaluations,pods -n $NS (printed on every change)"
# look [ARGS]: the command the demo watches with.
look() { kubectl get kav,kwv,keptntasks,keptnevaluations,pods -n "$NS" "$@"; }
end=$((SECONDS + ROLLOUT_TIMEOUT))
outcome=running
while :; do
  alive
  look -o json >"$WORK/now.json" || fail "kubectl get failed"
  if "${OBSERVE[@]}" differs "$WORK/now.json" "$WORK/state.json"; then
    # Show the table only with a picture that did not change while kubectl printed it, so that
    # the change lines and the table agree (a few tries; things settle within moments).
    for _ in 1 2 3 4 5; do
      look >"$WORK/table.txt" 2>&1 || fail "kubectl get failed"
      look -o json >"$WORK/after.json" || fail "kubectl get failed"
      "${OBSERVE[@]}" same "$WORK/now.json" "$WORK/after.json" && break
      mv "$WORK/after.json" "$WORK/now.json"
    done
    step "changed:"
    "${OBSERVE[@]}" changes "$WORK/now.json" "$WORK/state.json" || true
    sed 's/^/    /' "$WORK/table.txt"
  fi
  outcome=$("${OBSERVE[@]}" outcome "$WORK/now.json" "$APP_PODS")
  case "$outcome/$FAIL" in
    completed/0 | held/1) break ;;
    completed/1) fail "the app completed although its pre-deployment task was made to fail" ;;
    held/0 | failed/0) fail "the rollout failed (KeptnAppVersion status Failed)" ;;
    failed/1)
      # Failed, but not every pod is (yet) there and gated: allow the ReplicaSets a moment.
      failed_since=${failed_since:-$SECONDS}
      ((SECONDS - failed_since < 20)) ||
        fail "the app failed but its $APP_PODS pods are not all held by the scheduling gate"
      ;;
  esac
  ((SECONDS < end)) || fail "the rollout did not reach the expected state within ${ROLLOUT_TIMEOUT}s"
  sleep 0.5
done

# Events and the objects the summary reads.
snapshot() {
  kubectl get keptnapps,kav,kwv,keptntasks,keptnevaluations,keptnmetrics,pods -n "$NS" -o json \
    >"$WORK/now.json" &&
    kubectl get events -n "$NS" -o json >"$WORK/events.json"
}
held_reached() {
  snapshot && "${OBSERVE[@]}" held "$WORK/now.json" "$WORK/events.json" "$APP_PODS"
}

if ((FAIL)); then
  step "The rollout is held: the pre-deployment task failed, so no pod of the app is scheduled"
  # The Warning Events on the pods are published asynchronously after the KAV failed.
  wait_until "a Warning Event on every held pod" 60 held_reached
  POD=$(kubectl get pods -n "$NS" -l app=checkout -o jsonpath='{.items[0].metadata.name}')
  note "Why is pod $POD Pending? It still has its scheduling gate, so kube-scheduler leaves it alone:"
  show kubectl get pod -n "$NS" "$POD" \
    -o custom-columns='NAME:.metadata.name,GATES:.spec.schedulingGates[*].name,PODSCHEDULED:.status.conditions[?(@.type=="PodScheduled")].reason'
  printf '    $ kubectl describe pod -n %s %s   (trimmed to the sections that explain it)\n' "$NS" "$POD"
  kubectl describe pod -n "$NS" "$POD" >"$WORK/describe.txt" || fail "kubectl describe failed"
  awk '/^[A-Za-z]/ { keep = $1 ~ /^(Name|Annotations|Status|Controlled|Scheduling|Conditions|Events):?$/ }
       keep { print "      " $0 }' "$WORK/describe.txt"
  show kubectl get kav -n "$NS" -o wide
  show kubectl get keptntasks -n "$NS" \
    -o custom-columns=NAME:.metadata.name,STATUS:.status.status,REASON:.status.reason,MESSAGE:.status.message
  step "Summary: held rollout (DEMO_FAIL=1)"
  rbac_clean
  snapshot || fail "kubectl get failed"
  "${OBSERVE[@]}" held "$WORK/now.json" "$WORK/events.json" "$APP_PODS" ||
    fail "the held state did not last"
  note ""
  note "Every pod keeps the scheduling gate keptn-prechecks-gate and carries a Warning Event naming"
  note "the failed check (Portcullis also holds pods when a workload-level check fails; Keptn releases them)."
  note "To retry after fixing the task: kubectl -n $NS patch keptnapp shop --type merge -p '{\"spec\":{\"revision\":2}}'"
  note "Demo finished in $(( (${EPOCHREALTIME/./} - T0) / 1000000 ))s: the held rollout was shown (exit 0)."
  exit 0
fi

step "Completed. Checking what the demo claims"
# kube-scheduler records each binding as an Event, written a moment after it.
scheduled_reached() {
  snapshot && "${OBSERVE[@]}" scheduled "$WORK/now.json" "$WORK/events.json"
}
wait_until "kube-scheduler's Scheduled Event of every app pod" 30 scheduled_reached
"${OBSERVE[@]}" verify "$WORK/now.json" "$WORK/events.json" "$APP_PODS" ||
  fail "the completed rollout does not look as it should (see FAIL above)"
step "Keptn's metrics, as Keptn serves them (port 2222 in a cluster, $KEPTN_PORT here): one finished app and three workloads"
# Counted by the status write that finished each version, and the durations read at scrape time
# from the gate's caches, which see that write only later: the scrape may come a moment earlier.
wait_until "keptn_*_count_total and keptn_*_deploymentduration in the scrape" 30 \
  "${OBSERVE[@]}" metrics "http://127.0.0.1:$KEPTN_PORT/metrics" keptn_app_count_total=1 \
  keptn_deployment_count_total=3 keptn_app_deploymentduration keptn_deployment_deploymentduration
"${OBSERVE[@]}" metrics "http://127.0.0.1:$KEPTN_PORT/metrics" keptn_app_count_total=1 \
  keptn_deployment_count_total=3 keptn_app_deploymentduration keptn_deployment_deploymentduration ||
  fail "Keptn's metrics do not show the finished rollout"
step "Summary"
rbac_clean
"${OBSERVE[@]}" summary "$WORK/now.json" "$WORK/events.json" "$APPLIED"
note ""
note "Demo finished in $(( (${EPOCHREALTIME/./} - T0) / 1000000 ))s."
