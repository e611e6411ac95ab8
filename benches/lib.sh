# Shared by the benchmark scripts: `. "$HERE/lib.sh"` after setting ROOT.

# require_tools TOOL... : exits with a message naming the first one missing.
require_tools() {
    local tool
    for tool in "$@"; do
        command -v "$tool" >/dev/null || { echo "missing tool: $tool" >&2; exit 1; }
    done
}

# build_crossdns: sets CROSSDNS_BIN, building the release binary into
# CARGO_TARGET_DIR (default /tmp/target-bench) unless CROSSDNS_BIN is given.
build_crossdns() {
    if [ -z "${CROSSDNS_BIN:-}" ]; then
        export CARGO_TARGET_DIR=${CARGO_TARGET_DIR:-/tmp/target-bench}
        echo "building crossdns (release, $CARGO_TARGET_DIR)..." >&2
        (cd "$ROOT" && timeout 3600 cargo build --release --quiet --bin crossdns)
        CROSSDNS_BIN=$CARGO_TARGET_DIR/release/crossdns
    fi
    [ -x "$CROSSDNS_BIN" ] || { echo "not executable: $CROSSDNS_BIN" >&2; exit 1; }
}

# build_fake_apiserver: sets FAKE_APISERVER_BIN (the test apiserver,
# tests/fake-apiserver), built like build_crossdns unless given.
build_fake_apiserver() {
    if [ -z "${FAKE_APISERVER_BIN:-}" ]; then
        export CARGO_TARGET_DIR=${CARGO_TARGET_DIR:-/tmp/target-bench}
        echo "building fake-apiserver (release, $CARGO_TARGET_DIR)..." >&2
        (cd "$ROOT" && timeout 3600 cargo build --release --quiet -p fake-apiserver --bin fake-apiserver)
        FAKE_APISERVER_BIN=$CARGO_TARGET_DIR/release/fake-apiserver
    fi
    [ -x "$FAKE_APISERVER_BIN" ] || { echo "not executable: $FAKE_APISERVER_BIN" >&2; exit 1; }
}
