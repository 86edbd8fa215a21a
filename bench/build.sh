#!/usr/bin/env bash
# Build benchmark: strata-image build vs buildah bud (and docker build when a private
# dockerd starts), same Dockerfiles, same base image, same machine, in one run.
#
#   bench/build.sh                    # release build of strata (bundles/build-static.sh, as
#                                     # bench/image.sh), 3 cold and 5 cached runs per tool
#                                     # per case
#   STRATA_BIN=path/to/strata RUNS_COLD=5 RUNS_CACHED=9 bench/build.sh   # (strata-image
#                                     # is taken from beside it)
#   SIZE_MB=200 bench/build.sh        # the large COPY's size (default 100)
#
# Cases:
#   small   FROM busybox, ENV, 3 RUN, 2 COPY, WORKDIR, CMD (a typical app Dockerfile)
#   large   FROM busybox, COPY of SIZE_MB MB in 100 files (slices of /usr/lib: compressible
#           like real binaries), RUN over them
# Each case: cold (strata --no-cache; buildah --no-cache --layers; docker --no-cache) and
# cached (the same build again, unchanged); strata cold also with --compression zstd
# (its layers are gzip by default; buildah and docker keep theirs uncompressed until a
# push). Medians in ms, and ratios to strata.
# Every tool has private state under a temp dir; page cache warm for all; every timed
# command runs under `nice -n -10` (the same for all: a shared machine's other load
# weighs less), and the load average is printed before and after. Informational: the
# script does not fail on a missed target.

source "$(dirname "$0")/../integration/lib/common.sh"
source "$(dirname "$0")/../integration/lib/daemons.sh"
set -uo pipefail

[ "$(id -u)" = 0 ] || { log "needs root"; exit 2; }
need_pkgs buildah umoci skopeo jq
: "${RUNS_COLD:=3}" "${RUNS_CACHED:=5}" "${SIZE_MB:=100}"
if [ -z "${STRATA_BIN:-}" ]; then
    log "building strata and strata-image (release, bundles/build-static.sh)"
    need_pkgs libseccomp-dev pkg-config
    STRATA_BIN=$(bash "$REPO/bundles/build-static.sh") || { log "no strata"; exit 1; }
fi
build_strata || { log "no strata"; exit 1; }
SI=$WORKDIR/bin/strata-image
install -m 0755 "$(dirname "$(readlink -f "$STRATA_BIN")")/strata-image" "$SI"
export STRATA_IMAGE_ROOT=$WORKDIR/store STRATA_RUNTIME_ROOT=$WORKDIR/rt
BUILDAH=(buildah --root "$WORKDIR/buildah" --runroot "$WORKDIR/buildah-run" --storage-driver overlay)
DOCKER_OK=""
DOCKER_WHY=""

cleanup() {
    set +e
    [ -n "${DOCKERD_PID:-}" ] && kill "$DOCKERD_PID" && wait "$DOCKERD_PID"
    [ -n "${CONTAINERD_PID:-}" ] && kill "$CONTAINERD_PID" && wait "$CONTAINERD_PID"
    "${BUILDAH[@]}" rm --all >/dev/null 2>&1
    "${BUILDAH[@]}" rmi --all -f >/dev/null 2>&1
    awk -v d="$WORKDIR" 'index($5, d) == 1 { print $5 }' /proc/self/mountinfo | sort -r |
        while read -r m; do umount -l "$m"; done
    rm -rf --one-file-system "$WORKDIR"
}
trap cleanup EXIT
trap 'exit 130' INT TERM

build_image || { log "could not make the busybox image"; exit 1; }
"$SI" load -q -i "$IMAGE_OCI_TAR" >/dev/null || exit 1
"${BUILDAH[@]}" pull -q "oci-archive:$IMAGE_OCI_TAR" >/dev/null || exit 1

# --- docker: a private containerd + dockerd, as integration/docker.sh starts them ---------
start_docker() {
    command -v dockerd >/dev/null || { DOCKER_WHY="dockerd is not installed"; return 1; }
    local cd=$WORKDIR/containerd dd=$WORKDIR/docker
    export DOCKER_HOST=unix://$dd/docker.sock
    start_containerd "$cd" "$WORKDIR/containerd.log"
    start_dockerd "$dd" "$cd" "$DOCKER_HOST" "$WORKDIR/dockerd.log"
    docker version >/dev/null 2>&1 || { DOCKER_WHY="dockerd did not start: $(tail -1 "$WORKDIR/dockerd.log")"; return 1; }
    docker load -q -i "$IMAGE_DOCKER_TAR" >/dev/null || { DOCKER_WHY="docker load failed"; return 1; }
    # docker's builds run in the daemons: they get the clients' priority.
    renice -n -10 -p "$DOCKERD_PID" "$CONTAINERD_PID" >/dev/null
    DOCKER_OK=1
}
start_docker || log "docker: skipped ($DOCKER_WHY)"

# --- the contexts -----------------------------------------------------------------------
SMALL=$WORKDIR/small
mkdir -p "$SMALL/app/lib"
for i in $(seq 20); do head -c 4096 /dev/urandom | base64 >"$SMALL/app/lib/m$i.txt"; done
echo 'echo app' >"$SMALL/app/run.sh"
cat >"$SMALL/Dockerfile" <<'EOF'
FROM busybox
ENV APP=/app MODE=prod
RUN mkdir -p /var/app && echo configured > /var/app/conf
COPY app/ /app/
RUN ls -R /app > /var/app/files && wc -l /var/app/files
COPY app/run.sh /usr/local/bin/run
RUN chmod 755 /usr/local/bin/run
WORKDIR /app
CMD ["/usr/local/bin/run"]
EOF

LARGE=$WORKDIR/large
mkdir -p "$LARGE/data"
tar -cf - /usr/lib 2>/dev/null | head -c $((SIZE_MB << 20)) | split -b 1M -d -a 3 - "$LARGE/data/part-"
cat >"$LARGE/Dockerfile" <<'EOF'
FROM busybox
COPY data/ /data/
RUN du -s /data > /data.size
CMD ["cat", "/data.size"]
EOF

# --- timing -----------------------------------------------------------------------------
ms() { local t0 t1; t0=$(date +%s%N); nice -n -10 "$@" >/dev/null 2>&1 || echo "FAILED: $*" >&2; t1=$(date +%s%N); echo $(((t1 - t0) / 1000000)); }
LOAD_BEFORE=$(cut -d' ' -f1-3 /proc/loadavg)
median() { sort -n | awk '{a[NR]=$1} END {print a[int((NR + 1) / 2)]}'; }

results=()
run_case() {
    local name=$1 ctx=$2
    local sc bc dc scold bcold dcold
    # Warm everything once (the page cache, the cache for the cached runs).
    "$SI" build -q -t "b-$name" "$ctx" >/dev/null
    "${BUILDAH[@]}" bud -q --isolation chroot --layers -t "b-$name" "$ctx" >/dev/null 2>&1
    [ -n "$DOCKER_OK" ] && DOCKER_BUILDKIT=0 docker build -q -t "b-$name" "$ctx" >/dev/null 2>&1
    scold=$(for _ in $(seq "$RUNS_COLD"); do sync; ms "$SI" build -q --no-cache -t "b-$name" "$ctx"; done | median)
    zcold=$(for _ in $(seq "$RUNS_COLD"); do sync; ms "$SI" build -q --no-cache --compression zstd -t "b-$name" "$ctx"; done | median)
    bcold=$(for _ in $(seq "$RUNS_COLD"); do sync; ms "${BUILDAH[@]}" bud -q --isolation chroot --layers --no-cache -t "b-$name" "$ctx"; done | median)
    sc=$(for _ in $(seq "$RUNS_CACHED"); do ms "$SI" build -q -t "b-$name" "$ctx"; done | median)
    bc=$(for _ in $(seq "$RUNS_CACHED"); do ms "${BUILDAH[@]}" bud -q --isolation chroot --layers -t "b-$name" "$ctx"; done | median)
    dcold=- dc=-
    if [ -n "$DOCKER_OK" ]; then
        dcold=$(for _ in $(seq "$RUNS_COLD"); do sync; DOCKER_BUILDKIT=0 ms docker build -q --no-cache -t "b-$name" "$ctx"; done | median)
        dc=$(for _ in $(seq "$RUNS_CACHED"); do DOCKER_BUILDKIT=0 ms docker build -q -t "b-$name" "$ctx"; done | median)
    fi
    results+=("$name cold $scold $bcold $dcold" "$name cold-zstd $zcold $bcold $dcold" "$name cached $sc $bc $dc")
}

log "small Dockerfile"
run_case small "$SMALL"
log "large COPY (${SIZE_MB} MB)"
run_case large "$LARGE"

printf '\n%-7s %-10s %10s %10s %10s %14s %14s\n' case run "strata ms" "buildah ms" "docker ms" "buildah/strata" "docker/strata"
for r in "${results[@]}"; do
    set -- $r
    rb=$(awk -v a="$4" -v b="$3" 'BEGIN { printf "%.1fx", a / (b > 0 ? b : 1) }')
    rd=-
    [ "$5" != - ] && rd=$(awk -v a="$5" -v b="$3" 'BEGIN { printf "%.1fx", a / (b > 0 ? b : 1) }')
    printf '%-7s %-10s %10s %10s %10s %14s %14s\n' "$1" "$2" "$3" "$4" "$5" "$rb" "$rd"
done
[ -z "$DOCKER_OK" ] && echo "docker: not measured: $DOCKER_WHY"
[ -n "$DOCKER_OK" ] && echo "docker: dockerd $(dockerd --version | awk '{print $3}' | tr -d ,) classic builder (DOCKER_BUILDKIT=0: no buildx here), runc"
echo "load average (1, 5, 15 min): $LOAD_BEFORE before, $(cut -d' ' -f1-3 /proc/loadavg) after; $(nproc) CPUs"
echo "strata: $(readlink -f "$STRATA_BIN"); buildah $(buildah --version | awk '{print $3}') overlay, --isolation chroot --layers"
