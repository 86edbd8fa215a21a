#!/usr/bin/env bash
# Start-to-exit time under real clients, strata vs runc in the same run:
#   ctr run --rm busybox true      (private containerd, runc v2 shim, --runc-binary)
#   podman run --rm busybox true   (private storage, cgroupfs, --network none)
# Runs alternate runtime by runtime (ABAB…) so drift hits both alike; the report gives
# medians and strata/runc ratios. Informational: it never fails on a ratio.
#
#   bench/clients.sh              # RUNS=20 per runtime per client, 3 warmups
#   RUNS=50 bench/clients.sh
#   STRATA_BIN=path bench/clients.sh   # skip the static build
# Needs root, containerd/ctr, podman/conmon, runc, umoci, skopeo (installed if missing).
source "$(cd "$(dirname "$0")" && pwd)/../integration/lib/common.sh"

RUNS=${RUNS:-20}
WARMUP=${WARMUP:-3}
NS=strata-bench
IMG=docker.io/library/busybox:latest
CTD=$WORKDIR/containerd
SOCK=$CTD/containerd.sock
CTD_PID=
# podman's parent cgroup: removed at exit unless it was there before.
PARENT_CGROUPS=$(ls -d /sys/fs/cgroup/libpod_parent /sys/fs/cgroup/*/libpod_parent 2>/dev/null)

cleanup() {
    set +e
    [ -n "$CTD_PID" ] && kill "$CTD_PID" 2>/dev/null && wait "$CTD_PID" 2>/dev/null
    [ -x "$WORKDIR/podman" ] && "$WORKDIR/podman" rm -a -f -t 0 >/dev/null 2>&1
    local p
    for p in /proc/[0-9]*; do
        [ "${p#/proc/}" = $$ ] && continue
        tr '\0' ' ' 2>/dev/null <"$p/cmdline" | grep -qF -- "$WORKDIR" && kill -9 "${p#/proc/}" 2>/dev/null
    done
    awk -v d="$WORKDIR" 'index($5, d) == 1 { print $5 }' /proc/self/mountinfo | sort -r |
        while read -r m; do umount -l "$m" 2>/dev/null; done
    find /sys/fs/cgroup -depth -type d \( -name "cb$$-*" -o -name "$NS" \) -exec rmdir {} \; 2>/dev/null
    [ -n "$PARENT_CGROUPS" ] || find /sys/fs/cgroup/libpod_parent /sys/fs/cgroup/*/libpod_parent \
        -depth -type d -exec rmdir {} \; 2>/dev/null
    rm -rf "$WORKDIR"
}
trap cleanup EXIT
trap 'exit 130' INT TERM

need_pkgs containerd runc podman conmon
build_strata || { log "strata build failed"; exit 1; }
build_image || { log "image build failed"; exit 1; }
RUNC=$(command -v runc)

# --- a private containerd --------------------------------------------------------------
mkdir -p "$CTD"/{root,state} "$WORKDIR/rroot"
cat >"$CTD/config.toml" <<EOF
version = 2
root = "$CTD/root"
state = "$CTD/state"
disabled_plugins = ["io.containerd.grpc.v1.cri"]
[grpc]
  address = "$SOCK"
[ttrpc]
  address = "$SOCK.ttrpc"
[debug]
  address = ""
[metrics]
  address = ""
EOF
setsid containerd --config "$CTD/config.toml" >"$CTD/log" 2>&1 </dev/null &
CTD_PID=$!
ctrc() { timeout -k 5 60 ctr --address "$SOCK" -n "$NS" "$@"; }
for _ in $(seq 100); do ctrc version >/dev/null 2>&1 && break; sleep 0.1; done
ctrc images import "$IMAGE_OCI_TAR" >/dev/null || { log "import failed"; exit 1; }

# --- a private podman ------------------------------------------------------------------
mkdir -p "$WORKDIR"/{storage,runroot,tmp,cni}
nofile=$(ulimit -Hn)
nproc=$(ulimit -Hu)
{ [ "$nproc" = unlimited ] || [ "$nproc" -gt 32768 ]; } && nproc=32768
cat >"$WORKDIR/containers.conf" <<EOF
[containers]
default_ulimits = ["nofile=$nofile:$nofile", "nproc=$nproc:$nproc"]
netns = "none"
[engine]
cgroup_manager = "cgroupfs"
events_logger = "none"
[network]
network_config_dir = "$WORKDIR/cni"
EOF
printf '[storage]\ndriver = "overlay"\nrunroot = "%s"\ngraphroot = "%s"\n' \
    "$WORKDIR/runroot" "$WORKDIR/storage" >"$WORKDIR/storage.conf"
cat >"$WORKDIR/podman" <<EOF
#!/bin/sh
export CONTAINERS_CONF="$WORKDIR/containers.conf" CONTAINERS_STORAGE_CONF="$WORKDIR/storage.conf"
exec timeout 120 podman --root "$WORKDIR/storage" --runroot "$WORKDIR/runroot" \\
    --tmpdir "$WORKDIR/tmp" --cgroup-manager cgroupfs --events-backend none \\
    --network-config-dir "$WORKDIR/cni" --storage-driver overlay "\$@"
EOF
chmod 0755 "$WORKDIR/podman"
"$WORKDIR/podman" load -q -i "$IMAGE_DOCKER_TAR" >/dev/null || { log "podman load failed"; exit 1; }

# --- timing ----------------------------------------------------------------------------
n=0
one() { # one CLIENT RUNTIME-BINARY: run `true` once, print milliseconds
    local client=$1 rt=$2 t0 t1
    n=$((n + 1))
    t0=$(date +%s%N)
    case $client in
    ctr) ctrc run --rm --runc-binary "$rt" --runc-root "$WORKDIR/rroot" "$IMG" "cb$$-$n" true </dev/null >/dev/null ;;
    podman) "$WORKDIR/podman" --runtime "$rt" run --rm --network none "$IMG" true >/dev/null ;;
    esac || { log "$client with $rt failed"; return 1; }
    t1=$(date +%s%N)
    echo $(((t1 - t0) / 1000)) # microseconds
}
median() { sort -n | awk '{ a[NR] = $1 } END { print (NR % 2) ? a[(NR + 1) / 2] : (a[NR / 2] + a[NR / 2 + 1]) / 2 }'; }

printf '%-22s %10s %10s %8s\n' "client (median of $RUNS)" "strata ms" "runc ms" "s/runc"
for client in ctr podman; do
    for _ in $(seq "$WARMUP"); do one $client "$STRATA" >/dev/null && one $client "$RUNC" >/dev/null || exit 1; done
    : >"$WORKDIR/s" && : >"$WORKDIR/r"
    for _ in $(seq "$RUNS"); do
        one $client "$STRATA" >>"$WORKDIR/s" || exit 1
        one $client "$RUNC" >>"$WORKDIR/r" || exit 1
    done
    s=$(median <"$WORKDIR/s")
    r=$(median <"$WORKDIR/r")
    awk -v c="$client run --rm true" -v s="$s" -v r="$r" \
        'BEGIN { printf "%-22s %10.1f %10.1f %7.3fx\n", c, s / 1000, r / 1000, s / r }'
done
