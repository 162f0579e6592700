#!/usr/bin/env bash
# A tour of ingressd on this machine, no cluster needed: a fake Kubernetes API
# server holds a few Ingresses, two echo backends stand in for pods, and
# ingressd routes to them on loopback ports. Ctrl-C stops everything.
#
#   bash scripts/demo.sh
#
# Ports: STACK_HTTP_PORT (18080), STACK_HTTPS_PORT (18443), STACK_ADMIN_PORT (18254);
# set them to 0 to let the kernel choose free ones.
set -euo pipefail
source "$(dirname "$0")/lib/stack.sh"

stack_init demo
stack_require_tools
stack_build
stack_start_dependencies

if ((STACK_HTTP_PORT && STACK_HTTPS_PORT && STACK_ADMIN_PORT)); then
    say "Starting ingressd on 127.0.0.1:$STACK_HTTP_PORT (HTTP), :$STACK_HTTPS_PORT (HTTPS), :$STACK_ADMIN_PORT (admin)"
else
    say "Starting ingressd on loopback ports the kernel picks"
fi
stack_start_ingressd
note "waiting for /readyz (at most ${STACK_READY_SECONDS} s): ready once every watched kind is listed"
stack_wait_ready
note "ready"

show() {
    printf '    $ %s\n' "$1"
    printf '      -> %s\n' "$2"
}

say "Routing by host and path (Ingress demo/shop: /api -> beta, / -> alpha)"
show "curl -H 'Host: demo.example.com' http://127.0.0.1:$STACK_HTTP_PORT/" "$(stack_http demo.example.com /)"
show "curl -H 'Host: demo.example.com' http://127.0.0.1:$STACK_HTTP_PORT/api/orders" "$(stack_http demo.example.com /api/orders)"
show "curl -H 'Host: demo.example.com' http://127.0.0.1:$STACK_HTTP_PORT/apiary  (a Prefix matches whole segments)" "$(stack_http demo.example.com /apiary)"
show "curl -H 'Host: nobody.example.com' http://127.0.0.1:$STACK_HTTP_PORT/  (no rule for this host)" "$(stack_http nobody.example.com /)"
show "curl -H 'Host: nginx.example.com' http://127.0.0.1:$STACK_HTTP_PORT/  (Ingress demo/not-ours has class nginx)" "$(stack_http nginx.example.com /)"

say "A wildcard host (Ingress demo/apps: *.apps.example.com -> beta)"
show "curl -H 'Host: shop.apps.example.com' http://127.0.0.1:$STACK_HTTP_PORT/cart" "$(stack_http shop.apps.example.com /cart)"
show "curl -H 'Host: a.b.apps.example.com' http://127.0.0.1:$STACK_HTTP_PORT/  (a wildcard covers one label)" "$(stack_http a.b.apps.example.com /)"

say "HTTPS, the certificate chosen by SNI from Secret demo/demo-tls"
show "curl --resolve demo.example.com:$STACK_HTTPS_PORT:127.0.0.1 --cacert demo.crt https://demo.example.com:$STACK_HTTPS_PORT/" "$(stack_https demo.example.com /)"

say "A live change: Ingress demo/shop edited through the API (GET, edit, PUT) so / goes to beta"
stack_edit_shop_ingress
note "PUT done; polling until ingressd routes the new way (at most ${STACK_CHANGE_SECONDS} s)"
if stack_poll_until "$STACK_CHANGE_SECONDS" "200 beta" stack_http demo.example.com /; then
    show "curl -H 'Host: demo.example.com' http://127.0.0.1:$STACK_HTTP_PORT/" "$STACK_LAST_OUTPUT"
else
    die "the change was not routed within ${STACK_CHANGE_SECONDS} s (last answer: $STACK_LAST_OUTPUT)"
fi

say "Metrics (curl http://127.0.0.1:$STACK_ADMIN_PORT/metrics | grep ingressd_), counters still at 0 left out"
# awk, not head: it reads to the end, so under pipefail no earlier stage dies
# of SIGPIPE (exit 141) when there are more than 40 lines.
curl -s --max-time 5 "http://127.0.0.1:$STACK_ADMIN_PORT/metrics" | grep '^ingressd_' | grep -v '_total{[^}]*} 0$' |
    awk 'NR <= 40 { print "    " $0 }'

say "Done. Stopping everything this demo started."
