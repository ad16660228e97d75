# syntax=docker/dockerfile:1
# Portcullis images. One build, four final stages (one binary each), all running as the
# distroless "nonroot" user (uid/gid 65532) that deploy/base expects:
#   docker build --target webhook -t ghcr.io/portcullis/portcullis-webhook:0.1.0 .
#   docker build --target gate    -t ghcr.io/portcullis/portcullis-gate:0.1.0 .
#   docker build --target metrics -t ghcr.io/portcullis/portcullis-metrics:0.1.0 .
#   docker build --target certs   -t ghcr.io/portcullis/portcullis-certs:0.1.0 .
# Without --target the last stage (webhook) is built. Needs BuildKit (cache mounts).
#
# No container engine? `make images` is the daemonless way: it builds the same four images (tags,
# user, entrypoint, ports; one layer with the binary, its glibc libraries and CA certificates on an
# empty base instead of distroless) as OCI archives in target/images/ with crane (tools/images.sh),
# and `make test` runs each one's entrypoint in its unpacked root. Keep the EXPOSE, USER and
# ENTRYPOINT lines below as they are read there.
#
# The binaries link glibc dynamically (ring builds C code; no musl toolchain needed), so the
# runtime base is distroless/cc: glibc and libgcc, no shell, no package manager. The builder is
# the same Debian release (bookworm) so the glibc the binaries were linked against is present.

ARG RUST_VERSION=1.95

FROM docker.io/library/rust:${RUST_VERSION}-bookworm AS builder
WORKDIR /src
COPY . .
# target/ is a cache mount, so the binaries are copied out in the same step.
RUN --mount=type=cache,target=/usr/local/cargo/registry \
    --mount=type=cache,target=/usr/local/cargo/git \
    --mount=type=cache,target=/src/target \
    cargo build --release --locked -p webhook -p gate -p metrics -p certs \
 && mkdir -p /out \
 && cp target/release/portcullis-webhook target/release/portcullis-gate \
       target/release/portcullis-metrics target/release/portcullis-certs /out/

FROM gcr.io/distroless/cc-debian12:nonroot AS certs
COPY --from=builder /out/portcullis-certs /usr/local/bin/portcullis-certs
USER 65532:65532
ENTRYPOINT ["/usr/local/bin/portcullis-certs"]

FROM gcr.io/distroless/cc-debian12:nonroot AS gate
COPY --from=builder /out/portcullis-gate /usr/local/bin/portcullis-gate
USER 65532:65532
EXPOSE 8081 2222
ENTRYPOINT ["/usr/local/bin/portcullis-gate"]

FROM gcr.io/distroless/cc-debian12:nonroot AS metrics
COPY --from=builder /out/portcullis-metrics /usr/local/bin/portcullis-metrics
USER 65532:65532
EXPOSE 9999
ENTRYPOINT ["/usr/local/bin/portcullis-metrics"]

FROM gcr.io/distroless/cc-debian12:nonroot AS webhook
COPY --from=builder /out/portcullis-webhook /usr/local/bin/portcullis-webhook
USER 65532:65532
EXPOSE 9443
ENTRYPOINT ["/usr/local/bin/portcullis-webhook"]
