#!/usr/bin/env bash
# Backup and restore of a ~1 GB PostgreSQL database: tidemark next to plain pg_dump/pg_restore,
# in the same run. tidemark adds: tool version checks, inspection + exact row counts (for the
# manifest), SHA-256 of the dump, the manifest; on restore: the checksum check, drop/create of the
# database, and the fingerprint check afterwards. Not part of CI. Needs pgbench.
set -euo pipefail
cd "$(dirname "$0")/.."
PG=${PG:-postgres://postgres@127.0.0.1:5432}
SCALE=${SCALE:-68}   # pgbench scale 68 ≈ 1 GB with indexes
OUT=$PWD/bench/out/backup
DB=tm_bench_1gb
PGBENCH=$(command -v pgbench || ls /usr/lib/postgresql/*/bin/pgbench | tail -1)
cargo build --release -q -p tidemark-cli
TM=$PWD/target/release/tidemark
export TIDEMARK_BACKUP_DIR=$OUT/tidemark
rm -rf "$OUT" && mkdir -p "$OUT"

psql -q -d "$PG/postgres" -c "DROP DATABASE IF EXISTS $DB WITH (FORCE)" -c "CREATE DATABASE $DB"
"$PGBENCH" -q -i -s "$SCALE" "$PG/$DB" >/dev/null 2>&1
SIZE=$(psql -tA -d "$PG/$DB" -c "SELECT pg_size_pretty(pg_database_size('$DB'))")
echo "database size: $SIZE (pgbench scale $SCALE)"

now() { date +%s.%N; }
secs() { echo "scale=2; ($2 - $1) / 1" | bc; }

t0=$(now); pg_dump --format=custom --file="$OUT/plain.dump" --dbname="$PG/$DB"; t1=$(now)
"$TM" -q -d "$PG/$DB" backup create --reason bench; t2=$(now)
ID=$("$TM" -d "$PG/$DB" backup list --format json | python3 -c 'import json,sys; print(json.load(sys.stdin)["backups"][-1]["id"])')
t3=$(now)
psql -q -d "$PG/postgres" -c "DROP DATABASE $DB WITH (FORCE)" -c "CREATE DATABASE $DB"
pg_restore --exit-on-error --dbname="$PG/$DB" "$OUT/plain.dump"
t4=$(now)
"$TM" -q -d "$PG/$DB" backup restore "$ID" --yes --no-backup
t5=$(now)
"$TM" -q -d "$PG/$DB" backup verify "$ID"
t6=$(now)

echo
echo "| operation | plain tool | tidemark | tidemark / plain |"
echo "|---|---:|---:|---:|"
echo "| backup | pg_dump -Fc: $(secs "$t0" "$t1") s | backup create: $(secs "$t1" "$t2") s | $(echo "scale=2; ($t2 - $t1) / ($t1 - $t0)" | bc) |"
echo "| restore | dropdb/createdb + pg_restore: $(secs "$t3" "$t4") s | backup restore --no-backup: $(secs "$t4" "$t5") s | $(echo "scale=2; ($t5 - $t4) / ($t4 - $t3)" | bc) |"
echo "| verify (restore into scratch + compare) | – | backup verify: $(secs "$t5" "$t6") s | |"
echo
ls -la "$OUT/plain.dump" "$OUT"/tidemark/*/data.dump | awk '{print $5, $9}'
psql -q -d "$PG/postgres" -c "DROP DATABASE IF EXISTS $DB WITH (FORCE)"
echo "$(pg_dump --version), server $(psql -tA -d "$PG/postgres" -c 'SHOW server_version')"
