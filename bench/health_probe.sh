#!/usr/bin/env bash
# Probes that cost nothing: `tidemark health` answers a load balancer's probe from its last
# background check. Latency of GET /health/schema under a bounded loopback load, on a database
# of 1,000 tables, against the old way (a connection and a full inspection per probe: timed as
# `tidemark check`, which is what each probe used to run).
#
# Usage: bench/health_probe.sh [admin-url] [tidemark-binary]
set -euo pipefail
cd "$(dirname "$0")/.."
admin=${1:-postgres://postgres@127.0.0.1:5432/postgres}
tm=${2:-$PWD/target/debug/tidemark}
db=tm_bench_probe
url=${admin%/*}/$db
work=$(mktemp -d)
trap 'kill $hp 2>/dev/null; rm -rf "$work"; psql -q "$admin" -c "DROP DATABASE IF EXISTS $db WITH (FORCE)" >/dev/null' EXIT
psql -q "$admin" -c "DROP DATABASE IF EXISTS $db WITH (FORCE)" -c "CREATE DATABASE $db" >/dev/null
mkdir -p "$work/m"
python3 - "$work/m/001_tables.up.sql" <<'PY'
import sys
with open(sys.argv[1], "w") as f:
    for i in range(1000):
        f.write(f"CREATE TABLE t{i} (id bigint PRIMARY KEY, a int, b text, c timestamptz);\n")
        f.write(f"CREATE INDEX t{i}_a ON t{i} (a);\n")
PY
"$tm" -q -d "$url" --dir "$work/m" up --no-backup
"$tm" -d "$url" --dir "$work/m" health --listen 127.0.0.1:0 --refresh 2s >"$work/health.out" 2>&1 &
hp=$!
for _ in $(seq 100); do grep -q http:// "$work/health.out" && break; sleep 0.2; done
addr=$(grep -o 'http://[^/]*' "$work/health.out" | head -1)
python3 - "$addr" <<'PY'
import http.client, sys, threading, time
host = sys.argv[1].removeprefix("http://")
lat = []
lock = threading.Lock()
def worker(n):
    c = http.client.HTTPConnection(host, timeout=5)
    for _ in range(n):
        t = time.perf_counter()
        c.request("GET", "/health/schema")
        r = c.getresponse(); r.read()
        assert r.status == 200, r.status
        d = (time.perf_counter() - t) * 1000
        with lock: lat.append(d)
threads = [threading.Thread(target=worker, args=(1000,)) for _ in range(4)]
t0 = time.perf_counter()
for t in threads: t.start()
for t in threads: t.join()
wall = time.perf_counter() - t0
lat.sort()
q = lambda p: lat[min(len(lat) - 1, int(p * len(lat)))]
print(f"| tidemark health (cached, 4 clients x 1000 probes) | {len(lat)} | {q(0.5):.2f} ms | {q(0.99):.2f} ms | {lat[-1]:.2f} ms | {len(lat)/wall:.0f}/s |")
PY
# What every probe used to cost: a connection and a full inspection.
python3 - "$tm" "$url" "$work/m" <<'PY'
import subprocess, sys, time
tm, url, m = sys.argv[1:]
lat = []
for _ in range(20):
    t = time.perf_counter()
    subprocess.run([tm, "-q", "-d", url, "--dir", m, "check"], check=True)
    lat.append((time.perf_counter() - t) * 1000)
lat.sort()
print(f"| one connection and inspection per probe (`tidemark check`, 20 runs) | 20 | {lat[10]:.0f} ms | {lat[-1]:.0f} ms | {lat[-1]:.0f} ms | - |")
PY
