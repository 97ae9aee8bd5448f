#!/usr/bin/env bash
# The nginx strategy (issue 12): requests lost while releases are switched behind a real nginx,
# and the time from the first failed check to the old release serving through nginx again.
# Each round, with its own nginx (own prefix, config and loopback port) and a SQLite database:
#   1. deploy v1;
#   2. blue-green switch to v2 under load                       → requests lost of N;
#   3. deploy v3, which breaks once it serves (its /health fails when a file appears, created
#      once v3 answers through nginx ten times in a row): tidemark rolls back to v2, under load
#                                                               → requests lost of N, and
#      tidemark's recovery_ms (first failed check → v2 proven serving through nginx), and an
#      outside observer's (the file created → the first `release v2` answer through nginx,
#      polled every 5 ms: detection included);
#   4. `tidemark rollback` to v1 (v1 started again, switched to, v2 stopped) under load
#                                                               → requests lost of N.
# The load: WORKERS concurrent clients (Python asyncio), each request on a new connection with
# its own cohort cookie; a request fails on any connection error, timeout or non-200.
# KEEPALIVE=1: each client keeps one connection open instead (cookie per client), and a
# request that fails on a connection nginx closed counts as lost (no retry).
# Not part of CI. Prints a Markdown table. PROFILE=release for a release build.
set -euo pipefail
cd "$(dirname "$0")/.."
ROUNDS=${ROUNDS:-5}
PROFILE=${PROFILE:-debug}
WORKERS=${WORKERS:-8}
FRONT=${FRONT:-18990}
DRAIN=${DRAIN:-1s}   # DRAIN=0s: the old release stopped right after the switch is proven
OUT=$PWD/bench/out/nginx
if [ "$PROFILE" = release ]; then
    cargo build --release -q -p tidemark-cli -p tidemark-testapp
else
    cargo build -q -p tidemark-cli -p tidemark-testapp
fi
TM=$PWD/target/$PROFILE/tidemark
APP=$PWD/target/$PROFILE/tidemark-testapp
NGINX=$(command -v nginx || echo /usr/sbin/nginx)

now() { date +%s%3N; }
cleanup() {   # whatever a failed round left running: its nginx and its releases
    local W=$OUT/round
    [ -s "$W/nginx/nginx.pid" ] && kill "$(cat "$W/nginx/nginx.pid" 2>/dev/null)" 2>/dev/null
    for p in "$W"/releases/*/app.pid; do [ -s "$p" ] && kill "$(cat "$p")" 2>/dev/null; done
    return 0
}
trap cleanup EXIT

mkdir -p "$OUT"
cat > "$OUT/load.py" <<'PY'
import asyncio, json, os, sys, time
port, workers, stop_file, out = int(sys.argv[1]), int(sys.argv[2]), sys.argv[3], sys.argv[4]
st = {"total": 0, "failed": 0, "by_release": {}, "failures": []}
async def one(uid):
    r, w = await asyncio.wait_for(asyncio.open_connection("127.0.0.1", port), 5)
    w.write(f"GET / HTTP/1.1\r\nHost: x\r\nCookie: uid={uid}\r\nConnection: close\r\n\r\n".encode())
    data = await asyncio.wait_for(r.read(), 5)
    w.close()
    head, _, body = data.decode(errors="replace").partition("\r\n\r\n")
    return int(head.split()[1]), body.strip()
conns = {}
async def one_keepalive(n, uid):
    # One persistent connection per client, opened again when nginx closes it (as it does
    # for idle connections of an old worker at reload); a request on it is not retried.
    if n not in conns:
        conns[n] = await asyncio.wait_for(asyncio.open_connection("127.0.0.1", port), 5)
    r, w = conns[n]
    try:
        w.write(f"GET / HTTP/1.1\r\nHost: x\r\nCookie: uid={n}\r\n\r\n".encode())
        head = await asyncio.wait_for(r.readuntil(b"\r\n\r\n"), 5)
        lines = head.decode().split("\r\n")
        length = next(int(l.split(":")[1]) for l in lines if l.lower().startswith("content-length"))
        body = (await asyncio.wait_for(r.readexactly(length), 5)).decode()
        if any(l.lower() == "connection: close" for l in lines):
            conns.pop(n).__getitem__(1).close()
        return int(lines[0].split()[1]), body.strip()
    except Exception:
        conns.pop(n, None)
        raise
KEEPALIVE = os.environ.get("KEEPALIVE") == "1"
async def worker(n):
    i = 0
    while not os.path.exists(stop_file):
        i += 1
        st["total"] += 1
        try:
            if KEEPALIVE:
                status, body = await one_keepalive(n, n * 10_000_000 + i)
            else:
                status, body = await one(n * 10_000_000 + i)
            if status == 200:
                rel = body.removeprefix("hello from release ")
                st["by_release"][rel] = st["by_release"].get(rel, 0) + 1
            else:
                st["failed"] += 1
                st["failures"].append(f"{status} {body[:60]}")
        except Exception as e:
            st["failed"] += 1
            st["failures"].append(repr(e)[:80])
async def main():
    await asyncio.gather(*(worker(n) for n in range(workers)))
    st["failures"] = st["failures"][:5]
    json.dump(st, open(out, "w"))
asyncio.run(main())
PY

load_start() { rm -f "$OUT/stop" "$OUT/load.json"; python3 "$OUT/load.py" "$FRONT" "$WORKERS" "$OUT/stop" "$OUT/load.json" & LOAD=$!; sleep 0.5; }
load_stop() { sleep 0.3; touch "$OUT/stop"; wait "$LOAD"; python3 -c 'import json,sys; s=json.load(open(sys.argv[1])); print(s["failed"], "of", s["total"], json.dumps(s["by_release"]), s["failures"] if s["failed"] else "")' "$OUT/load.json"; }

echo "| round | blue-green switch: lost of N | automatic rollback: lost of N | \`tidemark rollback\`: lost of N | recovery (tidemark) | recovery (outside observer, from the failure) |"
echo "|---:|---:|---:|---:|---:|---:|"
for r in $(seq 1 "$ROUNDS"); do
    W=$OUT/round
    rm -rf "$W" && mkdir -p "$W/migrations" "$W/nginx" "$W/releases/v1" "$W/releases/v2" "$W/releases/v3"
    cd "$W"
    echo "CREATE TABLE users (id INTEGER PRIMARY KEY, name TEXT);" > migrations/001_users.up.sql
    printf 'database_url = "sqlite://bench.db"\n[backup]\ndir = "backups"\n' > tidemark.toml
    cat > nginx/nginx.conf <<CONF
worker_processes 1;
worker_shutdown_timeout 10s;
pid nginx.pid;
error_log error.log;
events { worker_connections 4096; }
http {
    access_log off;
    client_body_temp_path tmp-body; proxy_temp_path tmp-proxy; fastcgi_temp_path tmp-fastcgi;
    uwsgi_temp_path tmp-uwsgi; scgi_temp_path tmp-scgi;
    include tidemark-bench.conf;
    server {
        listen 127.0.0.1:$FRONT;
        location / {
            proxy_pass http://\$tidemark_bench_upstream;
            add_header X-Tidemark-Release \$tidemark_bench_release always;
            add_header X-Tidemark-Config \$tidemark_bench_config always;
            add_header X-Tidemark-Upstream \$upstream_addr always;
            access_log tidemark-bench.log tidemark_bench;
        }
    }
}
CONF
    cat > deploy.toml <<TOML
app = "bench"
strategy = "nginx"
[release]
dir = "releases/{release}"
env_file = "{dir}/.env"
[nginx]
start = '''nohup $APP --port {port} --env-file {env_file} --pid-file {dir}/app.pid > {dir}/app.log 2>&1 & for i in \$(seq 200); do [ -s {dir}/app.pid ] && break; sleep 0.02; done'''
stop = '''pid=\$(cat {dir}/app.pid) && kill \$pid; while [ "\$(cut -d' ' -f3 /proc/\$pid/stat 2>/dev/null || echo Z)" != Z ]; do sleep 0.02; done; rm -f {dir}/app.pid'''
ports = "18991-18999"
include = "nginx/tidemark-bench.conf"
url = "http://127.0.0.1:$FRONT/"
prefix = "nginx"
conf = "nginx/nginx.conf"
binary = "$NGINX"
drain = "$DRAIN"
[verify]
window = "2s"
interval = "100ms"
failure_threshold = 2
[[verify.http]]
url = "http://127.0.0.1:{port}/health"
body_contains = "ok release={release}"
timeout = "1s"
TOML
    printf 'RELEASE=v1\n' > releases/v1/.env
    printf 'RELEASE=v2\n' > releases/v2/.env
    printf 'RELEASE=v3\nFAIL_FILE=%s/v3-broken\n' "$W" > releases/v3/.env
    "$TM" deploy --release v1 --dry-run > /dev/null 2>&1 || true   # writes the first include
    "$NGINX" -p "$W/nginx/" -c "$W/nginx/nginx.conf"
    "$TM" deploy --release v1 > /dev/null

    load_start
    "$TM" deploy --release v2 > /dev/null
    switch=$(load_stop)

    load_start
    (   # break v3 as soon as it answers through nginx, then watch for v2 to be back
        # Ten answers from v3 in a row: right after a reload, nginx's old workers still
        # accept a few connections with the old configuration for some milliseconds.
        n=0; while [ $n -lt 10 ]; do
            if curl -s "127.0.0.1:$FRONT/" | grep -q 'release v3'; then n=$((n + 1)); else n=0; fi
            sleep 0.005
        done
        broke=$(now); touch "$W/v3-broken"
        until curl -s "127.0.0.1:$FRONT/" | grep -q 'release v2'; do sleep 0.005; done
        echo $(( $(now) - broke )) > "$W/observer_ms"
    ) &
    WATCH=$!
    "$TM" deploy --release v3 --format json > v3.json || true
    wait "$WATCH"
    auto=$(load_stop)
    recovery=$(python3 -c 'import json,sys; print(json.load(open(sys.argv[1]))["recovery_ms"])' v3.json)

    load_start
    "$TM" rollback > /dev/null
    manual=$(load_stop)

    "$NGINX" -p "$W/nginx/" -c "$W/nginx/nginx.conf" -s quit 2>/dev/null
    kill "$(cat releases/v1/app.pid)" 2>/dev/null || true
    cd - > /dev/null
    echo "| $r | ${switch%% \{*} | ${auto%% \{*} | ${manual%% \{*} | $recovery ms | $(cat "$W/observer_ms") ms |"
    echo "$switch / $auto / $manual" >> "$OUT/detail.txt"
done
