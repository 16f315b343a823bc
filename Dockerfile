# Multi-stage build: compile in the Rust image, run on a slim Debian with only the binary.
FROM rust:1-bookworm AS build
WORKDIR /src
COPY Cargo.toml Cargo.lock ./
COPY src ./src
RUN cargo build --release --locked --bin sso-token

FROM debian:bookworm-slim
RUN apt-get update \
 && apt-get install -y --no-install-recommends ca-certificates curl \
 && rm -rf /var/lib/apt/lists/* \
 && useradd --system --uid 10001 --home /app sso
WORKDIR /app
COPY --from=build /src/target/release/sso-token /usr/local/bin/sso-token
COPY config ./config
USER sso
EXPOSE 8080
ENV RUST_LOG=info
# Plain HTTP on 8080, as config/default.toml listens: with server.tls.* or another
# server.listen, override it (`docker run --health-cmd`, or `healthcheck:` in compose).
HEALTHCHECK --interval=10s --timeout=2s CMD curl -fsS http://127.0.0.1:8080/healthz || exit 1
ENTRYPOINT ["sso-token"]
CMD ["serve"]
