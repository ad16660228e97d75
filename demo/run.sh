#!/usr/bin/env bash
# make demo: the whole Portcullis lifecycle on kubesim, shown with the real kubectl.
#
#   demo/run.sh              a 3-service app passes its pre-deployment task, its pods are released,
#                            it deploys, its post-deployment evaluation passes: exit 0
#   DEMO_FAIL=1 demo/run.sh  the pre-deployment task fails: the pods stay held and say why: exit 0
#
# Exits non-zero when the demo does not reach the state it demonstrates (then the logs of kubesim,
# portcullis-webhook and portcullis-gate are printed). Everything it starts runs on 127.0.0.1 ports
# chosen at run time and is stopped on exit; it never touches your own kubeconfig.
# Knobs: DEMO_FAIL=1, DEMO_TIMEOUT (seconds for the rollout, default 180), DEMO_KEEP=1 (keep the
# work directory with logs, kubeconfig and certificates), CARGO, CARGO_TARGET_DIR.
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
# show CMD...: print a command, then run it with its output indented.
show() {
  printf '    $ %s\n' "$*"
  "$@" 2>&1 | sed 's/^/      /' || fail "this command failed: $*"
}

WORK=$(mktemp -d "${TMPDIR:-/tmp}/portcullis-demo.XXXXXX")
PIDS=()
NAMES=()

dump_logs() {
  local i
  for i in "${!NAMES[@]}"; do
    printf '\n---- last lines of %s (%s) ----\n' "${NAMES[$i]}" "$WORK/${NAMES[$i]}.log" >&2
    tail -n 40 "$WORK/${NAMES[$i]}.log" >&2 2>/dev/null || true
  done
}

# fail WHY: explain, show the logs and the cluster's view, and exit non-zero.
fail() {
  printf '\n%sDEMO FAILED: %s%s\n' "$RED" "$*" "$PLAIN" >&2
  if [[ -s "$WORK/kubeconfig" ]]; then
    printf '\n---- kubectl get kav,kwv,keptntasks,keptnevaluations,pods -n %s ----\n' "$NS" >&2
    kubectl get kav,kwv,keptntasks,keptnevaluations,pods -n "$NS" -o wide >&2 2>&1 || true
    printf '\n---- kubectl get events -n %s ----\n' "$NS" >&2
    kubectl get events -n "$NS" >&2 2>&1 | tail -n 30 >&2 || true
  fi
  dump_logs
  DUMPED=1
  exit 1
}

cleanup() {
  local rc=$? pid i
  trap - EXIT INT TERM
  # A command that failed outside `fail` (set -e) still gets its diagnosis.
  if ((rc != 0 && rc != 130 && rc != 143)) && [[ -z ${DUMPED:-} ]]; then dump_logs; fi
  if [[ -n ${BUILD_PID:-} ]]; then kill -TERM "$BUILD_PID" 2>/dev/null || true; fi
  for pid in "${PIDS[@]}"; do kill -TERM "$pid" 2>/dev/null || true; done
  # Give each process 5 s to stop on its own (the webhook drains), then kill it.
  for pid in "${PIDS[@]}"; do
    for i in $(seq 50); do kill -0 "$pid" 2>/dev/null || break; sleep 0.1; done
    kill -KILL "$pid" 2>/dev/null || true
    wait "$pid" 2>/dev/null || true
  done
  if [[ ${DEMO_KEEP:-0} == 1 ]]; then
    echo "work directory kept: $WORK" >&2
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

# rbac_clean: fail when kubesim refused the webhook or the gate anything (deploy/base's RBAC).
rbac_clean() {
  local refused
  refused=$(grep -ih 'forbidden' "$WORK/webhook.log" "$WORK/gate.log" | head -n 5) || true
  [[ -z $refused ]] || fail "a ServiceAccount was refused by RBAC: $refused"
  note "RBAC: no request of portcullis-webhook or portcullis-gate was refused"
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

for tool in kubectl python3 "$CARGO"; do
  command -v "$tool" >/dev/null || fail "$tool is required on the PATH"
done

# ---------------------------------------------------------------------------------------------
step "Building kubesim, portcullis-certs, portcullis-webhook and portcullis-gate (debug)"
# `--examples` selects no target (there are none) but resolves features with dev-dependencies,
# exactly as `cargo test --workspace` does, so `make test` reuses the binaries its tests built.
# In the background so that an interrupt is handled at once (bash runs traps only between commands).
(cd "$ROOT" && exec "$CARGO" build --workspace --bins --examples --locked --quiet) &
BUILD_PID=$!
wait "$BUILD_PID" || fail "cargo build failed"
BUILD_PID=
for b in kubesim portcullis-certs portcullis-webhook portcullis-gate; do
  [[ -x "$BIN/$b" ]] || fail "$BIN/$b was not built"
done

# ---------------------------------------------------------------------------------------------
step "Starting kubesim (API server emulator with simulated controllers, scheduler and kubelets)"
export KUBECONFIG="$WORK/kubeconfig"
# The webhook's and the gate's ports are held from here on by a process that keeps them bound
# (SO_REUSEADDR, never listening): a port found free and released again could be taken (as the
# source port of one of the many connections made until the binaries start) before they bind it.
# Their listeners bind with SO_REUSEADDR, so they can listen on it all the same.
start ports python3 -c '
import signal, socket
held = []
for _ in range(3):
    s = socket.socket()
    s.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
    s.bind(("127.0.0.1", 0))
    held.append(s)
print(*(s.getsockname()[1] for s in held), flush=True)
signal.pause()
'
wait_until "three ports held for the webhook, the gate and Keptn's metrics" 30 test -s "$WORK/ports.log"
read -r WEBHOOK_PORT GATE_PORT KEPTN_PORT <"$WORK/ports.log"
[[ $WEBHOOK_PORT =~ ^[0-9]+$ && $GATE_PORT =~ ^[0-9]+$ && $KEPTN_PORT =~ ^[0-9]+$ &&
  $WEBHOOK_PORT != "$GATE_PORT" && $KEPTN_PORT != "$GATE_PORT" && $KEPTN_PORT != "$WEBHOOK_PORT" ]] ||
  fail "no three distinct ports: $(cat "$WORK/ports.log")"
# RBAC is enforced: kubectl is the admin, the webhook and the gate run as their ServiceAccounts
# with deploy/base's Roles and bindings (kubesim writes a token kubeconfig for each).
start kubesim "$BIN/kubesim" serve --listen 127.0.0.1:0 --kubeconfig "$KUBECONFIG" --nodes 2 \
  --timing fast --service "portcullis-system/portcullis-webhook=127.0.0.1:$WEBHOOK_PORT" \
  --rbac \
  --service-account-kubeconfig "portcullis-system/portcullis-webhook=$WORK/webhook.kubeconfig" \
  --service-account-kubeconfig "portcullis-system/portcullis-gate=$WORK/gate.kubeconfig" \
  --log warn
wait_until "kubesim to serve" 60 kubectl get --raw /version
note "API server $(kubectl config view -o jsonpath='{.clusters[0].cluster.server}'), KUBECONFIG=$KUBECONFIG"
note "Service portcullis-system/portcullis-webhook -> 127.0.0.1:$WEBHOOK_PORT (the local webhook)"
note "RBAC enforced: portcullis-webhook and portcullis-gate use ServiceAccount tokens ($WORK/webhook.kubeconfig, $WORK/gate.kubeconfig)"
show kubectl get nodes

# ---------------------------------------------------------------------------------------------
step "Installing Portcullis: certificates from portcullis-certs, manifests of deploy/ (demo/local)"
show "$BIN/portcullis-certs" create --dir "$WORK/certs"
note "demo/local = deploy/base without the two Deployments and their PodDisruptionBudgets:"
note "the binaries run as local processes here."
printf '    $ kubectl kustomize demo/local | portcullis-certs patch --dir %s | kubectl apply -f -\n' \
  "$WORK/certs"
kubectl kustomize "$DEMO/local" | "$BIN/portcullis-certs" patch --dir "$WORK/certs" 2>"$WORK/patch.log" |
  kubectl apply -f - >"$WORK/apply.log" || fail "the install failed: $(cat "$WORK/patch.log" "$WORK/apply.log")"
sed 's/^ *INFO */      portcullis-certs: /' "$WORK/patch.log"
# One line per kind: "12 customresourcedefinition.apiextensions.k8s.io created", ...
awk '{ split($1, a, "/"); n[a[1] " " $2]++ } END { for (k in n) printf "      %2d %s\n", n[k], k }' \
  "$WORK/apply.log" | sort -k2
wait_until "the CRDs to be established" 60 \
  kubectl wait --for=condition=Established crd --all --timeout=5s
show kubectl apply -f "$DEMO/app/config.yaml"

# ---------------------------------------------------------------------------------------------
step "Starting portcullis-webhook and portcullis-gate as local processes"
start webhook env POD_NAME=portcullis-webhook-local POD_NAMESPACE=portcullis-system \
  KUBECONFIG="$WORK/webhook.kubeconfig" \
  "$BIN/portcullis-webhook" --listen "127.0.0.1:$WEBHOOK_PORT" \
  --tls-cert "$WORK/certs/tls.crt" --tls-key "$WORK/certs/tls.key"
start gate env POD_NAMESPACE=portcullis-system PROMOTION_TASKS_ENABLED=false \
  "$BIN/portcullis-gate" --kubeconfig "$WORK/gate.kubeconfig" --leader-elect \
  --lease-namespace portcullis-system --keptn-namespace portcullis-system \
  --identity portcullis-gate-local --admin-address "127.0.0.1:$GATE_PORT" \
  --keptn-metrics-port "$KEPTN_PORT"
wait_until "portcullis-webhook /readyz (HTTPS, verified with the demo CA)" 60 \
  "${OBSERVE[@]}" probe "https://127.0.0.1:$WEBHOOK_PORT/readyz" "$WORK/certs/ca.crt" \
  portcullis-webhook.portcullis-system.svc
note "portcullis-webhook ready on https://127.0.0.1:$WEBHOOK_PORT (log: webhook.log)"
wait_until "portcullis-gate /readyz" 60 "${OBSERVE[@]}" probe "http://127.0.0.1:$GATE_PORT/readyz"
note "portcullis-gate ready, admin on http://127.0.0.1:$GATE_PORT (/metrics), leader via Lease"
show kubectl get lease -n portcullis-system

# ---------------------------------------------------------------------------------------------
step "Enabling namespace $NS (annotation and label keptn.sh/lifecycle-toolkit: enabled)"
show kubectl apply -f "$DEMO/app/namespace.yaml"

step "Defining the app's checks: KeptnAppContext, KeptnTaskDefinition, KeptnEvaluationDefinition, KeptnMetric"
show kubectl apply -f "$DEMO/app/checks.yaml"
if ((FAIL)); then
  note "DEMO_FAIL=1: the task's container will exit 1 (kubesim outcome control)"
  show kubectl -n "$NS" annotate keptntaskdefinition check-dependencies --overwrite \
    kubesim.portcullis.dev/outcome=exit:1
fi
note "Playing the metrics provider: the KeptnMetric's status gets a value of 0.2 (%)"
show kubectl -n "$NS" patch keptnmetric error-rate --subresource=status --type=merge \
  -p "{\"status\":{\"value\":\"0.2\",\"rawValue\":\"MC4y\",\"lastUpdated\":\"$(date -u +%Y-%m-%dT%H:%M:%SZ)\"}}"
show kubectl get keptnmetric -n "$NS"

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
  kubectl get keptnapps,kav,kwv,keptntasks,keptnevaluations,pods -n "$NS" -o json >"$WORK/now.json" &&
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
  note "Why is pod $POD Pending?"
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
snapshot || fail "kubectl get failed"
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
