# syntax=docker/dockerfile:1
ARG GO_VERSION=1.22
ARG BASE=alpine:3.20
ARG REGISTRY

FROM golang:${GO_VERSION} AS Build
ARG GO_VERSION
WORKDIR /src
ENV CGO_ENABLED=0 GOFLAGS="-trimpath -mod=readonly"
COPY go.mod go.sum ./
RUN --mount=type=cache,target=/root/.cache/go-build \
    --mount=type=bind,from=tools,source=/bin,target=/tools \
    go build -o /out/app ./cmd/app
RUN echo "built with go $GO_VERSION"

FROM ${REGISTRY:-docker.io}/library/busybox:1.36 AS tools

FROM build AS test
RUN --network=none go test ./...

FROM ${BASE} AS final
ARG BASE
ARG VERSION=dev
LABEL org.opencontainers.image.version=$VERSION base="$BASE"
COPY --from=build --chown=app:app --chmod=0755 /out/app /usr/local/bin/app
COPY --from=0 /src/go.mod /doc/
USER app
EXPOSE 8080 9090/udp
HEALTHCHECK --interval=30s --timeout=3s --retries=3 CMD ["/usr/local/bin/app", "health"]
ENTRYPOINT ["/usr/local/bin/app"]
CMD ["serve"]
