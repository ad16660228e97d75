#!/usr/bin/env python3
"""Checks rendered Portcullis install manifests (called by deploy/check.sh).

Usage: check.py --chart DIR NAME=FILE...
NAME is `static` (deploy/portcullis.yaml), `default` (the chart's defaults) or the name of a value
set charts/portcullis/ci/NAME-values.yaml, whose values each check reads (VALUES: the chart's
values.yaml with the set's values merged in). The full install and the metrics-only install
(`lifecycleOperator.enabled: false`) each have their list of checks (CHECKS, METRICS_ONLY_CHECKS);
one line per failure, then "N passed, M failed".
"""
import os
import re
import sys

import yaml

NS = "portcullis-system"
SYSTEM_NAMESPACES = {NS, "kube-system", "kube-public", "kube-node-lease"}
MUTATING_PATHS = {"/mutate-v1-pod", "/mutate-workloads"}
METRICS_GROUP = "metrics.keptn.sh"
METRICS_SECRETS_ROLE = "portcullis-metrics-secrets"
# deploy/metrics-secrets-rolebinding.example.yaml: how a namespace lets the controller read its
# providers' Secrets; rendered by no chart template.
HERE = os.path.dirname(os.path.abspath(__file__))
SECRETS_EXAMPLE = os.path.join(HERE, "metrics-secrets-rolebinding.example.yaml")
CERT_SECRET = "portcullis-webhook-tls"
# The values of the render being checked (main sets them per target).
VALUES = {}


def val(path):
    """The value at a dotted path of the render's values."""
    v = VALUES
    for k in path.split("."):
        v = v[k]
    return v


def merged(base, over):
    out = dict(base)
    for k, v in (over or {}).items():
        out[k] = merged(out[k], v) if isinstance(v, dict) and isinstance(out.get(k), dict) else v
    return out


def builtin_certs():
    return val("global.certManagerEnabled")


def metrics_only():
    return not val("lifecycleOperator.enabled")


def service_port():
    return val("portcullis.webhook.service.port")


def listen_port():
    w = val("portcullis.webhook")
    return w["hostNetworkPort"] if w["hostNetwork"] else w["port"]


def ca_injection():
    """The CA injection annotations the webhook configurations and converting CRDs must carry."""
    if builtin_certs():
        return {}
    return val("global.caInjectionAnnotations") or {"cert-manager.io/inject-ca-from": f"{NS}/{CERT_SECRET}"}
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
    if target == "static":
        ns = one(docs, "Namespace", NS)
        expect(ns["metadata"]["labels"].get("pod-security.kubernetes.io/enforce") == "restricted",
               "install namespace should enforce the restricted Pod Security Standard")
    else:
        expect(not find(docs, "Namespace"), "helm renders no Namespace (helm install --create-namespace)")
    crds = find(docs, "CustomResourceDefinition")
    have = {d["metadata"]["name"] for d in crds}
    want = set()
    for f in crd_files:
        with open(f) as fh:
            for d in yaml.safe_load_all(fh):
                if d and (not metrics_only() or d["spec"]["group"] == METRICS_GROUP):
                    want.add(d["metadata"]["name"])
    expect(want and want <= have, f"CRDs missing from the render: {sorted(want - have)}")
    for d in crds:
        expect(d["metadata"].get("annotations", {}).get("helm.sh/resource-policy") == "keep",
               f"{d['metadata']['name']}: helm.sh/resource-policy keep (uninstall keeps the CRDs and their objects)")
    if metrics_only():
        expect(have == want and len(want) == 2,
               f"lifecycleOperator.enabled false: exactly the {METRICS_GROUP} CRDs {sorted(want)}, not {sorted(have - want)}")


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
    registry = val("global.imageRegistry") or "ghcr.io"
    expect(re.match(rf"^{re.escape(registry)}/portcullis/portcullis-webhook:\S+$", c["image"]), f"webhook image {c['image']}")
    args = c.get("args", [])
    listen = [a for a in args if a.startswith("--listen=")]
    expect(len(listen) == 1, "webhook: one --listen")
    port = int(listen[0].rsplit(":", 1)[1])
    expect(port == listen_port(), f"webhook: --listen port {port}, want {listen_port()}")
    ports = {p["name"]: p["containerPort"] for p in c["ports"]}
    expect(ports.get("https") == port, f"webhook: container port https {ports.get('https')} != --listen {port}")
    for probe, path in (("livenessProbe", "/healthz"), ("readinessProbe", "/readyz")):
        g = c[probe]["httpGet"]
        expect(g["path"] == path and g.get("scheme") == "HTTPS", f"webhook: {probe} HTTPS {path}")
        expect(g["port"] in ("https", port), f"webhook: {probe} on the webhook port")
    env = {e["name"]: e for e in c.get("env", [])}
    if builtin_certs():
        # The webhook keeps its certificates in the Secret itself (the interface of its
        # --cert-secret mode): no volume, no files.
        want = {"PORTCULLIS_CERT_SECRET": CERT_SECRET, "PORTCULLIS_CERT_SERVICE": "portcullis-webhook",
                "PORTCULLIS_WEBHOOK_CONFIGURATIONS": "portcullis-webhook"}
        for k, v in want.items():
            expect(env.get(k, {}).get("value") == v, f"webhook: {k}={v}")
        expect(env_value(c, "POD_NAMESPACE").get("valueFrom", {}).get("fieldRef", {}).get("fieldPath")
               == "metadata.namespace", "webhook: POD_NAMESPACE from the downward API")
        expect(not c.get("volumeMounts") and not pod.get("volumes"), "webhook: no certificate volume with built-in certificates")
        expect(not any(a.startswith("--tls-") for a in args), "webhook: no --tls-cert/--tls-key with built-in certificates")
    else:
        expect("PORTCULLIS_CERT_SECRET" not in env, "webhook: PORTCULLIS_CERT_SECRET only with built-in certificates")
        expect(any(a.startswith("--tls-cert=") for a in args) and any(a.startswith("--tls-key=") for a in args),
               "webhook: --tls-cert and --tls-key")
        mount = [m for m in c["volumeMounts"] if m["name"] == "tls"]
        expect(len(mount) == 1 and "subPath" not in mount[0] and mount[0].get("readOnly"),
               "webhook: certificate Secret mounted read-only without subPath (renewals must reach the pod)")
        expect(mount[0]["mountPath"] == "/tmp/webhook/certs", "webhook: certificates at /tmp/webhook/certs")
        vol = [v for v in pod["volumes"] if v["name"] == "tls"]
        expect(vol and vol[0]["secret"]["secretName"] == CERT_SECRET, f"webhook: mounts {CERT_SECRET}")
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
    if val("portcullis.webhook.service.type") == "ExternalName":
        expect(svc["spec"] == {"type": "ExternalName", "externalName": val("portcullis.webhook.service.externalName")},
               f"webhook Service: ExternalName {val('portcullis.webhook.service.externalName')} ({svc['spec']})")
        return
    sp = svc["spec"]["ports"][0]
    expect(sp["port"] == service_port() and sp["targetPort"] in ("https", port), f"webhook Service {service_port()} -> https")
    expect(svc["spec"]["selector"].items() <= spec["template"]["metadata"]["labels"].items(),
           "webhook Service selects the webhook pods")


def check_gate_deployment(target, docs, crd_files):
    d = one(docs, "Deployment", "portcullis-gate", NS)
    pod = d["spec"]["template"]["spec"]
    expect(pod["serviceAccountName"] == "portcullis-gate", "gate: own ServiceAccount")
    c = container(d, "gate")
    registry = val("global.imageRegistry") or "ghcr.io"
    expect(re.match(rf"^{re.escape(registry)}/portcullis/portcullis-gate:\S+$", c["image"]), f"gate image {c['image']}")
    expect("--leader-elect" in c.get("args", []), "gate: --leader-elect")
    expect(env_value(c, "POD_NAMESPACE").get("valueFrom", {}).get("fieldRef", {}).get("fieldPath")
           == "metadata.namespace", "gate: POD_NAMESPACE from the downward API")
    for name, key in (("FUNCTION_RUNNER_IMAGE", "functionRunnerImage"), ("PYTHON_RUNNER_IMAGE", "pythonRunnerImage")):
        want = val(f"lifecycleOperator.lifecycleOperator.env.{key}")
        expect(env_value(c, name).get("value") == want, f"gate: {name}={want}")
    otel = val("lifecycleOperator.lifecycleOperator.env.otelCollectorUrl")
    want = (otel if "://" in otel else f"http://{otel}") if otel else None
    got = next((e.get("value") for e in c.get("env", []) if e["name"] == "OTEL_EXPORTER_OTLP_ENDPOINT"), None)
    expect(got == want,
           f"gate: OTEL_EXPORTER_OTLP_ENDPOINT={want} (Keptn's otelCollectorUrl)")
    want = "true" if val("lifecycleOperator.promotionTasksEnabled") else "false"
    expect(env_value(c, "PROMOTION_TASKS_ENABLED").get("value") == want, f"gate: PROMOTION_TASKS_ENABLED={want}")
    want = val("portcullis.gate.kubernetesEvents")
    expect(want in ("all", "warnings") and env_value(c, "KUBERNETES_EVENTS").get("value") == want,
           f"gate: KUBERNETES_EVENTS={want}")
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
    want_policy = val("lifecycleOperator.failurePolicy")
    for w in list(hooks.values()) + list(vhooks.values()):
        n = w["name"]
        expect(w["sideEffects"] == "NoneOnDryRun", f"{n}: sideEffects NoneOnDryRun")
        expect(w["timeoutSeconds"] == 5, f"{n}: timeoutSeconds 5")
        expect(w["admissionReviewVersions"] == ["v1"], f"{n}: admissionReviewVersions [v1]")
        svc = w["clientConfig"]["service"]
        expect((svc["name"], svc["namespace"], svc.get("port", 443)) == ("portcullis-webhook", NS, service_port()),
               f"{n}: calls portcullis-webhook.{NS}:{service_port()}")
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
        excluded = {v for e in exprs(w) if e["operator"] == "NotIn" for v in e["values"]}
        want_allowed = val("lifecycleOperator.allowedNamespaces")
        if want_allowed:
            expect(len(allowed) == 1 and allowed[0]["key"] == "kubernetes.io/metadata.name"
                   and allowed[0]["values"] == want_allowed, f"{n}: allow list {want_allowed}")
            expect(excluded == SYSTEM_NAMESPACES, f"{n}: a deny list next to an allow list (B §1.1 ignores it)")
        else:
            want_denied = SYSTEM_NAMESPACES | set(val("lifecycleOperator.deniedNamespaces"))
            expect(excluded == want_denied, f"{n}: excludes {sorted(excluded)}, want {sorted(want_denied)}")
            expect(not allowed, f"{n}: no allow list")
    for cfg in (m, v):
        ann = cfg["metadata"].get("annotations", {})
        hooks_with_bundle = [w["name"] for w in cfg["webhooks"] if w["clientConfig"].get("caBundle")]
        inject = ca_injection()
        expect(inject.items() <= ann.items(), f"{cfg['kind']}: CA injection annotations {inject}")
        if not inject:
            expect("cert-manager.io/inject-ca-from" not in ann, f"{cfg['kind']}: CA injection only with cert-manager.io")
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
               ("portcullis-webhook", NS, "/convert", service_port()), f"{n}: conversion calls {svc}")
        expect(not cc.get("caBundle"), f"{n}: static caBundle in the manifests")
        expect(crd["spec"]["conversion"]["webhook"]["conversionReviewVersions"] == ["v1"],
               f"{n}: conversionReviewVersions [v1]")
        stored = [v["name"] for v in crd["spec"]["versions"] if v["storage"]]
        expect(stored == ["v1"], f"{n}: stores {stored}")
        ann = crd["metadata"].get("annotations", {})
        inject = ca_injection()
        expect(inject.items() <= ann.items(), f"{n}: CA injection annotations {inject}")
        if not inject:
            expect("cert-manager.io/inject-ca-from" not in ann, f"{n}: CA injection only with cert-manager.io")


def check_certificate_source(target, docs, crd_files):
    secrets = find(docs, "Secret", CERT_SECRET, NS)
    certs = find(docs, "Certificate")
    if builtin_certs():
        # Empty, so that the webhook fills it in place and `helm uninstall` deletes it.
        expect(len(secrets) == 1 and secrets[0]["type"] == "Opaque" and not secrets[0].get("data")
               and not secrets[0].get("stringData"), f"built-in certificates: an empty Opaque Secret {CERT_SECRET}")
        expect(not certs, "built-in certificates: no cert-manager.io Certificate")
    elif val("portcullis.certManagerIo.createCertificates"):
        expect(not secrets, "cert-manager.io: no Secret rendered (cert-manager owns it)")
        cert = one(docs, "Certificate", CERT_SECRET, NS)
        expect(cert["spec"]["secretName"] == CERT_SECRET, f"Certificate writes {CERT_SECRET}")
        expect(sorted(cert["spec"]["dnsNames"]) == sorted(WEBHOOK_SAN), f"Certificate dnsNames {cert['spec']['dnsNames']}")
        ref = cert["spec"]["issuerRef"]
        issuer = one(docs, ref.get("kind", "Issuer"), ref["name"], NS)
        expect("ca" in issuer["spec"], "serving certificate comes from a CA Issuer (caBundle survives renewals)")
        one(docs, "Certificate", issuer["spec"]["ca"]["secretName"], NS)
    else:
        expect(not secrets and not certs, "own certificate: neither Secret nor Certificate rendered")


def check_host_network(target, docs, crd_files):
    pod = one(docs, "Deployment", "portcullis-webhook", NS)["spec"]["template"]["spec"]
    if val("portcullis.webhook.hostNetwork"):
        expect(pod.get("hostNetwork") is True, "hostNetwork true")
        expect(pod.get("dnsPolicy") == "ClusterFirstWithHostNet", "dnsPolicy ClusterFirstWithHostNet")
        port = [p for p in pod["containers"][0]["ports"] if p["name"] == "https"][0]["containerPort"]
        expect(port != 9443, "host network uses a non-default port")
        req = pod["affinity"]["podAntiAffinity"].get("requiredDuringSchedulingIgnoredDuringExecution", [])
        expect(any(t["topologyKey"] == "kubernetes.io/hostname" for t in req), "one webhook per node on the host network")
    else:
        expect(not pod.get("hostNetwork"), "hostNetwork only with portcullis.webhook.hostNetwork")


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
    accounts = set()
    if val("metricsOperator.enabled"):
        accounts.add("portcullis-metrics")
    if not metrics_only():
        accounts |= {"portcullis-webhook", "portcullis-gate"}
    expect(set(subjects) == accounts, f"bound accounts {sorted(subjects)}, want {sorted(accounts)}")
    for role in find(docs, "ClusterRole") + find(docs, "Role"):
        rn = role["metadata"]["name"]
        for r in role["rules"]:
            for field in ("apiGroups", "resources", "verbs"):
                expect("*" not in r.get(field, []), f"{rn}: wildcard in {field}")
            # The exceptions: the metrics role bound per namespace only (check_metrics_rbac), and the
            # webhook's own certificate Secret (check_webhook_certificate_rbac).
            if not (role["kind"] == "ClusterRole" and rn == METRICS_SECRETS_ROLE) \
                    and not (role["kind"] == "Role" and rn == "portcullis-webhook-certificates"):
                expect("secrets" not in r.get("resources", []), f"{rn}: no Secret access")
            if "pods" in r.get("resources", []) and "" in r.get("apiGroups", []):
                expect("update" not in r["verbs"], f"{rn}: pods are patched, never updated")
                expect("delete" not in r["verbs"], f"{rn}: pods are never deleted")
            if "leases" in r.get("resources", []):
                needs_name = set(r["verbs"]) - {"create"}
                expect(not needs_name or r.get("resourceNames"), f"{rn}: lease {sorted(needs_name)} limited by resourceNames")
                expect(role["kind"] == "Role", f"{rn}: leases only in the install namespace")
    if metrics_only():
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
    registry = val("global.imageRegistry") or "ghcr.io"
    expect(re.match(rf"^{re.escape(registry)}/portcullis/portcullis-metrics:\S+$", c["image"]), f"metrics image {c['image']}")
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
    with open(SECRETS_EXAMPLE) as fh:
        example = [d for d in yaml.safe_load_all(fh) if d]
    expect(len(example) == 1 and example[0]["kind"] == "RoleBinding" and example[0]["metadata"].get("namespace")
           and example[0]["roleRef"] == {"apiGroup": "rbac.authorization.k8s.io", "kind": "ClusterRole",
                                         "name": METRICS_SECRETS_ROLE}
           and example[0]["subjects"] == [{"kind": "ServiceAccount", "name": "portcullis-metrics", "namespace": NS}],
           f"{SECRETS_EXAMPLE}: one namespaced RoleBinding of {METRICS_SECRETS_ROLE} to portcullis-metrics")
    expect(not find(docs, "RoleBinding", METRICS_SECRETS_ROLE), f"{SECRETS_EXAMPLE} is an example, not part of the install")


def check_metrics_only_contents(target, docs, crd_files):
    kinds = {d["kind"] for d in docs}
    allowed = {"Namespace", "CustomResourceDefinition", "ServiceAccount", "ClusterRole", "ClusterRoleBinding",
               "Role", "RoleBinding", "Deployment", "Service", "PodDisruptionBudget"}
    expect(kinds <= allowed, f"lifecycleOperator.enabled false: unexpected kinds {sorted(kinds - allowed)} (webhook configurations, Secrets?)")
    expect({d["metadata"]["name"] for d in find(docs, "Deployment")} == {"portcullis-metrics"},
           "lifecycleOperator.enabled false: the metrics Deployment alone")
    expect({d["metadata"]["name"] for d in find(docs, "ServiceAccount")} == {"portcullis-metrics"},
           "lifecycleOperator.enabled false: the metrics ServiceAccount alone")
    lifecycle = [f"{d['kind']}/{d['metadata']['name']}" for d in docs
                 if re.match(r"^(portcullis-(webhook|gate)|lifecycle-operator)", d["metadata"]["name"])]
    expect(not lifecycle, f"lifecycleOperator.enabled false: lifecycle objects {lifecycle}")


def check_webhook_certificate_rbac(target, docs, crd_files):
    # With built-in certificates the webhook may touch exactly its Secret, its webhook
    # configurations and the converting CRDs, each by name (create cannot be limited by name).
    roles = find(docs, "Role", "portcullis-webhook-certificates", NS)
    cluster = rules_of(docs, "ClusterRole", "portcullis-webhook")
    special = [r for r in cluster if set(r["apiGroups"]) & {"admissionregistration.k8s.io", "apiextensions.k8s.io"}]
    if not builtin_certs():
        expect(not roles and not special, "webhook: certificate rights only with built-in certificates")
        return
    expect(len(roles) == 1, "webhook: Role portcullis-webhook-certificates")
    shape = sorted((r["resources"], r.get("resourceNames", []), sorted(r["verbs"])) for r in roles[0]["rules"])
    expect(shape == sorted([(["secrets"], [CERT_SECRET], ["get", "list", "patch", "update", "watch"]),
                            (["secrets"], [], ["create"])]), f"webhook certificate Role {shape}")
    binding = one(docs, "RoleBinding", "portcullis-webhook-certificates", NS)
    expect(binding["roleRef"]["name"] == "portcullis-webhook-certificates"
           and binding["subjects"] == [{"kind": "ServiceAccount", "name": "portcullis-webhook", "namespace": NS}],
           "webhook certificate RoleBinding binds portcullis-webhook")
    converting = sorted(d["metadata"]["name"] for d in find(docs, "CustomResourceDefinition")
                        if d["spec"].get("conversion", {}).get("strategy") == "Webhook")
    want = sorted([
        (["admissionregistration.k8s.io"], ["mutatingwebhookconfigurations", "validatingwebhookconfigurations"],
         ["portcullis-webhook"], ["get", "list", "patch", "watch"]),
        (["apiextensions.k8s.io"], ["customresourcedefinitions"], converting, ["get", "list", "patch", "watch"]),
    ])
    have = sorted((r["apiGroups"], r["resources"], sorted(r.get("resourceNames", [])), sorted(r["verbs"])) for r in special)
    expect(have == want, f"webhook caBundle rights {have}, want {want}")


def deployments(docs, names):
    return [one(docs, "Deployment", n, NS) for n in names]


def check_values(target, docs, crd_files):
    """Each value of the set appears where it should."""
    lifecycle = [] if metrics_only() else ["portcullis-webhook", "portcullis-gate"]
    metrics = ["portcullis-metrics"] if val("metricsOperator.enabled") else []
    expect(bool(find(docs, "Deployment", "portcullis-metrics")) == bool(metrics),
           "metrics controller rendered exactly when metricsOperator.enabled")
    if not metrics:
        leftovers = [f"{d['kind']}/{d['metadata']['name']}" for d in docs
                     if re.match(r"^(portcullis-metrics|metrics-operator)", d["metadata"]["name"])]
        expect(not leftovers, f"metricsOperator.enabled false: metrics objects {leftovers}")
    secrets = [{"name": n if isinstance(n, str) else n["name"]} for n in val("global.imagePullSecrets")]
    policy = val("global.imagePullPolicy") or val("portcullis.images.pullPolicy")
    for d in deployments(docs, lifecycle + metrics):
        pod = d["spec"]["template"]["spec"]
        n = d["metadata"]["name"]
        expect(pod.get("imagePullSecrets", []) == secrets, f"{n}: imagePullSecrets {secrets}")
        expect(all(c["imagePullPolicy"] == policy for c in pod["containers"]), f"{n}: imagePullPolicy {policy}")
        sched = val("lifecycleOperator.lifecycleOperator" if n != "portcullis-metrics" else "metricsOperator.metricsOperator")
        for key in ("nodeSelector", "tolerations", "topologySpreadConstraints"):
            expect(pod.get(key, type(sched[key])()) == sched[key], f"{n}: {key} {sched[key]}")
    for d in deployments(docs, lifecycle):
        n = d["metadata"]["name"]
        expect(d["spec"]["replicas"] == val(f"portcullis.{n.split('-')[1]}.replicas"), f"{n}: replicas")
        pod_ann = d["spec"]["template"]["metadata"].get("annotations", {})
        expect(pod_ann == val("lifecycleOperator.podAnnotations"), f"{n}: podAnnotations")
        expect(val("lifecycleOperator.annotations").items() <= d["metadata"].get("annotations", {}).items(),
               f"{n}: Deployment annotations")
        own = val(f"portcullis.{n.split('-')[1]}.resources")
        want = own or val("lifecycleOperator.lifecycleOperator.resources")
        if want:
            expect(d["spec"]["template"]["spec"]["containers"][0]["resources"] == want, f"{n}: resources {want}")
    for d in deployments(docs, metrics):
        want = val("metricsOperator.metricsOperator.resources")
        if want:
            expect(d["spec"]["template"]["spec"]["containers"][0]["resources"] == want, f"metrics: resources {want}")
    # Log filters: Portcullis's own, or debug on the gate when a Keptn controller level is above 0.
    levels = [v for k, v in val("lifecycleOperator.lifecycleOperator.env").items() if k.endswith("LogLevel")]
    for d in deployments(docs, lifecycle + metrics):
        short = d["metadata"]["name"].split("-")[1]
        c = d["spec"]["template"]["spec"]["containers"][0]
        have = {e["name"]: e.get("value") for e in c.get("env", [])}.get("LOG_FILTER")
        want = val(f"portcullis.{short}.logFilter") or None
        if short == "gate" and not want and any(int(x) > 0 for x in levels):
            expect(have and "gate=debug" in have, f"gate: LOG_FILTER with gate=debug for Keptn log levels ({have})")
        else:
            expect(have == want, f"{short}: LOG_FILTER {want!r}, not {have!r}")
    labels = val("global.commonLabels")
    annotations = val("global.commonAnnotations")
    for d in docs:
        if d["kind"] == "Namespace":
            continue
        what = f"{d['kind']}/{d['metadata']['name']}"
        expect(labels.items() <= d["metadata"].get("labels", {}).items(), f"{what}: commonLabels {labels}")
        expect(annotations.items() <= d["metadata"].get("annotations", {}).items(), f"{what}: commonAnnotations")
        expect(d["metadata"].get("labels", {}).get("app.kubernetes.io/part-of") == "portcullis",
               f"{what}: app.kubernetes.io/part-of portcullis")


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
    check_webhook_certificate_rbac,
    check_values,
]
# With metricsOperator.enabled (both lists).
METRICS_CHECKS = [
    check_metrics_deployment,
    check_metrics_rbac,
]

# lifecycleOperator.enabled false: the metrics controller without the lifecycle part.
METRICS_ONLY_CHECKS = [
    check_namespace_and_crds,
    check_security_contexts,
    check_rbac,
    check_metrics_only_contents,
    check_values,
]


def main(argv):
    chart = None
    targets = []
    i = 0
    while i < len(argv):
        if argv[i] == "--chart":
            chart = argv[i + 1]
            i += 2
            continue
        name, _, path = argv[i].partition("=")
        targets.append((name, path))
        i += 1
    crd_dir = os.path.join(chart, "files", "crds")
    crd_files = sorted(os.path.join(crd_dir, f) for f in os.listdir(crd_dir) if f.endswith(".yaml"))
    with open(os.path.join(chart, "values.yaml")) as fh:
        defaults = yaml.safe_load(fh)
    passed = failed = 0
    global VALUES
    for name, path in targets:
        over = {}
        if name not in ("static", "default"):
            with open(os.path.join(chart, "ci", f"{name}-values.yaml")) as fh:
                over = yaml.safe_load(fh) or {}
        VALUES = merged(defaults, over)
        with open(path) as fh:
            docs = [d for d in yaml.safe_load_all(fh) if d]
        checks = METRICS_ONLY_CHECKS if metrics_only() else CHECKS
        if val("metricsOperator.enabled"):
            checks = checks + METRICS_CHECKS
        for check in checks:
            try:
                check(name, docs, crd_files)
                passed += 1
            except (Failed, KeyError, IndexError, TypeError, AttributeError, ValueError) as e:
                failed += 1
                what = str(e) if isinstance(e, Failed) else f"{type(e).__name__}: {e}"
                print(f"FAIL {name} {check.__name__}: {what}")
    print(f"{passed} passed, {failed} failed")
    return 1 if failed else 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
