# The pipeline image: `fulfilment run` by default.
FROM rust:1.95-slim-bookworm AS build
WORKDIR /src
COPY Cargo.toml Cargo.lock ./
COPY vendor ./vendor
COPY src ./src
COPY migrations ./migrations
COPY config ./config
RUN cargo build --release --locked

FROM debian:bookworm-slim
RUN apt-get update \
    && apt-get install -y --no-install-recommends ca-certificates \
    && rm -rf /var/lib/apt/lists/*
COPY --from=build /src/target/release/fulfilment /usr/local/bin/fulfilment
COPY config /app/config
COPY examples /app/examples
WORKDIR /app
USER 10001
# Ready: the database answers, the broker is connected, every worker runs (see docs/operations.md).
HEALTHCHECK --interval=10s --timeout=6s --start-period=30s --retries=3 \
    CMD ["fulfilment", "health"]
ENTRYPOINT ["fulfilment"]
CMD ["run"]
