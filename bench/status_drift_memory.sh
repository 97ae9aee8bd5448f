#!/usr/bin/env bash
# Memory and time of `tidemark status` once drift exists (issue 18): N migrations, each
# creating one table with an index, applied to a SQLite database; then one table is dropped
# behind tidemark's back, so `status` replays every migration on a shadow to explain the drift
# (repair's evidence). Prints elapsed seconds and peak RSS (`/usr/bin/time`) per N.
# Each N twice: with an empty replay cache (cold: the whole replay) and again with the cache the
# first run filled (warm: one inspection of the live schema).
# Not part of CI. NS="500 1000 2000" by default; BUILD=debug to use target/debug.
set -euo pipefail
cd "$(dirname "$0")/.."
NS=${NS:-"500 1000 2000"}
BUILD=${BUILD:-release}
if [ "$BUILD" = release ] && [ -z "${SKIP_BUILD:-}" ]; then
    cargo build --release -p tidemark-cli
fi
TM=$PWD/target/$BUILD/tidemark
echo "| migrations | cold: elapsed (s) | cold: peak RSS (MB) | warm: elapsed (s) | warm: peak RSS (MB) |"
echo "|---|---|---|---|---|"
for n in $NS; do
    out=bench/out/status_drift_$n
    rm -rf "$out" && mkdir -p "$out/migrations"
    for i in $(seq 1 "$n"); do
        printf 'CREATE TABLE t%d (id INTEGER PRIMARY KEY, name VARCHAR(50), v%d INTEGER);\nCREATE INDEX i_t%d ON t%d (name);\n' \
            "$i" "$i" "$i" "$i" > "$out/migrations/$(printf '%05d' "$i")_t$i.up.sql"
    done
    url="sqlite://$PWD/$out/db.sqlite"
    "$TM" -q -d "$url" --dir "$out/migrations" up --no-backup
    sqlite3 "$out/db.sqlite" "DROP TABLE t$((n / 2))"
    export TIDEMARK_CACHE_DIR=$PWD/$out/cache
    /usr/bin/time -o "$out/time" -f '%e %M' "$TM" -d "$url" --dir "$out/migrations" status >/dev/null 2>&1 || true
    set -- $(tail -1 "$out/time")
    cold_s=$1 cold_mb=$(( $2 / 1024 ))
    /usr/bin/time -o "$out/time" -f '%e %M' "$TM" -d "$url" --dir "$out/migrations" status >/dev/null 2>&1 || true
    set -- $(tail -1 "$out/time")
    echo "| $n | $cold_s | $cold_mb | $1 | $(( $2 / 1024 )) |"
done
