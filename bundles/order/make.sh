#!/usr/bin/env bash
# Regenerate bundles/order/strata.order: the functions the lifecycle commands run, in the
# order they first run, for the linker to lay out together (bundles/build-static.sh).
# Run as root, after changes to the runtime's code paths or to the toolchain; commit the
# result. Needs busybox-static and jq. Takes a few seconds once strata is built.
#
#   bundles/order/make.sh            # writes bundles/order/strata.order
#   OUT=/tmp/x.order bundles/order/make.sh   # writes elsewhere (to compare; an absolute path)
#
# The trace (fntrace.rs) puts an int3 on every function of an unstripped build and notes
# each the first time it runs, in every process of the command: the first `strata`, its
# sealed re-exec and the container's init (up to its exec of the container's program).
# `run` comes first: its functions lead the file, so its start faults in the fewest pages.
set -euo pipefail
cd "$(dirname "$0")/../.."
REPO=$PWD
OUT=${OUT:-$REPO/bundles/order/strata.order}
[ "$(id -u)" -eq 0 ] || { echo "make.sh: must run as root (it starts containers)" >&2; exit 1; }

WORK=$(mktemp -d /tmp/strata-order.XXXXXX)
R=""
cleanup() {
    if [ -n "$R" ]; then
        for id in $($R list -q 2>/dev/null); do $R delete --force "$id" >/dev/null 2>&1 || true; done
    fi
    rm -rf "$WORK"
}
trap cleanup EXIT

echo "make.sh: building strata with its symbols" >&2
built=$(STRATA_SYMBOLS=1 bash bundles/build-static.sh)
# fntrace finds the binary in /proc/PID/maps by its file name, also in the sealed re-exec.
cp "$built" "$WORK/strata"
rustc --edition 2021 -O -o "$WORK/fntrace" bundles/order/fntrace.rs
nm --defined-only "$WORK/strata" > "$WORK/symbols"

bash bundles/busybox/make-rootfs.sh "$WORK/bundle/rootfs" >/dev/null
mkdir -p "$WORK/sleep"
jq '.process.args = ["/bin/true"]' bundles/busybox/config.json > "$WORK/bundle/config.json"
jq --arg root "$WORK/bundle/rootfs" '.process.args = ["sleep", "1000"] | .root.path = $root' \
    bundles/busybox/config.json > "$WORK/sleep/config.json"

R="$WORK/strata --root $WORK/root"
n=0
trace() {
    n=$((n + 1))
    "$WORK/fntrace" "$WORK/strata" "$WORK/symbols" "$WORK/ran.$(printf %02d $n)" -- $R "$@" \
        </dev/null >/dev/null 2>"$WORK/err" || { cat "$WORK/err" >&2; echo "make.sh: $R $* failed" >&2; exit 1; }
}
trace run -b "$WORK/bundle" order-run
trace create -b "$WORK/bundle" order-csd
trace start order-csd
trace state order-csd
trace delete --force order-csd
trace run -d -b "$WORK/sleep" order-live
trace exec order-live /bin/true
trace pause order-live
trace resume order-live
trace update --pids-limit 1000 order-live
trace ps order-live
trace list
trace kill order-live KILL
trace delete --force order-live

cat "$WORK"/ran.* | awk '!seen[$0]++' > "$WORK/order"
mv "$WORK/order" "$OUT"
echo "make.sh: $(wc -l < "$OUT") symbols in $OUT" >&2
