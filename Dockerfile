# syntax=docker/dockerfile:1
# Build: the same static binary as `CGO_ENABLED=0 go build ./cmd/rollcall`.
FROM golang:1.26-bookworm AS build
WORKDIR /src
COPY go.mod go.sum ./
RUN go mod download
COPY . .
ARG VERSION=dev
RUN CGO_ENABLED=0 go build -trimpath -ldflags "-s -w -X main.version=${VERSION}" -o /out/rollcall ./cmd/rollcall

# Run: no shell, no root.
FROM gcr.io/distroless/static-debian12:nonroot
COPY --from=build /out/rollcall /usr/local/bin/rollcall
ENTRYPOINT ["/usr/local/bin/rollcall"]
CMD ["run", "-config", "/etc/rollcall/config.toml"]
