# shellcheck shell=bash
# The demo stack shared by scripts/demo.sh, scripts/smoke.sh and
# scripts/build-static.sh: a fake API server holding the example objects, two
# echo backends, and ingressd on unprivileged loopback ports.
#
# Source it, call stack_init, then the stack_* steps. Every process started
# here is recorded and stopped by PID when the calling script exits, however
# it exits (trap on EXIT, INT and TERM). Every wait has a deadline.

STACK_ROOT="$(cd "$(dirname "${BASH_SOURCE[0]}")/../.." && pwd)"
STACK_PIDS=()

# Ports ingressd listens on; 0 lets the kernel choose (see stack_learn_ports).
: "${STACK_HTTP_PORT:=18080}"
: "${STACK_HTTPS_PORT:=18443}"
: "${STACK_ADMIN_PORT:=18254}"
# How long ingressd may take to report ready, and a live change to take effect.
: "${STACK_READY_SECONDS:=30}"
: "${STACK_CHANGE_SECONDS:=10}"

STACK_BIN="$STACK_ROOT/target/release"
STACK_OBJECTS_TEMPLATE="$STACK_ROOT/manifests/examples/demo-objects.json"

say() { printf '\n==> %s\n' "$*"; }
note() { printf '    %s\n' "$*"; }
die() {
    printf '\nerror: %s\n' "$*" >&2
    exit 1
}

stack_cleanup() {
    local pid
    for pid in "${STACK_PIDS[@]}"; do
        kill "$pid" 2>/dev/null || true
    done
    # Give each process a moment to exit on SIGTERM, then insist.
    local deadline=$((SECONDS + 5))
    for pid in "${STACK_PIDS[@]}"; do
        while kill -0 "$pid" 2>/dev/null && ((SECONDS < deadline)); do
            sleep 0.1
        done
        kill -KILL "$pid" 2>/dev/null || true
        wait "$pid" 2>/dev/null || true
    done
    STACK_PIDS=()
    if [[ -n "${STACK_DIR:-}" && -d "$STACK_DIR" ]]; then
        if [[ -n "${STACK_KEEP:-}" ]]; then
            echo "logs kept in $STACK_DIR"
        else
            rm -rf "$STACK_DIR"
        fi
    fi
}

# stack_init NAME: a scratch directory and the traps that clean up.
stack_init() {
    STACK_DIR="$(mktemp -d "/tmp/ingressd-$1.XXXXXX")"
    trap stack_cleanup EXIT
    trap 'exit 130' INT
    trap 'exit 143' TERM
}

# Installs curl and jq with apt-get when they are missing; cargo must be there.
stack_require_tools() {
    command -v cargo >/dev/null 2>&1 || die "cargo is needed to build ingressd (install Rust: https://rustup.rs)"
    local missing=() tool
    for tool in curl jq; do
        command -v "$tool" >/dev/null 2>&1 || missing+=("$tool")
    done
    ((${#missing[@]} == 0)) && return 0
    command -v apt-get >/dev/null 2>&1 || die "missing ${missing[*]} and no apt-get to install them"
    say "Installing ${missing[*]}"
    local sudo=()
    ((EUID == 0)) || sudo=(sudo)
    "${sudo[@]}" apt-get update -qq && "${sudo[@]}" apt-get install -y -qq "${missing[@]}" >/dev/null ||
        die "could not install ${missing[*]}"
}

# stack_build [PACKAGE...]: release builds of ingressd and the test tools
# (package fakeapi: fake-apiserver, echo-backend), or of the packages named.
stack_build() {
    local packages=("${@:-ingressd}")
    (($#)) || packages+=(fakeapi)
    say "Building ${packages[*]} (cargo build --release)"
    local args=() package
    for package in "${packages[@]}"; do
        args+=(-p "$package")
    done
    (cd "$STACK_ROOT" && cargo build --release --quiet "${args[@]}") || die "cargo build failed"
}

# stack_spawn NAME COMMAND...: starts COMMAND in the background, output in
# $STACK_DIR/NAME.log; the PID is recorded for cleanup and left in STACK_LAST_PID.
stack_spawn() {
    local name="$1"
    shift
    "$@" >"$STACK_DIR/$name.log" 2>&1 &
    STACK_LAST_PID=$!
    STACK_PIDS+=("$STACK_LAST_PID")
}

# Prints the tail of a process log after a failure.
stack_show_log() {
    local log="$STACK_DIR/$1.log"
    [[ -s "$log" ]] || return 0
    echo "--- last lines of $1.log ---" >&2
    tail -n 20 "$log" >&2
}

# stack_wait SECONDS PID NAME COMMAND...: polls COMMAND every 0.1 s until it
# succeeds; fails when the deadline passes or the process PID has died.
stack_wait() {
    local seconds="$1" pid="$2" name="$3"
    shift 3
    local deadline=$((SECONDS + seconds))
    until "$@" 2>/dev/null; do
        if ! kill -0 "$pid" 2>/dev/null; then
            stack_show_log "$name"
            die "$name exited before it was ready"
        fi
        if ((SECONDS >= deadline)); then
            stack_show_log "$name"
            die "$name was not ready within ${seconds} s"
        fi
        sleep 0.1
    done
}

# Fails when a port ingressd needs is taken, rather than letting it die later.
stack_check_port_free() {
    if (exec 3<>"/dev/tcp/127.0.0.1/$1") 2>/dev/null; then
        die "127.0.0.1:$1 is already in use (set STACK_HTTP_PORT, STACK_HTTPS_PORT, STACK_ADMIN_PORT)"
    fi
}

# stack_start_backend NAME: an echo backend on a free port; its address is
# left in BACKEND_ADDR[NAME].
declare -A BACKEND_ADDR
stack_start_backend() {
    local name="$1" ready="$STACK_DIR/$1.ready"
    stack_spawn "$name" "$STACK_BIN/echo-backend" --addr 127.0.0.1:0 --name "$name" --ready-file "$ready"
    stack_wait 10 "$STACK_LAST_PID" "$name" test -s "$ready"
    BACKEND_ADDR[$name]="$(tr -d '[:space:]' <"$ready")"
    note "backend $name answers on ${BACKEND_ADDR[$name]}"
}

# A self-signed certificate for the demo hosts and the Secret that carries it.
stack_make_certs() {
    "$STACK_BIN/fake-apiserver" gen-cert --cn demo.example.com --san demo.example.com \
        --cert-out "$STACK_DIR/demo.crt" --key-out "$STACK_DIR/demo.key" >/dev/null ||
        die "fake-apiserver gen-cert failed"
    "$STACK_BIN/fake-apiserver" secret --namespace demo --name demo-tls \
        --cert "$STACK_DIR/demo.crt" --key "$STACK_DIR/demo.key" >"$STACK_DIR/demo-tls.json" ||
        die "fake-apiserver secret failed"
    [[ -s "$STACK_DIR/demo.crt" && -s "$STACK_DIR/demo.key" ]] || die "fake-apiserver gen-cert wrote no certificate"
    jq -e '.kind == "Secret" and .type == "kubernetes.io/tls"' "$STACK_DIR/demo-tls.json" >/dev/null ||
        die "fake-apiserver secret did not print a TLS Secret"
    note "certificate for demo.example.com in Secret demo/demo-tls"
}

# The example objects with the EndpointSlices pointing at the running
# backends, plus the TLS Secret.
stack_make_objects() {
    jq --arg alpha "${BACKEND_ADDR[alpha]##*:}" --arg beta "${BACKEND_ADDR[beta]##*:}" \
        --slurpfile secret "$STACK_DIR/demo-tls.json" '
        .items |= map(
            if .kind == "EndpointSlice" then
                .ports[0].port = ((if .metadata.labels["kubernetes.io/service-name"] == "alpha" then $alpha else $beta end) | tonumber)
            else . end
        ) + $secret' "$STACK_OBJECTS_TEMPLATE" >"$STACK_DIR/objects.json" || die "could not write the objects"
}

# Starts the fake API server over HTTPS with a bearer token; sets API_URL,
# API_CA and API_TOKEN_FILE.
stack_start_apiserver() {
    API_TOKEN_FILE="$STACK_DIR/token"
    API_CA="$STACK_DIR/apiserver-ca.crt"
    local ready="$STACK_DIR/apiserver.ready"
    (umask 077 && head -c 24 /dev/urandom | od -An -tx1 | tr -d ' \n' >"$API_TOKEN_FILE")
    stack_spawn apiserver "$STACK_BIN/fake-apiserver" --addr 127.0.0.1:0 --token-file "$API_TOKEN_FILE" \
        --objects "$STACK_DIR/objects.json" --ca-out "$API_CA" --ready-file "$ready"
    # The ready file holds the URL and is written after the CA file.
    stack_wait 10 "$STACK_LAST_PID" apiserver test -s "$ready"
    API_URL="$(tr -d '[:space:]' <"$ready")"
    [[ "$API_URL" == https://* && -s "$API_CA" ]] || die "unexpected fake API server ready file: $API_URL"
    note "fake API server at $API_URL (HTTPS, bearer token)"
}

# stack_start_ingressd [PREFIX...] -- [EXTRA FLAGS...]: ingressd on the
# loopback ports, talking to the fake API server, and quick to stop (no
# drain delay: nothing here needs one). PREFIX runs it another way
# (build-static.sh runs it inside a chroot); INGRESSD_BIN, INGRESSD_TOKEN and
# INGRESSD_CA are the paths as ingressd sees them.
stack_start_ingressd() {
    local prefix=()
    while (($#)) && [[ "$1" != "--" ]]; do
        prefix+=("$1")
        shift
    done
    (($#)) && shift
    local port
    for port in "$STACK_HTTP_PORT" "$STACK_HTTPS_PORT" "$STACK_ADMIN_PORT"; do
        ((port == 0)) || stack_check_port_free "$port"
    done
    stack_spawn ingressd "${prefix[@]}" "${INGRESSD_BIN:-$STACK_BIN/ingressd}" \
        --apiserver "$API_URL" \
        --token-file "${INGRESSD_TOKEN:-$API_TOKEN_FILE}" \
        --ca-file "${INGRESSD_CA:-$API_CA}" \
        --http-addr "127.0.0.1:$STACK_HTTP_PORT" \
        --https-addr "127.0.0.1:$STACK_HTTPS_PORT" \
        --admin-addr "127.0.0.1:$STACK_ADMIN_PORT" \
        --shutdown-delay 0 --shutdown-grace 2 \
        "$@"
    INGRESSD_PID="$STACK_LAST_PID"
    if ((STACK_HTTP_PORT == 0 || STACK_HTTPS_PORT == 0 || STACK_ADMIN_PORT == 0)); then
        stack_learn_ports
    fi
}

# With port 0 the kernel picks free ports, so runs never collide with
# anything else on the machine; ingressd logs the addresses it bound
# ("listening: http=ADDR https=ADDR admin=ADDR").
stack_learn_ports() {
    local log="$STACK_DIR/ingressd.log"
    stack_wait 15 "$INGRESSD_PID" ingressd grep -q 'listening: http=' "$log"
    local line
    line="$(grep -m 1 'listening: http=' "$log")"
    STACK_HTTP_PORT="$(sed -n 's/.* http=[^ ]*:\([0-9]*\) .*/\1/p' <<<"$line")"
    STACK_HTTPS_PORT="$(sed -n 's/.* https=[^ ]*:\([0-9]*\) .*/\1/p' <<<"$line")"
    STACK_ADMIN_PORT="$(sed -n 's/.* admin=[^ ]*:\([0-9]*\).*/\1/p' <<<"$line")"
    [[ -n "$STACK_HTTP_PORT" && -n "$STACK_HTTPS_PORT" && -n "$STACK_ADMIN_PORT" ]] ||
        die "could not read ingressd's ports from: $line"
    note "ingressd bound http=127.0.0.1:$STACK_HTTP_PORT https=127.0.0.1:$STACK_HTTPS_PORT admin=127.0.0.1:$STACK_ADMIN_PORT"
}

stack_is_ready() {
    [[ "$(curl -s -o /dev/null -w '%{http_code}' --max-time 2 "http://127.0.0.1:$STACK_ADMIN_PORT/readyz")" == 200 ]]
}

# Waits (bounded) until ingressd's /readyz says 200.
stack_wait_ready() {
    stack_wait "$STACK_READY_SECONDS" "$INGRESSD_PID" ingressd stack_is_ready
}

# stack_request [CURL ARGS...] URL: prints "STATUS BODY", the body on one
# line without its final newline; "000 ..." when curl itself failed.
stack_request() {
    local out
    out="$(curl -s --max-time 5 -w '\n%{http_code}' "$@")" || {
        echo "000 curl failed (exit $?)"
        return 0
    }
    local status="${out##*$'\n'}" body="${out%$'\n'*}"
    body="${body%$'\n'}"
    echo "$status ${body//$'\n'/ }"
}

# stack_http HOST PATH: a plain HTTP request through ingressd with this Host.
stack_http() {
    stack_request -H "Host: $1" "http://127.0.0.1:$STACK_HTTP_PORT$2"
}

# stack_https HOST PATH: HTTPS through ingressd, the host sent as SNI and
# verified against the demo certificate.
stack_https() {
    stack_request --resolve "$1:$STACK_HTTPS_PORT:127.0.0.1" --cacert "$STACK_DIR/demo.crt" "https://$1:$STACK_HTTPS_PORT$2"
}

# stack_api METHOD PATH [CURL ARGS...]: a request to the fake API server as ingressd would make it.
stack_api() {
    local method="$1" path="$2"
    shift 2
    curl -sS --fail --max-time 5 -X "$method" --cacert "$API_CA" \
        -H "Authorization: Bearer $(cat "$API_TOKEN_FILE")" -H 'Content-Type: application/json' \
        "$@" "$API_URL$path"
}

# The live change: Ingress demo/shop sends "/" to beta instead of alpha,
# edited through the API like kubectl edit would (GET, change, PUT).
stack_edit_shop_ingress() {
    local path=/apis/networking.k8s.io/v1/namespaces/demo/ingresses/shop
    stack_api GET "$path" >"$STACK_DIR/shop.json" || die "could not read Ingress demo/shop"
    jq '(.spec.rules[0].http.paths[] | select(.path == "/") | .backend.service.name) = "beta"' \
        "$STACK_DIR/shop.json" >"$STACK_DIR/shop-edited.json" || die "could not edit Ingress demo/shop"
    stack_api PUT "$path" --data-binary "@$STACK_DIR/shop-edited.json" >/dev/null || die "the API refused the edited Ingress"
}

# stack_poll_until SECONDS EXPECTED COMMAND...: runs COMMAND until its output
# starts with EXPECTED; leaves the last output in STACK_LAST_OUTPUT.
stack_poll_until() {
    local seconds="$1" expected="$2"
    shift 2
    local deadline=$((SECONDS + seconds))
    while true; do
        STACK_LAST_OUTPUT="$("$@")"
        [[ "$STACK_LAST_OUTPUT" == "$expected"* ]] && return 0
        ((SECONDS >= deadline)) && return 1
        sleep 0.2
    done
}

# Backends, API server and certificates: everything ingressd needs to start.
stack_start_dependencies() {
    say "Starting two echo backends (each answers \"NAME METHOD PATH\")"
    stack_start_backend alpha
    stack_start_backend beta
    say "Making a TLS certificate for demo.example.com"
    stack_make_certs
    say "Starting the fake Kubernetes API server with the example objects"
    stack_make_objects
    stack_start_apiserver
    note "objects: $(jq -r '[.items[] | .kind + " " + ((.metadata.namespace // "") + "/" + .metadata.name | ltrimstr("/"))] | join(", ")' "$STACK_DIR/objects.json")"
}
