#!/usr/bin/env bash
# The shipped strata's code layout (bundles/order/): the trace that makes the order file
# still works, the file still names the code, and the linker lays it out as asked.
#
#   bash integration/layout.sh
#
# Needs root (the trace starts containers), busybox-static, jq, binutils (nm, readelf).
# Leaves target/<host>/release/strata as the build with symbols (what make.sh traces).

source "$(dirname "$0")/lib/common.sh"

[ "$(id -u)" = 0 ] || { log "needs root"; exit 2; }
need_pkgs busybox-static jq binutils libseccomp-dev pkg-config
trap 'rm -rf "$WORKDIR" /tmp/strata-check.$$' EXIT

ORDER=$REPO/bundles/order/strata.order
FRESH=$WORKDIR/fresh.order

log "tracing the lifecycle commands (bundles/order/make.sh)"
check "make.sh traces the lifecycle commands" env OUT="$FRESH" bash "$REPO/bundles/order/make.sh"
host=$(rustc -vV | sed -n 's/^host: //p')
BIN=$REPO/target/$host/release/strata
nm --defined-only "$BIN" 2>/dev/null | awk '{print $3}' | sort -u >"$WORKDIR/symbols"

# The functions every `run` must pass through are in the trace: the sealed re-exec, the
# container's creation, and the init's side (its exec of the container's program).
for f in exeseal13ensure_sealed container6create process4init; do
    check "the trace has a strata function matching $f" grep -q "$f" "$FRESH"
done
check "the trace lists more than 500 functions" test "$(wc -l <"$FRESH")" -gt 500

# The committed file still names the code: at most a tenth of its names gone (renamed
# since; make.sh regenerates it). More means `run` faults in most of the binary again.
gone=$(sort -u "$ORDER" | comm -23 - "$WORKDIR/symbols" | wc -l)
total=$(sort -u "$ORDER" | wc -l)
log "$gone of the $total names in bundles/order/strata.order are gone from the code"
check "at most 10% of bundles/order/strata.order's names are gone ($gone of $total)" \
    test "$((gone * 10))" -le "$total"

# The linker followed the file: the listed functions that exist sit together at the head
# of .text, in one stretch not much longer than their sizes added up.
span() {
    nm -S -t d --defined-only "$BIN" | awk -v list="$ORDER" '
        BEGIN { while ((getline n < list) > 0) want[n] = 1 }
        ($4 in want) && ($3 ~ /^[tTwW]$/) {
            a = $1 + 0; s = $2 + 0
            if (lo == "" || a < lo) lo = a
            if (a + s > hi) hi = a + s
            sum += s
        }
        END { printf "%d %d %d\n", lo, hi, sum }'
}
read -r lo hi sum < <(span)
text=$((16#$(readelf -SW "$BIN" | awk '$2 == ".text" { print $4 }')))
log "ordered functions: ${sum} bytes in [$lo, $hi), .text at $text"
check "the order file's functions are in the binary ($sum bytes)" test "$sum" -gt 100000
check "the ordered functions start .text" test "$((lo - text))" -lt 4096
check "the ordered functions are laid out together (span $((hi - lo)) for $sum bytes)" \
    test "$((hi - lo))" -le "$((sum + sum / 4))"

summary
