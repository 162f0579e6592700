#!/usr/bin/env bash
# Builds a fully static ingressd for x86_64 Linux and proves it is one:
# `file` and `ldd` say static, and it runs in an empty chroot holding only
# itself, a token file and a CA file, where it reaches the fake API server by
# IP, becomes ready and proxies a request.
#
#   bash scripts/build-static.sh        # binary: target/x86_64-unknown-linux-gnu/release/ingressd
#
# glibc's static libc is used (the musl target is not installed here; the
# container image builds for musl, see Dockerfile.scratch). The explicit
# --target keeps build scripts and proc macros dynamic while the binary is
# linked with crt-static. Name lookups need /etc files a chroot or scratch
# image does not have, so everything is addressed by IP.
set -euo pipefail
: "${STACK_HTTP_PORT:=0}" "${STACK_HTTPS_PORT:=0}" "${STACK_ADMIN_PORT:=0}"
source "$(dirname "$0")/lib/stack.sh"

TARGET=x86_64-unknown-linux-gnu
STATIC_BIN="$STACK_ROOT/target/$TARGET/release/ingressd"

stack_init static
stack_require_tools

say "Building a static ingressd (RUSTFLAGS=-C target-feature=+crt-static, --target $TARGET, release: LTO, 1 codegen unit, stripped)"
(cd "$STACK_ROOT" && RUSTFLAGS='-C target-feature=+crt-static' cargo build --release --quiet --target "$TARGET" -p ingressd) ||
    die "static cargo build failed"

say "Checking that it is static"
command -v file >/dev/null 2>&1 || die "the file command is missing (apt-get install file)"
file_says="$(file -b "$STATIC_BIN")"
note "file: $file_says"
[[ "$file_says" == *"statically linked"* || "$file_says" == *"static-pie linked"* ]] || die "file does not call it static"
[[ "$file_says" == *"x86-64"* ]] || die "not an x86-64 binary"
ldd_says="$(ldd "$STATIC_BIN" 2>&1 || true)"
note "ldd: ${ldd_says//$'\n'/ }"
[[ "$ldd_says" == *"statically linked"* || "$ldd_says" == *"not a dynamic executable"* ]] || die "ldd lists shared libraries"
size_bytes="$(stat -c %s "$STATIC_BIN")"
note "size: $size_bytes bytes ($(awk -v b="$size_bytes" 'BEGIN { printf "%.2f MiB", b / 1048576 }'))"

say "Preparing an empty chroot: only /ingressd, /token and /ca.crt"
ROOT="$STACK_DIR/root"
mkdir -p "$ROOT"
cp "$STATIC_BIN" "$ROOT/ingressd"
# Entering a chroot needs root; otherwise a user namespace maps us to root.
if ((EUID == 0)); then
    CHROOT=(chroot "$ROOT")
else
    command -v unshare >/dev/null 2>&1 || die "not root and no unshare: cannot chroot"
    CHROOT=(unshare --map-root-user chroot "$ROOT")
fi
version="$("${CHROOT[@]}" /ingressd --version)" || die "ingressd --version failed inside the chroot"
note "inside the chroot: $version"
[[ "$version" == "ingressd "* ]] || die "unexpected --version output: $version"

stack_build fakeapi
stack_start_dependencies
cp "$API_TOKEN_FILE" "$ROOT/token"
cp "$API_CA" "$ROOT/ca.crt"
note "chroot contents: $(cd "$ROOT" && find . -mindepth 1 | sort | tr '\n' ' ')"

say "Running the static ingressd inside the chroot against the fake API server at $API_URL"
INGRESSD_BIN=/ingressd INGRESSD_TOKEN=/token INGRESSD_CA=/ca.crt stack_start_ingressd "${CHROOT[@]}" --
stack_wait_ready
note "ready"
answer="$(stack_http demo.example.com /static-check)"
note "curl -H 'Host: demo.example.com' http://127.0.0.1:$STACK_HTTP_PORT/static-check -> $answer"
[[ "$answer" == "200 alpha GET /static-check" ]] || {
    stack_show_log ingressd
    die "the chrooted ingressd did not proxy the request"
}
answer="$(stack_https demo.example.com /static-tls-check)"
note "curl --resolve demo.example.com:$STACK_HTTPS_PORT:127.0.0.1 --cacert demo.crt https://demo.example.com:$STACK_HTTPS_PORT/static-tls-check -> $answer"
[[ "$answer" == "200 alpha GET /static-tls-check" ]] || {
    stack_show_log ingressd
    die "the chrooted ingressd did not serve HTTPS"
}

echo
echo "build-static: ok: $STATIC_BIN is static, $size_bytes bytes, and serves from an empty chroot"
