# syntax=docker/dockerfile:1
#
# keystep in a container: a static binary (CGO_ENABLED=0) on distroless, running as a numeric
# non-root user, its state (SQLite database, admin token, code key, signing keys) in the /data volume.
#
#   docker build --build-arg VERSION=1.2.3 -t keystep .
#   docker run -d -p 8080:8080 -v keystep-data:/data -e KEYSTEP_PUBLIC_URL=https://keystep.example.com keystep
#   docker exec <container> /keystep admin user add alice --token-file /data/admin-token
#
# With a configuration file:
#
#   docker run -d -p 8080:8080 -v keystep-data:/data -v /etc/keystep:/etc/keystep:ro \
#     keystep serve --config /etc/keystep/keystep.yaml
#
# KEYSTEP_LISTEN and KEYSTEP_DATA_DIR are set below, and the environment overrides the file: inside
# the container keystep listens on 0.0.0.0:8080 and keeps its state in /data whatever the file says
# (pass -e KEYSTEP_LISTEN=… to change it). Serve it behind a TLS reverse proxy and set public_url
# (or KEYSTEP_PUBLIC_URL) to the https URL phones reach: without one keystep uses
# http://localhost:8080, which phones cannot reach; an http:// public URL on another host is refused
# unless serve --insecure-dev (development only). Files the configuration names (secrets, keys)
# must be readable by uid 65532 and by nobody else (mode 0600).
#
# plugin/cmd/keystep/packaging_test.go builds the binary with exactly the command of the build
# stage and checks that it is static; the image itself is not built by the tests.

ARG GO_VERSION=1.26
FROM golang:${GO_VERSION} AS build
WORKDIR /src
COPY go.mod go.sum ./
RUN go mod download
COPY . .
ARG VERSION=dev
RUN CGO_ENABLED=0 go build -trimpath -buildvcs=false -ldflags "-s -w -X main.version=${VERSION}" -o /out/keystep ./plugin/cmd/keystep
RUN install -d -m 0700 /out/data

FROM gcr.io/distroless/static-debian12:nonroot
COPY --from=build /out/keystep /keystep
COPY --from=build --chown=65532:65532 /out/data /data
USER 65532:65532
ENV KEYSTEP_LISTEN=0.0.0.0:8080 \
    KEYSTEP_DATA_DIR=/data
VOLUME ["/data"]
EXPOSE 8080
ENTRYPOINT ["/keystep"]
CMD ["serve"]
