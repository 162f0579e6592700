#!/usr/bin/env bash
# The demo's scenario as assertions: exits non-zero at the first failed check
# and says which; the last line counts the checks that passed.
#
#   bash scripts/smoke.sh
#
# ingressd binds ports the kernel picks (unless STACK_*_PORT say otherwise),
# so the smoke test never collides with a demo or anything else running.
set -euo pipefail
: "${STACK_HTTP_PORT:=0}" "${STACK_HTTPS_PORT:=0}" "${STACK_ADMIN_PORT:=0}"
source "$(dirname "$0")/lib/stack.sh"

PASSED=0

# check NAME EXPECTED ACTUAL: EXPECTED is "STATUS BODY" (or just "STATUS").
check() {
    local name="$1" expected="$2" actual="$3"
    if [[ "$actual" == "$expected" || ("$expected" != *" "* && "$actual" == "$expected "*) ]]; then
        PASSED=$((PASSED + 1))
        printf '    ok   %s\n' "$name"
    else
        printf '    FAIL %s\n         expected: %s\n         got:      %s\n' "$name" "$expected" "$actual" >&2
        stack_show_log ingressd
        die "smoke check failed after $PASSED passed: $name"
    fi
}

# check_contains NAME NEEDLE TEXT
check_contains() {
    local name="$1" needle="$2" text="$3"
    if [[ "$text" == *"$needle"* ]]; then
        check "$name" yes yes
    else
        check "$name" "output containing '$needle'" "${text:0:300}"
    fi
}

stack_init smoke
stack_require_tools
stack_build
stack_start_dependencies
stack_start_ingressd
stack_wait_ready

say "Checks"
check "admin /healthz answers 200" "200" "$(stack_request "http://127.0.0.1:$STACK_ADMIN_PORT/healthz")"
check "host + prefix / goes to alpha" "200 alpha GET /" "$(stack_http demo.example.com /)"
check "host + prefix /api goes to beta" "200 beta GET /api/orders?id=7" "$(stack_http demo.example.com '/api/orders?id=7')"
check "prefix /api does not match /apiary" "200 alpha GET /apiary" "$(stack_http demo.example.com /apiary)"
check "POST with a body is forwarded" "200 beta POST /api/upload" "$(stack_request -H 'Host: demo.example.com' --data-binary 'hello' "http://127.0.0.1:$STACK_HTTP_PORT/api/upload")"
check "unknown host is 404" "404" "$(stack_http nobody.example.com /)"
check "host match ignores case and port" "200 alpha GET /" "$(stack_http DEMO.example.com:80 /)"
check "wildcard host *.apps.example.com" "200 beta GET /cart" "$(stack_http shop.apps.example.com /cart)"
check "wildcard covers exactly one label" "404" "$(stack_http a.b.apps.example.com /)"
check "an Ingress of another class is ignored" "404" "$(stack_http nginx.example.com /)"
# Header names are case-insensitive (ingressd's upstream client lower-cases them).
headers="$(curl -s --max-time 5 -D - -o /dev/null -H 'Host: demo.example.com' "http://127.0.0.1:$STACK_HTTP_PORT/" | tr -d '\r' | tr '[:upper:]' '[:lower:]')"
check_contains "backend response headers come back" "x-backend: alpha" "$headers"
check_contains "the backend sees the client's Host" "x-seen-host: demo.example.com" "$headers"
check "HTTPS by SNI with the Secret's certificate" "200 alpha GET /secure" "$(stack_https demo.example.com /secure)"
check "HTTPS /api goes to beta" "200 beta GET /api" "$(stack_https demo.example.com /api)"

stack_edit_shop_ingress
stack_poll_until "$STACK_CHANGE_SECONDS" "200 beta" stack_http demo.example.com / || true
check "a PUT Ingress is routed within ${STACK_CHANGE_SECONDS} s" "200 beta GET /" "$STACK_LAST_OUTPUT"
check "the unchanged /api rule still routes" "200 beta GET /api/x" "$(stack_http demo.example.com /api/x)"

stack_api DELETE /apis/networking.k8s.io/v1/namespaces/demo/ingresses/apps >/dev/null || die "the API refused to delete Ingress demo/apps"
stack_poll_until "$STACK_CHANGE_SECONDS" "404" stack_http shop.apps.example.com / || true
check "a deleted Ingress stops routing within ${STACK_CHANGE_SECONDS} s" "404" "$STACK_LAST_OUTPUT"
check "other Ingresses keep routing after a delete" "200 beta GET /" "$(stack_http demo.example.com /)"

metrics="$(curl -s --max-time 5 "http://127.0.0.1:$STACK_ADMIN_PORT/metrics")"
check_contains "/metrics has ingressd_ series" "ingressd_" "$metrics"
check "admin /readyz still 200" "200" "$(stack_request "http://127.0.0.1:$STACK_ADMIN_PORT/readyz")"

echo
echo "smoke: all $PASSED checks passed"
