#!/usr/bin/env bash
# S0 (seed 000) recovery, timed on PostgreSQL: history says 1–25, 26–36 were applied by hand,
# 37–39 are new. Times each step a person runs — status → repair --yes → up → check — and the
# whole recovery, over several rounds, each once with an empty replay cache (cold: `status`
# replays and fills it, `repair` finds it warm) and once with the cache of an earlier run
# (warm: nothing is replayed). Not part of CI. Prints a Markdown table.
#   ROUNDS=5 bench/s0_recovery.sh        # TM=target/debug/tidemark to skip the release build
set -euo pipefail
cd "$(dirname "$0")/.."
PG=${PG:-postgres://postgres@127.0.0.1:5432}
ROUNDS=${ROUNDS:-5}
OUT=bench/out/s0
DB=tm_bench_s0
if [ -z "${TM:-}" ]; then
    echo "building the release binary (cargo's progress below)…" >&2
    cargo build --release -p tidemark-cli
    TM=$PWD/target/release/tidemark
fi
TM=$(realpath "$TM")
export TIDEMARK_BACKUP_DIR=$PWD/$OUT/backups

rm -rf "$OUT" && mkdir -p "$OUT/migrations"
for i in $(seq 1 39); do
    v=$(printf '%03d' "$i")
    case $((i % 3)) in
        0) echo "ALTER TABLE t$((i - 1)) ADD COLUMN c$i INTEGER;" > "$OUT/migrations/${v}_add_c$i.up.sql" ;;
        1) echo "CREATE TABLE t$i (id BIGINT PRIMARY KEY, name TEXT NOT NULL, created_at TIMESTAMPTZ NOT NULL DEFAULT now());" > "$OUT/migrations/${v}_create_t$i.up.sql" ;;
        *) printf 'CREATE TABLE t%s (id BIGINT PRIMARY KEY, ref BIGINT REFERENCES t%s (id), name TEXT);\nCREATE INDEX idx_t%s_name ON t%s (name);\n' "$i" "$((i - 1))" "$i" "$i" > "$OUT/migrations/${v}_create_t$i.up.sql" ;;
    esac
done

now() { date +%s.%N; }
ms() { echo "($2 - $1) * 1000 / 1" | bc; }
run() { "$TM" -q -d "$PG/$DB" --dir "$OUT/migrations" "$@"; }

echo "| round | replay cache | status | repair --yes | up | check | total |"
echo "|---:|---|---:|---:|---:|---:|---:|"
for r in $(seq 1 "$ROUNDS"); do
  for cache in cold warm; do
    if [ "$cache" = cold ]; then
        export TIDEMARK_CACHE_DIR=$PWD/$OUT/cache-cold-$r
    else
        export TIDEMARK_CACHE_DIR=$PWD/$OUT/cache-cold-1   # filled by round 1's cold run
    fi
    psql -q -d "$PG/postgres" -c "DROP DATABASE IF EXISTS $DB WITH (FORCE)" -c "CREATE DATABASE $DB"
    run up --to 25 --no-backup
    for i in $(seq 26 36); do psql -q -v ON_ERROR_STOP=1 -d "$PG/$DB" -f "$OUT/migrations/$(printf '%03d' "$i")"_*.up.sql; done
    t0=$(now)
    set +e; run status --exit-code >/dev/null; code=$?; set -e
    [ "$code" = 20 ] || { echo "status should say drifted (20), said $code" >&2; exit 1; }
    t1=$(now); run repair --yes >/dev/null
    t2=$(now); run up >/dev/null
    t3=$(now); run check >/dev/null
    t4=$(now)
    echo "| $r | $cache | $(ms "$t0" "$t1") ms | $(ms "$t1" "$t2") ms | $(ms "$t2" "$t3") ms | $(ms "$t3" "$t4") ms | $(ms "$t0" "$t4") ms |"
  done
done
psql -q -d "$PG/postgres" -c "DROP DATABASE IF EXISTS $DB WITH (FORCE)"
echo
echo "PostgreSQL $(psql -tA -d "$PG/postgres" -c 'SHOW server_version'), tidemark $($TM --version | awk '{print $2}'); up includes its backup (pg_dump)."
