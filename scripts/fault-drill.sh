#!/usr/bin/env bash
# The fault drill: a steady bounded load through ingressd to healthy echo
# backends while the API server and the network misbehave, one fault per
# phase:
#
#   apiserver-restart  the fake API server is killed, stays down, and comes
#                      back on the same port with the same CA and objects
#   drop-watches       every watch stream is cut
#   compact            the watch history is compacted, then watches are cut,
#                      so resuming from the old resourceVersion gets 410
#   token-rotation     a new token is written and added, the old one
#                      revoked, watches cut: ingressd must re-read the file
#   scale-up           the EndpointSlice grows from 2 to 3 endpoints
#   scale-down         and shrinks back to 2
#   kill-backend       a listed, ready backend dies: requests fail over
#   malformed          a second client sends smuggling shapes, a bad request
#                      line, bare LF line ends, an HTTP/2.0 request line, an
#                      oversized header and a huge Content-Length
#   slowloris          a second client holds connections trickling their heads
#
# After each fault ingressd must be the same live process and route exactly
# what the API holds (polled with a deadline); no request may fail. Prints a
# table (fault, sent, failed, backends that answered, what was seen) and
# exits non-zero on any failed request, restart, lost route or mismatch.
#
#   bash scripts/fault-drill.sh [--short]
#
# --short (what CI runs) gives each phase 3 s of load instead of 10. Ports
# 19080, 19443 and 19254 unless STACK_*_PORT say otherwise, so it can run
# next to the smoke test. STACK_KEEP=1 keeps the logs.
set -euo pipefail
: "${STACK_HTTP_PORT:=19080}" "${STACK_HTTPS_PORT:=19443}" "${STACK_ADMIN_PORT:=19254}"
source "$(dirname "$0")/lib/stack.sh"
source "$(dirname "$0")/lib/drill.sh"

PHASE_SECONDS=10
OUTAGE_SECONDS=3
SLOW_CONNECTIONS=16
case "${1:-}" in
--short)
    PHASE_SECONDS=3
    OUTAGE_SECONDS=1
    SLOW_CONNECTIONS=8
    ;;
"") ;;
*) die "usage: bash scripts/fault-drill.sh [--short]" ;;
esac

FAULTS=()
declare -A FAULT_NOTE FAULT_SECONDS

# run_fault NAME FUNCTION: labels the load with NAME, injects the fault, keeps
# the load going for the phase (unless FUNCTION already spent it), then checks
# ingressd. Once ingressd has died the remaining faults are skipped.
run_fault() {
    local name="$1" fault="$2" started
    say "Fault: $name"
    if [[ -n "${DRILL_INGRESSD_GONE:-}" ]]; then
        note "skipped: ingressd is gone"
        return 0
    fi
    drill_set_phase "$name"
    started="$SECONDS"
    DRILL_NOTE=""
    "$fault"
    local left=$((PHASE_SECONDS - (SECONDS - started)))
    if ((left > 0)); then
        sleep "$left"
    fi
    drill_check_ingressd "$name" || true
    FAULTS+=("$name")
    FAULT_SECONDS[$name]=$((SECONDS - started))
    FAULT_NOTE[$name]="$DRILL_NOTE"
    note "$DRILL_NOTE"
}

# Metric deltas around a fault, for the notes: what ingressd saw.
metrics_mark() {
    MARK_ERRORS="$(drill_metric ingressd_watch_api_errors_total)"
    MARK_LISTS="$(drill_metric ingressd_watch_list_requests_total)"
    MARK_RELISTS="$(drill_metric ingressd_watch_relists_total)"
    MARK_RESTARTS="$(drill_metric ingressd_watch_restarts_total)"
}
# Sets DELTA_TEXT and DELTA_RELISTS.
metrics_delta() {
    local errors lists relists restarts
    errors=$(($(drill_metric ingressd_watch_api_errors_total) - MARK_ERRORS))
    lists=$(($(drill_metric ingressd_watch_list_requests_total) - MARK_LISTS))
    relists=$(($(drill_metric ingressd_watch_relists_total) - MARK_RELISTS))
    restarts=$(($(drill_metric ingressd_watch_restarts_total) - MARK_RESTARTS))
    DELTA_RELISTS="$relists"
    DELTA_TEXT="api errors +$errors, lists +$lists (relists +$relists), watch restarts +$restarts"
}

# waits (bounded) until ingressd has listed again since metrics_mark.
wait_for_relist() {
    local deadline=$((SECONDS + DRILL_RESYNC_SECONDS))
    until (($(drill_metric ingressd_watch_list_requests_total) > MARK_LISTS)); do
        if ((SECONDS >= deadline)); then
            drill_fail "$1: ingressd did not list again within ${DRILL_RESYNC_SECONDS} s"
            return 0
        fi
        sleep 0.1
    done
}

fault_apiserver_restart() {
    metrics_mark
    local port="$API_PORT" started before during
    before="$(drill_ingressd_routes 2>/dev/null)" || before="(no /debug/routes)"
    drill_stop_pid "$API_PID" KILL
    started="$(drill_now)"
    # The outage itself: the load runs on while the API is away.
    sleep "$OUTAGE_SECONDS"
    during="$(drill_ingressd_routes 2>/dev/null)" || during="(no /debug/routes)"
    [[ "$during" == "$before" ]] ||
        drill_fail "apiserver-restart: with the API down ingressd routes $during instead of $before"
    drill_start_apiserver "$port"
    drill_wait_watches || true
    wait_for_relist apiserver-restart
    local back
    back="$(drill_since "$started")"
    metrics_delta
    DRILL_NOTE="down ${OUTAGE_SECONDS} s, watches back $back s after the kill; $DELTA_TEXT"
}

# drop_watches_until_back FAULT: drops every watch, waits (bounded) until
# ingressd has them open again, and sets BACK to the seconds that took.
drop_watches_until_back() {
    local started
    started="$(drill_now)"
    drill_fake drop-watches >/dev/null || drill_fail "$1: drop-watches did not answer"
    drill_wait_watches || true
    BACK="$(drill_since "$started")"
}

fault_drop_watches() {
    metrics_mark
    drop_watches_until_back drop-watches
    metrics_delta
    DRILL_NOTE="watches back after $BACK s; $DELTA_TEXT"
}

fault_compact() {
    metrics_mark
    # A change no other kind's watch sees, so their resourceVersions fall behind the compaction.
    jq -c '.items[] | select(.kind == "Service") | .metadata.annotations = {"drill/touched": (now | tostring)}' \
        "$STACK_DIR/objects.json" >"$STACK_DIR/service-touched.json"
    drill_apply "$STACK_DIR/service-touched.json"
    local started
    started="$(drill_now)"
    drill_fake compact >/dev/null || drill_fail "compact: the fake API server did not answer"
    drop_watches_until_back compact
    wait_for_relist compact
    BACK="$(drill_since "$started")"
    metrics_delta
    DRILL_NOTE="watches back after $BACK s; $DELTA_TEXT"
    ((DELTA_RELISTS > 0)) || drill_fail "compact: no watch was answered 410 and relisted ($DRILL_NOTE)"
}

fault_token_rotation() {
    metrics_mark
    local old new
    old="$(cat "$API_TOKEN_FILE")"
    new="$(head -c 24 /dev/urandom | od -An -tx1 | tr -d ' \n')"
    drill_fake "tokens/add?token=$new" >/dev/null || drill_fail "token-rotation: could not add the new token"
    (umask 077 && printf '%s' "$new" >"$API_TOKEN_FILE.tmp" && mv "$API_TOKEN_FILE.tmp" "$API_TOKEN_FILE")
    drill_fake "tokens/revoke?token=$old" >/dev/null || drill_fail "token-rotation: could not revoke the old token"
    local status
    status="$(curl -s -o /dev/null -w '%{http_code}' --max-time 5 --cacert "$API_CA" \
        -H "Authorization: Bearer $old" "$API_URL/api/v1/namespaces/$DRILL_NAMESPACE/services")" || true
    [[ "$status" == 401 ]] || drill_fail "token-rotation: the revoked token still gets $status"
    drop_watches_until_back token-rotation
    metrics_delta
    DRILL_NOTE="old token now 401, watches back with the new one after $BACK s; $DELTA_TEXT"
}

# drill_apply FILE: creates or replaces the object(s) in FILE through the fake's control.
drill_apply() {
    curl -sS --fail --max-time 5 --cacert "$API_CA" -H 'Content-Type: application/json' \
        --data-binary "@$1" "$API_URL/fake/apply" >/dev/null || drill_fail "could not apply $(basename "$1")"
}

# fault_scale IPS...: the slice now lists these endpoints; waits until ingressd routes to them.
scale_to() {
    local started
    drill_slice "$@" >"$STACK_DIR/slice-$#.json"
    started="$(drill_now)"
    drill_apply "$STACK_DIR/slice-$#.json"
    if [[ -n "${DRILL_INGRESSD_GONE:-}" ]]; then
    note "skipped: ingressd is gone"
elif drill_routes_converge "$DRILL_RESYNC_SECONDS"; then
        DRILL_NOTE="$# endpoints routed $(drill_since "$started") s after the apply"
    else
        drill_fail "scale to $#: ingressd routes $DRILL_ROUTES_INGRESSD, the API holds $DRILL_ROUTES_API"
        DRILL_NOTE="not converged"
    fi
}
fault_scale_up() { scale_to 127.0.0.1 127.0.0.2 127.0.0.3; }
fault_scale_down() { scale_to 127.0.0.1 127.0.0.2; }

fault_kill_backend() {
    DRILL_FAILOVERS_BEFORE="$(grep -c 'trying the next endpoint' "$STACK_DIR/ingressd.log" || true)"
    drill_stop_pid "${DRILL_BACKEND_PID[b]}" KILL
    DRILL_NOTE="b (${BACKEND_ADDR[b]}) killed, still listed ready"
}

fault_malformed() {
    drill_malformed "$PHASE_SECONDS"
    DRILL_NOTE="$DRILL_MALFORMED"
}

fault_slowloris() {
    drill_slowloris "$SLOW_CONNECTIONS"
    DRILL_NOTE="$DRILL_SLOWLORIS"
}

stack_init drill
stack_require_tools
stack_build

say "Starting three echo backends on one port at 127.0.0.1, .2 and .3"
drill_start_backends
drill_make_objects
say "Starting the fake API server (HTTPS, bearer token, CA kept for restarts)"
API_TOKEN_FILE="$STACK_DIR/token"
(umask 077 && head -c 24 /dev/urandom | od -An -tx1 | tr -d ' \n' >"$API_TOKEN_FILE")
drill_start_apiserver
note "fake API server at $API_URL"
say "Starting ingressd (--header-timeout $DRILL_HEADER_TIMEOUT)"
stack_start_ingressd -- --header-timeout "$DRILL_HEADER_TIMEOUT"
stack_wait_ready
DRILL_INGRESSD_STARTTIME="$(awk '{print $22}' "/proc/$INGRESSD_PID/stat")"
drill_wait_watches || die "ingressd's watches did not open"
drill_routes_converge "$DRILL_RESYNC_SECONDS" ||
    die "ingressd routes $DRILL_ROUTES_INGRESSD but the API holds $DRILL_ROUTES_API"
DRILL_ROUTE_COUNT="$(jq length <<<"$DRILL_ROUTES_INGRESSD")"
((DRILL_ROUTE_COUNT > 0)) || die "ingressd has no route for $DRILL_HOST"
note "ingressd PID $INGRESSD_PID routes $DRILL_ROUTES_INGRESSD"

say "Load: $DRILL_LOAD_CLIENTS clients, $DRILL_LOAD_RATE requests/s each, ${PHASE_SECONDS} s per phase"
drill_set_phase baseline
drill_start_load
sleep "$PHASE_SECONDS"
drill_check_ingressd baseline || true
FAULTS+=(baseline)
FAULT_NOTE[baseline]="no fault"
FAULT_SECONDS[baseline]="$PHASE_SECONDS"

run_fault apiserver-restart fault_apiserver_restart
run_fault drop-watches fault_drop_watches
run_fault compact fault_compact
run_fault token-rotation fault_token_rotation
run_fault scale-up fault_scale_up
run_fault scale-down fault_scale_down
run_fault kill-backend fault_kill_backend
if [[ -z "${DRILL_INGRESSD_GONE:-}" ]]; then
    FAULT_NOTE[kill-backend]+=", $(($(grep -c 'trying the next endpoint' "$STACK_DIR/ingressd.log" || true) - DRILL_FAILOVERS_BEFORE)) failovers logged"
fi
run_fault malformed fault_malformed
run_fault slowloris fault_slowloris

say "Stopping the load; final comparison with the API"
drill_set_phase final
drill_stop_load
if [[ -n "${DRILL_INGRESSD_GONE:-}" ]]; then
    note "skipped: ingressd is gone"
elif drill_routes_converge "$DRILL_RESYNC_SECONDS"; then
    note "ingressd routes exactly what the API holds: $DRILL_ROUTES_INGRESSD"
else
    drill_fail "final: ingressd routes $DRILL_ROUTES_INGRESSD but the API holds $DRILL_ROUTES_API"
fi

say "Results"
total_sent=0
total_failed=0
printf '    %-18s %4s %6s %6s  %-8s %s\n' FAULT SECS SENT FAILED BACKENDS SEEN
for fault in "${FAULTS[@]}"; do
    read -r sent failed backends <<<"$(drill_load_counts "$fault")"
    printf '    %-18s %4d %6d %6d  %-8s %s\n' "$fault" "${FAULT_SECONDS[$fault]}" "$sent" "$failed" "$backends" "${FAULT_NOTE[$fault]}"
    total_sent=$((total_sent + sent))
    total_failed=$((total_failed + failed))
    ((sent > 0)) || drill_fail "$fault: the load sent no request"
    ((failed == 0)) || drill_fail "$fault: $failed of $sent requests failed"
done
[[ "$(drill_load_counts scale-up | cut -d' ' -f3)" == *c* ]] || drill_fail "scale-up: backend c never answered"

echo
if ((${#DRILL_FAILURES[@]})); then
    echo "Problems (STACK_KEEP=1 keeps the logs):"
    printf '  - %s\n' "${DRILL_FAILURES[@]}"
    printf 'fault-drill: FAIL: %d problem(s), %d of %d requests failed; first: %s\n' \
        "${#DRILL_FAILURES[@]}" "$total_failed" "$total_sent" "${DRILL_FAILURES[0]}"
    exit 1
fi
printf 'fault-drill: PASS: %d faults, %d requests, 0 failed, ingressd PID %s never restarted, final routes equal the API\n' \
    "$((${#FAULTS[@]} - 1))" "$total_sent" "$INGRESSD_PID"
