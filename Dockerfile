# syntax=docker/dockerfile:1
# Multi-stage build of segmentd: a static binary on a distroless, non-root base image.

FROM golang:1.26-bookworm AS builder
WORKDIR /src

# Dependencies first, so they are cached across source changes.
COPY go.mod go.sum ./
RUN --mount=type=cache,target=/go/pkg/mod \
    go mod download

COPY . .
RUN --mount=type=cache,target=/go/pkg/mod \
    --mount=type=cache,target=/root/.cache/go-build \
    CGO_ENABLED=0 go build -trimpath -ldflags='-s -w' -o /out/segmentd ./cmd/segmentd

# The data directory must exist and belong to the nonroot user (65532) before it is declared a
# volume; distroless has no shell to create it, so it is prepared in the builder.
RUN mkdir -p /out/data


FROM gcr.io/distroless/static-debian12:nonroot

COPY --from=builder /out/segmentd /segmentd
COPY --from=builder --chown=65532:65532 /out/data /data

# Listen on all interfaces inside the container; the embedded NATS (used only when NATS_URL is
# unset) keeps its JetStream data under SEGMENTS_DATA_DIR.
ENV SEGMENTS_HTTP_ADDR=0.0.0.0:8080 \
    SEGMENTS_DATA_DIR=/data

VOLUME /data
EXPOSE 8080
USER nonroot:nonroot

ENTRYPOINT ["/segmentd"]
CMD ["serve"]
