# syntax=docker/dockerfile:1
#
# orderworker image: the worker (entrypoint), the enqueue CLI and a tiny
# healthcheck probe, all static, on a distroless non-root base.
#
#   docker build -t orderworker .
#   docker run --rm -e REDIS_URL=redis://redis:6379/0 -p 9090:9090 orderworker
#   docker run --rm --entrypoint /enqueue orderworker status tencent Order100001

FROM golang:1.26 AS build
WORKDIR /src
ENV CGO_ENABLED=0 GOCACHE=/cache/go-build

# Module downloads get their own layer: it is rebuilt only when go.mod or
# go.sum change, not on every source edit.
COPY go.mod go.sum ./
RUN go mod download && go mod verify

COPY . .
RUN --mount=type=cache,target=/cache/go-build \
    go build -trimpath -ldflags="-s -w" -o /out/ \
        ./cmd/worker \
        ./cmd/enqueue \
        ./deploy/healthcheck

FROM gcr.io/distroless/static-debian12:nonroot
COPY --from=build /out/worker /worker
COPY --from=build /out/enqueue /enqueue
COPY --from=build /out/healthcheck /healthcheck
USER nonroot:nonroot
# Admin HTTP: /metrics, /healthz, /readyz, /monitoring/ (ORDERWORKER_ADMIN_ADDR).
EXPOSE 9090
ENTRYPOINT ["/worker"]
