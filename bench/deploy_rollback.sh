#!/usr/bin/env bash
# S3 (seed 003): time from the first failed check to the old release serving again, with the
# `command` strategy, on PostgreSQL. Each round deploys v1 (healthy), then v2, which brings a
# migration and fails its health check; tidemark rolls back by itself (down scripts). Two
# measurements per round:
#   - tidemark's own (`recovery_ms` in the report: the first failed check → the previous
#     release passing its checks again);
#   - an outside observer polling /health every 20 ms with curl: the first non-200 answer →
#     the first `ok release=v1` after it.
# Also: the deploy's own overhead (total minus backup, migrate, release and verify).
# Not part of CI. Prints a Markdown table. PROFILE=release for a release build (default: the
# debug build, which `cargo test` already made).
set -euo pipefail
cd "$(dirname "$0")/.."
PG=${PG:-postgres://postgres@127.0.0.1:5432}
ROUNDS=${ROUNDS:-5}
PROFILE=${PROFILE:-debug}
OUT=$PWD/bench/out/deploy
DB=tm_bench_deploy
PORT=${PORT:-18977}
if [ "$PROFILE" = release ]; then
    cargo build --release -q -p tidemark-cli -p tidemark-testapp
else
    cargo build -q -p tidemark-cli -p tidemark-testapp
fi
TM=$PWD/target/$PROFILE/tidemark
APP=$PWD/target/$PROFILE/tidemark-testapp

now() { date +%s%3N; }

echo "| round | recovery (tidemark) | recovery (outside observer) | verify until failure | rollback step | deploy overhead |"
echo "|---:|---:|---:|---:|---:|---:|"
for r in $(seq 1 "$ROUNDS"); do
    rm -rf "$OUT" && mkdir -p "$OUT/migrations" "$OUT/releases/v1" "$OUT/releases/v2"
    cd "$OUT"
    psql -q -d "$PG/postgres" -c "SET client_min_messages = warning" -c "DROP DATABASE IF EXISTS $DB WITH (FORCE)" -c "CREATE DATABASE $DB"
    echo "CREATE TABLE users (id BIGINT PRIMARY KEY, name TEXT);" > migrations/001_users.up.sql
    echo "DROP TABLE users;" > migrations/001_users.down.sql
    printf 'database_url = "%s/%s"\n[backup]\ndir = "backups"\n' "$PG" "$DB" > tidemark.toml
    cat > deploy.toml <<TOML
app = "bench"
[release]
dir = "releases/{release}"
env_file = "{dir}/.env"
port = $PORT
[command]
start = "nohup $APP --port {port} --env-file {env_file} --pid-file {dir}/app.pid > {dir}/app.log 2>&1 & for i in \$(seq 200); do [ -s {dir}/app.pid ] && break; sleep 0.02; done"
stop = "pid=\$(cat {dir}/app.pid) && kill \$pid; while [ \"\$(cut -d' ' -f3 /proc/\$pid/stat 2>/dev/null || echo Z)\" != Z ]; do sleep 0.02; done; rm -f {dir}/app.pid"
[verify]
window = "2s"
interval = "250ms"
failure_threshold = 3
[[verify.http]]
url = "http://127.0.0.1:{port}/health"
body_contains = "ok"
timeout = "1s"
[rollback]
database = "down"
TOML
    printf 'RELEASE=v1\n' > releases/v1/.env
    printf 'RELEASE=v2\nFAIL_HEALTH=1\n' > releases/v2/.env
    "$TM" -q deploy --release v1
    echo "CREATE TABLE orders (id BIGINT PRIMARY KEY);" > migrations/002_orders.up.sql
    echo "DROP TABLE orders;" > migrations/002_orders.down.sql
    # The outside observer.
    ( while true; do
        c=$(curl -s -m 1 -o body -w '%{http_code}' "http://127.0.0.1:$PORT/health" || true)
        echo "$(now) ${c:-000} $(tr -d '\n' < body 2>/dev/null)"
        sleep 0.02
      done ) > observer.log 2>/dev/null &
    obs=$!
    set +e; "$TM" --format json deploy --release v2 > report.json; code=$?; set -e
    sleep 0.3
    kill $obs; wait $obs 2>/dev/null || true
    [ "$code" = 30 ] || { echo "expected exit 30, got $code" >&2; exit 1; }
    rec=$(jq '.recovery_ms' report.json)
    outside=$(awk '
        !failed && $2 != 200 && $2 != "000" { failed = $1 }
        failed && $2 == 200 && /release=v1/ { print $1 - failed; exit }' observer.log)
    verify=$(jq '[.steps[] | select(.step == "verify")][0].ms' report.json)
    rollback=$(jq '[.steps[] | select(.step == "rollback")][0].ms' report.json)
    total=$(jq -r '.timeline[-1].t_ms' report.json)
    steps=$(jq '[.steps[] | select(.step == "backup" or .step == "migrate" or .step == "release" or .step == "verify" or .step == "rollback") | .ms] | add' report.json)
    echo "| $r | ${rec} ms | ${outside} ms | ${verify} ms | ${rollback} ms | $((total - steps)) ms |"
    pid=$(cat releases/v1/app.pid 2>/dev/null || true); [ -n "$pid" ] && kill "$pid" || true
    cd - >/dev/null
done
psql -q -d "$PG/postgres" -c "DROP DATABASE IF EXISTS $DB WITH (FORCE)"
