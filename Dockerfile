# A small image of epollo: a static (musl) binary and the demo site, FROM scratch.
#
#   docker build -t epollo .
#   docker run --rm -p 8080:8080 epollo                       # the demo site
#   docker run --rm -p 8080:8080 -v "$PWD/site:/www:ro" epollo  # your folder
#   docker run --rm -p 8080:8080 epollo --live --cors          # extra flags
#
# The address and port are in the entrypoint, so extra flags add to them instead of
# replacing them; the folder served is the working directory, /www (epollo serves the
# current directory when no folder is named).
# epollo binds 0.0.0.0 inside the container (the published port decides who reaches it),
# runs as an unprivileged user, and exits cleanly on `docker stop` (SIGTERM). Container
# seccomp profiles that refuse openat2(2) are fine: epollo falls back to an openat walk
# beneath the root with the same guarantees (one warning at startup).

# Fully qualified, so podman and buildah (which refuse short names) build it too.
FROM docker.io/library/rust:1-alpine AS build
WORKDIR /src
COPY Cargo.toml Cargo.lock ./
COPY src ./src
COPY benches ./benches
COPY tests ./tests
COPY fuzz ./fuzz
COPY www ./www
# On Alpine the native target is musl: the binary is static.
RUN cargo build --release --locked && strip target/release/epollo

FROM scratch
COPY --from=build /src/target/release/epollo /epollo
COPY www /www
USER 65534:65534
WORKDIR /www
EXPOSE 8080
ENTRYPOINT ["/epollo", "--bind", "0.0.0.0", "--port", "8080"]
