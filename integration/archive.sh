#!/usr/bin/env bash
# Image archives between strata-image and the other tools: what docker save, podman save
# (docker-archive and oci-archive), skopeo copy (docker-archive: and oci-archive:) and
# umoci (a layout dir) write, strata-image load reads, and runs.
#
#   bash integration/archive.sh                                 # static release build
#   STRATA_BIN=target/debug/strata bash integration/archive.sh  # skip the build (needs
#                                                               # target/debug/strata-image)
#
# Everything is private to $WORKDIR: strata-image's store and strata's state root, a
# dockerd on its own containerd (data, exec root, sockets), podman's storage, run root
# and config. The host's daemons and stores are never touched; the trap stops ours,
# unmounts and removes it all, even after a failure. KEEP_LOGS=1 keeps the daemons' logs.
# Needs root, docker.io, containerd, podman, skopeo, umoci.

source "$(dirname "$0")/lib/common.sh"
source "$(dirname "$0")/lib/daemons.sh"

[ "$(id -u)" = 0 ] || { log "needs root"; exit 2; }
need_pkgs docker.io containerd podman conmon skopeo umoci busybox-static jq tar

DOCKER=/usr/bin/docker # docker.io's client (/usr/local/bin/docker may be another one)
CD=$WORKDIR/containerd
DD=$WORKDIR/docker
export DOCKER_HOST=unix://$WORKDIR/docker.sock DOCKER_CONFIG=$WORKDIR/docker-client
unset DOCKER_CONTEXT DOCKER_TLS_VERIFY DOCKER_CERT_PATH
CONTAINERD_PID= DOCKERD_PID=
RUN_CONTAINERD_EXISTED=$([ -e /run/containerd ] && echo 1)
KEY_JSON_EXISTED=$([ -e /etc/docker/key.json ] && echo 1)
PM=$WORKDIR/podman # podman with every private flag

cleanup() {
    local rc=$?
    set +e
    [ -n "${SI:-}" ] && for c in $("$SI" ps -a -q 2>/dev/null); do "$SI" rm -f "$c" >/dev/null 2>&1; done
    [ -x "$PM" ] && "$PM" rmi -a -f >/dev/null 2>&1
    stop_pid "$DOCKERD_PID" 20
    stop_pid "$CONTAINERD_PID" 10
    local p
    for p in /proc/[0-9]*; do # whatever else was started from $WORKDIR (shims, conmon)
        [ "${p#/proc/}" = $$ ] && continue
        tr '\0' ' ' 2>/dev/null <"$p/cmdline" | grep -qF -- "$WORKDIR" && kill -KILL "${p#/proc/}" 2>/dev/null
    done
    awk -v d="$WORKDIR" 'index($5, d) == 1 { print $5 }' /proc/self/mountinfo | sort -r |
        while read -r m; do umount "$m" 2>/dev/null || umount -l "$m" 2>/dev/null; done
    if [ -n "${KEEP_LOGS:-}" ]; then
        mkdir -p /tmp/strata-archive-logs && cp -f "$WORKDIR"/*.log /tmp/strata-archive-logs/ 2>/dev/null
    fi
    rm -rf --one-file-system "$WORKDIR" /tmp/strata-check.$$
    [ -z "$RUN_CONTAINERD_EXISTED" ] && rmdir /run/containerd/s /run/containerd 2>/dev/null
    [ -z "$KEY_JSON_EXISTED" ] && rm -f /etc/docker/key.json && rmdir /etc/docker 2>/dev/null
    exit $rc
}
trap cleanup EXIT
trap 'exit 130' INT TERM

build_strata || { log "build failed"; exit 1; }
# strata-image is built beside strata; installed beside it, it finds it there.
SI=$WORKDIR/bin/strata-image
built=$(readlink -f "${STRATA_BIN:-$REPO/target/$(rustc -vV | sed -n 's/^host: //p')/release/strata}")
install -m 0755 "$(dirname "$built")/strata-image" "$SI" || { log "no strata-image beside $built"; exit 1; }
export STRATA_IMAGE_ROOT=$WORKDIR/store STRATA_RUNTIME_ROOT=$WORKDIR/rt

# ---- the images ---------------------------------------------------------------------
# build_image's umoci layout (busybox, tag latest) plus a tag `marked` with a second
# layer holding /marker: every archive below carries two layers and a known file.
build_image || { log "image build failed"; exit 1; }
LAYOUT=$WORKDIR/image
umoci unpack --rootless --image "$LAYOUT:latest" "$WORKDIR/marked" >/dev/null &&
    echo "from umoci" >"$WORKDIR/marked/rootfs/marker" &&
    umoci repack --image "$LAYOUT:marked" "$WORKDIR/marked" || { log "umoci repack failed"; exit 1; }
SRC_DOCKER=$WORKDIR/src-docker.tar # what docker and podman load first
skopeo copy -q "oci:$LAYOUT:marked" "docker-archive:$SRC_DOCKER:strata-it/marked:v1" || exit 1

# load_runs NAME ARCHIVE IMAGE: `strata-image load -i ARCHIVE` names IMAGE, and a
# container of it shows /marker.
load_runs() {
    local name=$1 archive=$2 image=$3 out
    out=$("$SI" load -q -i "$archive" 2>&1)
    check "$name: load" grep -qx "Loaded image: $image" <<<"$out"
    expect_eq "$name: a container of it shows /marker" "from umoci" \
        "$("$SI" run --rm "$image" cat /marker 2>&1)"
}

# ---- theirs → ours ------------------------------------------------------------------
echo "== umoci: an OCI layout dir"
out=$("$SI" load -q -i "$LAYOUT" 2>&1)
# umoci's ref names are bare tags (latest, marked): the images load untagged, by ID.
expect_eq "umoci layout: two untagged images" 2 "$(grep -c '^Loaded image ID: sha256:' <<<"$out")"
MARKED_MANIFEST=$(jq -r '.manifests[] | select(.annotations["org.opencontainers.image.ref.name"] == "marked") | .digest' "$LAYOUT/index.json")
MARKED_ID=$(jq -r .config.digest "$LAYOUT/blobs/sha256/${MARKED_MANIFEST#sha256:}")
check "umoci layout: the marked image's ID is printed" grep -qx "Loaded image ID: $MARKED_ID" <<<"$out"
expect_eq "umoci layout: run by ID shows /marker" "from umoci" "$("$SI" run --rm "$MARKED_ID" cat /marker 2>&1)"

echo "== skopeo copy"
skopeo copy -q "oci:$LAYOUT:marked" "docker-archive:$WORKDIR/skopeo-docker.tar:skopeo/docker:v1"
check "skopeo's docker-archive links layer.tar to <diffid>.tar" \
    bash -c "tar -tvf '$WORKDIR/skopeo-docker.tar' | grep -q '/layer.tar -> ../[0-9a-f]*.tar'"
load_runs "skopeo docker-archive" "$WORKDIR/skopeo-docker.tar" skopeo/docker:v1
skopeo copy -q "oci:$LAYOUT:marked" "oci-archive:$WORKDIR/skopeo-oci.tar:docker.io/skopeo/oci:v1"
load_runs "skopeo oci-archive" "$WORKDIR/skopeo-oci.tar" skopeo/oci:v1
expect_eq "the image ID is the config's digest, whatever the archive" "$MARKED_ID" \
    "$("$SI" inspect skopeo/oci:v1 | jq -r '.[0].Id')"

echo "== podman save"
mkdir -p "$WORKDIR"/{pstorage,prunroot,ptmp}
# podman runs containers with strata (a private --root through a wrapper), and pins the
# rlimits it gives them to what it may set here (see podman_ulimits in lib/common.sh).
printf '#!/bin/sh\nexec "%s" --root "%s" "$@"\n' "$STRATA" "$WORKDIR/prt" >"$WORKDIR/prt-strata"
chmod 0755 "$WORKDIR/prt-strata"
podman_ulimits
cat >"$WORKDIR/containers.conf" <<EOF
[containers]
$PODMAN_ULIMITS
netns = "none"

[engine]
cgroup_manager = "cgroupfs"
events_logger = "file"
events_logfile_path = "$WORKDIR/ptmp/events.log"
runtime = "strata"

[engine.runtimes]
strata = ["$WORKDIR/prt-strata"]
EOF
cat >"$WORKDIR/storage.conf" <<EOF
[storage]
driver = "overlay"
runroot = "$WORKDIR/prunroot"
graphroot = "$WORKDIR/pstorage"
EOF
echo 'unqualified-search-registries = ["docker.io"]' >"$WORKDIR/registries.conf"
cat >"$PM" <<EOF
#!/bin/sh
export CONTAINERS_CONF="$WORKDIR/containers.conf"
export CONTAINERS_STORAGE_CONF="$WORKDIR/storage.conf"
export CONTAINERS_REGISTRIES_CONF="$WORKDIR/registries.conf"
exec timeout --foreground 120 podman --root "$WORKDIR/pstorage" --runroot "$WORKDIR/prunroot" \\
    --tmpdir "$WORKDIR/ptmp" --cgroup-manager cgroupfs --events-backend file --storage-driver overlay "\$@"
EOF
chmod 0755 "$PM"
check "podman load" "$PM" load -q -i "$SRC_DOCKER"
check "podman save --format docker-archive" \
    "$PM" save -q --format docker-archive -o "$WORKDIR/podman-docker.tar" docker.io/strata-it/marked:v1
load_runs "podman docker-archive" "$WORKDIR/podman-docker.tar" strata-it/marked:v1
"$SI" rmi strata-it/marked:v1 >/dev/null
check "podman save --format oci-archive" \
    "$PM" save -q --format oci-archive -o "$WORKDIR/podman-oci.tar" docker.io/strata-it/marked:v1
out=$("$SI" load -q -i "$WORKDIR/podman-oci.tar" 2>&1)
ref=$(tar -xOf "$WORKDIR/podman-oci.tar" index.json | jq -r '.manifests[0].annotations["org.opencontainers.image.ref.name"] // ""')
log "podman oci-archive: ref name [$ref]: $out"
# podman 4 writes the whole name as the ref name; a bare tag would load by ID.
case $ref in
*/* | *:*) expect_eq "podman oci-archive: run shows /marker" "from umoci" "$("$SI" run --rm strata-it/marked:v1 cat /marker 2>&1)" ;;
*) check "podman oci-archive: loaded by ID" grep -q "^Loaded image ID: $MARKED_ID" <<<"$out" ;;
esac

echo "== docker save"
mkdir -p "$DOCKER_CONFIG"
echo "{}" >"$DOCKER_CONFIG/config.json" # podman reads it too (auth), and wants it to exist
start_containerd "$CD" "$WORKDIR/containerd.log"
start_dockerd "$DD" "$CD" "$DOCKER_HOST" "$WORKDIR/dockerd.log" \
    --add-runtime "strata=$STRATA" --default-runtime strata
d() { timeout 120 "$DOCKER" "$@"; }
check "docker load" d load -q -i "$SRC_DOCKER"
# A second image on the same layers: one save holds both, sharing them.
check "docker tag" d tag strata-it/marked:v1 strata-it/other:v2
check "docker save of two images" d save -o "$WORKDIR/docker.tar" strata-it/marked:v1 strata-it/other:v2
"$SI" rmi strata-it/marked:v1 >/dev/null
out=$("$SI" load -q -i "$WORKDIR/docker.tar" 2>&1)
expect_eq "docker save: both names loaded" "Loaded image: strata-it/marked:v1
Loaded image: strata-it/other:v2" "$(sort <<<"$out")"
expect_eq "docker save: a container shows /marker" "from umoci" "$("$SI" run --rm strata-it/other:v2 cat /marker 2>&1)"
expect_eq "docker save: docker's image ID is ours" \
    "$(d image inspect -f '{{.Id}}' strata-it/marked:v1)" "$("$SI" inspect strata-it/marked:v1 | jq -r '.[0].Id')"
check "docker save | gzip on stdin" bash -c "gzip -c '$WORKDIR/docker.tar' | '$SI' load | grep -qx 'Loaded image: strata-it/other:v2'"

# ---- ours → theirs ------------------------------------------------------------------
# A change committed here, saved, then read and run by docker, podman and containerd, and
# read by skopeo and umoci: each must see /ours on top of the two layers it came with.
ours_to_theirs() {
    echo "== strata-image save → docker, podman, containerd, skopeo, umoci"
    local want="from strata" bundle
    bundle=$("$SI" create --name ours-c strata-it/marked:v1 sh -c 'echo "from strata" >/ours' 2>/dev/null)
    "$STRATA" --root "$STRATA_RUNTIME_ROOT" run -b "$bundle" ours-c >/dev/null 2>&1
    check "the change is committed" "$SI" commit -q -m ours ours-c strata-it/ours:v1
    check "save (hybrid)" "$SI" save -q -o "$WORKDIR/ours.tar" strata-it/ours:v1 strata-it/marked:v1
    check "save --format oci-archive" "$SI" save -q --format oci-archive -o "$WORKDIR/ours-oci.tar" strata-it/ours:v1
    check "save --uncompressed" "$SI" save -q --uncompressed -o "$WORKDIR/ours-plain.tar" strata-it/ours:v1

    check "docker load of ours" bash -c "timeout 120 '$DOCKER' load -i '$WORKDIR/ours.tar' | grep -q 'Loaded image: strata-it/ours:v1'"
    expect_eq "docker run of ours sees the change" "$want" \
        "$(d run --rm --network none strata-it/ours:v1 cat /ours 2>&1)"
    expect_eq "docker's image ID is ours" "$("$SI" inspect strata-it/ours:v1 | jq -r '.[0].Id')" \
        "$(d image inspect -f '{{.Id}}' strata-it/ours:v1)"
    d rmi -f strata-it/ours:v1 >/dev/null 2>&1
    check "docker load of ours, plain layers" bash -c "timeout 120 '$DOCKER' load -i '$WORKDIR/ours-plain.tar' | grep -q 'strata-it/ours:v1'"
    expect_eq "docker run of that sees the change" "$want" \
        "$(d run --rm --network none strata-it/ours:v1 cat /ours 2>&1)"

    check "podman load of ours (hybrid)" "$PM" load -q -i "$WORKDIR/ours.tar"
    expect_eq "podman run of ours sees the change" "$want" \
        "$("$PM" run --rm strata-it/ours:v1 cat /ours 2>&1 | tail -1)"
    "$PM" rmi -f strata-it/ours:v1 >/dev/null 2>&1
    check "podman load of ours (oci-archive)" "$PM" load -q -i "$WORKDIR/ours-oci.tar"
    expect_eq "podman run of that sees the change" "$want" \
        "$("$PM" run --rm strata-it/ours:v1 cat /ours 2>&1 | tail -1)"

    local C=(timeout 120 ctr --address "$CD/containerd.sock" -n strata-it)
    check "ctr image import of ours" "${C[@]}" images import "$WORKDIR/ours.tar"
    expect_eq "ctr run of ours sees the change" "$want" \
        "$("${C[@]}" run --rm --runc-binary "$STRATA" --runc-root "$WORKDIR/ctr-rt" \
            docker.io/strata-it/ours:v1 ours-ctr cat /ours </dev/null 2>&1)"

    check "skopeo inspect docker-archive: of ours" \
        bash -c "skopeo inspect 'docker-archive:$WORKDIR/ours.tar:strata-it/ours:v1' | jq -e '.Layers | length == 3'"
    check "skopeo inspect oci-archive: of ours" \
        bash -c "skopeo inspect 'oci-archive:$WORKDIR/ours-oci.tar:strata-it/ours:v1' | jq -e '.Layers | length == 3'"
    check "skopeo copy docker-archive: → oci:" \
        skopeo copy -q "docker-archive:$WORKDIR/ours.tar:strata-it/ours:v1" "oci:$WORKDIR/copied:ours"
    check "skopeo copy oci-archive: → oci:" \
        skopeo copy -q "oci-archive:$WORKDIR/ours-oci.tar:strata-it/ours:v1" "oci:$WORKDIR/copied:ours-oci"
    check "umoci unpack of skopeo's copy" umoci unpack --image "$WORKDIR/copied:ours" "$WORKDIR/ours-unpacked"
    expect_eq "its tree has the change" "$want" "$(cat "$WORKDIR/ours-unpacked/rootfs/ours" 2>&1)"
    mkdir -p "$WORKDIR/ours-layout" && tar -xf "$WORKDIR/ours.tar" -C "$WORKDIR/ours-layout"
    check "umoci unpack of the extracted archive" \
        umoci unpack --image "$WORKDIR/ours-layout:strata-it/ours:v1" "$WORKDIR/ours-unpacked2"
    expect_eq "its tree has the change" "$want" "$(cat "$WORKDIR/ours-unpacked2/rootfs/ours" 2>&1)"
    "$SI" rm -f ours-c >/dev/null 2>&1
    "$SI" rmi strata-it/ours:v1 >/dev/null
}
ours_to_theirs

echo "== the store afterwards"
expect_eq "every layer was unpacked once: two layer dirs" 2 "$(ls "$STRATA_IMAGE_ROOT/layers" | wc -l)"
check "every image verifies (inspect)" bash -c "for i in \$('$SI' images -q); do '$SI' inspect --type image \"\$i\" >/dev/null || exit 1; done"
expect_eq "no temp files left" 0 "$(ls "$STRATA_IMAGE_ROOT/tmp" | wc -l)"
summary
