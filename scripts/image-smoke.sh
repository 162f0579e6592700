#!/usr/bin/env bash
# Builds the FROM scratch image and runs it as the DaemonSet would: the
# static binary of scripts/build-static.sh goes into Dockerfile.scratch's
# "prebuilt" target (nothing is pulled: the file capability is set in a
# tools image made here from this machine's setcap), podman runs it with
# host networking as the manifests' user, capabilities and read-only root,
# against the fake API server, and curl fetches an HTTP and an HTTPS route,
# and routes behind auth-url (a Service name and a resolver name).
#
#   bash scripts/image-smoke.sh
#
# Needs root, podman and runc (apt-get install -y podman runc) and setcap
# (libcap2-bin); installs them with apt-get when missing. Ports: STACK_HTTP_PORT,
# STACK_HTTPS_PORT, STACK_ADMIN_PORT (0, the default, lets the kernel choose).
set -euo pipefail
: "${STACK_HTTP_PORT:=0}" "${STACK_HTTPS_PORT:=0}" "${STACK_ADMIN_PORT:=0}"
source "$(dirname "$0")/lib/stack.sh"

IMAGE=localhost/ingressd:smoke
SETCAP_IMAGE=localhost/ingressd-setcap:smoke
STATIC_BIN=target/x86_64-unknown-linux-gnu/release/ingressd
CONTAINER="ingressd-smoke-$$"
# What manifests/07-daemonset.yaml asks for (tests/it/manifests.rs keeps the
# DaemonSet and Dockerfile.scratch's USER in step).
POD_USER=65532:65532

stack_init image-smoke
stack_require_tools
((EUID == 0)) || die "run as root: podman's storage and host networking here need it"

missing=()
for tool in podman runc setcap; do
    command -v "$tool" >/dev/null 2>&1 || missing+=("$tool")
done
if ((${#missing[@]})); then
    say "Installing podman, runc and libcap2-bin (missing: ${missing[*]})"
    apt-get update -qq && apt-get install -y -qq podman runc libcap2-bin >/dev/null || die "could not install ${missing[*]}"
fi

# podman on these machines: no default ulimits to apply, cgroups without systemd.
export CONTAINERS_CONF="$STACK_DIR/containers.conf"
printf '[containers]\ndefault_ulimits = []\n\n[engine]\ncgroup_manager = "cgroupfs"\n' >"$CONTAINERS_CONF"
pod() { podman --runtime runc "$@"; }

cleanup_podman() {
    pod rm -f "$CONTAINER" "$CONTAINER-low" >/dev/null 2>&1 || true
    stack_cleanup
}
trap cleanup_podman EXIT

say "Building the static binary (scripts/build-static.sh)"
STACK_HTTP_PORT=0 STACK_HTTPS_PORT=0 STACK_ADMIN_PORT=0 bash "$STACK_ROOT/scripts/build-static.sh" >"$STACK_DIR/build-static.log" 2>&1 || {
    tail -n 20 "$STACK_DIR/build-static.log" >&2
    die "scripts/build-static.sh failed"
}
note "$(tail -n 1 "$STACK_DIR/build-static.log")"

say "Making $SETCAP_IMAGE: this machine's setcap and the libraries it loads, nothing else"
tools="$STACK_DIR/setcap-root"
setcap_bin="$(command -v setcap)"
mkdir -p "$tools$(dirname "$setcap_bin")"
cp "$setcap_bin" "$tools$setcap_bin"
while read -r library; do
    mkdir -p "$tools$(dirname "$library")"
    cp -L "$library" "$tools$library"
done < <(ldd "$setcap_bin" | grep -o '/[^ ]*' | sort -u)
if [[ "$setcap_bin" != /usr/sbin/setcap ]]; then
    mkdir -p "$tools/usr/sbin" && cp "$setcap_bin" "$tools/usr/sbin/setcap"
fi
tar -C "$tools" -c . | pod import - "$SETCAP_IMAGE" >/dev/null || die "podman import failed"
note "$(cd "$tools" && find . -type f | sort | tr '\n' ' ')"

say "Building $IMAGE from Dockerfile.scratch, target prebuilt, without network"
(cd "$STACK_ROOT" && pod build --network none --target prebuilt \
    --build-arg "INGRESSD_BINARY=$STATIC_BIN" --build-arg "SETCAP_IMAGE=$SETCAP_IMAGE" \
    -f Dockerfile.scratch -t "$IMAGE" .) >"$STACK_DIR/build.log" 2>&1 || {
    tail -n 20 "$STACK_DIR/build.log" >&2
    die "podman build failed"
}
note "image size: $(pod image inspect -f '{{.Size}}' "$IMAGE") bytes"

say "Checking the image: one file, carrying its file capability through COPY --from into scratch"
mounted="$(pod image mount "$IMAGE")" || die "podman image mount failed"
files="$(cd "$mounted" && find . -mindepth 1 | sort | tr '\n' ' ')"
capability="$(getcap "$mounted/ingressd" | awk '{print $2}')"
cmp -s "$mounted/ingressd" "$STACK_ROOT/$STATIC_BIN" && same=yes || same=no
pod image unmount "$IMAGE" >/dev/null || true
note "files: $files"
note "getcap /ingressd: ${capability:-none}"
[[ "$files" == "./ingressd " ]] || die "the image holds more than /ingressd: $files"
[[ "$capability" == "cap_net_bind_service=ep" ]] || die "the file capability did not survive into the image (getcap: ${capability:-none})"
[[ "$same" == yes ]] || die "the image's /ingressd is not the static binary"

stack_build fakeapi
stack_start_dependencies
# Kubernetes mounts the token and CA world-readable; the pod's user must read them.
secrets="$STACK_DIR/serviceaccount"
mkdir -p "$secrets"
install -m 0644 "$API_TOKEN_FILE" "$secrets/token"
install -m 0644 "$API_CA" "$secrets/ca.crt"

say "Running the image: host network, user $POD_USER, drop ALL + NET_BIND_SERVICE, read-only root"
for port in "$STACK_HTTP_PORT" "$STACK_HTTPS_PORT" "$STACK_ADMIN_PORT"; do
    ((port == 0)) || stack_check_port_free "$port"
done
stack_spawn ingressd podman --runtime runc run --rm --name "$CONTAINER" --network host \
    --user "$POD_USER" --cap-drop ALL --cap-add NET_BIND_SERVICE --read-only \
    -v "$secrets:/var/run/secrets/kubernetes.io/serviceaccount:ro" \
    "$IMAGE" \
    --apiserver "$API_URL" \
    --http-addr "127.0.0.1:$STACK_HTTP_PORT" \
    --https-addr "127.0.0.1:$STACK_HTTPS_PORT" \
    --admin-addr "127.0.0.1:$STACK_ADMIN_PORT" \
    --ingress-class=ingressd --controller-name=ingressd.io/ingress-controller \
    --shutdown-delay 0 --shutdown-grace 2 --access-log=json
INGRESSD_PID="$STACK_LAST_PID"
if ((STACK_HTTP_PORT == 0 || STACK_HTTPS_PORT == 0 || STACK_ADMIN_PORT == 0)); then
    stack_learn_ports
fi
stack_wait_ready
note "ready"

pid="$(pod inspect -f '{{.State.Pid}}' "$CONTAINER")"
status="$(grep -E '^(Uid|Gid|Groups|CapPrm|CapEff|CapBnd|CapAmb|NoNewPrivs):' "/proc/$pid/status" | tr '\t' ' ' | tr -s ' ')"
note "the container's process: ${status//$'\n'/; }"
grep -q '^Uid: 65532 ' <<<"$status" || die "the container does not run as UID 65532"
grep -q '^CapBnd: 0000000000000400$' <<<"$status" || die "the bounding set is not NET_BIND_SERVICE alone"

answer="$(stack_http demo.example.com /image-check)"
note "curl -H 'Host: demo.example.com' http://127.0.0.1:$STACK_HTTP_PORT/image-check -> $answer"
[[ "$answer" == "200 alpha GET /image-check" ]] || {
    stack_show_log ingressd
    die "the image did not proxy HTTP"
}
answer="$(stack_https demo.example.com /image-tls-check)"
note "curl --resolve demo.example.com:$STACK_HTTPS_PORT:127.0.0.1 --cacert demo.crt https://demo.example.com:$STACK_HTTPS_PORT/image-tls-check -> $answer"
[[ "$answer" == "200 alpha GET /image-tls-check" ]] || {
    stack_show_log ingressd
    die "the image did not serve HTTPS"
}

say "External auth in the image: a Service name from the cache (no DNS), a name through the system resolver"
# The echo backend beta stands in for the auth service: it answers 200, so
# the request goes on to alpha. Service demo/authsvc has a loopback ClusterIP.
auth_port="${BACKEND_ADDR[beta]##*:}"
stack_api POST /api/v1/namespaces/demo/services --data-binary "$(jq -n --argjson port "$auth_port" \
    '{apiVersion: "v1", kind: "Service", metadata: {namespace: "demo", name: "authsvc"}, spec: {clusterIP: "127.0.0.1", ports: [{port: $port}]}}')" >/dev/null ||
    die "could not create Service demo/authsvc"
auth_ingress() { # NAME AUTH-URL
    jq -n --arg name "$1" --arg url "$2" '{apiVersion: "networking.k8s.io/v1", kind: "Ingress",
        metadata: {namespace: "demo", name: $name, annotations: {"nginx.ingress.kubernetes.io/auth-url": $url}},
        spec: {ingressClassName: "ingressd", rules: [{host: ($name + ".example.com"), http: {paths: [{path: "/", pathType: "Prefix",
            backend: {service: {name: "alpha", port: {number: 80}}}}]}}]}}'
}
for pair in "auth-cluster http://authsvc.demo.svc.cluster.local:$auth_port/check" "auth-resolver http://localhost:$auth_port/check" \
    "auth-missing http://nobody.demo.svc.cluster.local/check"; do
    stack_api POST /apis/networking.k8s.io/v1/namespaces/demo/ingresses --data-binary "$(auth_ingress ${pair% *} ${pair#* })" >/dev/null ||
        die "could not create Ingress demo/${pair% *}"
done
stack_poll_until 10 "200 alpha GET /auth-check" stack_http auth-cluster.example.com /auth-check || {
    stack_show_log ingressd
    die "auth-url by Service name: $STACK_LAST_OUTPUT"
}
note "auth-url http://authsvc.demo.svc.cluster.local:$auth_port/check -> $STACK_LAST_OUTPUT"
answer="$(stack_http auth-resolver.example.com /auth-check)"
note "auth-url http://localhost:$auth_port/check -> $answer"
[[ "$answer" == "200 alpha GET /auth-check" ]] || {
    stack_show_log ingressd
    die "auth-url through the system resolver failed in the image: $answer"
}
answer="$(stack_http auth-missing.example.com /auth-check)"
note "auth-url naming a Service that does not exist -> $answer"
[[ "$answer" == 500* ]] || die "a missing auth Service did not fail closed: $answer"

say "Binding a port below 1024 in the image, as the DaemonSet binds 80 and 443"
low_port=""
for candidate in $(seq 600 999); do
    if ! (exec 3<>"/dev/tcp/127.0.0.1/$candidate") 2>/dev/null; then
        low_port="$candidate"
        break
    fi
done
[[ -n "$low_port" ]] || die "no free port below 1024"
stack_spawn low-port podman --runtime runc run --rm --name "$CONTAINER-low" --network host \
    --user "$POD_USER" --cap-drop ALL --cap-add NET_BIND_SERVICE --read-only \
    -v "$secrets:/var/run/secrets/kubernetes.io/serviceaccount:ro" \
    "$IMAGE" --apiserver "$API_URL" --http-addr "127.0.0.1:$low_port" --https-addr 127.0.0.1:0 --admin-addr 127.0.0.1:0
low_pid="$STACK_LAST_PID"
stack_wait 15 "$low_pid" low-port grep -q "listening: http=127.0.0.1:$low_port " "$STACK_DIR/low-port.log"
note "$(grep -m 1 -o 'listening: http=[^ ]*' "$STACK_DIR/low-port.log") as UID 65532"
pod rm -f "$CONTAINER-low" >/dev/null 2>&1 || true

echo
echo "image-smoke: ok: $IMAGE ($STATIC_BIN, cap_net_bind_service=ep) serves HTTP and HTTPS, checks auth-url by Service name and by resolver, and binds a port below 1024 as UID 65532"
