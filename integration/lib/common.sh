# Shared by integration/*.sh: counters, checks, the strata build, the busybox image.
# Source it; it sets REPO, STRATA (static release build, installed into a private bin
# dir as both `strata` and `runc`), WORKDIR (removed at exit) and the check helpers.

set -uo pipefail
REPO=$(cd "$(dirname "${BASH_SOURCE[0]}")/../.." && pwd)
PASS=0
FAIL=0

log() { echo "[$(basename "$0" .sh)] $*" >&2; }

# check NAME CMD...: run CMD; count and print the result.
check() {
    local name=$1
    shift
    if "$@" >/tmp/strata-check.$$ 2>&1; then
        PASS=$((PASS + 1))
        echo "ok   - $name"
    else
        FAIL=$((FAIL + 1))
        echo "FAIL - $name"
        sed 's/^/       /' /tmp/strata-check.$$ | tail -20
    fi
}

# expect_eq NAME WANT GOT
expect_eq() {
    if [ "$2" = "$3" ]; then
        PASS=$((PASS + 1))
        echo "ok   - $1"
    else
        FAIL=$((FAIL + 1))
        echo "FAIL - $1: want [$2], got [$3]"
    fi
}

summary() {
    rm -f /tmp/strata-check.$$
    echo "$PASS passed, $FAIL failed"
    [ "$FAIL" -eq 0 ]
}

need_pkgs() {
    local missing=()
    for p in "$@"; do dpkg -s "$p" >/dev/null 2>&1 || missing+=("$p"); done
    if [ ${#missing[@]} -gt 0 ]; then
        log "installing ${missing[*]}"
        export DEBIAN_FRONTEND=noninteractive
        apt-get install -y -q --no-install-recommends "${missing[@]}" >&2 ||
            { apt-get update -q >&2 && apt-get install -y -q --no-install-recommends "${missing[@]}" >&2; }
    fi
}

WORKDIR=$(mktemp -d /tmp/strata-integration.XXXXXX)

# The shipped (static) strata, in $WORKDIR/bin as `strata` and as `runc` (for clients
# that only look up `runc` on PATH).
# STRATA_BIN=path skips the build (e.g. target/debug/strata while iterating).
build_strata() {
    local bin=${STRATA_BIN:-}
    if [ -z "$bin" ]; then
        need_pkgs libseccomp-dev pkg-config
        bin=$(bash "$REPO/bundles/build-static.sh") || return 1
    fi
    mkdir -p "$WORKDIR/bin"
    install -m 0755 "$bin" "$WORKDIR/bin/strata"
    ln -sf strata "$WORKDIR/bin/runc"
    STRATA=$WORKDIR/bin/strata
}

# An OCI image layout of the busybox rootfs, tagged busybox:latest, and the same as
# oci-archive and docker-archive tars: $IMAGE_OCI_TAR, $IMAGE_DOCKER_TAR.
# (umoci and skopeo until strata-image can save one.)
build_image() {
    need_pkgs umoci skopeo busybox-static
    local rootfs=$REPO/bundles/busybox/rootfs
    [ -x "$rootfs/bin/busybox" ] || bash "$REPO/bundles/busybox/make-rootfs.sh" >&2
    local layout=$WORKDIR/image
    umoci init --layout "$layout" &&
        umoci new --image "$layout:latest" &&
        umoci unpack --rootless --image "$layout:latest" "$WORKDIR/unpacked" >/dev/null &&
        cp -a "$rootfs/." "$WORKDIR/unpacked/rootfs/" &&
        umoci repack --image "$layout:latest" "$WORKDIR/unpacked" &&
        umoci config --image "$layout:latest" --config.cmd sh --config.env PATH=/usr/sbin:/usr/bin:/sbin:/bin ||
        return 1
    IMAGE_OCI_TAR=$WORKDIR/busybox-oci.tar
    IMAGE_DOCKER_TAR=$WORKDIR/busybox-docker.tar
    skopeo copy -q "oci:$layout:latest" "oci-archive:$IMAGE_OCI_TAR:docker.io/library/busybox:latest" &&
        skopeo copy -q "oci:$layout:latest" "docker-archive:$IMAGE_DOCKER_TAR:busybox:latest"
}

# podman lowers its own RLIMIT_NPROC to 32768 (and cannot raise NOFILE past the hard
# limit without CAP_SYS_RESOURCE); its default container rlimits (1048576) would need
# that capability. Sets $nofile and $nproc to what the runtime will inherit, and
# $PODMAN_ULIMITS to the containers.conf line that pins them.
podman_ulimits() {
    nofile=$(ulimit -Hn)
    nproc=$(ulimit -Hu)
    [ "$nproc" = unlimited ] || [ "$nproc" -gt 32768 ] && nproc=32768
    [ "$nofile" = unlimited ] && nofile=1048576
    PODMAN_ULIMITS="default_ulimits = [\"nofile=$nofile:$nofile\", \"nproc=$nproc:$nproc\"]"
}

# Processes, mounts or cgroups whose name contains $1.
leftovers() {
    local pat=$1
    {
        grep -- "$pat" /proc/self/mountinfo | sed 's/^/mount: /'
        find /sys/fs/cgroup -maxdepth 6 -type d -name "*$pat*" 2>/dev/null | sed 's/^/cgroup: /'
    } || true
}
