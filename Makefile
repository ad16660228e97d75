# Portcullis — top-level tasks. `make test` is what CI runs (.ci/run).
CARGO ?= cargo
CRD_DIR := charts/portcullis/files/crds
CLUSTER_DIR ?= target/cluster

.PHONY: all build test fmt-check clippy crds crds-check refs-check purity-check prometheus unit e2e deploy-check demo images images-check clean \
	control-plane cluster-up cluster-down

all: build

build:
	$(CARGO) build --workspace --all-targets --locked

## test: everything CI checks — formatting, lints, CRD drift, all tests (the end-to-end ones on
## the real control plane), the images, both demos.
test: fmt-check clippy crds-check refs-check purity-check deploy-check chart-check unit e2e images-check demo demo-fail

fmt-check:
	$(CARGO) fmt --all -- --check

clippy:
	$(CARGO) clippy --workspace --all-targets --locked -- -D warnings

## purity-check: the lifecycle crate's whole dependency tree holds no async runtime, Kubernetes
## client or OTLP exporter, so its decisions cannot do I/O.
purity-check:
	@impure=$$($(CARGO) tree --locked -p lifecycle -e normal --prefix none | grep -E '^(tokio|kube-client|kube-runtime|hyper|reqwest|opentelemetry)[ -]' | sort -u); \
	if [ -n "$$impure" ]; then echo "lifecycle depends on: $$impure" >&2; exit 1; fi; \
	echo "lifecycle: no runtime, client or exporter in its dependency tree"

## prometheus: a Prometheus server for the metrics tests and the demo (Debian's package).
prometheus:
	@tools/prometheus.sh >/dev/null

## unit: every test but the end-to-end crate (no control plane needed; the metrics tests query a
## real Prometheus).
unit: prometheus
	$(CARGO) test --workspace --locked --exclude e2e --exclude gate -q
	$(CARGO) test --locked -p gate -q -- --skip controllers::tests::e2e

## e2e: the end-to-end tests (tests/, and the gate's controller e2e tests): each starts its own
## control plane, runs the real binaries against it and stops it.
e2e: control-plane prometheus
	$(CARGO) build --workspace --bins --locked
	$(CARGO) test --locked -p e2e
	$(CARGO) test --locked -p gate --lib controllers::tests::e2e

## control-plane: build (once per machine; cached in ~/.cache/portcullis, keyed by tools/go.sum)
## kube-apiserver, kube-controller-manager, kube-scheduler, kubectl, etcd, kwok and kwokctl.
control-plane:
	tools/build.sh >/dev/null

## release-tools: build (once per machine; cached in ~/.cache/portcullis, keyed by tools/release/go.sum)
## helm and crane, for the chart and the images.
.PHONY: release-tools
release-tools:
	tools/release/build.sh >/dev/null

## cluster-up: a control plane with two kwok nodes in $(CLUSTER_DIR), in the background:
## KUBECONFIG=$(CLUSTER_DIR)/kubeconfig, kubectl at $(CLUSTER_DIR)/bin/kubectl. cluster-down stops it.
cluster-up: control-plane
	tools/cluster.sh up $(CLUSTER_DIR)
	@echo "export KUBECONFIG=$(abspath $(CLUSTER_DIR))/kubeconfig PATH=$(abspath $(CLUSTER_DIR))/bin:\$$PATH"

cluster-down:
	tools/cluster.sh down $(CLUSTER_DIR)

## crds: regenerate the chart's CRDs (charts/portcullis/files/crds) from the Rust types in `shared`,
## then deploy/ from the chart.
crds:
	$(CARGO) run -q --locked -p shared --bin portcullis-crdgen -- $(CRD_DIR)
	$(MAKE) deploy

## crds-check: fail when the chart's CRDs are out of date with the types.
crds-check:
	$(CARGO) run -q --locked -p shared --bin portcullis-crdgen -- --check $(CRD_DIR)

## refs-check: fail when a specification reference (`A15`, `B §3.9`) in any file has no anchor in docs/.
refs-check:
	python3 tools/check-refs.py

## deploy-check: helm lint, then render the chart with helm template for the defaults and every value
## set of charts/portcullis/ci, and check their properties and the static manifest (deploy/check.sh).
deploy-check: release-tools
	HELM="$$(tools/release/build.sh)/helm" deploy/check.sh

## deploy: render deploy/portcullis.yaml and deploy/crds from the chart (default values).
.PHONY: deploy chart-docs chart-check
deploy: release-tools
	python3 tools/render-deploy.py "$$(tools/release/build.sh)/helm"

## chart-docs: regenerate the values table of charts/portcullis/README.md from values.yaml's comments.
chart-docs:
	python3 tools/chart-docs.py

## chart-check: fail when deploy/ or the chart's values table drift from the chart.
chart-check: release-tools
	python3 tools/render-deploy.py "$$(tools/release/build.sh)/helm" --check
	python3 tools/chart-docs.py --check

## images: container images without a container engine (tools/images.sh): one OCI archive per binary,
## $(IMAGES_DIR)/portcullis-{webhook,gate,metrics,certs}.tar tagged ghcr.io/portcullis/<name>:<crate version>,
## each an empty base plus one layer (the binary, its shared libraries, CA certificates, nonroot user
## 65532) assembled with crane. From the release binaries; PROFILE=debug takes the debug binaries
## (as images-check does). Load or push: `crane push target/images/portcullis-webhook.tar REF`,
## `docker load -i …`, `podman load -i …`. With a container engine, the Dockerfile builds like images on distroless/cc.
PROFILE ?= release
IMAGES_DIR ?= $(if $(filter release,$(PROFILE)),target/images,target/images-$(PROFILE))
images: release-tools
ifeq ($(PROFILE),release)
	$(CARGO) build --release --locked -p webhook -p gate -p metrics -p certs
else
	$(CARGO) build --workspace --bins --locked --profile $(if $(filter debug,$(PROFILE)),dev,$(PROFILE))
endif
	tools/images.sh build $(PROFILE) $(IMAGES_DIR)

## images-check: build the images from the debug binaries (already built by e2e) and check each: unpacked
## into a temp root, its entrypoint prints `<name> <version>` for --version when run there as 65532:65532,
## also with the root read-only; user, entrypoint, ports as the Dockerfile says; every portcullis-* binary
## answers --version. Needs root (chroot, unshare).
images-check:
	$(MAKE) --no-print-directory images PROFILE=debug IMAGES_DIR=target/images-debug
	tools/images.sh check target/images-debug debug

## demo: the whole lifecycle on the real control plane, shown with kubectl (demo/run.sh, demo/README.md).
## `make demo DEMO_FAIL=1` (or `make demo-fail`): the pre-deployment task fails and the pods stay held.
DEMO_FAIL ?= 0
.PHONY: demo-fail
demo:
	CARGO="$(CARGO)" DEMO_FAIL="$(DEMO_FAIL)" demo/run.sh

demo-fail:
	CARGO="$(CARGO)" DEMO_FAIL=1 demo/run.sh

clean:
	$(CARGO) clean

## bench-gate: gate service release latency (p50/p99 over 200 pods) and RSS with 10,000 gated pods
## (BENCH_IDLE_PODS), on a real control plane (tests/tests/gate_bench.rs); the release gate binary first.
.PHONY: bench-gate
bench-gate:
	$(CARGO) build --release --locked -p gate --bins
	$(CARGO) test -p e2e --release --locked --test gate_bench -- --ignored --nocapture

## bench-scale: the webhook and the gate on a big cluster (tests/tests/scale_bench.rs): for each pod count of
## BENCH_PODS (default 10000,100000; 30 % as many ReplicaSets, 10 % Deployments), RSS, bytes and objects listed and
## time to ready at start, then a managed rollout of BENCH_WORKLOADS (default 1000) workloads x 2 pods: time to all
## Running and Completed, API requests per pod, release latency (BENCH_KUBERNETES_EVENTS=warnings: the gate's
## --kubernetes-events). Table in target/bench-scale.md. Not in `make test`.
BENCH_PODS ?= 10000,100000
BENCH_WORKLOADS ?= 1000
BENCH_KUBERNETES_EVENTS ?= all
.PHONY: bench-scale
bench-scale: control-plane
	$(CARGO) build --release --locked -p webhook -p gate --bins
	BENCH_PODS="$(BENCH_PODS)" BENCH_WORKLOADS="$(BENCH_WORKLOADS)" BENCH_KUBERNETES_EVENTS="$(BENCH_KUBERNETES_EVENTS)" \
		PORTCULLIS_KWOK_PARALLELISM=32 \
		$(CARGO) test -p e2e --release --locked --test scale_bench -- --ignored --nocapture

## bench-webhook (webhook owner): criterion bench of the pod handler, then a load run of the release
## webhook binary on a real control plane with oha over TLS keep-alive (webhook/bench/load.sh; RATE,
## DURATION, CONNECTIONS, HTTP2=1).
.PHONY: bench-webhook
bench-webhook:
	$(CARGO) bench --locked -p webhook --bench pod_handler
	CARGO=$(CARGO) webhook/bench/load.sh

## fuzz: libFuzzer on the cargo-fuzz target `admission` for FUZZ_SECONDS (fuzz/README.md): seeds from
## fuzz/seeds (the golden fixtures' reviews), corpus kept in fuzz/corpus, crashes in fuzz/artifacts.
## Runs on the pinned stable toolchain (coverage instrumentation only, no sanitizer, no cargo-fuzz);
## with cargo-fuzz and nightly: `cd fuzz && cargo +nightly fuzz run admission` adds AddressSanitizer.
FUZZ_SECONDS ?= 300
FUZZ_TRIPLE = $(shell rustc -vV | sed -n 's/^host: //p')
FUZZ_RUSTFLAGS = -Cpasses=sancov-module -Cllvm-args=-sanitizer-coverage-level=4 \
	-Cllvm-args=-sanitizer-coverage-inline-8bit-counters -Cllvm-args=-sanitizer-coverage-pc-table \
	-Cllvm-args=-sanitizer-coverage-trace-compares --cfg fuzzing -Cdebug-assertions -Coverflow-checks
.PHONY: fuzz
fuzz:
	mkdir -p fuzz/corpus/admission fuzz/artifacts/admission
	cp -n fuzz/seeds/admission/* fuzz/corpus/admission/
	cd fuzz && RUSTFLAGS="$(FUZZ_RUSTFLAGS)" $(CARGO) build --release --locked --target $(FUZZ_TRIPLE) --bin admission
	fuzz/target/$(FUZZ_TRIPLE)/release/admission fuzz/corpus/admission fuzz/seeds/admission \
		-dict=fuzz/admission.dict -max_len=16384 -artifact_prefix=fuzz/artifacts/admission/ \
		-max_total_time=$(FUZZ_SECONDS) -print_final_stats=1
