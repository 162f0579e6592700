# shellcheck shell=bash
# The fault drill's parts, built on scripts/lib/stack.sh (source that first):
# a drill stack (its own objects, three echo backends on one port at
# 127.0.0.1-3, a fake API server that can be restarted on the same port with
# the same CA), a background load with per-phase accounting, the faults, the
# second client's malformed and slow requests, and the route comparison.
#
# Processes go through stack_spawn, so stack.sh's trap stops them by PID.
# Every wait has a deadline.

DRILL_NAMESPACE=drill
DRILL_HOST=drill.example.com
DRILL_SERVICE=web
DRILL_SLICE=web-drill1
# ingressd watches Ingresses, IngressClasses, Services, EndpointSlices and Secrets.
DRILL_WATCH_KINDS=5
# How long ingressd may take to reconnect its watches or to show an API change.
# Back-to-back faults push its retry backoff to the 30 s cap, and one fault
# can cost two retries (a broken stream, then a 401), hence 70.
: "${DRILL_RESYNC_SECONDS:=70}"
# Load: clients in parallel, each a curl per batch of keep-alive requests at this rate.
: "${DRILL_LOAD_CLIENTS:=2}"
: "${DRILL_LOAD_RATE:=25}"
: "${DRILL_LOAD_BATCH:=10}"
# ingressd's --header-timeout in the drill, so the slowloris phase stays short.
: "${DRILL_HEADER_TIMEOUT:=2}"

declare -A DRILL_BACKEND_PID
DRILL_FAILURES=()

# drill_fail MESSAGE: records a failed expectation; the drill goes on and
# exits non-zero at the end.
drill_fail() {
    DRILL_FAILURES+=("$*")
    printf '    FAIL %s\n' "$*" >&2
}

drill_now() { printf '%s' "$EPOCHREALTIME"; }

# drill_since START: seconds since START (from drill_now), one decimal.
drill_since() {
    awk -v a="$1" -v b="$EPOCHREALTIME" 'BEGIN { printf "%.1f", b - a }'
}

# drill_forget_pid PID: the process ended on purpose; stack_cleanup must not
# signal a PID that may have been reused.
drill_forget_pid() {
    local keep=() pid
    for pid in "${STACK_PIDS[@]}"; do
        [[ "$pid" == "$1" ]] || keep+=("$pid")
    done
    STACK_PIDS=("${keep[@]}")
}

# drill_stop_pid PID SIGNAL: signals PID and waits (bounded) until it is gone.
# bash's own "Killed" notice is silenced: the kill is the point.
drill_stop_pid() {
    local pid="$1" signal="$2" deadline=$((SECONDS + 5))
    {
        kill "-$signal" "$pid" || true
        while kill -0 "$pid" && ((SECONDS < deadline)); do
            sleep 0.05
        done
        if kill -0 "$pid"; then
            kill -KILL "$pid" || true
        fi
        wait "$pid" || true
    } 2>/dev/null
    drill_forget_pid "$pid"
}

# drill_start_backend NAME IP PORT: an echo backend at IP:PORT (PORT 0: any).
drill_start_backend() {
    local name="$1" ready="$STACK_DIR/$1.ready"
    stack_spawn "$name" "$STACK_BIN/echo-backend" --addr "$2:$3" --name "$name" --ready-file "$ready"
    DRILL_BACKEND_PID[$name]="$STACK_LAST_PID"
    stack_wait 10 "$STACK_LAST_PID" "$name" test -s "$ready"
    BACKEND_ADDR[$name]="$(tr -d '[:space:]' <"$ready")"
    BACKEND_ADDR[$name]="${BACKEND_ADDR[$name]#http://}"
    note "backend $name answers on ${BACKEND_ADDR[$name]}"
}

# Three backends sharing one port on three loopback addresses, as pods of one
# Service share a targetPort: a, b are listed at start, c joins on scale-up.
drill_start_backends() {
    drill_start_backend a 127.0.0.1 0
    DRILL_PORT="${BACKEND_ADDR[a]##*:}"
    drill_start_backend b 127.0.0.2 "$DRILL_PORT"
    drill_start_backend c 127.0.0.3 "$DRILL_PORT"
}

# drill_slice IP...: the drill Service's EndpointSlice with these ready endpoints.
drill_slice() {
    jq -n --arg ns "$DRILL_NAMESPACE" --arg name "$DRILL_SLICE" --arg service "$DRILL_SERVICE" \
        --argjson port "$DRILL_PORT" --args '{
        apiVersion: "discovery.k8s.io/v1", kind: "EndpointSlice",
        metadata: {name: $name, namespace: $ns, labels: {"kubernetes.io/service-name": $service}},
        addressType: "IPv4",
        endpoints: [$ARGS.positional[] | {addresses: [.], conditions: {ready: true, serving: true, terminating: false}}],
        ports: [{name: "http", port: $port, protocol: "TCP"}]
    }' "$@"
}

# The objects the fake API server starts from (and restarts from): the class,
# the Service with two endpoints, and an Ingress whose two paths reach the
# Service by port number and by port name.
drill_make_objects() {
    drill_slice 127.0.0.1 127.0.0.2 >"$STACK_DIR/slice.json" || die "could not write the EndpointSlice"
    jq -n --arg ns "$DRILL_NAMESPACE" --arg host "$DRILL_HOST" --arg service "$DRILL_SERVICE" \
        --slurpfile slice "$STACK_DIR/slice.json" '{apiVersion: "v1", kind: "List", metadata: {}, items: [
        {apiVersion: "networking.k8s.io/v1", kind: "IngressClass", metadata: {name: "ingressd"},
         spec: {controller: "ingressd.io/ingress-controller"}},
        {apiVersion: "v1", kind: "Service", metadata: {name: $service, namespace: $ns},
         spec: {type: "ClusterIP", clusterIP: "10.96.200.1",
                ports: [{name: "http", port: 80, targetPort: "http", protocol: "TCP"}]}},
        $slice[0],
        {apiVersion: "networking.k8s.io/v1", kind: "Ingress", metadata: {name: "web", namespace: $ns},
         spec: {ingressClassName: "ingressd", rules: [{host: $host, http: {paths: [
            {path: "/", pathType: "Prefix", backend: {service: {name: $service, port: {number: 80}}}},
            {path: "/status", pathType: "Exact", backend: {service: {name: $service, port: {name: "http"}}}}
         ]}}]}}
    ]}' >"$STACK_DIR/objects.json" || die "could not write the objects"
}

# drill_start_apiserver [PORT]: the fake API server over HTTPS with the
# token in $API_TOKEN_FILE, its CA kept in $STACK_DIR so a restart on the
# same port is trusted as before. Sets API_URL, API_CA, API_PORT, API_PID.
drill_start_apiserver() {
    local port="${1:-0}" log="apiserver${DRILL_API_STARTS:+-$DRILL_API_STARTS}"
    DRILL_API_STARTS=$((${DRILL_API_STARTS:-0} + 1))
    API_CA="$STACK_DIR/apiserver-ca.crt"
    local deadline=$((SECONDS + 10))
    while true; do
        stack_spawn "$log" "$STACK_BIN/fake-apiserver" --addr "127.0.0.1:$port" --token-file "$API_TOKEN_FILE" \
            --objects "$STACK_DIR/objects.json" --ca-cert "$API_CA" --ca-key "$STACK_DIR/apiserver-ca.key"
        API_PID="$STACK_LAST_PID"
        # Listening, or exited (a port still held after the kill): retry that until the deadline.
        until grep -q "listening on " "$STACK_DIR/$log.log" 2>/dev/null || ! kill -0 "$API_PID" 2>/dev/null; do
            ((SECONDS < deadline)) || break
            sleep 0.05
        done
        grep -q "listening on " "$STACK_DIR/$log.log" 2>/dev/null && break
        drill_stop_pid "$API_PID" TERM
        if ((SECONDS >= deadline)); then
            stack_show_log "$log"
            die "the fake API server did not start on port $port"
        fi
        sleep 0.2
    done
    API_URL="$(grep -m 1 -o 'listening on [^ ]*' "$STACK_DIR/$log.log" | cut -d' ' -f3)"
    API_PORT="${API_URL##*:}"
    [[ -n "$API_URL" && -s "$API_CA" ]] || die "could not read the fake API server's URL and CA"
}

# drill_fake PATH: a /fake/ control of the API server (no auth); prints the answer.
drill_fake() {
    curl -sS --max-time $((DRILL_RESYNC_SECONDS + 5)) --cacert "$API_CA" "$API_URL/fake/$1"
}

# Waits (bounded) until ingressd has a watch open for every kind again.
drill_wait_watches() {
    local answer
    answer="$(drill_fake "wait-for-watches?n=$DRILL_WATCH_KINDS&timeoutSeconds=$DRILL_RESYNC_SECONDS")" || true
    [[ "$(jq -r '.ok' <<<"$answer" 2>/dev/null)" == true ]] && return 0
    drill_fail "ingressd did not reopen its $DRILL_WATCH_KINDS watches within ${DRILL_RESYNC_SECONDS} s (${answer:-no answer})"
    return 1
}

# drill_metric NAME: the sum of a metric's series on ingressd's /metrics.
drill_metric() {
    { curl -s --max-time 5 "http://127.0.0.1:$STACK_ADMIN_PORT/metrics" || true; } |
        awk -v name="$1" '$1 == name || index($1, name "{") == 1 { sum += $2 } END { printf "%d", sum }'
}

# --- load -------------------------------------------------------------------

drill_set_phase() {
    printf '%s\n' "$1" >"$STACK_DIR/phase.tmp"
    mv "$STACK_DIR/phase.tmp" "$STACK_DIR/phase"
}

# One load client: batches of keep-alive GETs at a bounded rate, each answer
# logged as "PHASE STATUS BACKEND CURL-EXIT SECONDS TIME" (status 000: curl
# failed or timed out; BACKEND "-" when no backend answered).
drill_load_client() {
    local args=() i phase
    for ((i = 0; i < DRILL_LOAD_BATCH; i++)); do
        args+=(-o /dev/null "http://127.0.0.1:$STACK_HTTP_PORT/load/$i")
    done
    while [[ ! -e "$STACK_DIR/load.stop" ]]; do
        phase="$(<"$STACK_DIR/phase")"
        curl -s --max-time 3 --connect-timeout 2 --rate "$DRILL_LOAD_RATE/s" -H "Host: $DRILL_HOST" \
            -w "$phase %{http_code} %header{x-backend}- %{exitcode} %{time_total} $(date +%T.%N)\n" "${args[@]}" || true
    done
}

drill_start_load() {
    rm -f "$STACK_DIR/load.stop"
    DRILL_LOAD_PIDS=()
    local n
    for ((n = 1; n <= DRILL_LOAD_CLIENTS; n++)); do
        stack_spawn "load-$n" drill_load_client
        DRILL_LOAD_PIDS+=("$STACK_LAST_PID")
    done
}

# Lets each client finish its batch (bounded by curl's --max-time), then stops it.
drill_stop_load() {
    touch "$STACK_DIR/load.stop"
    drill_await_pids 10 "${DRILL_LOAD_PIDS[@]}"
}

# drill_await_pids SECONDS PID...: waits until every PID has exited, all
# within SECONDS, then stops whichever is still running.
drill_await_pids() {
    local pid deadline=$((SECONDS + $1))
    shift
    for pid in "$@"; do
        while kill -0 "$pid" 2>/dev/null && ((SECONDS < deadline)); do
            sleep 0.1
        done
        drill_stop_pid "$pid" TERM
    done
}

# drill_load_counts PHASE: "SENT FAILED BACKENDS" for the answers logged in
# PHASE; BACKENDS lists the backends that answered, "-" for none.
drill_load_counts() {
    local counts backends
    counts="$(cat "$STACK_DIR"/load-*.log | awk -v phase="$1" '
        $1 == phase { sent++; if ($2 != "200") failed++ }
        END { printf "%d %d", sent, failed }')"
    backends="$(cat "$STACK_DIR"/load-*.log | awk -v phase="$1" '$1 == phase && $2 == "200" && $3 != "-" { print substr($3, 1, length($3) - 1) }' |
        sort -u | paste -sd, -)"
    echo "$counts ${backends:--}"
}

# --- routes -----------------------------------------------------------------

# ingressd's routes for the drill host as sorted JSON: [[host, path, service, [endpoints]]].
drill_ingressd_routes() {
    curl -sf --max-time 5 "http://127.0.0.1:$STACK_ADMIN_PORT/debug/routes" | jq -cS --arg host "$DRILL_HOST" '
        [.routes[] | select(.host == $host) | [.host, .path, .service, (.endpoints | sort)]] | sort'
}

# The same table computed from what the API holds now: the class's Ingresses,
# each path's Service port, and the ready endpoints of that Service's slices
# for that port's name. Covers what the drill's objects use (service
# backends, ports by number or by name, one host).
drill_api_routes() {
    local ingresses services slices
    ingresses="$(stack_api GET "/apis/networking.k8s.io/v1/namespaces/$DRILL_NAMESPACE/ingresses")" || return 1
    services="$(stack_api GET "/api/v1/namespaces/$DRILL_NAMESPACE/services")" || return 1
    slices="$(stack_api GET "/apis/discovery.k8s.io/v1/namespaces/$DRILL_NAMESPACE/endpointslices")" || return 1
    jq -ncS --arg host "$DRILL_HOST" --argjson ing "$ingresses" --argjson svc "$services" --argjson eps "$slices" '
        def service_port($name; $ref):
            ($svc.items[] | select(.metadata.name == $name) | .spec.ports[]
             | select(if $ref.number then .port == $ref.number else .name == $ref.name end)) // null;
        def endpoints($name; $port_name):
            [$eps.items[] | select(.metadata.labels["kubernetes.io/service-name"] == $name)
             | (.ports[] | select((.name // "") == $port_name) | .port) as $p
             | .endpoints[] | select(.conditions.ready != false) | .addresses[] | "\(.):\($p)"] | unique;
        [$ing.items[] | select(.spec.ingressClassName == "ingressd") | .spec.rules[] | select(.host == $host)
         | .host as $h | .http.paths[] | .backend.service as $b
         | service_port($b.name; $b.port) as $sp
         | [$h, .path, $b.name, (if $sp then endpoints($b.name; $sp.name // "") else [] end)]] | sort'
}

# drill_routes_converge SECONDS: polls until ingressd's table equals the API's;
# leaves both in DRILL_ROUTES_INGRESSD and DRILL_ROUTES_API.
drill_routes_converge() {
    local deadline=$((SECONDS + $1))
    while true; do
        DRILL_ROUTES_API="$(drill_api_routes 2>/dev/null)" || DRILL_ROUTES_API="(API unreadable)"
        DRILL_ROUTES_INGRESSD="$(drill_ingressd_routes 2>/dev/null)" || DRILL_ROUTES_INGRESSD="(no /debug/routes)"
        [[ "$DRILL_ROUTES_API" == "["* && "$DRILL_ROUTES_API" == "$DRILL_ROUTES_INGRESSD" ]] && return 0
        ((SECONDS >= deadline)) && return 1
        sleep 0.2
    done
}

# After every fault: the same ingressd process, alive, still routing the
# drill host, and (bounded poll) routing exactly what the API holds. Sets
# DRILL_INGRESSD_GONE when the process died.
drill_check_ingressd() {
    local fault="$1" state
    state="$(awk '{print $3}' "/proc/$INGRESSD_PID/stat" 2>/dev/null)"
    if [[ -z "$state" || "$state" == Z ]] || ! kill -0 "$INGRESSD_PID" 2>/dev/null; then
        stack_show_log ingressd
        drill_fail "$fault: ingressd (PID $INGRESSD_PID) is gone"
        DRILL_INGRESSD_GONE=1
        return 1
    fi
    local starttime
    starttime="$(awk '{print $22}' "/proc/$INGRESSD_PID/stat")"
    [[ "$starttime" == "$DRILL_INGRESSD_STARTTIME" ]] || drill_fail "$fault: PID $INGRESSD_PID is a different process now"
    local routes
    routes="$(drill_ingressd_routes 2>/dev/null)" || routes=""
    if [[ "$(jq 'length' <<<"${routes:-[]}")" != "$DRILL_ROUTE_COUNT" ]]; then
        drill_fail "$fault: /debug/routes lists ${routes:-nothing} instead of $DRILL_ROUTE_COUNT drill routes"
    fi
    if ! drill_routes_converge "$DRILL_RESYNC_SECONDS"; then
        drill_fail "$fault: ingressd routes $DRILL_ROUTES_INGRESSD but the API holds $DRILL_ROUTES_API"
    fi
}

# --- the second client ------------------------------------------------------

# drill_raw PRINTF-FORMAT [ARGS...]: sends one raw request on a new
# connection and prints what ingressd did: its status code (with
# "-forwarded" when the answer came from a backend, which marks it with
# X-Backend), "closed" when it closed or reset the connection without
# answering, or "hang" after 5 s of silence.
drill_raw() {
    local format="$1"
    shift
    (
        trap '' PIPE
        exec 3<>"/dev/tcp/127.0.0.1/$STACK_HTTP_PORT" || {
            echo refused
            exit 0
        }
        # shellcheck disable=SC2059 # the format is the request
        printf "$format" "$@" >&3 2>/dev/null || true
        local line="" rc=0 status="" lines=0
        IFS= read -r -t 5 line <&3 || rc=$?
        if ((rc > 128)); then
            echo hang
            exit 0
        fi
        if [[ ! "$line" =~ ^HTTP/1\.[01]\ ([0-9]{3}) ]]; then
            echo closed
            exit 0
        fi
        status="${BASH_REMATCH[1]}"
        while ((lines++ < 100)) && IFS= read -r -t 2 line <&3 && [[ "$line" != $'\r' && -n "$line" ]]; do
            if [[ "${line,,}" == x-backend:* ]]; then
                status+="-forwarded"
            fi
        done
        echo "$status"
    )
}

# drill_malformed_round: one of each malformed shape; prints "shape=outcome"
# pairs.
drill_malformed_round() {
    local big
    big="$(head -c 20000 /dev/zero | tr '\0' a)"
    printf 'cl+te=%s ' "$(drill_raw 'POST /load/smuggle HTTP/1.1\r\nHost: %s\r\nContent-Length: 6\r\nTransfer-Encoding: chunked\r\n\r\n0\r\n\r\nG' "$DRILL_HOST")"
    printf 'te-identity=%s ' "$(drill_raw 'POST /load/te HTTP/1.1\r\nHost: %s\r\nTransfer-Encoding: identity\r\nContent-Length: 3\r\n\r\nabc' "$DRILL_HOST")"
    printf 'two-cl=%s ' "$(drill_raw 'POST /load/cl HTTP/1.1\r\nHost: %s\r\nContent-Length: 3\r\nContent-Length: 5\r\n\r\nabcde' "$DRILL_HOST")"
    printf 'bad-line=%s ' "$(drill_raw 'GARBAGE\r\nHost: %s\r\n\r\n' "$DRILL_HOST")"
    printf 'huge-header=%s ' "$(drill_raw 'GET /load/big HTTP/1.1\r\nHost: %s\r\nX-Big: %s\r\n\r\n' "$DRILL_HOST" "$big")"
    printf 'bare-lf=%s ' "$(drill_raw 'GET /load/lf HTTP/1.1\nHost: %s\n\n' "$DRILL_HOST")"
    printf 'http2-line=%s ' "$(drill_raw 'GET /load/h2 HTTP/2.0\r\nHost: %s\r\n\r\n' "$DRILL_HOST")"
    printf 'huge-body=%s\n' "$(drill_raw 'POST /load/huge HTTP/1.1\r\nHost: %s\r\nContent-Length: 50000000000\r\n\r\nabc' "$DRILL_HOST")"
}

# What each shape may get: ingressd's own refusal or a closed connection.
# Never a forward to a backend (a smuggling shape or an oversized head must
# stop at the edge; bare LF line ends are the one shape RFC 9112 lets a
# server accept), never a hang.
declare -A DRILL_MALFORMED_ALLOWED=(
    [cl+te]="400 closed"
    [te-identity]="400 501 closed"
    [two-cl]="400 closed"
    [bad-line]="400 closed"
    [huge-header]="431 400 closed"
    [bare-lf]="200-forwarded 400 408 closed"
    [http2-line]="400 505 408 closed"
    [huge-body]="413 closed"
)

# drill_malformed SECONDS: malformed rounds until SECONDS pass; every outcome
# is checked against DRILL_MALFORMED_ALLOWED, the distinct outcome lines are
# left in DRILL_MALFORMED.
drill_malformed() {
    local deadline=$((SECONDS + $1)) round pair rounds=0
    declare -A outcomes=()
    while ((SECONDS < deadline)); do
        round="$(drill_malformed_round)"
        rounds=$((rounds + 1))
        outcomes[$round]=1
        for pair in $round; do
            local shape="${pair%%=*}" outcome="${pair#*=}"
            if [[ " ${DRILL_MALFORMED_ALLOWED[$shape]} " != *" $outcome "* ]]; then
                drill_fail "malformed: $shape got $outcome (expected one of: ${DRILL_MALFORMED_ALLOWED[$shape]})"
            fi
        done
    done
    DRILL_MALFORMED="$rounds rounds: $(printf '%s; ' "${!outcomes[@]}")"
}

# drill_slowloris_one RESULT-FILE SECONDS: a connection that trickles its
# request head one byte every 0.3 s; writes how it ended into RESULT-FILE.
drill_slowloris_one() {
    local result="$1" limit="$2" start line="" rc
    trap '' PIPE
    start="$(drill_now)"
    exec 3<>"/dev/tcp/127.0.0.1/$STACK_HTTP_PORT" || {
        echo "refused" >"$result"
        return 0
    }
    printf 'GET /load/slow HTTP/1.1\r\nHost: %s\r\nX-Slow: ' "$DRILL_HOST" >&3
    local deadline=$((SECONDS + limit))
    while ((SECONDS < deadline)); do
        if ! printf 'a' >&3 2>/dev/null; then
            echo "closed $(drill_since "$start")" >"$result"
            return 0
        fi
        rc=0
        IFS= read -r -t 0.3 line <&3 || rc=$?
        if ((rc <= 128)); then
            if [[ "$line" =~ ^HTTP/1\.[01]\ ([0-9]{3}) ]]; then
                echo "${BASH_REMATCH[1]} $(drill_since "$start")" >"$result"
            else
                echo "closed $(drill_since "$start")" >"$result"
            fi
            return 0
        fi
    done
    echo "open $(drill_since "$start")" >"$result"
}

# drill_slowloris COUNT: COUNT slow connections at once; each must be cut
# off (closed or 408) within the header timeout plus a margin.
drill_slowloris() {
    local count="$1" limit=$((DRILL_HEADER_TIMEOUT + 4)) n pids=()
    for ((n = 1; n <= count; n++)); do
        rm -f "$STACK_DIR/slow-$n.result"
        stack_spawn "slow-$n" drill_slowloris_one "$STACK_DIR/slow-$n.result" "$limit"
        pids+=("$STACK_LAST_PID")
    done
    drill_await_pids $((limit + 5)) "${pids[@]}"
    local outcome cut=0 slowest=0
    for ((n = 1; n <= count; n++)); do
        outcome="$(cat "$STACK_DIR/slow-$n.result" 2>/dev/null)" || outcome="no result"
        case "$outcome" in
        closed\ * | 408\ *)
            cut=$((cut + 1))
            slowest="$(awk -v a="$slowest" -v b="${outcome#* }" 'BEGIN { print (b > a ? b : a) }')"
            ;;
        open\ *) drill_fail "slowloris connection $n: still open after ${outcome#* } s (header timeout ${DRILL_HEADER_TIMEOUT} s)" ;;
        *) drill_fail "slowloris connection $n: $outcome (expected closed or 408 within $limit s)" ;;
        esac
    done
    DRILL_SLOWLORIS="$cut/$count cut off"
    ((cut == 0)) || DRILL_SLOWLORIS+=", the last after ${slowest} s"
    DRILL_SLOWLORIS+=" (header timeout ${DRILL_HEADER_TIMEOUT} s)"
}
