#!/usr/bin/env bash
# Throughput and latency of ingressd against nginx, on loopback.
#
# Three targets serve the same files from one nginx backend, measured in
# the same run, interleaved and repeated so machine noise hits all alike:
#   direct       nginx serving the files itself (the ceiling)
#   nginx-proxy  nginx proxying to the backend the way ingress-nginx does
#                (HTTP/1.1 upstream with keepalive, Connection "")
#   ingressd     the release binary, routes from the fake API server
# Prints req/s, p50 and p99 per run, ingressd's RSS, and the median ratio
# ingressd / nginx-proxy per file size.
#
# Not a test and not run in CI. Needs nginx, wrk and curl; installs them with
# apt-get when missing. Knobs: DURATION (10s), CONNECTIONS (64), THREADS (2),
# ROUNDS (3), WORKERS (ingressd --workers, default its own), BASE_PORT (18080).
set -euo pipefail

DURATION=${DURATION:-10s}
CONNECTIONS=${CONNECTIONS:-64}
THREADS=${THREADS:-2}
ROUNDS=${ROUNDS:-3}
BASE_PORT=${BASE_PORT:-18080}
BACKEND_PORT=$BASE_PORT
NGINX_PROXY_PORT=$((BASE_PORT + 1))
INGRESSD_PORT=$((BASE_PORT + 2))
INGRESSD_HTTPS_PORT=$((BASE_PORT + 3))
INGRESSD_ADMIN_PORT=$((BASE_PORT + 4))
HOST=bench.test

cd "$(dirname "$0")/.."
ROOT=$(pwd)

install_missing() {
    local missing=()
    command -v nginx >/dev/null || [ -x /usr/sbin/nginx ] || missing+=(nginx)
    command -v wrk >/dev/null || missing+=(wrk)
    command -v curl >/dev/null || missing+=(curl)
    [ ${#missing[@]} -eq 0 ] && return
    local sudo=""
    [ "$(id -u)" -ne 0 ] && sudo=sudo
    echo "installing ${missing[*]}" >&2
    $sudo apt-get update -qq
    DEBIAN_FRONTEND=noninteractive $sudo apt-get install -y -qq "${missing[@]}" >/dev/null
}
install_missing
NGINX=$(command -v nginx || echo /usr/sbin/nginx)

WORK=$(mktemp -d)
PIDS=()
cleanup() {
    for pid in "${PIDS[@]}"; do kill "$pid" 2>/dev/null || true; done
    [ -f "$WORK/nginx.pid" ] && kill "$(cat "$WORK/nginx.pid")" 2>/dev/null || true
    wait 2>/dev/null || true
    rm -rf "$WORK"
}
trap cleanup EXIT

echo "building release binaries" >&2
cargo build --release --quiet --bin ingressd
cargo build --release --quiet -p fakeapi --bin fake-apiserver

mkdir -p "$WORK/www" "$WORK/logs"
head -c 1024 /dev/urandom > "$WORK/www/1k"
head -c 65536 /dev/urandom > "$WORK/www/64k"
# nginx started as root serves files as an unprivileged worker user.
chmod -R a+rX "$WORK"

cat > "$WORK/nginx.conf" <<NGINX
worker_processes auto;
pid $WORK/nginx.pid;
error_log $WORK/logs/error.log warn;
daemon off;
events { worker_connections 4096; }
http {
    access_log off;
    sendfile on;
    tcp_nopush on;
    keepalive_requests 1000000;
    client_body_temp_path $WORK/logs/body;
    proxy_temp_path $WORK/logs/proxy;
    fastcgi_temp_path $WORK/logs/fastcgi;
    uwsgi_temp_path $WORK/logs/uwsgi;
    scgi_temp_path $WORK/logs/scgi;
    upstream backend {
        server 127.0.0.1:$BACKEND_PORT;
        keepalive 320;
        keepalive_requests 10000;
        keepalive_timeout 60s;
    }
    server {
        listen 127.0.0.1:$BACKEND_PORT;
        root $WORK/www;
    }
    # What ingress-nginx generates for a plain HTTP Ingress path (defaults).
    server {
        listen 127.0.0.1:$NGINX_PROXY_PORT;
        location / {
            proxy_http_version 1.1;
            proxy_set_header Connection "";
            proxy_set_header Host \$host;
            proxy_set_header X-Request-ID \$request_id;
            proxy_set_header X-Real-IP \$remote_addr;
            proxy_set_header X-Forwarded-For \$remote_addr;
            proxy_set_header X-Forwarded-Host \$host;
            proxy_set_header X-Forwarded-Port \$server_port;
            proxy_set_header X-Forwarded-Proto \$scheme;
            proxy_connect_timeout 5s;
            proxy_send_timeout 60s;
            proxy_read_timeout 60s;
            proxy_buffering off;
            proxy_request_buffering on;
            proxy_redirect off;
            proxy_pass http://backend;
        }
    }
}
NGINX
"$NGINX" -p "$WORK" -c "$WORK/nginx.conf" 2>"$WORK/logs/nginx.stderr" &
PIDS+=($!)

cat > "$WORK/objects.json" <<JSON
{"items": [
 {"apiVersion": "networking.k8s.io/v1", "kind": "Ingress",
  "metadata": {"name": "bench", "namespace": "default"},
  "spec": {"ingressClassName": "ingressd", "rules": [{"host": "$HOST", "http": {"paths": [
    {"path": "/", "pathType": "Prefix", "backend": {"service": {"name": "bench", "port": {"number": 80}}}}]}}]}},
 {"apiVersion": "v1", "kind": "Service",
  "metadata": {"name": "bench", "namespace": "default"},
  "spec": {"clusterIP": "10.96.0.10", "ports": [{"name": "http", "port": 80, "targetPort": "http"}]}},
 {"apiVersion": "discovery.k8s.io/v1", "kind": "EndpointSlice",
  "metadata": {"name": "bench-1", "namespace": "default", "labels": {"kubernetes.io/service-name": "bench"}},
  "addressType": "IPv4",
  "endpoints": [{"addresses": ["127.0.0.1"], "conditions": {"ready": true}}],
  "ports": [{"name": "http", "port": $BACKEND_PORT, "protocol": "TCP"}]}
]}
JSON
"$ROOT/target/release/fake-apiserver" --plain-http --addr 127.0.0.1:0 --objects "$WORK/objects.json" \
    --ready-file "$WORK/api.url" >"$WORK/logs/api.log" 2>&1 &
PIDS+=($!)

wait_for() { # description, command...
    local what=$1; shift
    for _ in $(seq 1 200); do
        if "$@" >/dev/null 2>&1; then return 0; fi
        sleep 0.05
    done
    echo "timed out waiting for $what; logs:" >&2
    tail -n 20 "$WORK"/logs/* >&2 || true
    exit 1
}
wait_for "the fake API server" test -s "$WORK/api.url"
API_URL=$(head -n1 "$WORK/api.url")

WORKER_FLAG=()
[ -n "${WORKERS:-}" ] && WORKER_FLAG=(--workers "$WORKERS")
"$ROOT/target/release/ingressd" --apiserver "$API_URL" --token-file /nonexistent --ca-file /nonexistent \
    --http-addr 127.0.0.1:$INGRESSD_PORT --https-addr 127.0.0.1:$INGRESSD_HTTPS_PORT \
    --admin-addr 127.0.0.1:$INGRESSD_ADMIN_PORT --access-log off --log-level warn \
    --shutdown-delay 0 --shutdown-grace 2 "${WORKER_FLAG[@]}" \
    >"$WORK/logs/ingressd.log" 2>&1 &
INGRESSD_PID=$!
PIDS+=($INGRESSD_PID)

ok() { [ "$(curl -s -o /dev/null -w '%{http_code}' -H "Host: $HOST" "$1")" = 200 ]; }
wait_for "nginx" ok "http://127.0.0.1:$BACKEND_PORT/1k"
wait_for "nginx as proxy" ok "http://127.0.0.1:$NGINX_PROXY_PORT/1k"
wait_for "ingressd routes" ok "http://127.0.0.1:$INGRESSD_PORT/1k"
cmp -s <(curl -s -H "Host: $HOST" "http://127.0.0.1:$INGRESSD_PORT/64k") "$WORK/www/64k" \
    || { echo "ingressd returned different bytes" >&2; exit 1; }

to_ms() { # wrk latency like 812.00us, 1.20ms, 1.02s
    awk -v v="$1" 'BEGIN {
        n = v + 0
        if (v ~ /us$/) n /= 1000; else if (v ~ /ms$/) n += 0; else if (v ~ /s$/) n *= 1000
        printf "%.2f", n }'
}

RESULTS="$WORK/results.tsv"
: > "$RESULTS"
printf "%-5s %-6s %-12s %10s %9s %9s %10s\n" round file target req/s p50_ms p99_ms rss_MiB
for round in $(seq 1 "$ROUNDS"); do
    for file in 1k 64k; do
        for target in direct nginx-proxy ingressd; do
            case $target in
                direct) port=$BACKEND_PORT ;;
                nginx-proxy) port=$NGINX_PROXY_PORT ;;
                ingressd) port=$INGRESSD_PORT ;;
            esac
            out=$(wrk -t"$THREADS" -c"$CONNECTIONS" -d"$DURATION" --latency -H "Host: $HOST" \
                "http://127.0.0.1:$port/$file")
            rps=$(awk '/^Requests\/sec:/ {print $2}' <<<"$out")
            p50=$(to_ms "$(awk '$1 == "50%" {print $2}' <<<"$out")")
            p99=$(to_ms "$(awk '$1 == "99%" {print $2}' <<<"$out")")
            errors=$(awk '/Non-2xx|Socket errors/' <<<"$out")
            rss="-"
            [ "$target" = ingressd ] && rss=$(awk '{printf "%.1f", $1 / 1024}' <<<"$(ps -o rss= -p "$INGRESSD_PID")")
            printf "%-5s %-6s %-12s %10s %9s %9s %10s\n" "$round" "$file" "$target" "$rps" "$p50" "$p99" "$rss"
            [ -n "$errors" ] && echo "      $errors"
            printf "%s\t%s\t%s\t%s\t%s\n" "$file" "$target" "$rps" "$p50" "$p99" >> "$RESULTS"
        done
    done
done

echo
echo "median over $ROUNDS rounds ($CONNECTIONS connections, $DURATION each):"
for file in 1k 64k; do
    median() { # target column
        awk -F'\t' -v f="$file" -v t="$1" -v c="$2" '$1 == f && $2 == t {print $c}' "$RESULTS" | sort -g \
            | awk '{a[NR] = $1} END {print (NR % 2) ? a[(NR + 1) / 2] : (a[NR / 2] + a[NR / 2 + 1]) / 2}'
    }
    for target in direct nginx-proxy ingressd; do
        printf "  %-4s %-12s %10.0f req/s  p50 %6.2f ms  p99 %6.2f ms\n" "$file" "$target" \
            "$(median $target 3)" "$(median $target 4)" "$(median $target 5)"
    done
    awk -v i="$(median ingressd 3)" -v n="$(median nginx-proxy 3)" -v ip="$(median ingressd 5)" -v np="$(median nginx-proxy 5)" \
        -v f="$file" 'BEGIN { printf "  %-4s ingressd/nginx-proxy: throughput %.2f, p99 %.2f\n", f, i / n, ip / np }'
done
echo "ingressd RSS at the end: $(awk '{printf "%.1f MiB", $1 / 1024}' <<<"$(ps -o rss= -p "$INGRESSD_PID")")"
