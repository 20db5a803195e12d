# syntax=docker/dockerfile:1
# Shardline container image: the `shardline` binary, every sink plugin in
# /usr/lib/shardline/plugins, and a default pipeline configured from the
# environment (deploy/pipeline.toml). Build with `docker build -t shardline .`.
#
# The build stage runs the same cargo command CI runs, in release mode, and
# scripts/rootfs lays out the files; CI assembles the same tree from its own
# build and runs the binary from it with an empty environment
# (tests/tests/e2e_container_rootfs.rs), so a missing runtime library or a
# wrong plugin path fails CI even though Docker cannot run there.

FROM rust:1.95-bookworm AS build
WORKDIR /src
COPY . .
RUN cargo build --release --locked --workspace \
 && scripts/rootfs target/release /rootfs

FROM debian:bookworm-slim
# CA certificates for TLS to AWS (rustls reads the system store) and tzdata
# (the s3 sink's IANA `time_zone`); nothing else:
# the binary and plugins need only libc, libm and libgcc_s.
RUN apt-get update \
 && apt-get install -y --no-install-recommends ca-certificates tzdata \
 && rm -rf /var/lib/apt/lists/* \
 && useradd --system --uid 10001 --home-dir /var/lib/shardline --shell /usr/sbin/nologin shardline
COPY --from=build /rootfs/ /
RUN chown -R shardline:shardline /var/lib/shardline
USER 10001:10001
WORKDIR /var/lib/shardline
ENV SHARDLINE_METRICS_ADDRESS=0.0.0.0:9464 \
    SHARDLINE_LOG_FORMAT=json
EXPOSE 9464
STOPSIGNAL SIGTERM
HEALTHCHECK --interval=15s --timeout=5s --start-period=30s --retries=3 CMD ["shardline", "healthcheck"]
ENTRYPOINT ["shardline"]
CMD ["run", "/etc/shardline/pipelines"]
