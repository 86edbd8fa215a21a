#!/usr/bin/env bash
# Image benchmark: strata-image vs podman, docker, skopeo, umoci and the floors, on the
# same data.
#
#   bench/image.sh                # full: a 560 MB image (tar) + a 59 MB variant, 5 runs per
#                                 #       case (21 for the one-file commits, 3 for the slow
#                                 #       extras, 1 for the other tools' save and load);
#                                 #       ~20 minutes once built
#   QUICK=1 bench/image.sh        # quick: 115 MB + 25 MB, 3 runs (9 / 1); ~5 minutes
#   SKIP_BUILD=1 DATA_CACHE=/tmp/sib-data bench/image.sh   # reuse build and data
#   CASES=save,load bench/image.sh                          # only some cases (~8 minutes)
#
# Settable (environment): SCALE (size of the big image, 1 = ~560 MB of tar), SMALL_SCALE
# (0.1), RUNS (per tool per case), RUNS_FAST (one-file commits), RUNS_SLOW (podman import,
# the work-matched floors, the re-commit), QUICK=1, OUT=dir (results), SKIP_BUILD=1 (use
# the existing target/<host>/release/{strata,strata-image}), KEEP=1 (keep the temp dir),
# DATA_CACHE=dir (keep the generated data there and reuse it on the next run),
# FS=loop|host|tmpfs (where the work happens, default loop: a fresh private ext4 with a
# journal on a loop device; see below) and LOOP_SIZE (its sparse size, 24G; QUICK 8G);
# CASES (which cases to time, comma-separated: import,commit1,commit500,export,save,load),
# LOAD_KINDS (the archives load reads: gzip,zstd,plain), LOAD_PEER_KINDS (those that
# podman, docker and skopeo load too: gzip) and RUNS_PEER (runs of the other tools' save
# and load and of the work-matched load floors: 1).
# Results go to $OUT (default /tmp/strata-image-bench-results.<timestamp>), never removed.
#
# Cases (each a set of commands timed in rotating rounds, medians reported):
#   import      strata-image import DIR  vs  tar | pigz -6 (and a work-matched floor, podman import)
#   commit-1    commit of a one-file change, big and small image:
#               strata-image commit  vs  podman commit  vs  umoci repack
#   commit-500  commit of a ~500 MB change (a copy of /data inside the container):
#               strata-image commit (gzip, zstd)  vs  tar | sha256 | pigz -6 | sha256  and the
#               same with zstd -3 -T0 (sha256: openssl's), podman commit, umoci repack
#   export      strata-image export  vs  podman export  vs  tar of the merged overlay
#   save        strata-image save of the 2-layer gzip image (hybrid, oci-archive)  vs  cat of
#               its blobs into a file (fsync'd as ours is), podman save (docker-archive,
#               oci-archive), docker save, skopeo copy oci: docker-archive: / oci-archive:
#   load        strata-image load -i of our archive with gzip, zstd and plain layers, into an
#               empty store  vs  per layer pigz -d | tar -x (zstd -d | tar -x, tar -x) and a
#               work-matched floor, podman load, docker load, skopeo copy docker-archive: oci:
# Every tool has private state under the temp dir (strata-image's store and strata's root,
# podman's storage/run root/tmp/config, a dockerd on its own containerd, umoci's layouts). Page cache is warm for everyone;
# dirty data is synced before every timed command. Targets are informational: the script
# never fails because one is missed (it stops only if strata-image itself misbehaves).
set -euo pipefail

SELF=$(readlink -f "${BASH_SOURCE[0]}")
REPO=$(cd "$(dirname "$SELF")/.." && pwd)
source "$REPO/integration/lib/daemons.sh"

log() { printf '==> %s\n' "$*" >&2; }
die() { printf 'image.sh: ERROR: %s\n' "$*" >&2; exit 1; }

[ "$(id -u)" -eq 0 ] || die "must run as root (containers, overlay mounts)"

if [ "${QUICK:-0}" = 1 ]; then
    : "${SCALE:=0.2}" "${SMALL_SCALE:=0.04}" "${RUNS:=3}" "${RUNS_FAST:=9}" "${RUNS_SLOW:=1}" "${LOOP_SIZE:=8G}"
else
    : "${SCALE:=1}" "${SMALL_SCALE:=0.1}" "${RUNS:=5}" "${RUNS_FAST:=21}" "${RUNS_SLOW:=3}" "${LOOP_SIZE:=24G}"
fi
# The peers of save and load (podman, docker, skopeo) and the work-matched load floors.
: "${RUNS_PEER:=1}"

# Which cases to time (all by default); `commit-1`/`commit-500` are accepted too. The
# preparation a case needs runs whatever is asked: part 1's (import, commit1, commit500,
# export: the small image, podman's and umoci's copies) only if one of them is.
CASES=${CASES:-import,commit1,commit500,export,save,load}
CASES=${CASES//commit-/commit}
CASES=${CASES// /}
for c in ${CASES//,/ }; do
    case $c in
    import | commit1 | commit500 | export | save | load) ;;
    *) die "CASES: unknown case '$c' (import, commit1, commit500, export, save, load)" ;;
    esac
done
want() { case ",$CASES," in *",$1,"*) return 0 ;; esac; return 1; }
PART1=0
for c in import commit1 commit500 export; do want "$c" && PART1=1; done
# Which archives load reads: gzip (our hybrid save), zstd (the same of a zstd image) and
# plain (save --uncompressed).
LOAD_KINDS=${LOAD_KINDS:-gzip,zstd,plain}
for k in ${LOAD_KINDS//,/ }; do
    case $k in gzip | zstd | plain) ;; *) die "LOAD_KINDS: unknown kind '$k' (gzip, zstd, plain)" ;; esac
done

# ---------------------------------------------------------------------------------------
# Dependencies and build
# ---------------------------------------------------------------------------------------
ensure_deps() {
    local missing=() p
    for p in podman conmon runc umoci skopeo pigz zstd jq python3 busybox-static tar coreutils util-linux; do
        dpkg -s "$p" >/dev/null 2>&1 || missing+=("$p")
    done
    if [ "${#missing[@]}" -gt 0 ]; then
        log "installing: ${missing[*]}"
        apt-get update -qq >&2
        DEBIAN_FRONTEND=noninteractive apt-get install -y -qq --no-install-recommends "${missing[@]}" >&2
    fi
}
ensure_deps

host=$(rustc -vV 2>/dev/null | sed -n 's/^host: //p')
[ -n "$host" ] || host=$(uname -m)-unknown-linux-gnu
if [ "${SKIP_BUILD:-0}" != 1 ]; then
    log "building strata and strata-image (static, bundles/build-static.sh in $REPO)"
    bash "$REPO/bundles/build-static.sh" >/dev/null
fi
BUILT=$REPO/target/$host/release
[ -x "$BUILT/strata" ] && [ -x "$BUILT/strata-image" ] || die "no strata/strata-image in $BUILT"

TOP=$(mktemp -d /tmp/strata-image-bench.XXXXXX)
OUT=${OUT:-/tmp/strata-image-bench-results.$(date +%Y%m%d-%H%M%S)}
mkdir -p "$OUT/times"
OUT=$(cd "$OUT" && pwd)
RUNLOG=$OUT/commands.log
: >"$RUNLOG"

WORK=$TOP/fs
LOOPDEV=
# strata-image finds strata beside itself.
STRATA=$WORK/bin/strata
SI=$WORK/bin/strata-image
export STRATA_IMAGE_ROOT=$WORK/store STRATA_RUNTIME_ROOT=$WORK/rt

# ---------------------------------------------------------------------------------------
# podman, fully private (as integration/podman.sh): storage, run root, tmp, configs,
# events to a file, cgroupfs, runc (crun 1.8 refuses this kind of host's hybrid cgroups).
# ---------------------------------------------------------------------------------------
PMW=$WORK/podman
PM=$PMW/podman
PARENT_CGROUPS=$(ls -d /sys/fs/cgroup/libpod_parent /sys/fs/cgroup/*/libpod_parent 2>/dev/null || true)
HAVE_PODMAN=1
HAVE_UMOCI=1

# docker (save and load only), fully private as integration/archive.sh runs it: a dockerd
# on its own containerd, with data, exec root, sockets and client config under $WORK, no
# networking, no iptables. It runs no container here.
DKW=$WORK/docker
DOCKER=/usr/bin/docker # docker.io's client (/usr/local/bin/docker may be another one)
HAVE_DOCKER=0
CONTAINERD_PID= DOCKERD_PID=
RUN_CONTAINERD_EXISTED=$([ -e /run/containerd ] && echo 1 || true)
KEY_JSON_EXISTED=$([ -e /etc/docker/key.json ] && echo 1 || true)
d() { DOCKER_HOST=unix://$DKW/docker.sock DOCKER_CONFIG=$DKW/client timeout 900 "$DOCKER" "$@"; }

setup_podman() {
    mkdir -p "$PMW"/{storage,runroot,tmp,cni,bigtmp}
    local nofile nproc
    nofile=$(ulimit -Hn)
    nproc=$(ulimit -Hu)
    { [ "$nproc" = unlimited ] || [ "$nproc" -gt 32768 ]; } && nproc=32768
    [ "$nofile" = unlimited ] && nofile=1048576
    cat >"$PMW/containers.conf" <<EOF
[containers]
default_ulimits = ["nofile=$nofile:$nofile", "nproc=$nproc:$nproc"]
netns = "none"
[engine]
cgroup_manager = "cgroupfs"
events_logger = "file"
events_logfile_path = "$PMW/tmp/events.log"
image_copy_tmp_dir = "$PMW/bigtmp"
[network]
network_config_dir = "$PMW/cni"
EOF
    printf '[storage]\ndriver = "overlay"\nrunroot = "%s"\ngraphroot = "%s"\n' \
        "$PMW/runroot" "$PMW/storage" >"$PMW/storage.conf"
    echo 'unqualified-search-registries = []' >"$PMW/registries.conf"
    cat >"$PM" <<EOF
#!/bin/sh
export CONTAINERS_CONF="$PMW/containers.conf" CONTAINERS_STORAGE_CONF="$PMW/storage.conf"
export CONTAINERS_REGISTRIES_CONF="$PMW/registries.conf" TMPDIR="$PMW/bigtmp"
exec timeout 900 podman --root "$PMW/storage" --runroot "$PMW/runroot" --tmpdir "$PMW/tmp" \\
    --cgroup-manager cgroupfs --events-backend file --network-config-dir "$PMW/cni" \\
    --storage-driver overlay --runtime runc "\$@"
EOF
    chmod 0755 "$PM"
}

start_docker() {
    [ -x "$DOCKER" ] && command -v dockerd >/dev/null && command -v containerd >/dev/null || return 1
    mkdir -p "$DKW/client"
    echo '{}' >"$DKW/client/config.json"
    start_containerd "$DKW/cd" "$DKW/containerd.log" &&
        start_dockerd "$DKW/dd" "$DKW/cd" "unix://$DKW/docker.sock" "$DKW/dockerd.log"
}

cleanup() {
    set +e
    local c id
    if [ -x "$SI" ]; then
        for c in $("$SI" ps -a -q 2>/dev/null); do "$SI" rm -f "$c" >/dev/null 2>&1; done
    fi
    local pids=""
    if [ -x "$PM" ]; then
        pids=$("$PM" ps -aq --no-trunc 2>/dev/null)
        "$PM" rm -a -f -t 0 >/dev/null 2>&1
        "$PM" rmi -a -f >/dev/null 2>&1
    fi
    stop_pid "$DOCKERD_PID" 20
    stop_pid "$CONTAINERD_PID" 10
    # whatever is left of processes started from the temp dir (conmon, podman's cleanup)
    local p
    for p in /proc/[0-9]*; do
        [ "${p#/proc/}" = $$ ] && continue
        tr '\0' ' ' 2>/dev/null <"$p/cmdline" | grep -qF -- "$TOP/" && kill -9 "${p#/proc/}" 2>/dev/null
    done
    # mounts under the temp dir (podman's overlays and private bind, shm), deepest first;
    # then our own filesystem and its loop device
    awk -v d="$WORK/" 'index($5, d) == 1 { print $5 }' /proc/self/mountinfo | sort -r |
        while read -r m; do umount -l "$m" 2>/dev/null; done
    for id in $pids; do
        find /sys/fs/cgroup -maxdepth 4 -depth -type d -name "*$id*" -exec rmdir {} \; 2>/dev/null
    done
    if [ -z "$PARENT_CGROUPS" ]; then
        find /sys/fs/cgroup/libpod_parent /sys/fs/cgroup/*/libpod_parent -depth -type d \
            -exec rmdir {} \; 2>/dev/null
    fi
    if [ "${KEEP:-0}" = 1 ]; then
        log "kept $TOP${LOOPDEV:+ (its filesystem stays mounted on $WORK from $LOOPDEV)}"
    else
        if mountpoint -q "$WORK"; then
            umount "$WORK" 2>/dev/null || umount -l "$WORK"
        fi
        [ -n "$LOOPDEV" ] && losetup -d "$LOOPDEV" 2>/dev/null
        rm -rf "$TOP"
    fi
    # what dockerd and containerd leave outside their dirs
    [ -z "$RUN_CONTAINERD_EXISTED" ] && rmdir /run/containerd/s /run/containerd 2>/dev/null
    [ -z "$KEY_JSON_EXISTED" ] && [ -n "$DOCKERD_PID" ] && rm -f /etc/docker/key.json &&
        rmdir /etc/docker 2>/dev/null
    return 0
}
trap cleanup EXIT
trap 'exit 130' INT TERM

# Everything the tools read and write lives in $WORK. By default that is a private ext4
# (with a journal) on a loop device over a sparse file in $TOP, with direct I/O to the
# backing file: the same fresh filesystem for every run, and no file churn of other
# processes in its inode groups. FS=host puts $WORK on /tmp itself, FS=tmpfs on a tmpfs.
# (On a journal-less ext4, as this VM's root is, every file creation after mass deletions
# scans past the recently deleted inodes: 0.3-0.9 ms per new file instead of ~30 us.)
FS=${FS:-loop}
mkdir -p "$WORK"
case $FS in
loop)
    truncate -s "$LOOP_SIZE" "$TOP/fs.img"
    mkfs.ext4 -q -F -E nodiscard "$TOP/fs.img"
    LOOPDEV=$(losetup -f --show --direct-io=on "$TOP/fs.img")
    mount "$LOOPDEV" "$WORK"
    ;;
tmpfs) mount -t tmpfs -o size="$LOOP_SIZE",mode=0755 strata-image-bench "$WORK" ;;
host) ;;
*) die "FS=$FS: expected loop, tmpfs or host" ;;
esac
FS_DESC="$FS: $(findmnt -no FSTYPE -T "$WORK")${LOOPDEV:+ on $LOOPDEV (direct I/O to a sparse file on $(findmnt -no FSTYPE -T "$TOP"))}"

mkdir -p "$WORK/bin"
install -m 0755 "$BUILT/strata" "$BUILT/strata-image" "$WORK/bin/"


# ---------------------------------------------------------------------------------------
# The data: a busybox rootfs plus /data, generated deterministically (fixed seed, fixed
# modes and times): SCALE x (18000 small files of 0.5-64 KiB, log-uniform sizes, 3/4
# text-like and 1/4 binary-like, in 18 x 25 nested dirs; four large files: 96 MB of text,
# 80 MB binary-like, 64 MB random, 48 MB of 4 KiB pages (zeros, text, random)).
# ---------------------------------------------------------------------------------------
GEN_PY=$(cat <<'PY'
import itertools, math, os, random, sys
dest, scale = sys.argv[1], float(sys.argv[2])
MTIME = 1767225600  # 2026-01-01T00:00:00Z
rng = random.Random(20261122)
# Text: lines of Zipf-weighted pseudo-words (gzip -6 takes it to about a third).
letters = "etaoinshrdlcumwfgypbvkjxqz"
lw = [12.7, 9.1, 8.2, 7.5, 7.0, 6.7, 6.3, 6.1, 6.0, 4.3, 4.0, 2.8, 2.8, 2.4, 2.4, 2.2,
      2.0, 2.0, 1.9, 1.5, 1.0, 0.8, 0.2, 0.2, 0.1, 0.1]
vocab = ["".join(rng.choices(letters, lw, k=rng.randint(2, 11))) for _ in range(8000)]
cw = list(itertools.accumulate(1.0 / (i + 1) for i in range(len(vocab))))
IND = ["", "    ", "        ", "            "]
def text(n):
    words = rng.choices(vocab, cum_weights=cw, k=n // 5 + 64)
    out, i, size = [], 0, 0
    while size < n:
        k = rng.randint(3, 14)
        line = IND[rng.randrange(4)] + " ".join(words[i:i + k]) + "\n"
        i += k
        out.append(line)
        size += len(line)
    return "".join(out).encode()[:n]
# Binary-like: Zipf-weighted tokens of 1-8 random bytes (gzip -6: about 57%).
toks = [rng.randbytes(rng.randint(1, 8)) for _ in range(4096)]
tcw = list(itertools.accumulate(1.0 / (i + 1) ** 0.9 for i in range(len(toks))))
def binary(n):
    return b"".join(rng.choices(toks, cum_weights=tcw, k=n // 3 + 64))[:n]
def page(n):  # 4 KiB pages: zeros, text or random, as in a database file
    out = []
    for _ in range(n // 4096):
        r = rng.random()
        out.append(bytes(4096) if r < 0.34 else text(4096) if r < 0.67 else rng.randbytes(4096))
    return b"".join(out)
def put(path, chunks):
    with open(path, "wb") as f:
        for c in chunks:
            f.write(c)
    os.chmod(path, 0o644)
    os.utime(path, (MTIME, MTIME))
root = os.path.join(dest, "data")
nsmall = round(18000 * scale)
made = set()
for i in range(nsmall):
    d = os.path.join(root, "small", f"d{i // 1000:02d}", f"s{(i // 40) % 25:02d}")
    if d not in made:
        os.makedirs(d, exist_ok=True)
        made.add(d)
    n = int(512 * math.exp(rng.random() * math.log(128)))  # log-uniform 0.5..64 KiB
    if rng.random() < 0.75:
        put(os.path.join(d, f"f{i:05d}.txt"), [text(n)])
    else:
        put(os.path.join(d, f"f{i:05d}.bin"), [binary(n)])
large = os.path.join(root, "large")
os.makedirs(large, exist_ok=True)
MB = 1 << 20
def chunks(total, gen, chunk=8 * MB):
    while total > 0:
        n = min(chunk, total)
        total -= n
        yield gen(n)
put(os.path.join(large, "app.log"), chunks(int(96 * MB * scale), text))
put(os.path.join(large, "libbig.so"), chunks(int(80 * MB * scale), binary))
put(os.path.join(large, "random.bin"), chunks(int(64 * MB * scale), rng.randbytes))
put(os.path.join(large, "store.db"), chunks(int(48 * MB * scale) // 4096 * 4096, page))
for dp, _, _ in os.walk(root, topdown=False):
    os.chmod(dp, 0o755)
    os.utime(dp, (MTIME, MTIME))
PY
)

# make_data DIR SCALE: busybox rootfs + /data, reused from $DATA_CACHE when it is there.
make_data() {
    local dir=$1 scale=$2 key cached=""
    key=$(printf '%s\n%s\n%s\n' "$GEN_PY" "$scale" "$(cat "$REPO/bundles/busybox/make-rootfs.sh")" |
        sha256sum | cut -c1-16)
    if [ -n "${DATA_CACHE:-}" ]; then
        cached=$DATA_CACHE/data-$scale-$key
        if [ -f "$cached.done" ]; then
            log "data (scale $scale): reusing $cached"
            cp -a "$cached" "$dir"
            return
        fi
    fi
    log "data (scale $scale): generating into $dir"
    bash "$REPO/bundles/busybox/make-rootfs.sh" "$dir" >/dev/null
    python3 -c "$GEN_PY" "$dir" "$scale"
    if [ -n "$cached" ]; then
        mkdir -p "$DATA_CACHE"
        rm -rf "$cached" && cp -a "$dir" "$cached" && touch "$cached.done"
    fi
}

# ---------------------------------------------------------------------------------------
# Timing: each command is one shell function run_<case>_<tool> (prep_<case>_<tool>, if
# defined, resets state first, untimed). `rounds` runs all tools of a case once per round,
# rotating their order between rounds, so background load is spread over all of them.
# ---------------------------------------------------------------------------------------
measure() { # measure CASE TOOL [warmup]
    local case=$1 tool=$2 warm=${3:-}
    if declare -F "prep_${case}_$tool" >/dev/null; then
        "prep_${case}_$tool" >>"$RUNLOG" 2>&1 </dev/null || log "prep $case/$tool failed (see $RUNLOG)"
    fi
    sync
    echo "--- $case $tool ${warm:+(warmup)}" >>"$RUNLOG"
    local rc=0 t0 t1
    t0=${EPOCHREALTIME/./}
    "run_${case}_$tool" >>"$RUNLOG" 2>&1 </dev/null || rc=$?
    t1=${EPOCHREALTIME/./}
    if [ "$rc" -ne 0 ]; then
        log "  $case/$tool FAILED (exit $rc, see $RUNLOG)"
        echo "$case $tool exit $rc" >>"$OUT/failures.txt"
        return 0
    fi
    # check_<case>_<tool>, if defined, looks at what the run made (untimed, after it): the
    # floors' and the other tools' results are checked so, run by run, instead of in an
    # extra run before the timed ones (strata-image's are checked before any timing).
    if declare -F "check_${case}_$tool" >/dev/null &&
        ! "check_${case}_$tool" >>"$RUNLOG" 2>&1 </dev/null; then
        log "  $case/$tool: its result did not verify (see $RUNLOG): the run is left out"
        echo "$case $tool did not verify" >>"$OUT/failures.txt"
        return 0
    fi
    [ -n "$warm" ] || echo $((t1 - t0)) >>"$OUT/times/${case}__$tool.us"
}

rounds() { # rounds CASE N [--warmup] TOOL[@runs]...
    local case=$1 n=$2 warm=0
    shift 2
    [ "${1:-}" = --warmup ] && { warm=1; shift; }
    local tools=("$@") r k spec tool max
    [ "${#tools[@]}" -gt 0 ] || return 0
    if [ "$warm" = 1 ]; then
        for spec in "${tools[@]}"; do measure "$case" "${spec%@*}" warmup; done
    fi
    for ((r = 0; r < n; r++)); do
        local done_any=0
        for ((k = 0; k < ${#tools[@]}; k++)); do
            spec=${tools[$(((k + r) % ${#tools[@]}))]}
            tool=${spec%@*}
            max=$n
            [ "$spec" != "$tool" ] && max=${spec#*@}
            [ "$r" -lt "$max" ] || continue
            measure "$case" "$tool"
            done_any=1
        done
        [ "$done_any" = 1 ] && log "  $case: round $((r + 1))/$n done"
    done
}

# The floors' sha256: OpenSSL's (SHA-NI where the CPU has it, as the sha2 crate uses), about
# 3x as fast as coreutils' sha256sum here; sha256sum only if there is no openssl.
if command -v openssl >/dev/null 2>&1; then
    sha256() { openssl dgst -sha256 >/dev/null; }
    SHA_DESC="openssl dgst -sha256"
else
    sha256() { sha256sum >/dev/null; }
    SHA_DESC="sha256sum"
fi

# A floor pipeline: tar of $1 | tee (sha256) | COMPRESSOR | sha256, all waited for.
floor_pipe() { # floor_pipe DIR COMPRESSOR...
    local dir=$1 fifo=$WORK/fifo.sha pid rc=0
    shift
    rm -f "$fifo" && mkfifo "$fifo"
    sha256 <"$fifo" &
    pid=$!
    tar -C "$dir" -cf - . | tee "$fifo" | "$@" | sha256 || rc=$?
    wait "$pid" || rc=$?
    return "$rc"
}

# The same work as strata-image: the tar also unpacked into a new dir, the compressed blob
# also written to a file and fsynced.
floor_work() { # floor_work DIR COMPRESSOR...
    local dir=$1 f1=$WORK/fifo.x f2=$WORK/fifo.sha p1 p2 rc=0
    shift
    rm -f "$f1" "$f2" && mkfifo "$f1" "$f2"
    tar -C "$WORK/wm.dir" -xf - <"$f1" &
    p1=$!
    sha256 <"$f2" &
    p2=$!
    tar -C "$dir" -cf - . | tee "$f1" "$f2" | "$@" | tee "$WORK/wm.blob" | sha256 || rc=$?
    wait "$p1" || rc=$?
    wait "$p2" || rc=$?
    sync "$WORK/wm.blob" || rc=$?
    return "$rc"
}
prep_work_floor() { rm -rf "$WORK/wm.dir" "$WORK/wm.blob" && mkdir "$WORK/wm.dir"; }

tar_bytes() { tar -C "$1" -cf - . | wc -c; }

# strata-image helpers
si_rmi_all() { # remove these images (if there) and collect the garbage
    "$SI" rmi -f "$@" >/dev/null 2>&1 || true
    "$SI" gc >/dev/null
}
upper_of() { "$SI" inspect "$1" | jq -r '.[0].GraphDriver.Data.UpperDir'; }
lower_of() { "$SI" inspect "$1" | jq -r '.[0].GraphDriver.Data.LowerDir'; }
# si_container NAME IMAGE CMD...: create, then run it to completion with strata.
si_container() {
    local name=$1 img=$2 bundle
    shift 2
    bundle=$("$SI" create --name "$name" "$img" "$@" 2>>"$RUNLOG" | tail -1)
    [ -f "$bundle/config.json" ] || die "strata-image create $name: no bundle"
    "$STRATA" --root "$STRATA_RUNTIME_ROOT" run -b "$bundle" "$name" </dev/null >>"$RUNLOG" 2>&1 ||
        die "strata run $name failed (see $RUNLOG)"
}

ONE_CHANGE='mkdir -p /changed && echo one-file-change >/changed/file'
BIG_CHANGE='cp -a /data /data-copy'
BIG_CHECK='cmp /data/large/random.bin /data-copy/large/random.bin && ls /data-copy/small | wc -l'

# ---------------------------------------------------------------------------------------
# Main
# ---------------------------------------------------------------------------------------
LOAD_START=$(cut -d' ' -f1-3 /proc/loadavg)
log "work dir $WORK ($FS_DESC), results in $OUT (loadavg $LOAD_START)"
log "cases: $CASES"
make_data "$WORK/big" "$SCALE"
BIG_BYTES=$(tar_bytes "$WORK/big")
BIG_FILES=$(find "$WORK/big" | wc -l)
SMALL_BYTES=0 SMALL_FILES=0
if [ "$PART1" = 1 ]; then
    make_data "$WORK/small" "$SMALL_SCALE"
    SMALL_BYTES=$(tar_bytes "$WORK/small")
    SMALL_FILES=$(find "$WORK/small" | wc -l)
fi
log "data: big $((BIG_BYTES / 1000000)) MB tar, $BIG_FILES entries; small $((SMALL_BYTES / 1000000)) MB tar, $SMALL_FILES entries"

setup_podman
if ! "$PM" info >>"$RUNLOG" 2>&1; then
    log "podman does not work here (see $RUNLOG): its rows are left out"
    HAVE_PODMAN=0
fi

# --- import -----------------------------------------------------------------------------
run_import_strata() { "$SI" import -q "$WORK/big" bench-big; }
prep_import_strata() { si_rmi_all bench-big; }
run_import_floor() { tar -C "$WORK/big" -cf - . | pigz -6 >/dev/null; }
run_import_floorwork() { floor_work "$WORK/big" pigz -6; }
prep_import_floorwork() { prep_work_floor; }
run_import_podman() { tar -C "$WORK/big" -cf - . | "$PM" import -q - localhost/bench-big; }
prep_import_podman() { "$PM" rmi -f localhost/bench-big >/dev/null 2>&1 || true; }

if want import; then
    log "case import: ${RUNS} runs (the work-matched floor and podman import: ${RUNS_SLOW})"
    tools=(strata floor "floorwork@$RUNS_SLOW")
    [ "$HAVE_PODMAN" = 1 ] && tools+=("podman@$RUNS_SLOW")
    rounds import "$RUNS" "${tools[@]}"
    rm -rf "$WORK/wm.dir" "$WORK/wm.blob"
fi
"$SI" inspect bench-big >/dev/null 2>&1 || run_import_strata >/dev/null
# Part 1's podman rows (commit, export) need podman's own import of the data; save and
# load give podman our archive instead.
PODMAN1=$HAVE_PODMAN
[ "$PART1" = 1 ] || PODMAN1=0
if [ "$PART1" = 1 ]; then
    "$SI" import -q "$WORK/small" bench-small >/dev/null
fi
if [ "$PODMAN1" = 1 ]; then
    "$PM" image exists localhost/bench-big || run_import_podman >/dev/null || PODMAN1=0
    tar -C "$WORK/small" -cf - . | "$PM" import -q - localhost/bench-small >/dev/null || PODMAN1=0
fi

# --- containers and their changes ---------------------------------------------------------
if [ "$PART1" = 1 ]; then
    log "containers: the one-file change (big and small image) and the ~500 MB change"
    si_container c-one bench-big sh -c "$ONE_CHANGE"
    si_container c-one-s bench-small sh -c "$ONE_CHANGE"
else
    log "container: the ~500 MB change"
fi
si_container c-big bench-big sh -c "$BIG_CHANGE"
if [ "$PODMAN1" = 1 ]; then
    { "$PM" run --name p-one localhost/bench-big sh -c "$ONE_CHANGE" &&
        "$PM" run --name p-one-s localhost/bench-small sh -c "$ONE_CHANGE" &&
        "$PM" run --name p-big localhost/bench-big sh -c "$BIG_CHANGE"; } >>"$RUNLOG" 2>&1 ||
        { log "podman run failed (see $RUNLOG): its rows are left out"; PODMAN1=0; }
fi
# umoci: an OCI layout of the same image (copied out of our store, which is one), unpacked
# in root mode, the one-file change made in its rootfs.
UL=$WORK/umoci
mkdir -p "$UL"
if [ "$PART1" = 0 ]; then
    HAVE_UMOCI=0
elif { skopeo copy -q "oci:$STRATA_IMAGE_ROOT:bench-big:latest" "oci:$UL/big:base" &&
    skopeo copy -q "oci:$STRATA_IMAGE_ROOT:bench-small:latest" "oci:$UL/small:base" &&
    umoci unpack --image "$UL/big:base" "$UL/b-big" &&
    umoci unpack --image "$UL/small:base" "$UL/b-small"; } >>"$RUNLOG" 2>&1; then
    for b in b-big b-small; do
        mkdir -p "$UL/$b/rootfs/changed" && echo one-file-change >"$UL/$b/rootfs/changed/file"
    done
else
    log "umoci/skopeo failed (see $RUNLOG): its rows are left out"
    HAVE_UMOCI=0
fi
UPPER_BIG=$(upper_of c-big)
CHANGE_BYTES=$(tar_bytes "$UPPER_BIG")
log "the ~500 MB change: $((CHANGE_BYTES / 1000000)) MB tar of the upper dir"

# --- verification: every tool's commit really holds the change ----------------------------
WANT_SMALL_DIRS=$(ls "$WORK/big/data/small" | wc -l)
BLOB_gzip=0 BLOB_zstd=0 FLOOR_GZIP_BYTES=0 FLOOR_ZSTD_BYTES=0
if [ "$PART1" = 1 ]; then
    log "verifying the commits before timing them"
    "$SI" commit -q c-one v-one >>"$RUNLOG" 2>&1 || die "strata-image commit c-one failed"
    [ "$("$SI" run --rm v-one cat /changed/file 2>>"$RUNLOG")" = one-file-change ] ||
        die "the committed one-file image does not show the change"
    "$SI" commit -q c-one-s v-one-s >>"$RUNLOG" 2>&1 || die "strata-image commit c-one-s failed"
    [ "$("$SI" run --rm v-one-s cat /changed/file 2>>"$RUNLOG")" = one-file-change ] ||
        die "the committed one-file image (small) does not show the change"
    for c in gzip zstd; do
        "$SI" commit -q --compression "$c" c-big "v-big-$c" >>"$RUNLOG" 2>&1 || die "strata-image commit --compression $c c-big failed"
        [ "$("$SI" run --rm "v-big-$c" sh -c "$BIG_CHECK" 2>>"$RUNLOG")" = "$WANT_SMALL_DIRS" ] ||
            die "the committed ~500 MB change ($c) does not show the copy"
        "$SI" inspect "v-big-$c" | jq -r '.[0].Layers[-1].MediaType' | grep -q "+$c\$" ||
            die "the $c commit's layer is not +$c"
        printf -v "BLOB_$c" %s "$("$SI" inspect "v-big-$c" | jq -r '.[0].Layers[-1].Size')"
    done
    # The floors' output sizes, to show that the levels match (gzip 6, zstd 3).
    FLOOR_GZIP_BYTES=$(tar -C "$UPPER_BIG" -cf - . | pigz -6 | wc -c)
    FLOOR_ZSTD_BYTES=$(tar -C "$UPPER_BIG" -cf - . | zstd -3 -T0 -q -c | wc -c)
    si_rmi_all v-one v-one-s v-big-gzip v-big-zstd
    if [ "$PODMAN1" = 1 ]; then
        if "$PM" commit -q p-one localhost/v-one >>"$RUNLOG" 2>&1 &&
            [ "$("$PM" run --rm localhost/v-one cat /changed/file 2>>"$RUNLOG")" = one-file-change ] &&
            "$PM" commit -q p-big localhost/v-big >>"$RUNLOG" 2>&1 &&
            [ "$("$PM" run --rm localhost/v-big sh -c "$BIG_CHECK" 2>>"$RUNLOG")" = "$WANT_SMALL_DIRS" ]; then
            "$PM" rmi -f localhost/v-one localhost/v-big >>"$RUNLOG" 2>&1
        else
            log "podman commit did not verify (see $RUNLOG): its rows are left out"
            PODMAN1=0
        fi
    fi
fi
umoci_last_layer() { # the path of the last layer blob of LAYOUT:TAG
    local m
    m=$(jq -r --arg t "$2" '.manifests[] | select(.annotations["org.opencontainers.image.ref.name"] == $t) | .digest' "$1/index.json")
    echo "$1/blobs/sha256/$(jq -r '.layers[-1].digest' "$1/blobs/sha256/${m#sha256:}" | cut -d: -f2)"
}
if [ "$HAVE_UMOCI" = 1 ]; then
    if umoci repack --image "$UL/big:one" "$UL/b-big" >>"$RUNLOG" 2>&1 &&
        [ "$(tar -tzf "$(umoci_last_layer "$UL/big" one)" | grep -c 'changed/file$')" = 1 ]; then
        :
    else
        log "umoci repack did not verify (see $RUNLOG): its rows are left out"
        HAVE_UMOCI=0
    fi
fi

# --- commit of a one-file change ----------------------------------------------------------
run_commit1_strata() { "$SI" commit -q c-one b-one; }
prep_commit1_strata() { si_rmi_all b-one; }
run_commit1_strata_s() { "$SI" commit -q c-one-s b-one-s; }
prep_commit1_strata_s() { si_rmi_all b-one-s; }
run_commit1_podman() { "$PM" commit -q p-one localhost/b-one; }
prep_commit1_podman() { "$PM" rmi -f localhost/b-one >/dev/null 2>&1 || true; }
run_commit1_podman_s() { "$PM" commit -q p-one-s localhost/b-one-s; }
prep_commit1_podman_s() { "$PM" rmi -f localhost/b-one-s >/dev/null 2>&1 || true; }
run_commit1_umoci() { umoci repack --image "$UL/big:one" "$UL/b-big"; }
run_commit1_umoci_s() { umoci repack --image "$UL/small:one" "$UL/b-small"; }

if want commit1; then
    log "case commit-1 (one-file change): ${RUNS_FAST} runs (umoci: ${RUNS}), one warmup each"
    tools=(strata strata_s)
    [ "$PODMAN1" = 1 ] && tools+=(podman podman_s)
    [ "$HAVE_UMOCI" = 1 ] && tools+=("umoci@$RUNS" "umoci_s@$RUNS")
    rounds commit1 "$RUNS_FAST" --warmup "${tools[@]}"
fi

# --- commit of the ~500 MB change ---------------------------------------------------------
# Every strata commit of c-big starts from a store without its layer (rmi + gc): gzip and
# zstd commits of the same upper have the same diff ID, hence the same layer dir.
run_commit500_strata_gzip() { "$SI" commit -q c-big b-big; }
prep_commit500_strata_gzip() { si_rmi_all b-big; }
run_commit500_strata_zstd() { "$SI" commit -q --compression zstd c-big b-big; }
prep_commit500_strata_zstd() { si_rmi_all b-big; }
run_commit500_floor_gzip() { floor_pipe "$UPPER_BIG" pigz -6; }
run_commit500_floor_zstd() { floor_pipe "$UPPER_BIG" zstd -3 -T0 -q -c; }
run_commit500_floorwork_gzip() { floor_work "$UPPER_BIG" pigz -6; }
prep_commit500_floorwork_gzip() { prep_work_floor; }
run_commit500_floorwork_zstd() { floor_work "$UPPER_BIG" zstd -3 -T0 -q -c; }
prep_commit500_floorwork_zstd() { prep_work_floor; }
run_commit500_podman() { "$PM" commit -q p-big localhost/b-big; }
prep_commit500_podman() { "$PM" rmi -f localhost/b-big >/dev/null 2>&1 || true; }
run_commit500_umoci() { umoci repack --image "$UL/big:big" "$UL/b-big"; }
prep_commit500_umoci() { umoci rm --image "$UL/big:big" 2>/dev/null; umoci gc --layout "$UL/big"; }
# A re-commit while the layer dir is already in the store: same work, the copy thrown away.
run_commit500_strata_again() { "$SI" commit -q c-big >>"$WORK/again.ids"; }

if want commit500; then
    if [ "$HAVE_UMOCI" = 1 ]; then
        # umoci's bundle gets the same ~500 MB change on top of the one-file change.
        cp -a "$UL/b-big/rootfs/data" "$UL/b-big/rootfs/data-copy"
        if umoci repack --image "$UL/big:big" "$UL/b-big" >>"$RUNLOG" 2>&1 &&
            [ "$(tar -tzf "$(umoci_last_layer "$UL/big" big)" | grep -c 'data-copy/large/random.bin$')" = 1 ]; then
            :
        else
            log "umoci repack of the ~500 MB change did not verify: its row is left out"
            HAVE_UMOCI=0
        fi
    fi
    log "case commit-500 (~500 MB change): ${RUNS} runs (work-matched floors: ${RUNS_SLOW})"
    tools=(strata_gzip strata_zstd floor_gzip floor_zstd "floorwork_gzip@$RUNS_SLOW" "floorwork_zstd@$RUNS_SLOW")
    [ "$PODMAN1" = 1 ] && tools+=(podman)
    [ "$HAVE_UMOCI" = 1 ] && tools+=(umoci)
    rounds commit500 "$RUNS" "${tools[@]}"
    rm -rf "$WORK/wm.dir" "$WORK/wm.blob"
    si_rmi_all b-big
    [ "$HAVE_UMOCI" = 1 ] && { umoci rm --image "$UL/big:big"; umoci gc --layout "$UL/big"; } >>"$RUNLOG" 2>&1
    [ "$PODMAN1" = 1 ] && "$PM" rmi -f localhost/b-big >>"$RUNLOG" 2>&1
    log "case commit-500, re-commit with the layer dir already there: ${RUNS_SLOW} runs"
    "$SI" commit -q c-big >>"$WORK/again.ids" 2>>"$RUNLOG"
    rounds commit500 "$RUNS_SLOW" strata_again
    # shellcheck disable=SC2046
    si_rmi_all $(cat "$WORK/again.ids")
fi

# --- export -------------------------------------------------------------------------------
# Everyone writes into a pipe: GNU tar reads no file data at all when its output is
# /dev/null, so `> /dev/null` would not time tar.
EXPORT_BYTES=0
if want export; then
    UPPER_ONE=$(upper_of c-one)
    LOWER_ONE=$(lower_of c-one)
    mkdir -p "$WORK/merged"
    run_export_strata() { "$SI" export -q c-one | cat >/dev/null; }
    run_export_podman() { "$PM" export p-one | cat >/dev/null; }
    run_export_floor() {
        unshare -m --propagation private sh -c 'mount -t overlay overlay -o "ro,lowerdir=$1:$2" "$3" &&
            tar -C "$3" -cf - . | cat >/dev/null' sh "$UPPER_ONE" "$LOWER_ONE" "$WORK/merged"
    }
    EXPORT_BYTES=$(unshare -m --propagation private sh -c 'mount -t overlay overlay -o "ro,lowerdir=$1:$2" "$3" &&
            tar -C "$3" -cf - . | wc -c' sh "$UPPER_ONE" "$LOWER_ONE" "$WORK/merged")
    [ "$("$SI" export -q c-one | tar -xOf - changed/file)" = one-file-change ] || die "export of c-one lacks the change"
    log "case export (the one-file container, $((EXPORT_BYTES / 1000000)) MB tar): ${RUNS} runs, one warmup each"
    tools=(strata floor)
    [ "$PODMAN1" = 1 ] && tools+=(podman)
    rounds export "$RUNS" --warmup "${tools[@]}"
fi

# --- save and load ------------------------------------------------------------------------
# The images: sl-gzip, the ~500 MB change committed (gzip) on the big image, two layers;
# sl-zstd, the same with zstd layers throughout (the big image imported with --compression
# zstd, the same change made on it and committed with --compression zstd). The archives
# (untimed, our save): $SL/gzip.tar (the hybrid save of sl-gzip), zstd.tar (of sl-zstd) and
# plain.tar (save --uncompressed of sl-gzip: plain layers, named by their diff IDs).
SL=$WORK/sl
SAVE_BYTES=0 SAVE_BLOB_BYTES=0 SAVE_SIZES=""
LOAD_META=""
# skopeo's big temp files (an oci-archive is written as a layout dir first) go to $WORK too
sk() { skopeo --tmpdir "$WORK/sktmp" "$@"; }
mkdir -p "$WORK/sktmp"
has_kind() { case ",$LOAD_KINDS," in *",$1,"*) return 0 ;; esac; return 1; }
image_id() { STRATA_IMAGE_ROOT=${2:-$STRATA_IMAGE_ROOT} "$SI" inspect "$1" | jq -r '.[0].Id'; }
# layer_types IMAGE [STORE]: the layers' media types, one a line
layer_types() { STRATA_IMAGE_ROOT=${2:-$STRATA_IMAGE_ROOT} "$SI" inspect "$1" | jq -r '.[0].Layers[].MediaType'; }
file_size() { stat -c %s "$1"; }
if want save || want load; then
    log "save/load: the images (gzip and zstd, two layers each) and their archives"
    mkdir -p "$SL/out"
    "$SI" commit -q c-big sl-gzip >>"$RUNLOG" 2>&1 || die "strata-image commit c-big sl-gzip failed"
    [ "$(layer_types sl-gzip | grep -c '+gzip$')" = 2 ] || die "sl-gzip does not have two gzip layers"
    "$SI" save -q -o "$SL/gzip.tar" sl-gzip 2>>"$RUNLOG" || die "strata-image save sl-gzip failed"
    ID_GZIP=$(image_id sl-gzip)
    ID_ZSTD=
    if want load && has_kind zstd; then
        "$SI" import -q --compression zstd "$WORK/big" bench-big-zstd >>"$RUNLOG" 2>&1 ||
            die "strata-image import --compression zstd failed"
        si_container c-big-z bench-big-zstd sh -c "$BIG_CHANGE"
        "$SI" commit -q --compression zstd c-big-z sl-zstd >>"$RUNLOG" 2>&1 || die "strata-image commit --compression zstd c-big-z failed"
        "$SI" rm -f c-big-z >>"$RUNLOG" 2>&1
        [ "$(layer_types sl-zstd | grep -c '+zstd$')" = 2 ] || die "sl-zstd does not have two zstd layers"
        "$SI" save -q -o "$SL/zstd.tar" sl-zstd 2>>"$RUNLOG" || die "strata-image save sl-zstd failed"
        ID_ZSTD=$(image_id sl-zstd)
    fi
    if want load && has_kind plain; then
        "$SI" save -q --uncompressed -o "$SL/plain.tar" sl-gzip 2>>"$RUNLOG" ||
            die "strata-image save --uncompressed sl-gzip failed"
    fi
    if [ "$HAVE_PODMAN" = 1 ] && ! "$PM" load -q -i "$SL/gzip.tar" >>"$RUNLOG" 2>&1; then
        log "podman load of our archive failed (see $RUNLOG): podman's save/load rows are left out"
        HAVE_PODMAN=0
    fi
    if start_docker >>"$RUNLOG" 2>&1 && d load -q -i "$SL/gzip.tar" >>"$RUNLOG" 2>&1 &&
        [ "$(d image inspect -f '{{.Id}}' sl-gzip:latest 2>>"$RUNLOG")" = "$ID_GZIP" ]; then
        HAVE_DOCKER=1
    else
        log "the private dockerd did not start or load our archive (see $RUNLOG, $DKW/dockerd.log): docker's rows are left out"
    fi
fi

# -- save: the 2-layer gzip image into a file ----------------------------------------------
# The floor is cat of exactly the blobs the archive holds (manifest, config, layers) into
# one file on the same filesystem. `save -o` fsyncs its temp file before renaming it, so
# the floor syncs its file too (`sync FILE`: fsync); the no-fsync pair is ours to stdout
# redirected to a file vs cat alone. Each run's output is removed in an untimed prep.
sl_out_clear() { rm -f "$SL/out/"* "$SL/out/".[!.]* 2>/dev/null; true; }
run_save_strata() { "$SI" save -q -o "$SL/out/strata.tar" sl-gzip; }
run_save_strata_oci() { "$SI" save -q --format oci-archive -o "$SL/out/strata-oci.tar" sl-gzip; }
run_save_floor() { cat "${SAVE_BLOBS[@]}" >"$SL/out/floor.tar" && sync "$SL/out/floor.tar"; }
# ... and with the hashing ours does (every blob checked against its digest as it is copied)
run_save_floorwork() { cat "${SAVE_BLOBS[@]}" | tee "$SL/out/floorwork.tar" | sha256 && sync "$SL/out/floorwork.tar"; }
run_save_strata_nosync() { "$SI" save -q sl-gzip >"$SL/out/strata-nosync.tar"; }
run_save_floor_nosync() { cat "${SAVE_BLOBS[@]}" >"$SL/out/floor-nosync.tar"; }
run_save_podman() { "$PM" save -q --format docker-archive -o "$SL/out/podman.tar" "$ID_GZIP"; }
run_save_podman_oci() { "$PM" save -q --format oci-archive -o "$SL/out/podman-oci.tar" "$ID_GZIP"; }
run_save_docker() { d save -o "$SL/out/docker.tar" sl-gzip:latest; }
run_save_skopeo() { sk copy -q "oci:$STRATA_IMAGE_ROOT:sl-gzip:latest" "docker-archive:$SL/out/skopeo.tar:sl-gzip:latest"; }
run_save_skopeo_oci() { sk copy -q "oci:$STRATA_IMAGE_ROOT:sl-gzip:latest" "oci-archive:$SL/out/skopeo-oci.tar:sl-gzip:latest"; }
SAVE_TOOLS="strata strata_oci floor floorwork strata_nosync floor_nosync podman podman_oci docker skopeo skopeo_oci"
for t in $SAVE_TOOLS; do eval "prep_save_$t() { sl_out_clear; }"; done
# save_out TOOL: the file a save wrote
save_out() { echo "$SL/out/${1//_/-}.tar"; }
# save_check TOOL: what it wrote is the archive it should be (ours: the same blobs as the
# floor's; the floors: their bytes); its size is noted once.
save_check() {
    local t=$1 f list
    f=$(save_out "$t")
    [ -s "$f" ] || return 1
    case " $SAVE_SIZES " in *" $t:"*) ;; *) SAVE_SIZES="$SAVE_SIZES $t:$(file_size "$f")" ;; esac
    case $t in floor*) [ "$(file_size "$f")" = "$SAVE_BLOB_BYTES" ]; return ;; esac
    list=$(tar -tf "$f") || return 1
    case $t in
    *oci) grep -qx index.json <<<"$list" && ! grep -qx manifest.json <<<"$list" ;;
    *) grep -qx manifest.json <<<"$list" ;;
    esac || return 1
    case $t in strata*) [ "$(grep -c '^blobs/sha256/.' <<<"$list")" = "${#SAVE_BLOBS[@]}" ] ;; esac
}
for t in $SAVE_TOOLS; do
    case $t in strata*) ;; *) eval "check_save_$t() { save_check $t; }" ;; esac
done
if want save; then
    # the blobs of the archive, in the store
    mapfile -t SAVE_BLOBS < <(tar -tf "$SL/gzip.tar" | grep -E '^blobs/sha256/[0-9a-f]{64}$' | sed "s|^|$STRATA_IMAGE_ROOT/|")
    [ "${#SAVE_BLOBS[@]}" = 4 ] || die "the archive of sl-gzip holds ${#SAVE_BLOBS[@]} blobs, not 4 (manifest, config, 2 layers)"
    SAVE_BLOB_BYTES=$(cat "${SAVE_BLOBS[@]}" | wc -c)
    SAVE_BYTES=$(file_size "$SL/gzip.tar")
    # ours, checked before timing (the untimed run is also their warmup)
    for t in strata strata_oci strata_nosync; do
        sl_out_clear
        "run_save_$t" >>"$RUNLOG" 2>&1 </dev/null && save_check "$t" ||
            die "save: $t did not write the archive it should (see $RUNLOG)"
    done
    sl_out_clear
    tools=(strata strata_oci floor floorwork strata_nosync floor_nosync)
    [ "$HAVE_PODMAN" = 1 ] && tools+=("podman@$RUNS_PEER" "podman_oci@$RUNS_PEER")
    [ "$HAVE_DOCKER" = 1 ] && tools+=("docker@$RUNS_PEER")
    tools+=("skopeo@$RUNS_PEER" "skopeo_oci@$RUNS_PEER")
    log "case save (sl-gzip, $((SAVE_BYTES / 1000000)) MB archive): ${RUNS} runs (podman, docker, skopeo: ${RUNS_PEER})"
    rounds save "$RUNS" "${tools[@]}"
    sl_out_clear
fi

# -- load: each archive into an empty store ------------------------------------------------
# Ours into a fresh STRATA_IMAGE_ROOT each run (removed in the untimed prep). The floor is
# the issue's: for each layer blob of the archive (extracted beforehand, untimed), one
# after the other, `pigz -d < blob | tar -x` (zstd -d, or tar -x of the plain blob) into a
# fresh dir on the same filesystem. Our load does more: it reads the archive and writes
# each member into the store through sha256, hashes each layer's tar (the diff ID) and
# fsyncs the blobs; the work-matched floor does that too (tar -x of the whole archive,
# sha256 of each layer blob and of its tar, sync of the blobs). podman and docker load
# into their stores (their image removed in the prep); skopeo copies the blobs into an OCI
# layout and unpacks nothing (informational).
LSTORE=$SL/store
# sl_layers KIND: the layer blobs of the archive, in order, as paths inside it (manifest.json)
sl_layers() { tar -xOf "$SL/$1.tar" manifest.json | jq -r '.[0].Layers[]'; }
decomp() { case $1 in gzip) pigz -d -c ;; zstd) zstd -d -q -c ;; plain) cat ;; esac; }
load_floor() { # load_floor KIND
    local k=$1 i=0 rel
    for rel in $(cat "$SL/x.$k.layers"); do
        i=$((i + 1))
        mkdir "$SL/fl/$i" || return
        if [ "$k" = plain ]; then
            tar -C "$SL/fl/$i" -xf "$SL/x.$k/$rel" || return
        else
            decomp "$k" <"$SL/x.$k/$rel" | tar -C "$SL/fl/$i" -xf - || return
        fi
    done
}
load_floorwork() { # load_floorwork KIND
    local k=$1 i=0 rel w=$SL/fw fifo=$WORK/fifo.sha p1 p2 ps rc=0
    mkdir -p "$w/blobs" && tar -C "$w/blobs" -xf "$SL/$k.tar" || return
    # the blobs' fsyncs overlap the unpacking, as ours do
    find "$w/blobs" -type f -exec sync {} + &
    ps=$!
    for rel in $(cat "$SL/x.$k.layers"); do
        i=$((i + 1))
        mkdir "$w/$i" || return
        sha256 <"$w/blobs/$rel" &
        p1=$!
        rm -f "$fifo" && mkfifo "$fifo"
        sha256 <"$fifo" &
        p2=$!
        decomp "$k" <"$w/blobs/$rel" | tee "$fifo" | tar -C "$w/$i" -xf - || rc=$?
        wait "$p1" || rc=$?
        wait "$p2" || rc=$?
    done
    wait "$ps" || rc=$?
    return "$rc"
}
sl_rmi_podman() { "$PM" rmi -f $ID_GZIP $ID_ZSTD >/dev/null 2>&1 || true; }
sl_rmi_docker() { d rmi -f $ID_GZIP $ID_ZSTD >/dev/null 2>&1 || true; }
for k in gzip zstd plain; do
    eval "run_load_${k}_strata() { STRATA_IMAGE_ROOT=\$LSTORE \"\$SI\" load -q -i \"\$SL/$k.tar\"; }
prep_load_${k}_strata() { rm -rf \"\$LSTORE\"; }
run_load_${k}_floor() { load_floor $k; }
prep_load_${k}_floor() { rm -rf \"\$SL/fl\" && mkdir \"\$SL/fl\"; }
run_load_${k}_floorwork() { load_floorwork $k; }
prep_load_${k}_floorwork() { rm -rf \"\$SL/fw\"; }
run_load_${k}_podman() { \"\$PM\" load -q -i \"\$SL/$k.tar\"; }
prep_load_${k}_podman() { sl_rmi_podman; }
run_load_${k}_docker() { d load -q -i \"\$SL/$k.tar\"; }
prep_load_${k}_docker() { sl_rmi_docker; }
run_load_${k}_skopeo() { sk copy -q \"docker-archive:\$SL/$k.tar\" \"oci:\$SL/sk:sl\"; }
prep_load_${k}_skopeo() { rm -rf \"\$SL/sk\"; }"
done
# load_check KIND TOOL: what the run loaded (or extracted) is the image with its change.
load_check() {
    local k=$1 t=$2 id=$ID_GZIP img=sl-gzip
    [ "$k" = zstd ] && id=$ID_ZSTD img=sl-zstd
    case $t in
    strata)
        [ "$(STRATA_IMAGE_ROOT=$LSTORE "$SI" run --rm "$img" sh -c "$BIG_CHECK" 2>>"$RUNLOG")" = "$WANT_SMALL_DIRS" ] &&
            [ "$(image_id "$img" "$LSTORE")" = "$id" ] &&
            case $k in
            plain) [ "$(layer_types "$img" "$LSTORE" | grep -cx 'application/vnd.oci.image.layer.v1.tar')" = 2 ] ;;
            *) [ "$(layer_types "$img" "$LSTORE" | grep -c "+$k\$")" = 2 ] ;;
            esac
        ;;
    floor) cmp -s "$SL/fl/2/data-copy/large/random.bin" "$WORK/big/data/large/random.bin" ;;
    floorwork) cmp -s "$SL/fw/2/data-copy/large/random.bin" "$WORK/big/data/large/random.bin" ;;
    podman) "$PM" images -q --no-trunc | grep -q "${id#sha256:}" ;;
    docker) [ "$(d image inspect -f '{{.Id}}' "$id")" = "$id" ] ;;
    skopeo) sk inspect "oci:$SL/sk:sl" | jq -e '.Layers | length == 2' >/dev/null ;;
    esac
}
for k in gzip zstd plain; do
    for t in floor floorwork podman docker skopeo; do
        eval "check_load_${k}_$t() { load_check $k $t; }"
    done
done
# The other tools' loads are timed for these kinds (default: the gzip archive only, to keep
# the run short). docker 20.10 reads no zstd layers ("archive/tar: invalid tar header").
LOAD_PEER_KINDS=${LOAD_PEER_KINDS:-gzip}
if want load; then
    for k in ${LOAD_KINDS//,/ }; do
        rm -rf "$SL/x.$k" && mkdir -p "$SL/x.$k" && tar -C "$SL/x.$k" -xf "$SL/$k.tar"
        sl_layers "$k" >"$SL/x.$k.layers"
        [ "$(wc -l <"$SL/x.$k.layers")" = 2 ] || die "the $k archive's manifest.json does not list two layers"
        tarb=0
        for rel in $(cat "$SL/x.$k.layers"); do
            tarb=$((tarb + $(decomp "$k" <"$SL/x.$k/$rel" | wc -c)))
        done
        LOAD_META="$LOAD_META load_${k}_bytes=$(file_size "$SL/$k.tar") load_${k}_tar=$tarb"
        # ours, checked before timing (the untimed run is also its warmup)
        prep_load_${k}_strata
        out=$(run_load_${k}_strata 2>>"$RUNLOG" </dev/null) && echo "$out" >>"$RUNLOG" &&
            grep -qx "Loaded image: sl-$([ "$k" = zstd ] && echo zstd || echo gzip):latest" <<<"$out" &&
            load_check "$k" strata ||
            die "load of the $k archive: the image does not run with the change, or its layers are not $k (see $RUNLOG)"
        rm -rf "$LSTORE"
        tools=(strata floor "floorwork@$RUNS_PEER")
        peers=""
        if [ "$RUNS_PEER" -gt 0 ] && case ",$LOAD_PEER_KINDS," in *",$k,"*) true ;; *) false ;; esac; then
            [ "$HAVE_PODMAN" = 1 ] && tools+=("podman@$RUNS_PEER")
            [ "$HAVE_DOCKER" = 1 ] && tools+=("docker@$RUNS_PEER")
            tools+=("skopeo@$RUNS_PEER")
            peers=", podman, docker, skopeo"
        fi
        sl_rmi_podman
        [ "$HAVE_DOCKER" = 1 ] && sl_rmi_docker
        log "case load of the $k archive ($(($(file_size "$SL/$k.tar") / 1000000)) MB, $((tarb / 1000000)) MB of tar): ${RUNS} runs (work-matched floor$peers: ${RUNS_PEER})"
        rounds "load_$k" "$RUNS" "${tools[@]}"
        rm -rf "$LSTORE" "$SL/fl" "$SL/fw" "$SL/sk" "$SL/x.$k"
    done
fi

LOAD_END=$(cut -d' ' -f1-3 /proc/loadavg)

# ---------------------------------------------------------------------------------------
# Report
# ---------------------------------------------------------------------------------------
rev=$(cd "$REPO" && git rev-parse --short HEAD 2>/dev/null || echo unknown)
[ -n "$(cd "$REPO" && git status --porcelain -- src Cargo.toml Cargo.lock 2>/dev/null)" ] && rev="$rev+dirty"
{
    echo "strata_rev=$rev"
    echo "host=$(uname -r), $(nproc) cpus, $(free -g | awk '/^Mem:/ {print $2}') GiB"
    echo "fs=$FS_DESC"
    echo "sha=$SHA_DESC"
    echo "versions=podman $(podman --version | awk '{print $3}'), runc $(runc --version | awk 'NR==1 {print $3}'), umoci $(umoci --version | awk '{print $3}'), $(tar --version | head -1), pigz $(pigz --version 2>&1 | awk '{print $2}'), zstd $(zstd -V | grep -oE 'v[0-9.]+' | head -1)"
    echo "sizes=SCALE $SCALE, SMALL_SCALE $SMALL_SCALE, RUNS $RUNS, RUNS_FAST $RUNS_FAST, RUNS_SLOW $RUNS_SLOW"
    echo "big_bytes=$BIG_BYTES"
    echo "big_files=$BIG_FILES"
    echo "small_bytes=$SMALL_BYTES"
    echo "small_files=$SMALL_FILES"
    echo "change_bytes=$CHANGE_BYTES"
    echo "export_bytes=$EXPORT_BYTES"
    echo "blob_gzip=$BLOB_gzip"
    echo "blob_zstd=$BLOB_zstd"
    echo "floor_gzip_bytes=$FLOOR_GZIP_BYTES"
    echo "floor_zstd_bytes=$FLOOR_ZSTD_BYTES"
    echo "save_bytes=$SAVE_BYTES"
    echo "save_blob_bytes=$SAVE_BLOB_BYTES"
    echo "save_sizes=$SAVE_SIZES"
    for kv in $LOAD_META; do echo "$kv"; done
    echo "versions2=docker $(dockerd --version 2>/dev/null | awk '{print $3}' | tr -d ,), skopeo $(skopeo --version | awk '{print $3}'), containerd $(containerd --version 2>/dev/null | awk '{print $3}')"
    echo "cases=$CASES; load kinds $LOAD_KINDS; RUNS_PEER $RUNS_PEER"
    echo "loadavg=$LOAD_START (start), $LOAD_END (end)"
} >"$OUT/meta.txt"

python3 - "$OUT" <<'PY' | tee "$OUT/summary.txt"
import glob, os, statistics, sys
out = sys.argv[1]
meta = dict(l.rstrip("\n").split("=", 1) for l in open(os.path.join(out, "meta.txt")) if "=" in l)
def times(case, tool):
    fn = os.path.join(out, "times", f"{case}__{tool}.us")
    if not os.path.exists(fn):
        return None
    v = [int(x) / 1e6 for x in open(fn).read().split()]
    return v or None
MB = 1e6
big, small = int(meta["big_bytes"]), int(meta["small_bytes"])
change, export = int(meta["change_bytes"]), int(meta["export_bytes"])
save_b = int(meta.get("save_bytes", 0))
load_tar = {k: int(meta.get(f"load_{k}_tar", 0)) for k in ("gzip", "zstd", "plain")}
load_arch = {k: int(meta.get(f"load_{k}_bytes", 0)) for k in ("gzip", "zstd", "plain")}
# case, tool, label, bytes (for MB/s), reference tool, target ratio (None: info)
rows = [
    ("import", "strata", "strata-image import DIR (gzip)", big, "floor", 1.2),
    ("import", "floor", "floor: tar | pigz -6 > /dev/null", big, None, None),
    ("import", "floorwork", "work-matched: + untar, sha256 x2, blob file, fsync", big, "floor", None),
    ("import", "podman", "podman import (tar on stdin)", big, "floor", None),
    ("commit1", "strata", "strata-image commit, big image", None, "podman", 1.0),
    ("commit1", "podman", "podman commit, big image", None, None, None),
    ("commit1", "umoci", "umoci repack, big image", None, "podman", None),
    ("commit1", "strata_s", "strata-image commit, small image", None, "podman_s", 1.0),
    ("commit1", "podman_s", "podman commit, small image", None, None, None),
    ("commit1", "umoci_s", "umoci repack, small image", None, "podman_s", None),
    ("commit500", "strata_gzip", "strata-image commit (gzip)", change, "floor_gzip", 1.2),
    ("commit500", "strata_zstd", "strata-image commit --compression zstd", change, "floor_zstd", 1.2),
    ("commit500", "floor_gzip", "floor: tar | sha256 | pigz -6 | sha256", change, None, None),
    ("commit500", "floor_zstd", "floor: tar | sha256 | zstd -3 -T0 | sha256", change, None, None),
    ("commit500", "floorwork_gzip", "work-matched pigz floor (+untar, blob, fsync)", change, "floor_gzip", None),
    ("commit500", "floorwork_zstd", "work-matched zstd floor (+untar, blob, fsync)", change, "floor_zstd", None),
    ("commit500", "strata_again", "strata-image commit (gzip), layer dir exists", change, "floor_gzip", None),
    ("commit500", "podman", "podman commit (stores the layer uncompressed)", change, "floor_gzip", None),
    ("commit500", "umoci", "umoci repack (gzip)", change, "floor_gzip", None),
    ("export", "strata", "strata-image export | cat", export, "floor", 1.5),
    ("export", "floor", "floor: tar of the merged overlay | cat", export, None, None),
    ("export", "podman", "podman export | cat", export, "floor", None),
    ("save", "strata", "strata-image save -o (hybrid; fsync)", save_b, "floor", 1.5),
    ("save", "strata_oci", "strata-image save -o --format oci-archive", save_b, "floor", 1.5),
    ("save", "floor", "floor: cat of the blobs > file; sync file", save_b, None, None),
    ("save", "floorwork", "work-matched: cat | tee file | sha256; sync file", save_b, "floor", None),
    ("save", "strata_nosync", "strata-image save > file (no fsync)", save_b, "floor_nosync", None),
    ("save", "floor_nosync", "floor: cat of the blobs > file (no fsync)", save_b, None, None),
    ("save", "podman", "podman save (docker-archive)", save_b, "floor_nosync", None),
    ("save", "podman_oci", "podman save --format oci-archive", save_b, "floor_nosync", None),
    ("save", "docker", "docker save -o", save_b, "floor_nosync", None),
    ("save", "skopeo", "skopeo copy oci: docker-archive:", save_b, "floor_nosync", None),
    ("save", "skopeo_oci", "skopeo copy oci: oci-archive:", save_b, "floor_nosync", None),
]
DEC = {"gzip": "pigz -d |", "zstd": "zstd -d |", "plain": ""}
for k in ("gzip", "zstd", "plain"):
    c = f"load_{k}"
    rows += [
        (c, "strata", f"strata-image load -i ({k} layers)", load_tar[k], "floor", 1.2),
        (c, "floor", f"floor: per layer {DEC[k]} tar -x".replace("  ", " "), load_tar[k], None, None),
        (c, "floorwork", "work-matched: + tar -x archive, sha256 x2, fsync", load_tar[k], "floor", None),
        (c, "podman", "podman load -i", load_tar[k], "floor", None),
        (c, "docker", "docker load -i", load_tar[k], "floor", None),
        (c, "skopeo", "skopeo copy docker-archive: oci: (no unpack)", load_tar[k], "floor", None),
    ]
titles = {
    "import": f"import of the big image ({big / MB:.0f} MB tar, {meta['big_files']} entries)",
    "commit1": f"commit of a one-file change (big image {big / MB:.0f} MB, small {small / MB:.0f} MB)",
    "commit500": f"commit of the ~500 MB change ({change / MB:.0f} MB tar of the upper dir)",
    "export": f"export of the one-file container ({export / MB:.0f} MB tar)",
    "save": f"save of the 2-layer gzip image ({save_b / MB:.0f} MB archive; MB/s of it for every tool)",
}
for k, what in (("gzip", "our hybrid save, gzip layers"), ("zstd", "the same of the zstd image"),
                ("plain", "save --uncompressed, plain layers")):
    titles[f"load_{k}"] = (f"load of {what} ({load_arch[k] / MB:.0f} MB archive, 2 layers, "
                           f"{load_tar[k] / MB:.0f} MB of tar; MB/s of tar)")
med = {}
for case, tool, *_ in rows:
    t = times(case, tool)
    if t:
        med[(case, tool)] = statistics.median(t)
def fmt_s(s):
    return f"{s * 1000:.1f} ms" if s < 1 else f"{s:.2f} s"
lines = []
p = lines.append
verdicts = []
p(f"strata-image benchmark, strata {meta.get('strata_rev')}; {meta.get('host')}")
p(f"  {meta.get('versions')}")
if any(c in meta.get("cases", "") for c in ("save", "load")):
    p(f"  {meta.get('versions2')}")
p(f"  cases: {meta.get('cases')}")
p(f"  {meta.get('sizes', '')}")
p(f"  work filesystem {meta.get('fs')}; the floors hash with {meta.get('sha')}")
p(f"  loadavg {meta.get('loadavg')}; warm page cache; sync before every timed command")
p("")
p(f"  {'case / tool':<52} {'median':>10} {'min':>9} {'max':>9} {'n':>3} {'MB/s':>7} {'ratio':>14} {'paired':>7}  target")
cur = None
for case, tool, label, nbytes, ref, target in rows:
    t = times(case, tool)
    if not t:
        continue
    if case != cur:
        p(f"## {titles[case]}")
        cur = case
    m = med[(case, tool)]
    mbs = f"{nbytes / MB / m:.0f}" if nbytes else "-"
    ratio, verdict, paired = "", "", ""
    if ref and (case, ref) in med:
        r = m / med[(case, ref)]
        ratio = f"{r:.2f}x {ref}"
        # The median of the ratios within each round (same background load for both),
        # where both ran in the same rounds.
        rt = times(case, ref)
        k = min(len(t), len(rt))
        if tool != "strata_again" and k >= 1:
            paired = f"{statistics.median(a / b for a, b in zip(t[:k], rt[:k])):.2f}x"
        if target is not None:
            ok = r <= target
            verdict = f"<= {target}x: {'MET' if ok else 'MISSED'}"
            verdicts.append((f"{case} {tool}", r, ref, target, ok))
    p(f"  {label:<52} {fmt_s(m):>10} {fmt_s(min(t)):>9} {fmt_s(max(t)):>9} {len(t):>3} {mbs:>7} {ratio:>14} {paired:>7}  {verdict}")
# Flat as the image grows: one-file commit time, big image over small image.
p("")
if ("commit1", "strata") in med:
    p("## one-file commit as the image grows (big/small, same change; paired: median of the")
    p("## per-round ratios, which the verdict uses: ms-level medians move with others' bursts)")
for tool, label in (("strata", "strata-image commit"), ("podman", "podman commit"), ("umoci", "umoci repack")):
    if (("commit1", tool) in med) and (("commit1", tool + "_s") in med):
        b, s = med[("commit1", tool)], med[("commit1", tool + "_s")]
        tb, ts = times("commit1", tool), times("commit1", tool + "_s")
        pr = statistics.median(x / y for x, y in zip(tb, ts))
        line = (f"  {label:<22} small {fmt_s(s):>9}  big {fmt_s(b):>9}  big/small {b / s:5.2f}x"
                f"  paired {pr:5.2f}x  (+{(b - s) * 1000:.1f} ms)")
        if tool == "strata":
            ok = pr <= 1.25
            line += f"  flat (paired <= 1.25x): {'MET' if ok else 'MISSED'}"
            verdicts.append(("commit1 flat (big/small)", pr, "strata_s", 1.25, ok))
        p(line)
if int(meta.get("blob_gzip", 0)):
    p(f"  compressed ~500 MB change: strata gzip {int(meta['blob_gzip']) / MB:.1f} MB, pigz -6 {int(meta['floor_gzip_bytes']) / MB:.1f} MB; "
      f"strata zstd {int(meta['blob_zstd']) / MB:.1f} MB, zstd -3 {int(meta['floor_zstd_bytes']) / MB:.1f} MB")
if meta.get("save_sizes", "").strip():
    sz = dict(x.split(":") for x in meta["save_sizes"].split())
    p("  save output sizes (MB): " + ", ".join(f"{t} {int(v) / MB:.0f}" for t, v in sz.items()))
p("")
p("## targets")
for name, r, ref, target, ok in verdicts:
    p(f"  {name:<28} {r:6.2f}x {ref:<12} target <= {target}x  {'MET' if ok else 'MISSED'}")
# Spread, to say how noisy the run was.
p("")
spreads = []
for (case, tool), m in med.items():
    t = times(case, tool)
    if len(t) >= 3:
        spreads.append(((max(t) - min(t)) / m, case, tool))
if spreads:
    spreads.sort()
    p(f"noise: (max-min)/median over {len(spreads)} rows with n>=3: median {statistics.median(s for s, *_ in spreads) * 100:.0f}%, "
      f"worst {spreads[-1][0] * 100:.0f}% ({spreads[-1][1]} {spreads[-1][2]})")
if os.path.exists(os.path.join(out, "failures.txt")):
    p("FAILED runs (left out of the medians):")
    for l in open(os.path.join(out, "failures.txt")):
        p("  " + l.rstrip())
print("\n".join(lines))
PY
log "results (per-run times in times/*.us, commands.log, meta.txt, summary.txt) in $OUT"
