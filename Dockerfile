# syntax=docker/dockerfile:1
#
# shiftcast: one static binary on distroless, running as non-root.
#
#   docker build -t shiftcast:0.1.0 --build-arg VERSION=0.1.0 .
#   docker run --rm shiftcast:0.1.0 --help
#
# VERSION must be SemVer: it is the NATS micro service's version, and micro
# refuses to register a service whose version is not.

ARG GO_VERSION=1.26

FROM --platform=$BUILDPLATFORM golang:${GO_VERSION} AS build
WORKDIR /src
# Modules first, in their own cached layer: they change less than the code.
RUN --mount=type=cache,target=/go/pkg/mod \
    --mount=type=bind,source=go.mod,target=go.mod \
    --mount=type=bind,source=go.sum,target=go.sum \
    go mod download
ARG TARGETOS
ARG TARGETARCH
ARG VERSION=0.1.0
# Static (no cgo), reproducible paths, no symbol tables; cross-compiled for
# the target platform on the build platform.
RUN --mount=type=cache,target=/go/pkg/mod \
    --mount=type=cache,target=/root/.cache/go-build \
    --mount=type=bind,target=. \
    CGO_ENABLED=0 GOOS=$TARGETOS GOARCH=$TARGETARCH \
    go build -trimpath -ldflags "-s -w -X main.version=${VERSION}" \
      -o /out/shiftcast ./cmd/shiftcast

# Static binary, CA certificates (webhooks over TLS, PostgreSQL with
# sslmode=verify-full), tzdata, /etc/passwd with "nonroot" (65532); no shell.
FROM gcr.io/distroless/static-debian12:nonroot
ARG VERSION=0.1.0
LABEL org.opencontainers.image.title="shiftcast" \
      org.opencontainers.image.description="Eligibility-aware shift notifications for a staffing marketplace" \
      org.opencontainers.image.version="${VERSION}"
COPY --from=build /out/shiftcast /shiftcast
# Numeric, so that Kubernetes can check runAsNonRoot against it.
USER 65532:65532
EXPOSE 8080
ENTRYPOINT ["/shiftcast"]
CMD ["serve"]
