# syntax=docker/dockerfile:1
# The dsfiles image: `dsfiles serve` by default, every other subcommand available
# (`docker run IMAGE sync ...`). See docs/deploy.md.
#
#   docker build -t dsfiles .
#   docker run --read-only --tmpfs /tmp -p 8080:8080 \
#     -e DSFILES_API_TOKENS=... -e DS_API_TOKEN=... dsfiles
#
# What the runtime image guarantees (xtask/tests/deploy.rs checks the Dockerfile):
# - it runs as the unprivileged user 10001, never as root;
# - it works on a read-only root file system: the service writes only its job history
#   (DSFILES_STATE_DIR, a volume) and the destinations it is allowed to write (volumes or
#   buckets); TMPDIR points to /tmp, which deployments mount as a tmpfs;
# - it carries nothing but the binary, its man pages and completions, CA certificates and
#   Debian's base: no compiler, no curl (the HEALTHCHECK is `dsfiles healthcheck`).

ARG RUST_VERSION=1.95
ARG DEBIAN_RELEASE=bookworm

FROM docker.io/library/rust:${RUST_VERSION}-slim-${DEBIAN_RELEASE} AS build
WORKDIR /src
COPY . .
# The registry and target directories are BuildKit cache mounts: downloaded crates and compiled
# dependencies are kept between builds, so a source change rebuilds the workspace crates only.
# (A layer of stub sources would go stale: the manifests declare test and bench targets, and
# cargo trusts file times that COPY does not refresh.) The `dist` profile is the shipped one:
# fat LTO, one codegen unit (Cargo.toml). `-p dsfiles-cli` keeps the features of other members
# (xtask's test-only `dsfiles-sink/testing`, with its S3 server) out of the build.
RUN --mount=type=cache,target=/usr/local/cargo/registry,sharing=locked \
    --mount=type=cache,target=/src/target,sharing=locked \
    cargo build --locked --profile dist -p dsfiles-cli --bin dsfiles \
    && install -D -m 0755 target/dist/dsfiles /out/usr/local/bin/dsfiles
# Man pages and completions come from the binary's own command-line definition.
RUN /out/usr/local/bin/dsfiles man --out /out/usr/share/man/man1 \
    && install -d /out/usr/share/bash-completion/completions \
        /out/usr/share/zsh/vendor-completions /out/usr/share/fish/vendor_completions.d \
    && /out/usr/local/bin/dsfiles completions bash > /out/usr/share/bash-completion/completions/dsfiles \
    && /out/usr/local/bin/dsfiles completions zsh > /out/usr/share/zsh/vendor-completions/_dsfiles \
    && /out/usr/local/bin/dsfiles completions fish > /out/usr/share/fish/vendor_completions.d/dsfiles.fish

FROM docker.io/library/debian:${DEBIAN_RELEASE}-slim AS runtime
# CA certificates for DS, file hosts and buckets (rustls reads the system store). Versions are
# not pinned: this takes the release's current security updates on every build.
# hadolint ignore=DL3008
RUN apt-get update \
    && apt-get install -y --no-install-recommends ca-certificates \
    && rm -rf /var/lib/apt/lists/* \
    && groupadd --system --gid 10001 dsfiles \
    && useradd --system --uid 10001 --gid 10001 --home-dir /var/lib/dsfiles \
        --no-create-home --shell /usr/sbin/nologin dsfiles \
    && install -d -o 10001 -g 10001 -m 0750 /var/lib/dsfiles /data
COPY --from=build /out/ /

ENV DSFILES_LISTEN=0.0.0.0:8080 \
    DSFILES_STATE_DIR=/var/lib/dsfiles \
    TMPDIR=/tmp
# The job history. A volume, so that `docker run --read-only` works without further flags;
# /data is where local destinations go (mount a volume there and allow it with --allow-dest).
VOLUME ["/var/lib/dsfiles"]
USER 10001:10001
WORKDIR /var/lib/dsfiles
EXPOSE 8080
# SIGTERM (Docker's and Kubernetes' stop signal) stops the service gracefully: see
# docs/deploy.md for the time it needs.
STOPSIGNAL SIGTERM
# `dsfiles healthcheck` GETs /healthz on the port of DSFILES_LISTEN, over loopback: set the
# address with that variable (not `serve --listen`) and the check follows it.
HEALTHCHECK --interval=30s --timeout=5s --start-period=10s --retries=3 \
    CMD ["dsfiles", "healthcheck"]
ENTRYPOINT ["dsfiles"]
CMD ["serve"]
