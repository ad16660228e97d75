#!/usr/bin/env python3
"""Helpers of demo/run.sh: free ports, readiness probes, HTTP answers, and reading what kubectl
reports.

The subcommands that read the cluster read files that run.sh wrote with `kubectl get ... -o json`
(and `refused` the API server's audit log); none talks to the cluster itself, so what the demo
shows is what kubectl shows.

  free-port                          print a free TCP port on 127.0.0.1
  probe URL [CA_FILE [SNI_HOST]]     exit 0 when GET URL answers 2xx (HTTPS verified against CA_FILE)
  get URL [PATH=VALUE]               print the answer to GET URL as curl -i would (status line,
                                     Content-Type, body); exit 0 when it is 2xx and, with PATH=VALUE,
                                     its JSON body has VALUE at PATH (keys and list indexes joined
                                     by dots: data.result.0.value.1=0.2)
  differs NOW.json STATE_FILE        exit 0 when something changed since STATE_FILE, else 1
  same A.json B.json                 exit 0 when both show the same picture, else 1
  changes NOW.json STATE_FILE        print what changed since STATE_FILE and update it (exit 0), or exit 1
  outcome NOW.json PODS              print running | completed | failed | held
  verify NOW.json EVENTS.json PODS   check the completed rollout; print the checks; exit 1 if one fails
  scheduled NOW.json EVENTS.json     exit 0 when kube-scheduler's Scheduled Event of every app pod is there
  summary NOW.json EVENTS.json T0    one-screen summary of a completed rollout (T0: epoch of apply)
  held NOW.json EVENTS.json PODS     check and explain a held rollout; exit 1 if not held
  metrics URL NAME[=SUM] ...         print the samples of each metric family NAME from a Prometheus
                                     scrape; exit 1 if one is missing or its values do not add up to SUM
  refused AUDIT.log USER_PREFIX      exit 1 and print the requests the API server answered 403 to users
                                     named USER_PREFIX* (its audit log, JSON lines); else print the
                                     number of their requests audited and exit 0
"""

import json
import re
import socket
import ssl
import sys
import urllib.error
import urllib.request
from datetime import datetime, timezone

GATE = "keptn-prechecks-gate"
RELEASED = "keptn.sh/scheduling-gate-removed"
# How long kwok, playing the kubelet, keeps a bound pod in ContainerCreating (tools/kwok-stages.yaml).
START_DELAY = "kwok.portcullis.dev/start-delay"


def load(path):
    with open(path, encoding="utf-8") as f:
        return json.load(f)


def items(doc, kind):
    return [i for i in doc.get("items", []) if i.get("kind") == kind]


def name(obj):
    return obj["metadata"]["name"]


def status(obj):
    return obj.get("status") or {}


def ts(value):
    """RFC 3339 time from the API server, as epoch seconds (None when absent)."""
    if not value:
        return None
    return datetime.fromisoformat(value.replace("Z", "+00:00")).timestamp()


def gated(pod):
    gates = (pod.get("spec") or {}).get("schedulingGates") or []
    return any(g.get("name") == GATE for g in gates)


def ready(pod):
    conds = status(pod).get("conditions") or []
    return any(c.get("type") == "Ready" and c.get("status") == "True" for c in conds)


def condition_time(pod, kind):
    for c in status(pod).get("conditions") or []:
        if c.get("type") == kind and c.get("status") == "True":
            return ts(c.get("lastTransitionTime"))
    return None


def event_time(e):
    """When an Event happened: events.k8s.io writers (kube-scheduler, Portcullis) set eventTime,
    core/v1 writers (the controllers, kwok) lastTimestamp."""
    series = e.get("series") or {}
    return ts(series.get("lastObservedTime") or e.get("eventTime") or e.get("lastTimestamp")
              or e.get("firstTimestamp"))


def scheduled_at(pod, events):
    """When kube-scheduler bound the pod: its `Scheduled` Event. (The pod's PodScheduled condition
    says when kwok, playing the kubelet, last rewrote the pod's conditions: when it started.)"""
    times = [event_time(e) for e in events.get("items", [])
             if e.get("reason") == "Scheduled" and about(e, pod)]
    return min((t for t in times if t is not None), default=None)


def about(e, pod):
    obj = e.get("involvedObject") or e.get("regarding") or {}
    return obj.get("kind") == "Pod" and obj.get("name") == name(pod)


def app_pods(doc):
    """Pods of the demo's workloads (Job pods of tasks are listed separately)."""
    return [p for p in items(doc, "Pod") if "job-name" not in p["metadata"].get("labels", {})]


def pod_state(pod):
    if gated(pod):
        return "SchedulingGated"
    st = status(pod)
    text = st.get("phase", "Pending")
    waiting = [c["state"]["waiting"].get("reason") for c in st.get("containerStatuses") or []
               if (c.get("state") or {}).get("waiting")]
    if text == "Pending" and any(waiting):
        text += f" ({waiting[0]})"
    if text == "Running":
        text += ", ready" if ready(pod) else ", not ready"
    restarts = sum(c.get("restartCount", 0) for c in st.get("containerStatuses") or [])
    if restarts:
        text += f", {restarts} restart(s)"
    return text


def describe(obj):
    """(short kind/name, state text) of one object, without anything that changes by itself."""
    kind, st = obj["kind"], status(obj)
    if kind in ("KeptnAppVersion", "KeptnWorkloadVersion"):
        short = "kav" if kind == "KeptnAppVersion" else "kwv"
        if not st.get("currentPhase"):
            return f"{short}/{name(obj)}", "waiting for the app" if short == "kwv" else "Pending"
        return f"{short}/{name(obj)}", f"{st['currentPhase']} {st.get('status', 'Pending')}"
    if kind == "KeptnTask":
        job = st.get("jobName")
        text = st.get("status", "Pending") + (f" (Job {job})" if job else "")
        return f"keptntask/{name(obj)}", text
    if kind == "KeptnEvaluation":
        text = f"{st.get('overallStatus', 'Pending')} after {st.get('retryCount', 0)} attempt(s)"
        return f"keptnevaluation/{name(obj)}", text
    if kind == "Pod":
        return f"pod/{name(obj)}", pod_state(obj)
    return f"{kind.lower()}/{name(obj)}", ""


def picture(path):
    """kind/name -> state text of every object in a `kubectl get -o json` list."""
    return dict(describe(o) for o in load(path).get("items", []))


def previous(state_path):
    try:
        return load(state_path)
    except (FileNotFoundError, json.JSONDecodeError):
        return {}


def cmd_differs(now_path, state_path):
    return 0 if picture(now_path) != previous(state_path) else 1


def cmd_same(a_path, b_path):
    return 0 if picture(a_path) == picture(b_path) else 1


def cmd_changes(now_path, state_path):
    new, old = picture(now_path), previous(state_path)
    if new == old:
        return 1
    for key in sorted(set(old) | set(new), key=order):
        before, after = old.get(key), new.get(key)
        if before == after:
            continue
        if before is None:
            print(f"   + {key}: {after}")
        elif after is None:
            print(f"   - {key}: gone")
        elif before == "SchedulingGated":
            print(f"   ~ {key}: {before} -> {after}   << gate {GATE} removed")
        else:
            print(f"   ~ {key}: {before} -> {after}")
    with open(state_path, "w", encoding="utf-8") as f:
        json.dump(new, f)
    return 0


def order(key):
    kinds = ["kav/", "kwv/", "keptntask/", "keptnevaluation/", "pod/"]
    rank = next((i for i, k in enumerate(kinds) if key.startswith(k)), len(kinds))
    return (rank, key)


def the_kav(doc):
    kavs = items(doc, "KeptnAppVersion")
    return max(kavs, key=lambda k: k["metadata"].get("creationTimestamp", "")) if kavs else None


def cmd_outcome(now_path, want_pods):
    doc = load(now_path)
    kav = the_kav(doc)
    st = status(kav) if kav else {}
    if st.get("currentPhase") == "Completed" and st.get("status") == "Succeeded":
        print("completed")
    elif st.get("status") == "Failed":
        pods = app_pods(doc)
        warned = len(pods) == int(want_pods) and all(gated(p) for p in pods)
        print("held" if warned else "failed")
    else:
        print("running")
    return 0


class Checks:
    def __init__(self):
        self.failed = 0

    def check(self, ok, text):
        print(f"   {'ok  ' if ok else 'FAIL'} {text}")
        if not ok:
            self.failed += 1


def cmd_verify(now_path, events_path, want_pods):
    """What a completed demo must show; each line is a real assertion."""
    doc, events, c = load(now_path), load(events_path), Checks()
    kav = the_kav(doc)
    kst = status(kav) if kav else {}
    c.check(kav is not None and kst.get("status") == "Succeeded"
            and kst.get("currentPhase") == "Completed",
            f"KeptnAppVersion {name(kav) if kav else '?'} Completed / Succeeded")
    kwvs = items(doc, "KeptnWorkloadVersion")
    c.check(len(kwvs) == 3 and all(status(w).get("status") == "Succeeded" for w in kwvs),
            f"{len(kwvs)} KeptnWorkloadVersions, all Succeeded (3 expected)")
    tasks = items(doc, "KeptnTask")
    pre = [t for t in tasks if t["spec"].get("checkType") == "pre"]
    c.check(len(pre) == 1 and status(pre[0]).get("status") == "Succeeded"
            and status(pre[0]).get("jobName"),
            "pre-deployment KeptnTask check-dependencies ran as a Job and Succeeded")
    evals = items(doc, "KeptnEvaluation")
    c.check(len(evals) == 1 and status(evals[0]).get("overallStatus") == "Succeeded",
            "post-deployment KeptnEvaluation shop-healthy Succeeded")
    metrics = items(doc, "KeptnMetric")
    ms = status(metrics[0]) if len(metrics) == 1 else {}
    c.check(bool(ms.get("value") and ms.get("lastUpdated") and not ms.get("errMsg")),
            f"KeptnMetric error-rate {ms.get('value', '?')}: fetched from Prometheus by "
            f"portcullis-metrics, last at {ms.get('lastUpdated', '?')}, no errMsg")
    results = (status(evals[0]).get("evaluationStatus") or {}) if len(evals) == 1 else {}
    compared = next(iter(results.values()), {})
    c.check(len(results) == 1 and compared.get("value") == ms.get("value")
            and compared.get("lastUpdated") is not None,
            f"the evaluation compared that value ({compared.get('value', '?')} of "
            f"{compared.get('lastUpdated', '?')}) with its target")
    pods = app_pods(doc)
    c.check(len(pods) == int(want_pods), f"{len(pods)} app pods ({want_pods} expected)")
    c.check(all(not gated(p) and p["metadata"].get("annotations", {}).get(RELEASED) == "true"
                for p in pods),
            f"every pod was gated by the webhook and released by the gate ({RELEASED}: \"true\")")
    c.check(all(ready(p) for p in pods), "every pod Running and Ready")
    task_end = ts(status(pre[0]).get("endTime")) if pre else None
    scheduled = [scheduled_at(p, events) for p in pods]
    c.check(all(s is not None for s in scheduled),
            f"every pod was bound by kube-scheduler ({sum(s is not None for s in scheduled)}/"
            f"{len(pods)} Scheduled Events)")
    c.check(task_end is not None and all(s is not None and s >= task_end for s in scheduled),
            "no pod was scheduled before the pre-deployment task had succeeded")
    return 1 if c.failed else 0


def span(values):
    low, high = round(min(values)), round(max(values))
    return f"{low}s" if low == high else f"{low}-{high}s"


def since(t, t0):
    return f"{t - t0:5.0f}s" if t is not None else "    ?"


def cmd_scheduled(now_path, events_path):
    """Exit 0 when kube-scheduler's Scheduled Event of every app pod is there (Events are written
    asynchronously, a moment after the binding)."""
    doc, events = load(now_path), load(events_path)
    return 0 if all(scheduled_at(p, events) is not None for p in app_pods(doc)) else 1


def cmd_summary(now_path, events_path, t0):
    doc, events, t0 = load(now_path), load(events_path), float(t0)
    kav = the_kav(doc)
    kst = status(kav)
    start, end = ts(kst.get("startTime")), ts(kst.get("endTime"))
    took = f"{end - start:.0f}s" if start and end else "?"
    print(f" App shop version {kav['spec'].get('version')} -> KeptnAppVersion {name(kav)}: "
          f"{kst.get('currentPhase')}, {kst.get('status')} in {took}")
    print(f"   pre-deployment tasks {kst.get('preDeploymentStatus')}, "
          f"pre-evaluations {kst.get('preDeploymentEvaluationStatus')}, "
          f"workloads {kst.get('workloadOverallStatus')}, "
          f"post tasks {kst.get('postDeploymentStatus')}, "
          f"post-evaluations {kst.get('postDeploymentEvaluationStatus')}")
    print(" Workloads (KeptnWorkloadVersion: phase, status, pods):")
    pods = app_pods(doc)
    for w in sorted(items(doc, "KeptnWorkloadVersion"), key=name):
        ws = status(w)
        mine = [p for p in pods
                if p["metadata"].get("annotations", {}).get("keptn.sh/workload")
                == w["spec"].get("workloadName", "").removeprefix("shop-")]
        print(f"   {name(w):24} {ws.get('currentPhase', '-'):10} {ws.get('status', '-'):10} "
              f"{sum(ready(p) for p in mine)}/{len(mine)} ready")
    print(" Checks:")
    for t in items(doc, "KeptnTask"):
        ts_, te = ts(status(t).get("startTime")), ts(status(t).get("endTime"))
        dur = f"{te - ts_:.0f}s" if ts_ and te else "?"
        print(f"   task {t['spec'].get('taskDefinition')} ({t['spec'].get('checkType')}): "
              f"{status(t).get('status')} in {dur}, Job {status(t).get('jobName')}")
    for e in items(doc, "KeptnEvaluation"):
        es = status(e)
        for metric, r in (es.get("evaluationStatus") or {}).items():
            print(f"   evaluation {e['spec'].get('evaluationDefinition')} "
                  f"({e['spec'].get('checkType')}): {es.get('overallStatus')} after "
                  f"{es.get('retryCount')} attempt(s); {metric}: {r.get('message')}")
    for m in items(doc, "KeptnMetric"):
        ms, spec = status(m), m.get("spec") or {}
        print(f"   metric {name(m)}: {ms.get('value', '?')} = {spec.get('query')} on "
              f"KeptnMetricsProvider {spec.get('provider', {}).get('name')}, fetched every "
              f"{spec.get('fetchIntervalSeconds')}s by portcullis-metrics (last at "
              f"{ms.get('lastUpdated', '?')})")
    created = [ts(p["metadata"].get("creationTimestamp")) for p in pods]
    scheduled = [scheduled_at(p, events) for p in pods]
    holds = [s - c for c, s in zip(created, scheduled) if c and s]
    print(f" Gates: {len(pods)} pods created with {GATE} (SchedulingGated), "
          + (f"held {span(holds)}, " if holds else "")
          + f"all released by portcullis-gate ({RELEASED}=true)")
    print(" Timeline (seconds after the Deployments were applied):")
    marks = []
    apps = items(doc, "KeptnApp")
    if apps:
        marks.append((ts(apps[0]["metadata"].get("creationTimestamp")),
                      "KeptnApp shop created (end of the discovery window)"))
    for t in items(doc, "KeptnTask"):
        marks.append((ts(status(t).get("startTime")), f"task {t['spec'].get('taskDefinition')} started"))
        marks.append((ts(status(t).get("endTime")), f"task {t['spec'].get('taskDefinition')} "
                      f"{status(t).get('status')}"))
    if scheduled and all(scheduled):
        marks.append((min(scheduled), "first gate released, pod scheduled (kube-scheduler)"))
        marks.append((max(scheduled), "last gate released, pod scheduled (kube-scheduler)"))
    readies = [condition_time(p, "Ready") for p in pods]
    if readies and all(readies):
        delays = sorted({p["metadata"].get("annotations", {}).get(START_DELAY, "")
                         for p in pods} - {""})
        marks.append((max(readies), "last pod Running and Ready"
                      + (f" (kwok's start-delay {', '.join(delays)})" if delays else "")))
    ends = [ts(status(w).get("endTime")) for w in items(doc, "KeptnWorkloadVersion")]
    if ends and all(ends):
        marks.append((max(ends), "all workloads Completed"))
    for e in items(doc, "KeptnEvaluation"):
        marks.append((ts(status(e).get("endTime")),
                      f"evaluation {e['spec'].get('evaluationDefinition')} {status(e).get('overallStatus')}"))
    marks.append((end, "KeptnAppVersion Completed"))
    for t, text in sorted((m for m in marks if m[0] is not None), key=lambda m: m[0]):
        print(f"   {since(t, t0)}  {text}")
    return 0


def warnings_on(events, pod):
    return [e for e in events.get("items", []) if e.get("type") == "Warning" and about(e, pod)]


def cmd_held(now_path, events_path, want_pods):
    """A held rollout: the app failed its pre-deployment task, every pod is still gated and says why."""
    doc, events, c = load(now_path), load(events_path), Checks()
    kav = the_kav(doc)
    kst = status(kav) if kav else {}
    c.check(kst.get("status") == "Failed" and kst.get("currentPhase") == "AppPreDeployTasks",
            f"KeptnAppVersion {name(kav) if kav else '?'} Failed in AppPreDeployTasks "
            f"(preDeploymentStatus {kst.get('preDeploymentStatus')}, later phases "
            f"{kst.get('workloadOverallStatus')})")
    for t in items(doc, "KeptnTask"):
        ts_ = status(t)
        print(f"        task {t['spec'].get('taskDefinition')}: {ts_.get('status')}: "
              f"{ts_.get('reason', '')} {ts_.get('message', '')}".rstrip())
    pods = app_pods(doc)
    c.check(len(pods) == int(want_pods) and all(gated(p) for p in pods),
            f"{sum(gated(p) for p in pods)}/{want_pods} pods still SchedulingGated ({GATE})")
    c.check(not any(p["metadata"].get("annotations", {}).get(RELEASED) for p in pods),
            "no pod was released")
    warned = [p for p in pods if any(e.get("reason") == "AppPreDeployTasksFailed"
                                     for e in warnings_on(events, p))]
    c.check(len(warned) == len(pods) and pods,
            f"{len(warned)}/{len(pods)} pods carry a Warning Event AppPreDeployTasksFailed")
    kwvs = items(doc, "KeptnWorkloadVersion")
    waiting = [w for w in kwvs if not status(w).get("currentPhase")]
    c.check(len(waiting) == len(kwvs) == 3,
            f"{len(waiting)}/3 KeptnWorkloadVersions never started (they wait for the app)")
    return 1 if c.failed else 0


def cmd_probe(url, ca=None, sni=None):
    ctx = None
    if ca:
        ctx = ssl.create_default_context(cafile=ca)
    req = urllib.request.Request(url)
    try:
        if sni:
            # The serving certificate names the Service; connect to the local port by that name.
            host, port = url.split("//", 1)[1].split("/", 1)[0].split(":")
            with socket.create_connection((host, int(port)), timeout=2) as raw:
                with ctx.wrap_socket(raw, server_hostname=sni) as tls:
                    path = "/" + url.split("//", 1)[1].split("/", 1)[1]
                    tls.sendall(f"GET {path} HTTP/1.1\r\nHost: {sni}\r\nConnection: close\r\n\r\n"
                                .encode())
                    head = tls.recv(64).decode("latin-1")
            return 0 if head.split(" ")[1].startswith("2") else 1
        with urllib.request.urlopen(req, timeout=2, context=ctx) as r:
            return 0 if 200 <= r.status < 300 else 1
    except (OSError, ValueError, IndexError):
        return 1


def at_path(doc, path):
    """The value at a dotted PATH of keys and list indexes, or None."""
    for key in path.split("."):
        if isinstance(doc, list) and key.isdigit() and int(key) < len(doc):
            doc = doc[int(key)]
        elif isinstance(doc, dict) and key in doc:
            doc = doc[key]
        else:
            return None
    return doc


def cmd_get(url, want=None):
    try:
        with urllib.request.urlopen(url, timeout=5) as r:
            code, reason, kind, body = r.status, r.reason, r.headers.get("Content-Type"), r.read()
    except urllib.error.HTTPError as e:
        code, reason, kind, body = e.code, e.reason, e.headers.get("Content-Type"), e.read()
    except (OSError, ValueError) as e:
        print(f"cannot GET {url}: {e}")
        return 1
    print(f"HTTP/1.1 {code} {reason}")
    print(f"content-type: {kind}")
    print()
    print(body.decode("utf-8", "replace"))
    if not 200 <= code < 300:
        return 1
    if want:
        path, _, value = want.partition("=")
        try:
            found = at_path(json.loads(body), path)
        except ValueError:
            return 1
        return 0 if found is not None and str(found) == value else 1
    return 0


def cmd_metrics(url, *wanted):
    try:
        with urllib.request.urlopen(url, timeout=5) as r:
            text = r.read().decode("utf-8")
    except (OSError, ValueError) as e:
        print(f"FAIL cannot scrape {url}: {e}")
        return 1
    samples = {}
    for line in text.splitlines():
        if not line or line.startswith("#"):
            continue
        series, _, value = line.rpartition(" ")
        family = series.split("{", 1)[0]
        samples.setdefault(family, []).append((series, float(value)))
    ok = True
    for want in wanted:
        family, _, total = want.partition("=")
        got = samples.get(family, [])
        for series, value in got:
            # Keep the lines short: the labels that tell the series apart.
            labels = re.sub(r'otel_scope_\w+="[^"]*",?', "", series[len(family):])
            labels = labels.replace("keptn_deployment_", "")
            print(f"    {family}{labels} {value:g}")
        if not got:
            print(f"FAIL no {family} in the scrape")
            ok = False
        elif total and abs(sum(v for _, v in got) - float(total)) > 1e-9:
            print(f"FAIL {family} adds up to {sum(v for _, v in got):g}, not {total}")
            ok = False
    return 0 if ok else 1


def cmd_refused(audit_path, prefix):
    """RBAC's verdicts as the API server recorded them: also what a process retried or swallowed."""
    audited, refused = set(), []
    try:
        f = open(audit_path, encoding="utf-8")
    except OSError as e:
        print(f"      cannot read the audit log: {e}")
        return 1
    with f:
        for line in f:
            try:
                e = json.loads(line)
            except ValueError:
                continue
            user = (e.get("user") or {}).get("username", "")
            if not user.startswith(prefix):
                continue
            audited.add(e.get("auditID"))
            if (e.get("responseStatus") or {}).get("code") == 403:
                r = e.get("objectRef") or {}
                resource = r.get("resource", "")
                if r.get("subresource"):
                    resource += "/" + r["subresource"]
                refused.append(f"{e.get('verb')} {resource} in {r.get('namespace', '(cluster)')} "
                               f"by {user}: {(e.get('responseStatus') or {}).get('message', '')}")
    for text in refused[:10]:
        print(f"      {text}")
    if refused:
        return 1
    print(f"{len(audited)} requests audited, none answered 403")
    return 0


def cmd_free_port():
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        print(s.getsockname()[1])
    return 0


def main(argv):
    commands = {
        "free-port": cmd_free_port,
        "probe": cmd_probe,
        "get": cmd_get,
        "differs": cmd_differs,
        "same": cmd_same,
        "changes": cmd_changes,
        "outcome": cmd_outcome,
        "verify": cmd_verify,
        "summary": cmd_summary,
        "scheduled": cmd_scheduled,
        "held": cmd_held,
        "metrics": cmd_metrics,
        "refused": cmd_refused,
    }
    if len(argv) < 2 or argv[1] not in commands:
        print(__doc__, file=sys.stderr)
        return 2
    return commands[argv[1]](*argv[2:])


if __name__ == "__main__":
    sys.exit(main(sys.argv))
