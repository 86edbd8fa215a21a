#!/usr/bin/env bash
# strata-image pull and push between a local docker-registry and the other tools: what we
# push, skopeo inspects and podman pulls; what podman and skopeo push, we pull and run.
#
#   bash integration/registry.sh                                 # static release build
#   STRATA_BIN=target/debug/strata bash integration/registry.sh  # skip the build (needs
#                                                                # target/debug/strata-image)
#
# Everything is private to $WORKDIR: the registry (plain HTTP on a free loopback port, its
# storage), strata-image's store and strata's state root, podman's storage and run root
# (vfs: pull and push need no runtime). The trap stops the registry and removes it all.
# Needs root, docker-registry, podman, skopeo, umoci.

source "$(dirname "$0")/lib/common.sh"

[ "$(id -u)" = 0 ] || { log "needs root"; exit 2; }
need_pkgs docker-registry podman skopeo umoci busybox-static jq curl

REG_PID=
cleanup() {
    local rc=$?
    set +e
    [ -n "${SI:-}" ] && for c in $("$SI" ps -a -q 2>/dev/null); do "$SI" rm -f "$c" >/dev/null 2>&1; done
    [ -n "$REG_PID" ] && kill "$REG_PID" 2>/dev/null && wait "$REG_PID" 2>/dev/null
    awk -v d="$WORKDIR" 'index($5, d) == 1 { print $5 }' /proc/self/mountinfo | sort -r |
        while read -r m; do umount "$m" 2>/dev/null || umount -l "$m" 2>/dev/null; done
    rm -rf --one-file-system "$WORKDIR" /tmp/strata-check.$$
    exit $rc
}
trap cleanup EXIT
trap 'exit 130' INT TERM

build_strata || { log "build failed"; exit 1; }
SI=$WORKDIR/bin/strata-image
built=$(readlink -f "${STRATA_BIN:-$REPO/target/$(rustc -vV | sed -n 's/^host: //p')/release/strata}")
install -m 0755 "$(dirname "$built")/strata-image" "$SI" || { log "no strata-image beside $built"; exit 1; }
export STRATA_IMAGE_ROOT=$WORKDIR/store STRATA_RUNTIME_ROOT=$WORKDIR/rt
build_image || { log "image build failed"; exit 1; }
PM=(podman --root "$WORKDIR/pstorage" --runroot "$WORKDIR/prunroot" --storage-driver vfs
    --tmpdir "$WORKDIR/ptmp")
mkdir -p "$WORKDIR/ptmp"

PORT=$(python3 -c 'import socket; s=socket.socket(); s.bind(("127.0.0.1",0)); print(s.getsockname()[1])')
REG=127.0.0.1:$PORT
cat >"$WORKDIR/registry.yml" <<YML
version: 0.1
log:
  level: error
storage:
  filesystem:
    rootdirectory: $WORKDIR/registry
http:
  addr: $REG
YML
docker-registry serve "$WORKDIR/registry.yml" >"$WORKDIR/registry.log" 2>&1 &
REG_PID=$!
for _ in $(seq 100); do curl -sf "http://$REG/v2/" >/dev/null && break; sleep 0.1; done
check "docker-registry answers on $REG" curl -sf "http://$REG/v2/"

echo "== ours → theirs"
"$SI" load -q -i "$IMAGE_DOCKER_TAR" >/dev/null
check "strata-image push" "$SI" push -q busybox "$REG/strata/busybox:v1"
check "skopeo inspect sees 1 layer" \
    bash -c "skopeo inspect --tls-verify=false docker://$REG/strata/busybox:v1 | jq -e '.Layers | length == 1'"
check "podman pull" "${PM[@]}" pull -q --tls-verify=false "$REG/strata/busybox:v1"
expect_eq "podman's image ID is ours" "$("$SI" inspect busybox | jq -r '.[0].Id' | cut -c8-)" \
    "$("${PM[@]}" images --no-trunc --format '{{.ID}}' "$REG/strata/busybox:v1" | sed 's/^sha256://')"

echo "== theirs → ours"
check "podman push" "${PM[@]}" push -q --tls-verify=false "$REG/strata/busybox:v1" "$REG/podman/busybox:v1"
check "strata-image pull of podman's push" "$SI" pull -q "$REG/podman/busybox:v1"
expect_eq "it runs" "from podman" "$("$SI" run --rm "$REG/podman/busybox:v1" echo from podman 2>&1)"
check "skopeo copy oci: → registry" \
    skopeo copy -q --dest-tls-verify=false "oci:$WORKDIR/image:latest" "docker://$REG/skopeo/busybox:v1"
check "strata-image pull of skopeo's push" "$SI" pull -q "$REG/skopeo/busybox:v1"
expect_eq "it runs" "from skopeo" "$("$SI" run --rm "$REG/skopeo/busybox:v1" echo from skopeo 2>&1)"
out=$("$SI" pull "$REG/skopeo/busybox:v1" 2>&1)
check "a second pull is up to date" grep -q "Status: Image is up to date" <<<"$out"

echo "== the store afterwards"
expect_eq "one layer dir: the busybox layer is shared by every copy" 1 "$(ls "$STRATA_IMAGE_ROOT/layers" | wc -l)"
expect_eq "no temp files left" 0 "$(ls "$STRATA_IMAGE_ROOT/tmp" | wc -l)"
summary
