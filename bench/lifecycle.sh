#!/usr/bin/env bash
# Container lifecycle benchmark: strata vs runc vs crun, side by side, same bundle.
#
#   bench/lifecycle.sh            # full: 50 timed runs per runtime per case (5 rounds of 10,
#                                 #       warmup 5 per round), 11 RSS samples
#   QUICK=1 bench/lifecycle.sh    # quick: warmup 3, 15 runs (3 rounds), 5 RSS samples
#
# Settable (environment): RUNS, WARMUP, ROUNDS, RSS_SAMPLES, QUICK=1, OUT=dir (results),
# SKIP_BUILD=1 (use the existing target/<host>/release/strata), KEEP=1 (keep the temp bundle dir).
# Results go to $OUT (default /tmp/strata-lifecycle-results.<timestamp>), never removed.
#
# Cases: (a) `R run` of /bin/true, (b) `sh -c 'R create && R start && R delete --force'`,
# (c) `sh -c "R pause ID && R resume ID"` and (d) `R update --pids-limit 1000 ID` on a running container,
# plus peak RSS (GNU time) of `R run`. Every runtime gets its own private --root.
# The timed part runs inside `unshare -m` with /sys/fs/cgroup/unified unmounted on a
# hybrid host (crun 1.8 refuses hybrid cgroups), so all three see the same cgroup setup.
# Targets are informational: the script never fails because one is missed.
set -euo pipefail

SELF=$(readlink -f "${BASH_SOURCE[0]}")
REPO=$(cd "$(dirname "$SELF")/.." && pwd)

log() { printf '==> %s\n' "$*" >&2; }
die() { printf 'lifecycle.sh: ERROR: %s\n' "$*" >&2; exit 1; }

RUNTIMES=(strata runc crun)

# Command line (word-split on use; paths must not contain spaces) for runtime $1, with its
# private state root.
rt_cmd() {
    case "$1" in
        strata) echo "$STRATA --root $WORK/root-strata" ;;
        runc)   echo "runc --root $WORK/root-runc" ;;
        crun)   echo "crun --root $WORK/root-crun" ;;
    esac
}

# Container IDs, unique to this invocation (cgroup v1 paths are derived from them).
cid() { echo "lcb-$BENCH_TAG-$1-$2"; }

# ---------------------------------------------------------------------------------------
# Inner phase: runs in a private mount namespace. Verifies, then times.
# ---------------------------------------------------------------------------------------
inner_cleanup() {
    local r
    for r in "${RUNTIMES[@]}"; do
        for kind in run csd rss verify live; do
            $(rt_cmd "$r") delete --force "$(cid "$r" "$kind")" >/dev/null 2>&1 || true
        done
    done
    # A runtime that failed half-way may leave its (empty) cgroup dirs behind; the names
    # are unique to this invocation, so removing them touches nothing of anyone else's.
    find /sys/fs/cgroup -maxdepth 4 -depth -type d -name "lcb-$BENCH_TAG-*" \
        -exec rmdir {} + 2>/dev/null || true
}

inner() {
    trap inner_cleanup EXIT

    if [ "$(stat -fc %T /sys/fs/cgroup)" = cgroup2fs ]; then
        log "cgroup: pure cgroup2 host, nothing to unmount"
        echo "cgroup2 (unified)" > "$WORK/cgroup-mode"
    elif mountpoint -q /sys/fs/cgroup/unified; then
        umount /sys/fs/cgroup/unified || die "cannot unmount /sys/fs/cgroup/unified in the private namespace"
        log "cgroup: hybrid host; /sys/fs/cgroup/unified unmounted in a private mount namespace (v1 only for all runtimes)"
        echo "hybrid host, run as cgroup v1 (unified unmounted in private mount ns)" > "$WORK/cgroup-mode"
    else
        log "cgroup: cgroup v1 host"
        echo "cgroup v1" > "$WORK/cgroup-mode"
    fi

    # --- verification: each runtime must really run the bundle -------------------------
    local r out rc
    for r in "${RUNTIMES[@]}"; do
        rc=0
        out=$($(rt_cmd "$r") run -b "$WORK/bundle-verify" "$(cid "$r" verify)" 2>"$WORK/verify-$r.err") || rc=$?
        if [ "$rc" -ne 0 ] || [ "$out" != "ok" ]; then
            cat "$WORK/verify-$r.err" >&2
            die "$r failed to run the bundle (exit $rc, stdout '$out', expected 'ok')"
        fi
        # create/start must run the program too: its stdout is create's stdout, and the
        # container must reach "stopped" by itself before a plain delete.
        rc=0
        out=$(R=$(rt_cmd "$r") id=$(cid "$r" verify) sh -c '
            $R create -b "$1" $id && $R start $id || exit 1
            i=0
            until $R state $id | grep -q "\"status\": *\"stopped\""; do
                i=$((i + 1)); [ $i -lt 200 ] || exit 2; sleep 0.01
            done
            $R delete $id' sh "$WORK/bundle-verify" 2>"$WORK/verify-$r.err") || rc=$?
        if [ "$rc" -ne 0 ] || [ "$out" != "ok" ]; then
            cat "$WORK/verify-$r.err" >&2
            die "$r failed create/start/state/delete of the bundle (exit $rc, stdout '$out', expected 'ok')"
        fi
        # The timed bundle itself must exit 0 under run and survive create/start/delete.
        $(rt_cmd "$r") run -b "$WORK/bundle" "$(cid "$r" run)" </dev/null >/dev/null 2>"$WORK/verify-$r.err" \
            || { cat "$WORK/verify-$r.err" >&2; die "$r: run of /bin/true bundle failed"; }
        local R; R=$(rt_cmd "$r"); local id; id=$(cid "$r" csd)
        sh -c "$R create -b $WORK/bundle $id && $R start $id && $R delete --force $id" \
            </dev/null >/dev/null 2>"$WORK/verify-$r.err" \
            || { cat "$WORK/verify-$r.err" >&2; die "$r: create/start/delete of /bin/true bundle failed"; }
        if [ -n "$($R list -q 2>/dev/null)" ]; then
            die "$r: containers left behind after verification: $($R list -q | tr '\n' ' ')"
        fi
        log "verified $r ($($R --version 2>/dev/null | head -1))"
    done

    # Each case is timed in $ROUNDS rounds; every round is one hyperfine invocation over all
    # three runtimes (each with its own warmup), and the runtime order rotates per round, so
    # a burst of background load is spread over all three instead of hitting one of them.
    # The report pools the timings of all rounds.
    local per_round=$(( (RUNS + ROUNDS - 1) / ROUNDS ))
    [ "$per_round" -ge 2 ] || per_round=2
    # Cases (c) and (d) act on one long-running container per runtime.
    for r in "${RUNTIMES[@]}"; do
        $(rt_cmd "$r") run -d -b "$WORK/bundle-sleep" "$(cid "$r" live)" </dev/null >/dev/null 2>"$WORK/live-$r.err" \
            || { cat "$WORK/live-$r.err" >&2; die "$r: run -d of the sleep bundle failed"; }
    done
    local case round k order
    for case in run csd pr upd; do
        case "$case" in
            run) log "benchmark (a): run /bin/true — $ROUNDS round(s) x $per_round runs, warmup $WARMUP" ;;
            csd) log "benchmark (b): create+start+delete --force — $ROUNDS round(s) x $per_round runs, warmup $WARMUP" ;;
            pr) log "benchmark (c): pause+resume of a running container" ;;
            upd) log "benchmark (d): update --pids-limit of a running container" ;;
        esac
        for ((round = 1; round <= ROUNDS; round++)); do
            order=()
            for ((k = 0; k < ${#RUNTIMES[@]}; k++)); do
                order+=("${RUNTIMES[$(( (k + round - 1) % ${#RUNTIMES[@]} ))]}")
            done
            local args=()
            for r in "${order[@]}"; do
                local R; R=$(rt_cmd "$r"); local id; id=$(cid "$r" "$case")
                local live; live=$(cid "$r" live)
                case "$case" in
                    # A foreground run deletes its container on exit: a fixed ID is reused.
                    run) args+=(-n "$r" "$R run -b $WORK/bundle $id") ;;
                    # Same sh -c wrapper for all three; /bin/true may or may not have exited
                    # by the delete, --force handles both.
                    csd) args+=(-n "$r" "sh -c '$R create -b $WORK/bundle $id && $R start $id && $R delete --force $id'") ;;
                    pr) args+=(-n "$r" "sh -c '$R pause $live && $R resume $live'") ;;
                    upd) args+=(-n "$r" "$R update --pids-limit 1000 $live") ;;
                esac
            done
            if ! hyperfine -N --style basic --warmup "$WARMUP" --runs "$per_round" \
                    --export-json "$OUT/$case.round$round.json" "${args[@]}" \
                    >>"$OUT/hyperfine-$case.log" 2>&1; then
                cat "$OUT/hyperfine-$case.log" >&2
                die "hyperfine failed ($case, round $round)"
            fi
            log "  round $round/$ROUNDS (${order[*]}) done"
        done
    done
    for r in "${RUNTIMES[@]}"; do
        $(rt_cmd "$r") delete --force "$(cid "$r" live)" >/dev/null 2>&1 || true
    done

    # --- peak RSS of `run` -------------------------------------------------------------
    log "peak RSS: $RSS_SAMPLES samples of /usr/bin/time -v R run, per runtime"
    local i
    for r in "${RUNTIMES[@]}"; do
        : > "$OUT/rss-$r.txt"
        for ((i = 0; i < RSS_SAMPLES; i++)); do
            /usr/bin/time -v -o "$WORK/time.out" $(rt_cmd "$r") run -b "$WORK/bundle" "$(cid "$r" rss)" \
                </dev/null >/dev/null 2>&1 || die "$r: run failed under /usr/bin/time"
            sed -n 's/^[[:space:]]*Maximum resident set size (kbytes): //p' "$WORK/time.out" >> "$OUT/rss-$r.txt"
        done
    done
}

# ---------------------------------------------------------------------------------------
# Report: medians, ratios, targets, summary (from the hyperfine JSON and RSS samples).
# ---------------------------------------------------------------------------------------
report() {
    python3 - "$OUT" <<'PY'
import glob, json, os, statistics, sys
out = sys.argv[1]
rts = ["strata", "runc", "crun"]
meta = dict(l.rstrip("\n").split("=", 1) for l in open(os.path.join(out, "meta.txt")) if "=" in l)

def load(case):
    times = {rt: [] for rt in rts}
    files = sorted(glob.glob(os.path.join(out, f"{case}.round*.json")))
    if not files:
        sys.exit(f"no hyperfine results for {case} in {out}")
    for fn in files:
        with open(fn) as f:
            for r in json.load(f)["results"]:
                times[r["command"]].extend(t * 1e3 for t in r["times"])
    return {rt: {"median": statistics.median(t),
                 "mean": statistics.mean(t),
                 "stddev": statistics.stdev(t) if len(t) > 1 else 0.0,
                 "min": min(t),
                 "n": len(t)} for rt, t in times.items()}

def verdict(ok):
    return "MET" if ok else "MISSED"

cases = [("run /bin/true", load("run")),
         ("create+start+delete", load("csd")),
         ("pause+resume", load("pr")),
         ("update", load("upd"))]
rss = {}
for rt in rts:
    vals = [int(x) for x in open(os.path.join(out, f"rss-{rt}.txt")).read().split()]
    rss[rt] = (statistics.median(vals), len(vals))

T_CRUN, T_RUNC = 0.8, 0.3
lines = []
p = lines.append
p("")
for title, d in cases:
    p(f"## {title} (hyperfine, n={d['strata']['n']} per runtime)")
    p(f"  {'runtime':<8} {'median ms':>10} {'mean ± sd ms':>16} {'min ms':>8}")
    for rt in rts:
        r = d[rt]
        p(f"  {rt:<8} {r['median']:>10.2f} {r['mean']:>9.2f} ± {r['stddev']:<5.2f} {r['min']:>8.2f}")
    a = d["strata"]["median"] / d["runc"]["median"]
    b = d["strata"]["median"] / d["crun"]["median"]
    p(f"  strata/runc = {a:.3f}x  (target <= {T_RUNC}x: {verdict(a <= T_RUNC)})")
    p(f"  strata/crun = {b:.3f}x  (target <= {T_CRUN}x: {verdict(b <= T_CRUN)})")
    p("")
p(f"## peak RSS of `run` (GNU time, median of {rss['strata'][1]} samples)")
p(f"  {'runtime':<8} {'max RSS KiB':>12}")
for rt in rts:
    p(f"  {rt:<8} {rss[rt][0]:>12.0f}")
c = rss["strata"][0] / rss["crun"][0]
p(f"  strata/crun = {c:.3f}x  (target <= 0.8x: {verdict(c <= 0.8)})")
p(f"  strata/runc = {rss['strata'][0] / rss['runc'][0]:.2f}x")
p("")

# Compact summary for an issue note.
p("----- summary (paste into an issue note) -----")
p(f"lifecycle bench, strata {meta.get('strata_rev','?')}; {meta.get('host','?')}")
p(f"  {meta.get('versions','')}")
p(f"  cgroups: {meta.get('cgroup','?')}")
p(f"  n={cases[0][1]['strata']['n']} timed runs/runtime/case in {meta.get('rounds')} rotating round(s), warmup {meta.get('warmup')}/round; "
  f"rss samples {meta.get('rss_samples')}; loadavg at start {meta.get('loadavg','?')}")
p(f"  {'case':<22} {'strata':>8} {'runc':>8} {'crun':>8}  {'s/runc':>7} {'s/crun':>7}  targets(<=0.3 runc, <=0.8 crun)")
for title, d in cases:
    a = d["strata"]["median"] / d["runc"]["median"]
    b = d["strata"]["median"] / d["crun"]["median"]
    p(f"  {title + ' ms':<22} {d['strata']['median']:>8.2f} {d['runc']['median']:>8.2f} {d['crun']['median']:>8.2f}  "
      f"{a:>6.3f}x {b:>6.3f}x  runc {verdict(a <= T_RUNC)}, crun {verdict(b <= T_CRUN)}")
p(f"  {'run peak RSS KiB':<22} {rss['strata'][0]:>8.0f} {rss['runc'][0]:>8.0f} {rss['crun'][0]:>8.0f}  "
  f"{rss['strata'][0]/rss['runc'][0]:>6.3f}x {c:>6.3f}x  crun {verdict(c <= 0.8)} (<=0.8)")
p("  (medians; targets informational)")
p("----------------------------------------------")
print("\n".join(lines))
PY
}

# ---------------------------------------------------------------------------------------
# Outer phase: dependencies, build, bundle, then the inner phase in `unshare -m`.
# ---------------------------------------------------------------------------------------
ensure_deps() {
    local missing=() pair cmd pkg
    for pair in hyperfine:hyperfine runc:runc crun:crun /usr/bin/time:time python3:python3 \
                unshare:util-linux mountpoint:util-linux; do
        cmd=${pair%%:*}; pkg=${pair#*:}
        command -v "$cmd" >/dev/null 2>&1 || missing+=("$pkg")
    done
    dpkg -s busybox-static >/dev/null 2>&1 || missing+=(busybox-static)
    if [ "${#missing[@]}" -gt 0 ]; then
        log "installing: ${missing[*]}"
        apt-get update -qq >&2
        DEBIAN_FRONTEND=noninteractive apt-get install -y -qq "${missing[@]}" >&2
    fi
    command -v cargo >/dev/null 2>&1 || die "cargo not found (needed to build strata)"
}

outer() {
    [ "$(id -u)" -eq 0 ] || die "must run as root (container runtimes need it)"

    if [ "${QUICK:-0}" = 1 ]; then
        : "${RUNS:=15}" "${WARMUP:=3}" "${RSS_SAMPLES:=5}" "${ROUNDS:=3}"
    else
        : "${RUNS:=50}" "${WARMUP:=5}" "${RSS_SAMPLES:=11}" "${ROUNDS:=5}"
    fi
    export RUNS WARMUP RSS_SAMPLES ROUNDS

    ensure_deps

    # The shipped build: static (no dynamic loader per exec; see README "Install").
    host=$(rustc -vV | sed -n 's/^host: //p')
    if [ "${SKIP_BUILD:-0}" != 1 ]; then
        log "building strata (static, bundles/build-static.sh in $REPO)"
        bash "$REPO/bundles/build-static.sh" >/dev/null
    fi
    STRATA=$REPO/target/$host/release/strata
    [ -x "$STRATA" ] || die "no strata binary at $STRATA"
    export STRATA

    WORK=$(mktemp -d /tmp/strata-lifecycle.XXXXXX)
    export WORK
    BENCH_TAG=$$
    export BENCH_TAG
    OUT=${OUT:-/tmp/strata-lifecycle-results.$(date +%Y%m%d-%H%M%S)}
    mkdir -p "$OUT"
    OUT=$(cd "$OUT" && pwd)
    export OUT
    if [ "${KEEP:-0}" = 1 ]; then
        trap 'log "kept $WORK"' EXIT
    else
        trap 'rm -rf "$WORK"' EXIT
    fi
    mkdir -p "$WORK"/root-{strata,runc,crun}

    log "building busybox rootfs in $WORK/bundle/rootfs"
    bash "$REPO/bundles/busybox/make-rootfs.sh" "$WORK/bundle/rootfs" >&2
    # Timed bundle: the stock config with process.args = ["/bin/true"].
    # Verification bundle: same config and rootfs (absolute root.path), args ["echo", "ok"].
    mkdir -p "$WORK/bundle-verify" "$WORK/bundle-sleep"
    python3 - "$REPO/bundles/busybox/config.json" "$WORK" <<'PY'
import json, sys
src, work = sys.argv[1], sys.argv[2]
cfg = json.load(open(src))
cfg["process"]["args"] = ["/bin/true"]
json.dump(cfg, open(f"{work}/bundle/config.json", "w"), indent=2)
cfg["process"]["args"] = ["echo", "ok"]
cfg["root"]["path"] = f"{work}/bundle/rootfs"
json.dump(cfg, open(f"{work}/bundle-verify/config.json", "w"), indent=2)
# Long-running container for the pause+resume and update cases.
cfg["process"]["args"] = ["sleep", "100000"]
json.dump(cfg, open(f"{work}/bundle-sleep/config.json", "w"), indent=2)
PY

    LOADAVG=$(cut -d' ' -f1-3 /proc/loadavg)
    log "entering private mount namespace for the comparison (loadavg $LOADAVG)"
    unshare -m --propagation private -- bash "$SELF" --inner

    local rev
    rev=$(cd "$REPO" && git rev-parse --short HEAD 2>/dev/null || echo unknown)
    if [ -n "$(cd "$REPO" && git status --porcelain -- src Cargo.toml Cargo.lock 2>/dev/null)" ]; then
        rev="$rev+dirty"
    fi
    {
        echo "strata_rev=$rev"
        echo "host=$(uname -r), $(nproc) cpus"
        echo "versions=runc $(runc --version | head -1 | awk '{print $3}'), crun $(crun --version | head -1 | awk '{print $3}'), $(hyperfine --version)"
        echo "cgroup=$(cat "$WORK/cgroup-mode")"
        echo "warmup=$WARMUP"
        echo "runs=$RUNS"
        echo "rss_samples=$RSS_SAMPLES"
        echo "rounds=$ROUNDS"
        echo "loadavg=$LOADAVG"
    } > "$OUT/meta.txt"

    report | tee "$OUT/summary.txt"
    log "results (hyperfine JSON, RSS samples, summary) in $OUT"
}

if [ "${1:-}" = --inner ]; then
    inner
else
    outer
fi
