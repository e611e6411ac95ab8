# crossdns container image: a release build on Debian bookworm, run on
# distroless (glibc, CA certificates, no shell) as the non-root user 65532.
#
# Not built in this repository's CI environment (it has no Docker engine);
# build it with `docker build -t crossdns .` or any OCI builder (BuildKit,
# kaniko, buildah).

FROM rust:1-bookworm AS build
WORKDIR /src
# libcap2-bin: setcap, so the binary may bind port 53 as non-root where the
# runtime honours file capabilities (the Deployment also sets the
# net.ipv4.ip_unprivileged_port_start sysctl, which works everywhere).
RUN apt-get update \
 && apt-get install -y --no-install-recommends libcap2-bin \
 && rm -rf /var/lib/apt/lists/*
COPY . .
RUN cargo build --release --locked --bin crossdns \
 && cp target/release/crossdns /crossdns \
 && setcap cap_net_bind_service=+ep /crossdns

FROM gcr.io/distroless/cc-debian12:nonroot
COPY --from=build /crossdns /crossdns
USER nonroot:nonroot
# DNS (UDP and TCP), DNS over TLS, admin (/metrics /healthz /readyz).
EXPOSE 53/udp 53/tcp 853/tcp 9153/tcp
ENTRYPOINT ["/crossdns"]
CMD ["serve", "--config", "/etc/crossdns/config.yaml"]
