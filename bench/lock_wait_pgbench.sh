#!/usr/bin/env bash
# Migrations under live traffic: pgbench updates a table while `tidemark up` alters it behind a
# long-running transaction. Without a statement lock timeout the ALTER TABLE waits for the long
# transaction and every UPDATE queues behind it; with one, the ALTER gives up after the timeout,
# the application's queries go on, and tidemark retries later.
#
# Usage: bench/lock_wait_pgbench.sh [admin-url]   (default postgres://postgres@127.0.0.1:5432/postgres)
# Prints, per setting: pgbench's transactions, failed transactions and worst latency, and how
# tidemark's run ended.
set -euo pipefail
cd "$(dirname "$0")/.."
admin=${1:-postgres://postgres@127.0.0.1:5432/postgres}
db=tm_bench_lockwait
url=${admin%/*}/$db
cargo build -q --release -p tidemark-cli
tm=$PWD/target/release/tidemark
work=$(mktemp -d)
trap 'rm -rf "$work"; psql -q "$admin" -c "DROP DATABASE IF EXISTS $db WITH (FORCE)" >/dev/null' EXIT

run() { # label, tidemark flags...
    local label=$1; shift
    psql -q "$admin" -c "DROP DATABASE IF EXISTS $db WITH (FORCE)" -c "CREATE DATABASE $db" >/dev/null
    mkdir -p "$work/$label/m"
    echo "CREATE TABLE acct (id int PRIMARY KEY, bal int NOT NULL); INSERT INTO acct SELECT g, 0 FROM generate_series(1, 1000) g;" >"$work/$label/m/1_acct.up.sql"
    "$tm" -q -d "$url" --dir "$work/$label/m" up --no-backup
    echo "ALTER TABLE acct ADD COLUMN note text;" >"$work/$label/m/2_note.up.sql"
    printf '\\set id random(1, 1000)\nUPDATE acct SET bal = bal + 1 WHERE id = :id;\n' >"$work/upd.sql"
    (cd "$work/$label" && pgbench -n -c 4 -T 14 -f "$work/upd.sql" --log --log-prefix=pg "$url" >pgbench.out 2>&1) &
    local bench=$!
    sleep 1
    # A report query that runs for 8 seconds.
    psql -q "$url" -c "BEGIN; SELECT count(*) FROM acct; SELECT pg_sleep(8); COMMIT;" >/dev/null &
    local long=$!
    sleep 1
    local t0=$(date +%s.%N)
    "$tm" -d "$url" --dir "$work/$label/m" up --no-backup "$@" >"$work/$label/tm.out" 2>&1 && rc=0 || rc=$?
    local t1=$(date +%s.%N)
    wait $long; wait $bench
    local worst=$(cat "$work/$label"/pg.* | awk '{ if ($3 > m) m = $3 } END { printf "%.0f", m / 1000 }')
    local tx=$(grep -E "^number of transactions actually processed" "$work/$label/pgbench.out" | awk '{print $NF}')
    local failed=$(grep -E "^number of failed transactions" "$work/$label/pgbench.out" | awk '{print $5}')
    printf '| %-32s | %8s | %6s | %9s ms | exit %s after %.1f s, %s retries |\n' "$label" "$tx" "${failed:-0}" "$worst" "$rc" \
        "$(echo "$t1 - $t0" | bc)" "$(grep -c 'trying again' "$work/$label/tm.out" || true)"
}

echo "| tidemark up | pgbench tx | failed | worst latency | tidemark |"
echo "|---|---:|---:|---:|---|"
run "no timeout (wait forever)" --statement-lock-timeout 0s
run "statement_lock_timeout 5s (default)"
run "statement_lock_timeout 500ms" --statement-lock-timeout 500ms --lock-retries 6
