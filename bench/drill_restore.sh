#!/usr/bin/env bash
# `tidemark drill restore` on a ~1 GB PostgreSQL database next to the plain pg_restore of the
# same dump into a fresh database, in the same run. The drill adds: finding the backup and the
# SHA-256 of its dump, creating the scratch database, the fingerprint and exact row counts of the
# restored copy against the manifest, the application gate on it, and dropping it again.
# Not part of CI. Needs pgbench. TM=path/to/tidemark to use a given build (default: release).
set -euo pipefail
cd "$(dirname "$0")/.."
PG=${PG:-postgres://postgres@127.0.0.1:5432}
SCALE=${SCALE:-68}   # pgbench scale 68 ≈ 1 GB with indexes
OUT=$PWD/bench/out/drill
DB=tm_bench_drill
PGBENCH=$(command -v pgbench || ls /usr/lib/postgresql/*/bin/pgbench | tail -1)
if [ -z "${TM:-}" ]; then cargo build --release -q -p tidemark-cli; TM=$PWD/target/release/tidemark; fi
export TIDEMARK_BACKUP_DIR=$OUT/tidemark
rm -rf "$OUT" && mkdir -p "$OUT/migrations"
# pgbench's schema as a migration (so the history explains the schema and the gate passes);
# pgbench then only generates the data.
cat > "$OUT/migrations/001_pgbench.up.sql" <<'SQL'
CREATE TABLE pgbench_branches (bid INTEGER NOT NULL PRIMARY KEY, bbalance INTEGER, filler CHAR(88)) WITH (fillfactor = 100);
CREATE TABLE pgbench_tellers (tid INTEGER NOT NULL PRIMARY KEY, bid INTEGER, tbalance INTEGER, filler CHAR(84)) WITH (fillfactor = 100);
CREATE TABLE pgbench_accounts (aid INTEGER NOT NULL PRIMARY KEY, bid INTEGER, abalance INTEGER, filler CHAR(84)) WITH (fillfactor = 100);
CREATE TABLE pgbench_history (tid INTEGER, bid INTEGER, aid INTEGER, delta INTEGER, mtime TIMESTAMP, filler CHAR(22));
SQL
echo "DROP TABLE pgbench_history, pgbench_accounts, pgbench_tellers, pgbench_branches;" > "$OUT/migrations/001_pgbench.down.sql"

psql -q -d "$PG/postgres" -c "DROP DATABASE IF EXISTS $DB WITH (FORCE)" -c "DROP DATABASE IF EXISTS ${DB}_plain WITH (FORCE)" -c "CREATE DATABASE $DB"
"$TM" -q -d "$PG/$DB" --dir "$OUT/migrations" up --no-backup
"$PGBENCH" -q -i -I gv -s "$SCALE" "$PG/$DB" >/dev/null 2>&1
SIZE=$(psql -tA -d "$PG/$DB" -c "SELECT pg_size_pretty(pg_database_size('$DB'))")
echo "database size: $SIZE (pgbench scale $SCALE)"
"$TM" -q -d "$PG/$DB" --dir "$OUT/migrations" backup create --reason bench
DUMP=$(ls "$OUT"/tidemark/*/*/data.dump)

now() { date +%s.%N; }
secs() { echo "scale=2; ($2 - $1) / 1" | bc; }

t0=$(now)
psql -q -d "$PG/postgres" -c "CREATE DATABASE ${DB}_plain"
pg_restore --exit-on-error --dbname="$PG/${DB}_plain" "$DUMP"
t1=$(now)
psql -q -d "$PG/postgres" -c "DROP DATABASE ${DB}_plain WITH (FORCE)"
t2=$(now)
"$TM" -d "$PG/$DB" --dir "$OUT/migrations" drill restore --format json > "$OUT/drill.json"
t3=$(now)
python3 - "$OUT/drill.json" <<'PY'
import json, sys
d = json.load(open(sys.argv[1]))["drills"][0]
print("drill restore:", "passed" if d["ok"] else "FAILED", f'measured recovery time {d["total_ms"]/1000:.2f} s')
for s in d["steps"]:
    print(f'  {s["name"]:<8} {s["duration_ms"]/1000:7.2f} s  {s.get("detail") or ""}')
PY
echo
echo "| | plain | tidemark drill restore | drill / plain |"
echo "|---|---:|---:|---:|"
echo "| restore into a fresh database (wall clock) | createdb + pg_restore: $(secs "$t0" "$t1") s | whole command: $(secs "$t2" "$t3") s | $(echo "scale=2; ($t3 - $t2) / ($t1 - $t0)" | bc) |"
psql -q -d "$PG/postgres" -c "DROP DATABASE IF EXISTS $DB WITH (FORCE)"
echo "$(pg_restore --version), server $(psql -tA -d "$PG/postgres" -c 'SHOW server_version'), $(nproc) cores, load $(cut -d' ' -f1-3 /proc/loadavg)"
