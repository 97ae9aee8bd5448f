# A small tidemark image: the binary plus the dump tools backups need (pg_dump/pg_restore,
# mariadb-dump/mariadb). Build: docker build -t tidemark .
# Run: docker run --rm -v "$PWD/migrations:/migrations" -v tidemark-backups:/backups \
#        -e TIDEMARK_DATABASE_URL=postgres://app@db/app tidemark up
FROM rust:1-bookworm AS build
WORKDIR /src
# libclang: the lint links PostgreSQL's own parser (pg_query), whose bindings bindgen generates.
RUN apt-get update && apt-get install -y --no-install-recommends libclang-dev && rm -rf /var/lib/apt/lists/*
COPY . .
RUN cargo build --release --locked -p tidemark-cli \
 && cp target/release/tidemark /usr/local/bin/tidemark

FROM debian:bookworm-slim
RUN apt-get update \
 && apt-get install -y --no-install-recommends postgresql-client mariadb-client ca-certificates \
 && rm -rf /var/lib/apt/lists/* \
 && useradd --system --home /work tidemark \
 && mkdir -p /backups /migrations && chown tidemark /backups
COPY --from=build /usr/local/bin/tidemark /usr/local/bin/tidemark
USER tidemark
WORKDIR /work
# Backups belong on a volume: inside the container they vanish with it. The migrations are
# in /migrations unless --dir says otherwise (an environment default, not a flag in the
# entrypoint: a command that names --dir again would otherwise be refused).
ENV TIDEMARK_BACKUP_DIR=/backups TIDEMARK_DIR=/migrations
VOLUME ["/backups"]
ENTRYPOINT ["tidemark"]
CMD ["status"]
