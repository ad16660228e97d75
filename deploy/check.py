#!/usr/bin/env python3
"""Checks rendered Portcullis install manifests (called by deploy/check.sh).

Usage: check.py --crds DIR NAME=FILE...   (NAME is `base`, `metrics-only` or `overlays/<overlay>`)
The full install (base and every overlay) and the metrics-only install each have their list of
checks (CHECKS, METRICS_ONLY_CHECKS); one line per failure, then "N passed, M failed".
"""
import os
import re
import sys

import yaml

NS = "portcullis-system"
SYSTEM_NAMESPACES = {NS, "kube-system", "kube-public", "kube-node-lease"}
MUTATING_PATHS = {"/mutate-v1-pod", "/mutate-workloads"}
METRICS_ONLY = "metrics-only"
METRICS_GROUP = "metrics.keptn.sh"
METRICS_SECRETS_ROLE = "portcullis-metrics-secrets"
# deploy/metrics/secrets-rolebinding.example.yaml: how a namespace lets the controller read its
# providers' Secrets; listed in no kustomization.
HERE = os.path.dirname(os.path.abspath(__file__))
METRICS_DIR = os.path.join(HERE, "metrics")
SECRETS_EXAMPLE = "secrets-rolebinding.example.yaml"
WEBHOOK_SAN = [
    "portcullis-webhook",
    "portcullis-webhook.portcullis-system",
    "portcullis-webhook.portcullis-system.svc",
    "portcullis-webhook.portcullis-system.svc.cluster.local",
]


class Failed(Exception):
    pass


def expect(cond, msg):
    if not cond:
        raise Failed(msg)


def find(docs, kind, name=None, namespace=None):
    out = [
        d for d in docs
        if d.get("kind") == kind
        and (name is None or d["metadata"].get("name") == name)
        and (namespace is None or d["metadata"].get("namespace") == namespace)
    ]
    return out


def one(docs, kind, name, namespace=None):
    found = find(docs, kind, name, namespace)
    expect(len(found) == 1, f"expected one {kind} {name}, found {len(found)}")
    return found[0]


def container(deploy, name):
    for c in deploy["spec"]["template"]["spec"]["containers"]:
        if c["name"] == name:
            return c
    raise Failed(f"Deployment {deploy['metadata']['name']} has no container {name}")


def env_value(c, name):
    for e in c.get("env", []):
        if e["name"] == name:
            return e
    raise Failed(f"container {c['name']} has no env {name}")


def webhooks_by_path(cfg):
    return {w["clientConfig"]["service"]["path"]: w for w in cfg["webhooks"]}


def exprs(w):
    return w.get("namespaceSelector", {}).get("matchExpressions", [])


# What the gate's code does per (apiGroup, resource), kept by hand: the deletes from
# `grep -rn '\.delete(' gate/src`, the retention owner re-read (`get_opt`), and list+watch for
# each shared cache in gate/src/controllers/mod.rs. This catches a missing verb at render time;
# tests/tests/gate_rbac.rs proves the whole set under the real API server's RBAC authorizer.
CACHED = ["keptnappversions", "keptnworkloadversions", "keptntasks", "keptnevaluations",
          "keptntaskdefinitions", "keptnevaluationdefinitions", "keptnapps", "keptnappcontexts",
          "keptnappcreationrequests", "keptnworkloads"]
GATE_USES = {
    **{("lifecycle.keptn.sh", r): {"list", "watch"} for r in CACHED},
    **{("apps", r): {"list", "watch"} for r in ("replicasets", "statefulsets", "daemonsets")},
    ("", "pods"): {"list", "watch", "patch"},
    ("lifecycle.keptn.sh", "keptnappcreationrequests"): {"list", "watch", "delete"},  # discovery.rs
    ("lifecycle.keptn.sh", "keptnappversions"): {"list", "watch", "delete"},  # retention.rs
    ("lifecycle.keptn.sh", "keptnworkloadversions"): {"list", "watch", "delete"},  # retention.rs
    ("lifecycle.keptn.sh", "keptnapps"): {"list", "watch", "get"},  # retention.rs re-read
    ("lifecycle.keptn.sh", "keptnworkloads"): {"list", "watch", "get"},  # retention.rs re-read
}


# What the metrics controller's code does per (apiGroup, resource), kept by hand from
# metrics/src/controller.rs and server.rs: a cluster-wide watcher (list, watch) of KeptnMetrics and
# KeptnMetricsProviders, a GET of a KeptnMetric per value request, a merge patch of KeptnMetric
# status, and kube-runtime's Recorder (events.k8s.io/v1 create, patch for a series). Its
# ClusterRole grants exactly this; Secrets come from portcullis-metrics-secrets, bound per namespace.
METRICS_GRANTS = {
    (METRICS_GROUP, "keptnmetrics"): {"get", "list", "watch"},
    (METRICS_GROUP, "keptnmetrics/status"): {"update", "patch"},
    (METRICS_GROUP, "keptnmetricsproviders"): {"get", "list", "watch"},
    ("events.k8s.io", "events"): {"create", "patch"},
}


def granted(rules, group, resource):
    """Verbs the rules grant on every object of group/resource (rules naming objects excluded)."""
    return {v for r in rules
            if group in r.get("apiGroups", []) and resource in r.get("resources", [])
            and not r.get("resourceNames")
            for v in r["verbs"]}


# --- checks: each takes (target, docs, crd_files) and raises Failed ------------------------------

def check_namespace_and_crds(target, docs, crd_files):
    ns = one(docs, "Namespace", NS)
    # hostNetwork is forbidden by the baseline and restricted levels.
    level = "privileged" if target == "overlays/host-network" else "restricted"
    expect(ns["metadata"]["labels"].get("pod-security.kubernetes.io/enforce") == level,
           f"install namespace should enforce the {level} Pod Security Standard")
    have = {d["metadata"]["name"] for d in find(docs, "CustomResourceDefinition")}
    want = set()
    for f in crd_files:
        with open(f) as fh:
            for d in yaml.safe_load_all(fh):
                if d and (target != METRICS_ONLY or d["spec"]["group"] == METRICS_GROUP):
                    want.add(d["metadata"]["name"])
    expect(want and want <= have, f"CRDs missing from the render: {sorted(want - have)}")
    if target == METRICS_ONLY:
        expect(have == want and len(want) == 2,
               f"metrics-only: exactly the {METRICS_GROUP} CRDs {sorted(want)}, not {sorted(have - want)}")


def check_security_contexts(target, docs, crd_files):
    for d in find(docs, "Deployment"):
        name = d["metadata"]["name"]
        spec = d["spec"]["template"]["spec"]
        psc = spec.get("securityContext", {})
        expect(psc.get("runAsNonRoot") is True, f"{name}: runAsNonRoot")
        expect(psc.get("runAsUser") == 65532, f"{name}: runAsUser 65532")
        expect(psc.get("seccompProfile", {}).get("type") == "RuntimeDefault", f"{name}: seccomp RuntimeDefault")
        expect(not spec.get("hostPID") and not spec.get("hostIPC"), f"{name}: host namespaces")
        for c in spec["containers"] + spec.get("initContainers", []):
            sc = c.get("securityContext", {})
            cn = f"{name}/{c['name']}"
            expect(sc.get("allowPrivilegeEscalation") is False, f"{cn}: allowPrivilegeEscalation false")
            expect(sc.get("readOnlyRootFilesystem") is True, f"{cn}: readOnlyRootFilesystem")
            expect(sc.get("capabilities", {}).get("drop") == ["ALL"], f"{cn}: drop ALL capabilities")
            expect(not sc.get("capabilities", {}).get("add"), f"{cn}: adds capabilities")
            expect(not sc.get("privileged"), f"{cn}: privileged")
            expect("requests" in c.get("resources", {}), f"{cn}: resource requests")
            expect("livenessProbe" in c and "readinessProbe" in c, f"{cn}: liveness and readiness probes")


def check_webhook_deployment(target, docs, crd_files):
    d = one(docs, "Deployment", "portcullis-webhook", NS)
    spec = d["spec"]
    expect(spec["replicas"] >= 2, "webhook: at least 2 replicas")
    expect(spec["strategy"]["rollingUpdate"]["maxUnavailable"] == 0, "webhook: maxUnavailable 0")
    pod = spec["template"]["spec"]
    expect(pod["serviceAccountName"] == "portcullis-webhook", "webhook: own ServiceAccount")
    c = container(d, "webhook")
    sleep = c.get("lifecycle", {}).get("preStop", {}).get("sleep", {}).get("seconds", 0)
    expect(sleep >= 3, "webhook: preStop sleep while the endpoint removal spreads")
    drain = 20  # the webhook's default PORTCULLIS_DRAIN_TIMEOUT
    expect(pod.get("terminationGracePeriodSeconds", 30) >= sleep + drain,
           "webhook: terminationGracePeriodSeconds covers preStop sleep and drain")
    expect(re.match(r"^ghcr\.io/portcullis/portcullis-webhook:\S+$", c["image"]), f"webhook image {c['image']}")
    args = c.get("args", [])
    listen = [a for a in args if a.startswith("--listen=")]
    expect(len(listen) == 1, "webhook: one --listen")
    port = int(listen[0].rsplit(":", 1)[1])
    expect(any(a.startswith("--tls-cert=") for a in args) and any(a.startswith("--tls-key=") for a in args),
           "webhook: --tls-cert and --tls-key")
    ports = {p["name"]: p["containerPort"] for p in c["ports"]}
    expect(ports.get("https") == port, f"webhook: container port https {ports.get('https')} != --listen {port}")
    for probe, path in (("livenessProbe", "/healthz"), ("readinessProbe", "/readyz")):
        g = c[probe]["httpGet"]
        expect(g["path"] == path and g.get("scheme") == "HTTPS", f"webhook: {probe} HTTPS {path}")
        expect(g["port"] in ("https", port), f"webhook: {probe} on the webhook port")
    mount = [m for m in c["volumeMounts"] if m["name"] == "tls"]
    expect(len(mount) == 1 and "subPath" not in mount[0] and mount[0].get("readOnly"),
           "webhook: certificate Secret mounted read-only without subPath (renewals must reach the pod)")
    vol = [v for v in pod["volumes"] if v["name"] == "tls"]
    expect(vol and vol[0]["secret"]["secretName"] == "portcullis-webhook-tls", "webhook: mounts portcullis-webhook-tls")
    mode = vol[0]["secret"].get("defaultMode", 0o644)
    if not mode & 0o004:
        psc = pod["securityContext"]
        expect(mode & 0o040 and psc.get("fsGroup") in (psc.get("runAsUser"), psc.get("runAsGroup")),
               f"webhook: Secret files (mode {mode:o}) must be readable by the non-root user (fsGroup)")
    for a in ("--tls-cert=", "--tls-key="):
        path = [x for x in args if x.startswith(a)][0].split("=", 1)[1]
        expect(path.startswith(mount[0]["mountPath"].rstrip("/") + "/"), f"webhook: {a} inside the Secret mount")
    pdb = one(docs, "PodDisruptionBudget", "portcullis-webhook", NS)
    expect(pdb["spec"]["selector"]["matchLabels"].items() <= spec["template"]["metadata"]["labels"].items(),
           "webhook PDB selects the webhook pods")
    expect(pdb["spec"].get("minAvailable", 0) >= 1 or pdb["spec"].get("maxUnavailable") == 1, "webhook PDB keeps one")
    svc = one(docs, "Service", "portcullis-webhook", NS)
    sp = svc["spec"]["ports"][0]
    expect(sp["port"] == 443 and sp["targetPort"] in ("https", port), "webhook Service 443 -> https")
    expect(svc["spec"]["selector"].items() <= spec["template"]["metadata"]["labels"].items(),
           "webhook Service selects the webhook pods")


def check_gate_deployment(target, docs, crd_files):
    d = one(docs, "Deployment", "portcullis-gate", NS)
    pod = d["spec"]["template"]["spec"]
    expect(pod["serviceAccountName"] == "portcullis-gate", "gate: own ServiceAccount")
    c = container(d, "gate")
    expect(re.match(r"^ghcr\.io/portcullis/portcullis-gate:\S+$", c["image"]), f"gate image {c['image']}")
    expect("--leader-elect" in c.get("args", []), "gate: --leader-elect")
    expect(env_value(c, "POD_NAMESPACE").get("valueFrom", {}).get("fieldRef", {}).get("fieldPath")
           == "metadata.namespace", "gate: POD_NAMESPACE from the downward API")
    for name in ("FUNCTION_RUNNER_IMAGE", "PYTHON_RUNNER_IMAGE"):
        expect(env_value(c, name).get("value"), f"gate: {name} set")
    want = "true" if target == "overlays/promotion" else "false"
    expect(env_value(c, "PROMOTION_TASKS_ENABLED").get("value") == want, f"gate: PROMOTION_TASKS_ENABLED={want}")
    expect(env_value(c, "KEPTN_NAMESPACE").get("valueFrom", {}).get("fieldRef", {}).get("fieldPath")
           == "metadata.namespace", "gate: the Keptn namespace is the install namespace")
    admin = [a for a in c.get("args", []) if a.startswith("--admin-address=")]
    expect(len(admin) == 1, "gate: one --admin-address")
    port = int(admin[0].rsplit(":", 1)[1])
    ports = {p["name"]: p["containerPort"] for p in c["ports"]}
    expect(ports.get("admin") == port, f"gate: container port admin {ports.get('admin')} != --admin-address {port}")
    keptn_port = int(env_value(c, "KEPTN_DORA_METRICS_PORT").get("value", "0"))
    expect(ports.get("keptn-metrics") == keptn_port == 2222,
           f"gate: Keptn metrics on 2222 (env {keptn_port}, container port {ports.get('keptn-metrics')})")
    svc = one(docs, "Service", "lifecycle-operator-metrics-service", NS)
    expect([(p["port"], p["targetPort"]) for p in svc["spec"]["ports"]] == [(2222, "keptn-metrics")]
           and svc["spec"]["selector"] == {"app.kubernetes.io/name": "portcullis-gate"},
           "gate: Service lifecycle-operator-metrics-service:2222 selects the gate's keptn-metrics port")
    for probe, path in (("livenessProbe", "/healthz"), ("readinessProbe", "/readyz")):
        g = c[probe]["httpGet"]
        expect(g["path"] == path and g["port"] in ("admin", port), f"gate: {probe} {path} on the admin port")
    lease = env_value(c, "LEASE_NAME").get("value")
    role = one(docs, "Role", "portcullis-gate-leader-election", NS)
    named = [n for r in role["rules"] for n in r.get("resourceNames", [])]
    expect(lease and named == [lease], f"gate: Lease {lease} is the one the Role names ({named})")


def check_webhook_configurations(target, docs, crd_files):
    m = one(docs, "MutatingWebhookConfiguration", "portcullis-webhook")
    v = one(docs, "ValidatingWebhookConfiguration", "portcullis-webhook")
    hooks = webhooks_by_path(m)
    expect(set(hooks) == MUTATING_PATHS, f"mutating paths {sorted(hooks)}")
    pod_rules = hooks["/mutate-v1-pod"]["rules"]
    expect(pod_rules == [{"apiGroups": [""], "apiVersions": ["v1"], "resources": ["pods"],
                          "operations": ["CREATE"], "scope": "Namespaced"}], "pods: CREATE only, no subresources")
    wl_rules = hooks["/mutate-workloads"]["rules"]
    expect(len(wl_rules) == 1 and wl_rules[0]["apiGroups"] == ["apps"] and wl_rules[0]["apiVersions"] == ["v1"]
           and sorted(wl_rules[0]["resources"]) == ["daemonsets", "deployments", "statefulsets"]
           and sorted(wl_rules[0]["operations"]) == ["CREATE", "UPDATE"], "workloads: apps/v1 CREATE+UPDATE")
    vhooks = webhooks_by_path(v)
    expect(set(vhooks) == {"/validate-keptntaskdefinition"}, f"validating paths {sorted(vhooks)}")
    vr = vhooks["/validate-keptntaskdefinition"]["rules"]
    expect(len(vr) == 1 and vr[0]["apiGroups"] == ["lifecycle.keptn.sh"] and vr[0]["resources"] == ["keptntaskdefinitions"]
           and sorted(vr[0]["operations"]) == ["CREATE", "UPDATE"], "validation: keptntaskdefinitions CREATE+UPDATE")
    expect(vhooks["/validate-keptntaskdefinition"]["failurePolicy"] == "Fail", "validation failurePolicy is always Fail")
    want_policy = "Ignore" if target == "overlays/failure-policy-ignore" else "Fail"
    for w in list(hooks.values()) + list(vhooks.values()):
        n = w["name"]
        expect(w["sideEffects"] == "NoneOnDryRun", f"{n}: sideEffects NoneOnDryRun")
        expect(w["timeoutSeconds"] == 5, f"{n}: timeoutSeconds 5")
        expect(w["admissionReviewVersions"] == ["v1"], f"{n}: admissionReviewVersions [v1]")
        svc = w["clientConfig"]["service"]
        expect((svc["name"], svc["namespace"], svc.get("port", 443)) == ("portcullis-webhook", NS, 443),
               f"{n}: calls portcullis-webhook.{NS}:443")
        if "url" in w["clientConfig"]:
            raise Failed(f"{n}: url and service both set")
        system = [e for e in exprs(w) if e["key"] == "kubernetes.io/metadata.name" and e["operator"] == "NotIn"
                  and SYSTEM_NAMESPACES <= set(e["values"])]
        expect(system, f"{n}: namespaceSelector excludes {sorted(SYSTEM_NAMESPACES)}")
    for w in hooks.values():
        n = w["name"]
        expect(w["failurePolicy"] == want_policy, f"{n}: failurePolicy {want_policy}")
        expect(w["reinvocationPolicy"] == "IfNeeded", f"{n}: reinvocationPolicy IfNeeded")
        allowed = [e for e in exprs(w) if e["operator"] == "In"]
        denied = [e for e in exprs(w) if e["operator"] == "NotIn" and not SYSTEM_NAMESPACES <= set(e["values"])]
        if target == "overlays/allowed-namespaces":
            expect(len(allowed) == 1 and allowed[0]["key"] == "kubernetes.io/metadata.name" and allowed[0]["values"],
                   f"{n}: one allow list")
            expect(not denied, f"{n}: a deny list next to an allow list (B §1.1 ignores it)")
        elif target == "overlays/denied-namespaces":
            expect(len(denied) == 1 and denied[0]["key"] == "kubernetes.io/metadata.name" and denied[0]["values"],
                   f"{n}: one deny list")
            expect(not allowed, f"{n}: no allow list")
        else:
            expect(not allowed and not denied, f"{n}: no allow/deny lists outside their overlays")
    for cfg in (m, v):
        ann = cfg["metadata"].get("annotations", {})
        hooks_with_bundle = [w["name"] for w in cfg["webhooks"] if w["clientConfig"].get("caBundle")]
        if target == "overlays/cert-manager":
            expect(ann.get("cert-manager.io/inject-ca-from") == f"{NS}/portcullis-webhook-tls",
                   f"{cfg['kind']}: cert-manager.io/inject-ca-from {NS}/portcullis-webhook-tls")
        else:
            expect("cert-manager.io/inject-ca-from" not in ann, f"{cfg['kind']}: CA injection only in cert-manager")
        expect(not hooks_with_bundle, f"{cfg['kind']}: static caBundle in the manifests {hooks_with_bundle}")


def check_crd_conversion(target, docs, crd_files):
    # Every CRD that converts its older versions calls the webhook Service of the install (A24),
    # gets its caBundle the way the webhook configurations get theirs, and none is static.
    converting = [d for d in find(docs, "CustomResourceDefinition")
                  if d["spec"].get("conversion", {}).get("strategy") == "Webhook"]
    # Ten lifecycle kinds; the older versions of KeptnAppContext and KeptnAppCreationRequest are v1
    # under another name and need no conversion.
    expect(len(converting) == 8, f"lifecycle CRDs converting through the webhook: {len(converting)}")
    for crd in converting:
        n = crd["metadata"]["name"]
        cc = crd["spec"]["conversion"]["webhook"]["clientConfig"]
        svc = cc.get("service", {})
        expect((svc.get("name"), svc.get("namespace"), svc.get("path"), svc.get("port")) ==
               ("portcullis-webhook", NS, "/convert", 443), f"{n}: conversion calls {svc}")
        expect(not cc.get("caBundle"), f"{n}: static caBundle in the manifests")
        expect(crd["spec"]["conversion"]["webhook"]["conversionReviewVersions"] == ["v1"],
               f"{n}: conversionReviewVersions [v1]")
        stored = [v["name"] for v in crd["spec"]["versions"] if v["storage"]]
        expect(stored == ["v1"], f"{n}: stores {stored}")
        ann = crd["metadata"].get("annotations", {})
        if target == "overlays/cert-manager":
            expect(ann.get("cert-manager.io/inject-ca-from") == f"{NS}/portcullis-webhook-tls",
                   f"{n}: cert-manager.io/inject-ca-from {NS}/portcullis-webhook-tls")
        else:
            expect("cert-manager.io/inject-ca-from" not in ann, f"{n}: CA injection only in cert-manager")


def check_certificate_source(target, docs, crd_files):
    secrets = find(docs, "Secret", "portcullis-webhook-tls", NS)
    if target == "overlays/cert-manager":
        expect(not secrets, "cert-manager: the placeholder Secret must be dropped (cert-manager owns it)")
        cert = one(docs, "Certificate", "portcullis-webhook-tls", NS)
        expect(cert["spec"]["secretName"] == "portcullis-webhook-tls", "Certificate writes portcullis-webhook-tls")
        expect(sorted(cert["spec"]["dnsNames"]) == sorted(WEBHOOK_SAN), f"Certificate dnsNames {cert['spec']['dnsNames']}")
        ref = cert["spec"]["issuerRef"]
        issuer = one(docs, ref.get("kind", "Issuer"), ref["name"], NS)
        expect("ca" in issuer["spec"], "serving certificate comes from a CA Issuer (caBundle survives renewals)")
        one(docs, "Certificate", issuer["spec"]["ca"]["secretName"], NS)
    else:
        expect(len(secrets) == 1, "placeholder Secret portcullis-webhook-tls")
        s = secrets[0]
        expect(s["type"] == "kubernetes.io/tls" and {"tls.crt", "tls.key", "ca.crt"} <= set(s.get("data", {})),
               "placeholder: kubernetes.io/tls with tls.crt, tls.key, ca.crt")


def check_host_network(target, docs, crd_files):
    pod = one(docs, "Deployment", "portcullis-webhook", NS)["spec"]["template"]["spec"]
    if target == "overlays/host-network":
        expect(pod.get("hostNetwork") is True, "hostNetwork true")
        expect(pod.get("dnsPolicy") == "ClusterFirstWithHostNet", "dnsPolicy ClusterFirstWithHostNet")
        port = [p for p in pod["containers"][0]["ports"] if p["name"] == "https"][0]["containerPort"]
        expect(port != 9443, "host network uses a non-default port")
        req = pod["affinity"]["podAntiAffinity"].get("requiredDuringSchedulingIgnoredDuringExecution", [])
        expect(any(t["topologyKey"] == "kubernetes.io/hostname" for t in req), "one webhook per node on the host network")
    else:
        expect(not pod.get("hostNetwork"), "hostNetwork only in its overlay")


def rules_of(docs, kind, name):
    return one(docs, kind, name)["rules"]


def check_gate_verbs(target, docs, crd_files):
    rules = rules_of(docs, "ClusterRole", "portcullis-gate")
    missing = []
    for (group, resource), verbs in sorted(GATE_USES.items()):
        lacking = verbs - granted(rules, group, resource)
        if lacking:
            missing.append(f"{group or 'core'}/{resource}: {sorted(lacking)}")
    expect(not missing, f"gate ClusterRole lacks verbs its code uses: {'; '.join(missing)}")


def check_rbac(target, docs, crd_files):
    subjects = {}
    for b in find(docs, "ClusterRoleBinding") + find(docs, "RoleBinding"):
        for s in b["subjects"]:
            expect(s["kind"] == "ServiceAccount" and s["namespace"] == NS, f"{b['metadata']['name']}: subject")
            one(docs, "ServiceAccount", s["name"], NS)
            subjects.setdefault(s["name"], []).append(b["roleRef"])
    accounts = {"portcullis-metrics"}
    if target != METRICS_ONLY:
        accounts |= {"portcullis-webhook", "portcullis-gate"}
    expect(set(subjects) == accounts, f"bound accounts {sorted(subjects)}, want {sorted(accounts)}")
    for role in find(docs, "ClusterRole") + find(docs, "Role"):
        rn = role["metadata"]["name"]
        for r in role["rules"]:
            for field in ("apiGroups", "resources", "verbs"):
                expect("*" not in r.get(field, []), f"{rn}: wildcard in {field}")
            # The one exception, bound per namespace only (check_metrics_rbac).
            if not (role["kind"] == "ClusterRole" and rn == METRICS_SECRETS_ROLE):
                expect("secrets" not in r.get("resources", []), f"{rn}: no Secret access")
            if "pods" in r.get("resources", []) and "" in r.get("apiGroups", []):
                expect("update" not in r["verbs"], f"{rn}: pods are patched, never updated")
                expect("delete" not in r["verbs"], f"{rn}: pods are never deleted")
            if "leases" in r.get("resources", []):
                needs_name = set(r["verbs"]) - {"create"}
                expect(not needs_name or r.get("resourceNames"), f"{rn}: lease {sorted(needs_name)} limited by resourceNames")
                expect(role["kind"] == "Role", f"{rn}: leases only in the install namespace")
    if target == METRICS_ONLY:
        return
    webhook = rules_of(docs, "ClusterRole", "portcullis-webhook")
    for r in webhook:
        expect("pods" not in r.get("resources", []), "webhook: no pod access (the patch travels in the response)")
    gate = rules_of(docs, "ClusterRole", "portcullis-gate")
    pod_verbs = {v for r in gate if "pods" in r.get("resources", []) for v in r["verbs"]}
    expect("patch" in pod_verbs, "gate: may patch pods (gate removal)")
    leases = [r for r in rules_of(docs, "Role", "portcullis-gate-leader-election") if "leases" in r["resources"]]
    expect(any(r.get("resourceNames") for r in leases), "gate: lease rule with resourceNames")


def check_metrics_deployment(target, docs, crd_files):
    d = one(docs, "Deployment", "portcullis-metrics", NS)
    spec = d["spec"]
    expect(spec["replicas"] >= 2, "metrics: at least 2 replicas (a standby takes over the Lease)")
    pod = spec["template"]["spec"]
    labels = spec["template"]["metadata"]["labels"]
    expect(pod["serviceAccountName"] == "portcullis-metrics", "metrics: own ServiceAccount")
    one(docs, "ServiceAccount", "portcullis-metrics", NS)
    psc = pod.get("securityContext", {})
    expect(psc.get("runAsNonRoot") is True and psc.get("runAsUser") == 65532, "metrics: non-root pod")
    c = container(d, "metrics")
    sc = c.get("securityContext", {})
    expect(sc.get("readOnlyRootFilesystem") is True and sc.get("allowPrivilegeEscalation") is False,
           "metrics: read-only root filesystem, no privilege escalation")
    expect(re.match(r"^ghcr\.io/portcullis/portcullis-metrics:\S+$", c["image"]), f"metrics image {c['image']}")
    args = c.get("args", [])
    expect("--leader-elect" in args, "metrics: --leader-elect")
    for name, field in (("POD_NAMESPACE", "metadata.namespace"), ("POD_NAME", "metadata.name")):
        expect(env_value(c, name).get("valueFrom", {}).get("fieldRef", {}).get("fieldPath") == field,
               f"metrics: {name} from the downward API ({field})")
    address = [a for a in args if a.startswith("--address=")]
    expect(len(address) == 1, "metrics: one --address")
    port = int(address[0].rsplit(":", 1)[1])
    ports = {p["name"]: p["containerPort"] for p in c["ports"]}
    expect(ports.get("metrics") == port == 9999,
           f"metrics: Keptn's port 9999 (--address {port}, container port metrics {ports.get('metrics')})")
    for probe, path in (("livenessProbe", "/healthz"), ("readinessProbe", "/readyz")):
        g = c[probe]["httpGet"]
        expect(g["path"] == path and g["port"] in ("metrics", port), f"metrics: {probe} {path} on port 9999")
    for name in ("portcullis-metrics", "metrics-operator-service"):
        svc = one(docs, "Service", name, NS)
        expect([(p["port"], p["targetPort"]) for p in svc["spec"]["ports"]] == [(9999, "metrics")]
               and svc["spec"]["selector"].items() <= labels.items(),
               f"metrics: Service {name}:9999 selects the metrics pods' port")
    pdb = one(docs, "PodDisruptionBudget", "portcullis-metrics", NS)
    expect(pdb["spec"]["selector"]["matchLabels"].items() <= labels.items(), "metrics PDB selects the metrics pods")
    expect(pdb["spec"].get("minAvailable", 0) >= 1 or pdb["spec"].get("maxUnavailable") == 1, "metrics PDB keeps one")
    lease = env_value(c, "LEASE_NAME").get("value")
    expect(lease == "portcullis-metrics.keptn.sh", f"metrics: LEASE_NAME {lease}")


def check_metrics_rbac(target, docs, crd_files):
    rules = rules_of(docs, "ClusterRole", "portcullis-metrics")
    expect(all(not r.get("resourceNames") and not r.get("nonResourceURLs") for r in rules),
           "metrics ClusterRole: no per-name or non-resource rules")
    pairs = {(g, res) for r in rules for g in r.get("apiGroups", []) for res in r.get("resources", [])}
    expect(pairs == set(METRICS_GRANTS), f"metrics ClusterRole covers {sorted(pairs)}, want {sorted(METRICS_GRANTS)}")
    wrong = [f"{g or 'core'}/{res}: {sorted(granted(rules, g, res))} != {sorted(v)}"
             for (g, res), v in sorted(METRICS_GRANTS.items()) if granted(rules, g, res) != v]
    expect(not wrong, f"metrics ClusterRole verbs: {'; '.join(wrong)}")
    lease = env_value(container(one(docs, "Deployment", "portcullis-metrics", NS), "metrics"), "LEASE_NAME")["value"]
    role = rules_of(docs, "Role", "portcullis-metrics-leader-election")
    one(docs, "Role", "portcullis-metrics-leader-election", NS)
    shape = sorted((r["apiGroups"], r["resources"], r.get("resourceNames", []), sorted(r["verbs"])) for r in role)
    expect(shape == sorted([(["coordination.k8s.io"], ["leases"], [], ["create"]),
                            (["coordination.k8s.io"], ["leases"], [lease], ["get", "patch", "update", "watch"])]),
           f"metrics: leader election Role is create + get/watch/update/patch on Lease {lease} only ({shape})")
    secrets = rules_of(docs, "ClusterRole", METRICS_SECRETS_ROLE)
    expect(secrets == [{"apiGroups": [""], "resources": ["secrets"], "verbs": ["get"]}],
           f"{METRICS_SECRETS_ROLE}: get on secrets only ({secrets})")
    cluster_wide = [b["metadata"]["name"] for b in find(docs, "ClusterRoleBinding")
                    if b["roleRef"]["name"] == METRICS_SECRETS_ROLE]
    expect(not cluster_wide, f"{METRICS_SECRETS_ROLE} bound cluster-wide by {cluster_wide}")
    bound = set()
    for b in find(docs, "ClusterRoleBinding") + find(docs, "RoleBinding"):
        if any(s["kind"] == "ServiceAccount" and s["name"] == "portcullis-metrics" for s in b["subjects"]):
            bound.add((b["kind"], b["metadata"].get("namespace"), b["roleRef"]["kind"], b["roleRef"]["name"]))
    want = {("ClusterRoleBinding", None, "ClusterRole", "portcullis-metrics"),
            ("RoleBinding", NS, "Role", "portcullis-metrics-leader-election")}
    expect(bound == want, f"portcullis-metrics is bound to {sorted(bound, key=str)}, want {sorted(want, key=str)}")
    with open(os.path.join(METRICS_DIR, SECRETS_EXAMPLE)) as fh:
        example = [d for d in yaml.safe_load_all(fh) if d]
    expect(len(example) == 1 and example[0]["kind"] == "RoleBinding" and example[0]["metadata"].get("namespace")
           and example[0]["roleRef"] == {"apiGroup": "rbac.authorization.k8s.io", "kind": "ClusterRole",
                                         "name": METRICS_SECRETS_ROLE}
           and example[0]["subjects"] == [{"kind": "ServiceAccount", "name": "portcullis-metrics", "namespace": NS}],
           f"{SECRETS_EXAMPLE}: one namespaced RoleBinding of {METRICS_SECRETS_ROLE} to portcullis-metrics")
    with open(os.path.join(METRICS_DIR, "kustomization.yaml")) as fh:
        listed = yaml.safe_load(fh).get("resources", [])
    expect(SECRETS_EXAMPLE not in listed, f"{SECRETS_EXAMPLE} is an example, not part of the install")


def check_metrics_only_contents(target, docs, crd_files):
    kinds = {d["kind"] for d in docs}
    allowed = {"Namespace", "CustomResourceDefinition", "ServiceAccount", "ClusterRole", "ClusterRoleBinding",
               "Role", "RoleBinding", "Deployment", "Service", "PodDisruptionBudget"}
    expect(kinds <= allowed, f"metrics-only: unexpected kinds {sorted(kinds - allowed)} (webhook configurations, Secrets?)")
    expect({d["metadata"]["name"] for d in find(docs, "Deployment")} == {"portcullis-metrics"},
           "metrics-only: the metrics Deployment alone")
    expect({d["metadata"]["name"] for d in find(docs, "ServiceAccount")} == {"portcullis-metrics"},
           "metrics-only: the metrics ServiceAccount alone")
    lifecycle = [f"{d['kind']}/{d['metadata']['name']}" for d in docs
                 if re.match(r"^(portcullis-(webhook|gate)|lifecycle-operator)", d["metadata"]["name"])]
    expect(not lifecycle, f"metrics-only: lifecycle objects {lifecycle}")


CHECKS = [
    check_namespace_and_crds,
    check_security_contexts,
    check_webhook_deployment,
    check_gate_deployment,
    check_webhook_configurations,
    check_crd_conversion,
    check_certificate_source,
    check_host_network,
    check_rbac,
    check_gate_verbs,
    check_metrics_deployment,
    check_metrics_rbac,
]

# deploy/metrics-only: the metrics controller without the lifecycle part.
METRICS_ONLY_CHECKS = [
    check_namespace_and_crds,
    check_security_contexts,
    check_metrics_deployment,
    check_metrics_rbac,
    check_rbac,
    check_metrics_only_contents,
]


def main(argv):
    crd_dir = None
    targets = []
    i = 0
    while i < len(argv):
        if argv[i] == "--crds":
            crd_dir = argv[i + 1]
            i += 2
            continue
        name, _, path = argv[i].partition("=")
        targets.append((name, path))
        i += 1
    crd_files = sorted(
        os.path.join(crd_dir, f) for f in os.listdir(crd_dir)
        if f.endswith(".yaml") and f != "kustomization.yaml"
    )
    passed = failed = 0
    for name, path in targets:
        with open(path) as fh:
            docs = [d for d in yaml.safe_load_all(fh) if d]
        for check in METRICS_ONLY_CHECKS if name == METRICS_ONLY else CHECKS:
            try:
                check(name, docs, crd_files)
                passed += 1
            except (Failed, KeyError, IndexError, TypeError, AttributeError) as e:
                failed += 1
                what = str(e) if isinstance(e, Failed) else f"{type(e).__name__}: {e}"
                print(f"FAIL {name} {check.__name__}: {what}")
    print(f"{passed} passed, {failed} failed")
    return 1 if failed else 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
