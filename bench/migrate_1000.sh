#!/usr/bin/env bash
# Apply 1,000 small migrations to a fresh PostgreSQL database, timed in the same run as
#   - psql applying the same SQL in ONE transaction (the floor: no bookkeeping, one commit),
#   - psql applying it with one transaction per migration (no bookkeeping),
#   - sqlx-cli's `sqlx migrate run` (installed here by `cargo install` if missing),
#   - dbmate (`dbmate up`, the npm package `.ci/run` installs into target/ci-tools; skipped
#     when it is not there),
#   - tidemark `up` with everything on (lock, history, journal, drift check, fingerprint, and
#     the backup it takes before changing anything) and with --no-backup.
# Not part of CI. SYNC=off RUNS=10 measures with synchronous_commit off (tool overhead alone).
# Needs PostgreSQL at $PG (default postgres://postgres@127.0.0.1:5432) and
# hyperfine. Prints a Markdown table; paste it into docs/benchmarks.md.
set -euo pipefail
cd "$(dirname "$0")/.."
PG=${PG:-postgres://postgres@127.0.0.1:5432}
N=${N:-1000}
RUNS=${RUNS:-5}
OUT=bench/out/migrate_$N
DB=tm_bench_migrate

command -v hyperfine >/dev/null || { echo "needs hyperfine (apt-get install hyperfine)" >&2; exit 1; }
if [ -z "${TM:-}" ]; then
    echo "building the release binary (cargo's progress below)…" >&2
    cargo build --release -p tidemark-cli
    TM=$PWD/target/release/tidemark
fi
TM=$(realpath "$TM")
DBMATE=${DBMATE:-$PWD/target/ci-tools/node_modules/.bin/dbmate}
SQLX=$PWD/bench/.tools/bin/sqlx
if [ ! -x "$SQLX" ]; then
    echo "installing sqlx-cli into bench/.tools (once)…" >&2
    cargo install sqlx-cli --version '^0.8' --no-default-features --features postgres,rustls --root bench/.tools --locked -q
fi

rm -rf "$OUT" && mkdir -p "$OUT/migrations"
mkdir -p "$OUT/dbmate"
: > "$OUT/psql.sql"
: > "$OUT/psql_one.sql"
for i in $(seq 1 "$N"); do
    v=$(printf '%04d' "$i")
    sql="CREATE TABLE t$i (id BIGINT PRIMARY KEY, name TEXT NOT NULL, created_at TIMESTAMPTZ NOT NULL DEFAULT now());
INSERT INTO t$i (id, name) VALUES (1, 'row $i');"
    printf '%s\n' "$sql" > "$OUT/migrations/${v}_create_t$i.sql"
    printf 'BEGIN;\n%s\nCOMMIT;\n' "$sql" >> "$OUT/psql.sql"
    printf '%s\n' "$sql" >> "$OUT/psql_one.sql"
    printf -- '-- migrate:up\n%s\n\n-- migrate:down\n' "$sql" > "$OUT/dbmate/${v}_create_t$i.sql"
done
peers=()
if [ -x "$DBMATE" ]; then
    peers+=(-n "dbmate up" "$DBMATE --no-dump-schema --migrations-dir $OUT/dbmate --url $PG/$DB?sslmode=disable up")
else
    echo "dbmate not found at $DBMATE: run .ci/run once (it installs it), or set DBMATE" >&2
fi

fresh="psql -q -d $PG/postgres -c 'DROP DATABASE IF EXISTS $DB WITH (FORCE)' -c 'CREATE DATABASE $DB'"
# SYNC=off: the database gets synchronous_commit = off, so the commit's WAL flush (which
# dominates and varies on a VM disk) drops out and what remains is each tool's own overhead.
if [ "${SYNC:-on}" = off ]; then
    fresh="$fresh -c 'ALTER DATABASE $DB SET synchronous_commit = off'"
fi
export TIDEMARK_BACKUP_DIR=$PWD/$OUT/backups
# Dropping the previous run's 1,000 tables leaves the disk busy for a while; let it settle so
# that it does not land on whichever tool runs next.
settle="$fresh && psql -q -d $PG/postgres -c CHECKPOINT && sync && sleep 2"
hyperfine --runs "$RUNS" --warmup 1 --export-markdown "$OUT/result.md" --export-json "$OUT/result.json" --prepare "$settle" \
    -n "psql, one transaction" "psql -q -1 -v ON_ERROR_STOP=1 -d $PG/$DB -f $OUT/psql_one.sql" \
    -n psql "psql -q -v ON_ERROR_STOP=1 -d $PG/$DB -f $OUT/psql.sql" \
    "${peers[@]}" \
    -n "sqlx migrate run" "$SQLX migrate run --source $OUT/migrations --database-url $PG/$DB" \
    -n "tidemark up" "$TM -q -d $PG/$DB --dir $OUT/migrations up" \
    -n "tidemark up --no-backup" "$TM -q -d $PG/$DB --dir $OUT/migrations up --no-backup"
eval "$fresh"
echo
echo "versions: $(psql --version), $($SQLX --version), dbmate $([ -x "$DBMATE" ] && $DBMATE --version), tidemark $($TM --version | awk '{print $2}'), $(psql -tA -d "$PG/postgres" -c 'SHOW server_version')"
cat "$OUT/result.md"
python3 - "$OUT/result.json" <<'PY'
import json, sys
print("\n| command | user CPU (s) | system CPU (s) |\n|---|---:|---:|")
for r in json.load(open(sys.argv[1]))["results"]:
    print(f"| `{r['command']}` | {r['user']:.3f} | {r['system']:.3f} |")
PY
