#!/usr/bin/env bash
# Instructions per proxied 1 KiB keep-alive GET, counted exactly by
# callgrind: the figure the README's "Where the CPU goes" table tracks.
# Not a test and not in CI. Unlike the bench's ratios it does not move with
# the machine's load, so one change can be measured against another.
#
# What runs: a backend nginx (1 worker) serving 1 KiB, the fake API server
# with one Ingress to it, ingressd under `valgrind --tool=callgrind`, and a
# client that sends GETs (Host, User-Agent, Accept) on one keep-alive
# connection. Counting starts after a warm-up and covers every thread of the
# process, so the figure is the whole cost of a request, not one function's.
#
# Usage: bash scripts/instructions.sh [REQUESTS (2000)]
# Knobs: BASE_PORT (28480; BASE_PORT..BASE_PORT+4 are used), KEEP (a
# directory to leave the callgrind file in, for callgrind_annotate).
set -euo pipefail
cd "$(dirname "$0")/.."
REQUESTS=${1:-2000}
BASE_PORT=${BASE_PORT:-28480}
BACKEND_PORT=$BASE_PORT PROXY_PORT=$((BASE_PORT + 1))

for tool in valgrind nginx python3 curl; do
    command -v "$tool" >/dev/null || { apt-get update -qq && apt-get install -y -qq valgrind nginx python3 curl >/dev/null; break; }
done

CARGO_PROFILE_RELEASE_STRIP=false CARGO_PROFILE_RELEASE_DEBUG=line-tables-only \
    cargo build --quiet --release --bin ingressd --target-dir target/instructions
cargo build --quiet --release -p fakeapi --bin fake-apiserver --target-dir target/instructions

WORK=$(mktemp -d)
PIDS=()
cleanup() {
    for pid in "${PIDS[@]}"; do kill "$pid" 2>/dev/null || true; done
    wait 2>/dev/null || true
    rm -rf "$WORK"
}
trap cleanup EXIT
mkdir -p "$WORK/www" "$WORK/backend"
head -c 1024 /dev/urandom >"$WORK/www/1k"
chmod -R a+rX "$WORK"
cat >"$WORK/backend.conf" <<NGINX
pid $WORK/backend/nginx.pid; error_log $WORK/backend/error.log warn; daemon off;
worker_processes 1; events { worker_connections 1024; }
http { access_log off; keepalive_requests 1000000;
$(for k in client_body proxy fastcgi uwsgi scgi; do echo " ${k}_temp_path $WORK/backend/$k;"; done)
 server { listen 127.0.0.1:$BACKEND_PORT; root $WORK/www; } }
NGINX
cat >"$WORK/objects.json" <<JSON
{"items": [
 {"apiVersion": "networking.k8s.io/v1", "kind": "Ingress",
  "metadata": {"name": "bench", "namespace": "default"},
  "spec": {"ingressClassName": "ingressd", "rules": [{"host": "bench.example", "http": {"paths": [
    {"path": "/", "pathType": "Prefix", "backend": {"service": {"name": "bench", "port": {"number": 80}}}}]}}]}},
 {"apiVersion": "v1", "kind": "Service", "metadata": {"name": "bench", "namespace": "default"},
  "spec": {"clusterIP": "10.96.0.10", "ports": [{"name": "http", "port": 80, "targetPort": "http"}]}},
 {"apiVersion": "discovery.k8s.io/v1", "kind": "EndpointSlice",
  "metadata": {"name": "bench-1", "namespace": "default", "labels": {"kubernetes.io/service-name": "bench"}},
  "addressType": "IPv4", "endpoints": [{"addresses": ["127.0.0.1"], "conditions": {"ready": true}}],
  "ports": [{"name": "http", "port": $BACKEND_PORT, "protocol": "TCP"}]}
]}
JSON
nginx -p "$WORK/backend" -c "$WORK/backend.conf" >"$WORK/backend.log" 2>&1 &
PIDS+=($!)
target/instructions/release/fake-apiserver --plain-http --addr 127.0.0.1:0 --objects "$WORK/objects.json" \
    --ready-file "$WORK/api.url" >"$WORK/api.log" 2>&1 &
PIDS+=($!)
for _ in $(seq 100); do [ -s "$WORK/api.url" ] && break; sleep 0.1; done
[ -s "$WORK/api.url" ] || { echo "the fake API server did not start" >&2; exit 1; }

OUT="$WORK/callgrind.out"
valgrind --tool=callgrind --callgrind-out-file="$OUT" --separate-threads=no \
    target/instructions/release/ingressd --apiserver "$(head -n1 "$WORK/api.url")" \
    --token-file /nonexistent --ca-file /nonexistent --http-addr "127.0.0.1:$PROXY_PORT" \
    --https-addr "127.0.0.1:$((BASE_PORT + 2))" --admin-addr "127.0.0.1:$((BASE_PORT + 3))" \
    --access-log off --log-level warn --shutdown-delay 0 --shutdown-grace 1 >"$WORK/ingressd.log" 2>&1 &
VALGRIND=$!
PIDS+=($VALGRIND)
routed=
for _ in $(seq 300); do
    if curl -sf -o /dev/null -H 'Host: bench.example' "http://127.0.0.1:$PROXY_PORT/1k"; then routed=1; break; fi
    sleep 0.2
done
[ -n "$routed" ] || { echo "ingressd did not route the demo Ingress; its log:" >&2; cat "$WORK/ingressd.log" >&2; exit 1; }

# Sends N GETs on one keep-alive connection and checks every answer.
gets() {
    python3 - "$PROXY_PORT" "$1" <<'PY'
import socket, sys
port, n = int(sys.argv[1]), int(sys.argv[2])
s = socket.create_connection(("127.0.0.1", port))
req = b"GET /1k HTTP/1.1\r\nHost: bench.example\r\nUser-Agent: instructions\r\nAccept: */*\r\n\r\n"
buf = b""
for _ in range(n):
    s.sendall(req)
    while True:
        end = buf.find(b"\r\n\r\n")
        if end >= 0:
            head = buf[:end].decode()
            assert head.startswith("HTTP/1.1 200"), head
            length = [int(l.split(":")[1]) for l in head.split("\r\n") if l.lower().startswith("content-length")][0]
            if len(buf) >= end + 4 + length:
                buf = buf[end + 4 + length:]
                break
        data = s.recv(65536)
        assert data, "the proxy closed the connection"
        buf += data
PY
}
gets 300
callgrind_control -z "$VALGRIND" >/dev/null 2>&1
gets "$REQUESTS"
callgrind_control -d "$VALGRIND" >/dev/null 2>&1
total=$(callgrind_annotate "$OUT.1" 2>/dev/null | awk '/PROGRAM TOTALS/ {gsub(",", "", $1); print $1}')
echo "$((total / REQUESTS)) instructions per proxied 1 KiB GET ($REQUESTS GETs on one keep-alive connection, every thread counted)"
if [ -n "${KEEP:-}" ]; then
    mkdir -p "$KEEP" && cp "$OUT.1" "$KEEP/callgrind.out" && echo "callgrind file: $KEEP/callgrind.out"
fi
