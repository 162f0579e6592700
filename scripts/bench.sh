#!/usr/bin/env bash
# Throughput, latency and cost per request of ingressd against its peers, on
# loopback, in one interleaved run (machine noise hits every target alike).
#
# Every target is its own process(es), all forwarding to one backend:
#   direct    the backend itself: nginx, 1 worker, serving the files
#   nginx     nginx as proxy, 2 workers, the proxy settings ingress-nginx
#             generates (HTTP/1.1 upstream, keepalive 320, Connection "")
#   haproxy   haproxy, 2 threads, http-reuse always
#   go        Go's httputil.ReverseProxy, standard library only
#             (bench/goproxy, built with Debian's golang-go)
#   floor     the least a blocking thread-per-connection proxy can cost
#             (benches/blocking_floor.rs: no parsing, no policy, no
#             allocation; plain HTTP only): the ceiling of ingressd's model
#   ingressd  the release binary, --access-log off, routes from the fake API
#
# For each scheme (http, https keep-alive), file size (1k, 64k) and
# concurrency (16, 64, 256), wrk -t1 measures req/s, p50 and p99; the bench
# reads each target's CPU seconds (/proc/PID/stat, all its processes) and
# context switches (voluntary + involuntary, summed over /proc/PID/task/*/
# status) before and after each run and prints them per 100k requests and
# per request. HTTPS uses one ECDSA P-256 certificate for every proxy.
#
# Then: full TLS handshakes per second (bench/loadtools handshakes: a new
# connection per request, no session cache, resumptions counted), ingressd's
# allocations per proxied 1 KiB GET (benches/proxy_allocs.rs, a counting
# allocator in a bench-only binary), and the idle test: IDLE keep-alive
# connections held open against ingressd during a c=64 1k run.
#
# Not a test, not run in CI. Needs nginx, haproxy, wrk, golang-go and curl
# (installed with apt-get when missing).
#
# Knobs: QUICK=1 (http+https at c=64 1k only, QUICK_ROUNDS rounds, default 1),
# ROUNDS (3), DURATION (5s), SIZES ("1k 64k"), CONCURRENCY ("16 64 256"),
# SCHEMES ("http https"), TARGETS ("direct nginx haproxy go floor ingressd"),
# HANDSHAKE_CONNECTIONS (16), IDLE (10000; 0 skips), WORKERS (ingressd
# --workers), BASE_PORT (18080; ports BASE_PORT..BASE_PORT+19 are used),
# WARMUP (2s; 0 skips: one unmeasured run per target and scheme, at the
# highest concurrency, before the first round).
#
# The warm-up is there because a process's first load is not its steady
# state: ingressd creates a thread per connection and touches its heaps and
# buffers for the first time (about 5,600 page faults in its first 5 s run,
# 35 in the next), and without a warm-up its first round was its slowest in
# four runs out of four. Every target gets the same warm-up.
set -euo pipefail

ROUNDS=${ROUNDS:-3}
DURATION=${DURATION:-5s}
# With QUICK, the runs below; ROUNDS may still be raised for steadier medians.
SIZES=${SIZES:-1k 64k}
CONCURRENCY=${CONCURRENCY:-16 64 256}
SCHEMES=${SCHEMES:-http https}
if [ -n "${QUICK:-}" ]; then
    ROUNDS=${QUICK_ROUNDS:-1} SIZES=1k CONCURRENCY=64
fi
TARGETS=${TARGETS:-direct nginx haproxy go floor ingressd}
HANDSHAKE_CONNECTIONS=${HANDSHAKE_CONNECTIONS:-16}
IDLE=${IDLE:-10000}
WARMUP=${WARMUP:-2s}
BASE_PORT=${BASE_PORT:-18080}
BACKEND_PORT=$BASE_PORT
declare -A HTTP_PORT=([direct]=$BASE_PORT [nginx]=$((BASE_PORT + 1)) [haproxy]=$((BASE_PORT + 2)) \
    [go]=$((BASE_PORT + 3)) [ingressd]=$((BASE_PORT + 4)) [floor]=$((BASE_PORT + 6)))
declare -A HTTPS_PORT=([nginx]=$((BASE_PORT + 11)) [haproxy]=$((BASE_PORT + 12)) \
    [go]=$((BASE_PORT + 13)) [ingressd]=$((BASE_PORT + 14)))
INGRESSD_ADMIN_PORT=$((BASE_PORT + 5))
HOST=bench.test

cd "$(dirname "$0")/.."
ROOT=$(pwd)

install_missing() {
    local missing=()
    command -v nginx >/dev/null || [ -x /usr/sbin/nginx ] || missing+=(nginx)
    command -v haproxy >/dev/null || [ -x /usr/sbin/haproxy ] || missing+=(haproxy)
    command -v wrk >/dev/null || missing+=(wrk)
    command -v go >/dev/null || missing+=(golang-go)
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
HAPROXY=$(command -v haproxy || echo /usr/sbin/haproxy)

WORK=$(mktemp -d)
PIDS=()
cleanup() {
    # Children first: cargo does not stop the bench binary it runs.
    for pid in "${PIDS[@]}"; do pkill -P "$pid" 2>/dev/null || true; kill "$pid" 2>/dev/null || true; done
    wait 2>/dev/null || true
    rm -rf "$WORK"
}
trap cleanup EXIT

echo "building release binaries and the Go peers" >&2
cargo build --release --quiet --bin ingressd
cargo build --release --quiet -p fakeapi --bin fake-apiserver
cargo bench --quiet --no-run --bench blocking_floor 2>/dev/null
(cd bench/goproxy && GOFLAGS=-mod=mod go build -o "$WORK/goproxy" .)
(cd bench/loadtools && GOFLAGS=-mod=mod go build -o "$WORK/loadtools" .)

mkdir -p "$WORK/www" "$WORK/logs" "$WORK/backend" "$WORK/proxy"
head -c 1024 /dev/urandom > "$WORK/www/1k"
head -c 65536 /dev/urandom > "$WORK/www/64k"
openssl req -x509 -newkey ec -pkeyopt ec_paramgen_curve:P-256 -nodes -days 30 -subj "/CN=$HOST" \
    -addext "subjectAltName=DNS:$HOST" -keyout "$WORK/tls.key" -out "$WORK/tls.crt" 2>/dev/null
cat "$WORK/tls.crt" "$WORK/tls.key" > "$WORK/tls.pem"
# nginx started as root serves files as an unprivileged worker user.
chmod -R a+rX "$WORK"

nginx_common() { # prefix directory
    cat <<NGINX
pid $1/nginx.pid;
error_log $1/error.log warn;
daemon off;
worker_rlimit_nofile 16384;
events { worker_connections 8192; }
NGINX
}
nginx_temp_paths() {
    for kind in client_body proxy fastcgi uwsgi scgi; do echo "    ${kind}_temp_path $1/$kind;"; done
}

{
    nginx_common "$WORK/backend"
    cat <<NGINX
worker_processes 1;
http {
    access_log off;
    sendfile on;
    tcp_nopush on;
    keepalive_requests 1000000;
$(nginx_temp_paths "$WORK/backend")
    server {
        listen 127.0.0.1:$BACKEND_PORT backlog=4096;
        root $WORK/www;
    }
}
NGINX
} > "$WORK/backend.conf"

# What ingress-nginx generates for an Ingress path (its defaults), HTTP and HTTPS.
{
    nginx_common "$WORK/proxy"
    cat <<NGINX
worker_processes 2;
http {
    access_log off;
    keepalive_requests 1000000;
$(nginx_temp_paths "$WORK/proxy")
    ssl_protocols TLSv1.2 TLSv1.3;
    ssl_session_cache shared:SSL:10m;
    ssl_session_tickets off;
    upstream backend {
        server 127.0.0.1:$BACKEND_PORT;
        keepalive 320;
        keepalive_requests 10000;
        keepalive_timeout 60s;
    }
    server {
        listen 127.0.0.1:${HTTP_PORT[nginx]} backlog=4096;
        listen 127.0.0.1:${HTTPS_PORT[nginx]} ssl backlog=4096;
        ssl_certificate $WORK/tls.crt;
        ssl_certificate_key $WORK/tls.key;
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
} > "$WORK/proxy.conf"

cat > "$WORK/haproxy.cfg" <<HAPROXY
global
    nbthread 2
    maxconn 8000
    log stderr format short local0 err
defaults
    mode http
    timeout connect 5s
    timeout client 60s
    timeout server 60s
    timeout http-keep-alive 60s
    option http-keep-alive
frontend bench
    bind 127.0.0.1:${HTTP_PORT[haproxy]}
    bind 127.0.0.1:${HTTPS_PORT[haproxy]} ssl crt $WORK/tls.pem alpn http/1.1
    option forwardfor
    http-request set-header X-Forwarded-Proto https if { ssl_fc }
    default_backend backend
backend backend
    http-reuse always
    server backend 127.0.0.1:$BACKEND_PORT
HAPROXY

"$NGINX" -p "$WORK/backend" -c "$WORK/backend.conf" 2>"$WORK/logs/backend.stderr" &
PIDS+=($!)
declare -A TARGET_PID=([direct]=$!)
"$NGINX" -p "$WORK/proxy" -c "$WORK/proxy.conf" 2>"$WORK/logs/nginx.stderr" &
PIDS+=($!)
TARGET_PID[nginx]=$!
"$HAPROXY" -f "$WORK/haproxy.cfg" >"$WORK/logs/haproxy.log" 2>&1 &
PIDS+=($!)
TARGET_PID[haproxy]=$!
"$WORK/goproxy" -backend "http://127.0.0.1:$BACKEND_PORT" -http "127.0.0.1:${HTTP_PORT[go]}" \
    -https "127.0.0.1:${HTTPS_PORT[go]}" -cert "$WORK/tls.crt" -key "$WORK/tls.key" >"$WORK/logs/go.log" 2>&1 &
PIDS+=($!)
TARGET_PID[go]=$!
# cargo runs the bench binary as its child; target_pids counts both.
cargo bench --quiet --bench blocking_floor -- "127.0.0.1:${HTTP_PORT[floor]}" "127.0.0.1:$BACKEND_PORT" \
    >"$WORK/logs/floor.log" 2>&1 &
PIDS+=($!)
TARGET_PID[floor]=$!

"$ROOT/target/release/fake-apiserver" secret --namespace default --name bench-tls \
    --cert "$WORK/tls.crt" --key "$WORK/tls.key" > "$WORK/secret.json"
cat > "$WORK/objects.json" <<JSON
{"items": [
 {"apiVersion": "networking.k8s.io/v1", "kind": "Ingress",
  "metadata": {"name": "bench", "namespace": "default"},
  "spec": {"ingressClassName": "ingressd", "tls": [{"hosts": ["$HOST"], "secretName": "bench-tls"}],
   "rules": [{"host": "$HOST", "http": {"paths": [
    {"path": "/", "pathType": "Prefix", "backend": {"service": {"name": "bench", "port": {"number": 80}}}}]}}]}},
 {"apiVersion": "v1", "kind": "Service",
  "metadata": {"name": "bench", "namespace": "default"},
  "spec": {"clusterIP": "10.96.0.10", "ports": [{"name": "http", "port": 80, "targetPort": "http"}]}},
 {"apiVersion": "discovery.k8s.io/v1", "kind": "EndpointSlice",
  "metadata": {"name": "bench-1", "namespace": "default", "labels": {"kubernetes.io/service-name": "bench"}},
  "addressType": "IPv4",
  "endpoints": [{"addresses": ["127.0.0.1"], "conditions": {"ready": true}}],
  "ports": [{"name": "http", "port": $BACKEND_PORT, "protocol": "TCP"}]},
 $(cat "$WORK/secret.json")
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

# The idle test needs a descriptor per held connection on top of the load.
ulimit -n "$(ulimit -Hn)"
FD_LIMIT=$(ulimit -n)
WORKER_FLAG=()
[ -n "${WORKERS:-}" ] && WORKER_FLAG=(--workers "$WORKERS")
"$ROOT/target/release/ingressd" --apiserver "$API_URL" --token-file /nonexistent --ca-file /nonexistent \
    --http-addr 127.0.0.1:${HTTP_PORT[ingressd]} --https-addr 127.0.0.1:${HTTPS_PORT[ingressd]} \
    --admin-addr 127.0.0.1:$INGRESSD_ADMIN_PORT --access-log off --log-level warn \
    --default-ssl-certificate default/bench-tls \
    --max-connections $((IDLE + 1024)) --idle-timeout 600 \
    --shutdown-delay 0 --shutdown-grace 2 "${WORKER_FLAG[@]}" \
    >"$WORK/logs/ingressd.log" 2>&1 &
PIDS+=($!)
TARGET_PID[ingressd]=$!

ok() { [ "$(curl -sk -o /dev/null -w '%{http_code}' --resolve "$HOST:$2:127.0.0.1" "$1://$HOST:$2/1k")" = 200 ]; }
wait_for "the backend" ok http "$BACKEND_PORT"
wait_for "floor over http" ok http "${HTTP_PORT[floor]}"
for target in nginx haproxy go ingressd; do
    wait_for "$target over http" ok http "${HTTP_PORT[$target]}"
    wait_for "$target over https" ok https "${HTTPS_PORT[$target]}"
    cmp -s <(curl -sk --resolve "$HOST:${HTTPS_PORT[$target]}:127.0.0.1" "https://$HOST:${HTTPS_PORT[$target]}/64k") \
        "$WORK/www/64k" || { echo "$target returned different bytes" >&2; exit 1; }
done
echo "ingressd's certificate: $(openssl s_client -connect 127.0.0.1:${HTTPS_PORT[ingressd]} -servername $HOST </dev/null 2>/dev/null \
    | openssl x509 -noout -text | awk '/Public Key Algorithm|NIST CURVE/ {$1=$1; printf "%s ", $0}')"

# All processes of a target: the one started and its children (nginx workers).
target_pids() { echo "$1"; pgrep -P "$1" || true; }
cpu_ticks() { # pid... -> utime + stime of each process, its dead threads included
    local total=0 pid
    for pid in "$@"; do
        total=$((total + $(awk '{print $14 + $15}' "/proc/$pid/stat" 2>/dev/null || echo 0)))
    done
    echo "$total"
}
switches() { # pid... -> context switches summed over every live thread
    cat $(for pid in "$@"; do echo /proc/"$pid"/task/*/status; done) 2>/dev/null \
        | awk '/^(non)?voluntary_ctxt_switches/ {s += $2} END {print s + 0}'
}
# The most any thread touched of its stack: each thread's stack pointer (from
# /proc/PID/task/TID/syscall, threads blocked in a system call) names the
# mapping that is its stack, whose Rss is what the thread ever touched.
stack_high_water() {
    python3 - "$1" <<'PY'
import glob, re, sys
pid = sys.argv[1]
maps = []
for line in open(f"/proc/{pid}/smaps"):
    m = re.match(r"([0-9a-f]+)-([0-9a-f]+) ", line)
    if m:
        maps.append([int(m.group(1), 16), int(m.group(2), 16), 0])
    elif line.startswith("Rss:"):
        maps[-1][2] = int(line.split()[1])
touched = []
for path in glob.glob(f"/proc/{pid}/task/*/syscall"):
    try:
        fields = open(path).read().split()
    except OSError:
        continue
    if len(fields) < 3 or fields[0] == "running":
        continue
    sp = int(fields[-2], 16)
    for start, end, rss in maps:
        if start <= sp < end and end - start <= 1 << 20:
            touched.append((rss, (end - start) // 1024))
if touched:
    top = max(touched)
    print(f"{top[0]} KiB at most touched (of a {top[1]} KiB mapping), median {sorted(touched)[len(touched) // 2][0]} KiB, over {len(touched)} threads")
else:
    print("no thread stacks found")
PY
}
rss_mib() { awk '/^VmRSS/ {printf "%.1f", $2 / 1024}' "/proc/$1/status"; }
threads() { awk '/^Threads/ {print $2}' "/proc/$1/status"; }
# Waits (at most 60 s) until a process's thread count has stayed the same for
# 6 s: idle connections give up their threads a second after their last
# request, and pool threads exit after 5 s without work.
settle_threads() {
    local last=-1 now steady=0
    for _ in $(seq 1 120); do
        now=$(threads "$1")
        if [ "$now" = "$last" ]; then steady=$((steady + 1)); else steady=0; fi
        [ "$steady" -ge 12 ] && return
        last=$now
        sleep 0.5
    done
}
to_ms() { # wrk latency like 812.00us, 1.20ms, 1.02s
    awk -v v="$1" 'BEGIN {
        n = v + 0
        if (v ~ /us$/) n /= 1000; else if (v ~ /ms$/) n += 0; else if (v ~ /s$/) n *= 1000
        printf "%.2f", n }'
}
to_count() { # wrk counts like 1.23k, 4.5M
    awk -v v="$1" 'BEGIN { n = v + 0; if (v ~ /k$/) n *= 1e3; if (v ~ /M$/) n *= 1e6; printf "%d", n }'
}
TICKS=$(getconf CLK_TCK)

RESULTS="$WORK/results.tsv"
: > "$RESULTS"
# The round a measured run belongs to (0 outside the rounds: the idle test).
round=0
# One measured run: label, target, then the load command; appends a row.
measure() {
    local label=$1 target=$2; shift 2
    local pids
    pids=$(target_pids "${TARGET_PID[$target]}")
    local cpu0 sw0 out cpu1 sw1
    cpu0=$(cpu_ticks $pids); sw0=$(switches $pids)
    out=$("$@" 2>&1)
    cpu1=$(cpu_ticks $pids); sw1=$(switches $pids)
    local requests rps p50 p99 errors
    requests=$(awk '/requests in/ {print $1; exit}' <<<"$out")
    rps=$(awk '/^Requests\/sec:/ {print $2}' <<<"$out")
    p50=$(to_ms "$(awk '$1 == "50%" {print $2}' <<<"$out")")
    p99=$(to_ms "$(awk '$1 == "99%" {print $2}' <<<"$out")")
    errors=$(awk '/Non-2xx|Socket errors|resumed: [1-9]|failed: [1-9]/' <<<"$out" | tr '\n' ' ')
    [ -z "$requests" ] || [ "$requests" = 0 ] && { echo "no requests: $out" >&2; requests=1; }
    local cpu100k per_request
    cpu100k=$(awk -v t=$((cpu1 - cpu0)) -v hz="$TICKS" -v n="$requests" 'BEGIN {printf "%.2f", t / hz / n * 1e5}')
    per_request=$(awk -v s=$((sw1 - sw0)) -v n="$requests" 'BEGIN {printf "%.2f", s / n}')
    printf "%-9s %-9s %10s %8s %8s %9s %8s %s\n" "$label" "$target" "$rps" "$p50" "$p99" "$cpu100k" "$per_request" "$errors"
    printf "%s\t%s\t%s\t%s\t%s\t%s\t%s\t%s\n" "$label" "$target" "$rps" "$p50" "$p99" "$cpu100k" "$per_request" "$round" >> "$RESULTS"
}

wrk_run() { # scheme port connections file
    local url="$1://127.0.0.1:$2/$4"
    wrk -t1 -c"$3" -d"$DURATION" --latency -H "Host: $HOST" "$url"
}

if [ "$WARMUP" != 0 ]; then
    most=$(tr ' ' '\n' <<<"$CONCURRENCY" | sort -n | tail -n1)
    for scheme in $SCHEMES; do
        for target in $TARGETS; do
            if [ "$scheme" = http ]; then port=${HTTP_PORT[$target]}; else port=${HTTPS_PORT[$target]:-}; fi
            [ -z "$port" ] || DURATION=$WARMUP wrk_run "$scheme" "$port" "$most" 1k >/dev/null
        done
    done
fi

echo
echo "runs: label = scheme/size/connections; cpu = CPU s per 100k requests; sw = context switches per request"
printf "%-9s %-9s %10s %8s %8s %9s %8s\n" label target req/s p50_ms p99_ms cpu/100k sw/req
for round in $(seq 1 "$ROUNDS"); do
    for scheme in $SCHEMES; do
        for size in $SIZES; do
            for connections in $CONCURRENCY; do
                for target in $TARGETS; do
                    if [ "$scheme" = http ]; then port=${HTTP_PORT[$target]}; else port=${HTTPS_PORT[$target]:-}; fi
                    [ -z "$port" ] && continue
                    measure "$scheme/$size/$connections" "$target" wrk_run "$scheme" "$port" "$connections" "$size"
                done
            done
        done
    done
    for target in $TARGETS; do
        [ -z "${HTTPS_PORT[$target]:-}" ] && continue
        measure "handshake" "$target" env GOMAXPROCS=1 "$WORK/loadtools" handshakes \
            -addr "127.0.0.1:${HTTPS_PORT[$target]}" -host "$HOST" -c "$HANDSHAKE_CONNECTIONS" -d "$DURATION"
    done
done
round=0

median() { # label target column
    awk -F'\t' -v l="$1" -v t="$2" -v c="$3" '$1 == l && $2 == t {print $c}' "$RESULTS" | sort -g \
        | awk '{a[NR] = $1} END {if (NR == 0) print "-"; else print (NR % 2) ? a[(NR + 1) / 2] : (a[NR / 2] + a[NR / 2 + 1]) / 2}'
}
ratio() { awk -v a="$1" -v b="$2" 'BEGIN { if (a == "-" || b == "-" || b == 0) print "-"; else printf "%.2f", a / b }'; }
# ingressd's ratios against nginx taken within each round, lowest to highest:
# on a shared machine a ratio near a goal's bound moves across it between
# rounds, which the ratio of medians alone does not show.
round_spread() { # label
    awk -F'\t' -v l="$1" '
        $1 == l && $8 > 0 && $2 == "ingressd" { mine[$8] = $3 FS $5 FS $6 }
        $1 == l && $8 > 0 && $2 == "nginx" { theirs[$8] = $3 FS $5 FS $6 }
        END {
            for (r in mine) {
                if (!(r in theirs)) continue
                split(mine[r], a, FS); split(theirs[r], b, FS)
                for (k = 1; k <= 3; k++) {
                    if (b[k] <= 0) continue
                    v = a[k] / b[k]
                    if (!(k in lo) || v < lo[k]) lo[k] = v
                    if (!(k in hi) || v > hi[k]) hi[k] = v
                }
                rounds++
            }
            if (rounds > 1)
                printf "%-16s per round req/s n %.2f-%.2f | p99 n %.2f-%.2f | cpu n %.2f-%.2f (%d rounds)\n", \
                    l, lo[1], hi[1], lo[2], hi[2], lo[3], hi[3], rounds
        }' "$RESULTS"
}

echo
echo "medians over $ROUNDS round(s), $DURATION each; ingressd's ratios against nginx (n), haproxy (h) and Go (g)"
printf "%-16s %-9s %10s %8s %8s %9s %7s\n" run target req/s p50_ms p99_ms cpu/100k sw/req
for label in $(cut -f1 "$RESULTS" | awk '!seen[$0]++'); do
    for target in $TARGETS; do
        rps=$(median "$label" "$target" 3)
        [ "$rps" = "-" ] && continue
        printf "%-16s %-9s %10.0f %8s %8s %9s %7s\n" "$label" "$target" "$rps" "$(median "$label" "$target" 4)" \
            "$(median "$label" "$target" 5)" "$(median "$label" "$target" 6)" "$(median "$label" "$target" 7)"
    done
    i_rps=$(median "$label" ingressd 3)
    printf "%-16s ratios    req/s n %s h %s g %s | p99 n %s | cpu n %s | sw/req %s\n" "$label" \
        "$(ratio "$i_rps" "$(median "$label" nginx 3)")" "$(ratio "$i_rps" "$(median "$label" haproxy 3)")" \
        "$(ratio "$i_rps" "$(median "$label" go 3)")" \
        "$(ratio "$(median "$label" ingressd 5)" "$(median "$label" nginx 5)")" \
        "$(ratio "$(median "$label" ingressd 6)" "$(median "$label" nginx 6)")" "$(median "$label" ingressd 7)"
    round_spread "$label"
    f_rps=$(median "$label" floor 3)
    # No switches: the floor's threads live only for a run, and switches are read from live threads.
    [ "$f_rps" = "-" ] || printf "%-16s floor     req/s n %s | p99 n %s | cpu n %s (the model's ceiling)\n" "$label" \
        "$(ratio "$f_rps" "$(median "$label" nginx 3)")" "$(ratio "$(median "$label" floor 5)" "$(median "$label" nginx 5)")" \
        "$(ratio "$(median "$label" floor 6)" "$(median "$label" nginx 6)")"
done
echo "ingressd: RSS $(rss_mib "${TARGET_PID[ingressd]}") MiB, $(threads "${TARGET_PID[ingressd]}") threads"
echo "ingressd connection thread stacks: $(stack_high_water "${TARGET_PID[ingressd]}")"

echo
echo "allocations per proxied 1 KiB GET (benches/proxy_allocs.rs):"
cargo bench --quiet --bench proxy_allocs 2>/dev/null | sed 's/^/  /' || echo "  the allocation bench failed"

if [ "$IDLE" -gt 0 ]; then
    echo
    echo "idle test: $IDLE idle keep-alive connections held during a c=64 1k run against ingressd (fd limit $FD_LIMIT)"
    measure "idle-off" ingressd wrk_run http "${HTTP_PORT[ingressd]}" 64 1k
    threads_before=$(threads "${TARGET_PID[ingressd]}")
    "$WORK/loadtools" idle -addr "127.0.0.1:${HTTP_PORT[ingressd]}" -host "$HOST" -n "$IDLE" \
        -ready-file "$WORK/idle.ready" >"$WORK/logs/idle.log" 2>&1 &
    IDLE_PID=$!
    PIDS+=($IDLE_PID)
    for _ in $(seq 1 1200); do [ -s "$WORK/idle.ready" ] && break; sleep 0.1; done
    echo "  opened: $(cat "$WORK/idle.ready" 2>/dev/null || echo 'not all within 120 s')"
    echo "  right after opening: RSS $(rss_mib "${TARGET_PID[ingressd]}") MiB, $(threads "${TARGET_PID[ingressd]}") threads"
    settle_threads "${TARGET_PID[ingressd]}"
    echo "  ingressd with them: RSS $(rss_mib "${TARGET_PID[ingressd]}") MiB, $(threads "${TARGET_PID[ingressd]}") threads (before: $threads_before)"
    measure "idle-on" ingressd wrk_run http "${HTTP_PORT[ingressd]}" 64 1k
    echo "  after the run: RSS $(rss_mib "${TARGET_PID[ingressd]}") MiB"
    kill "$IDLE_PID"; wait "$IDLE_PID" 2>/dev/null || true
    echo "  $(tail -n1 "$WORK/logs/idle.log")"
    echo "  throughput with/without: $(ratio "$(median idle-on ingressd 3)" "$(median idle-off ingressd 3)")"
fi
