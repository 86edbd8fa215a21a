#!/usr/bin/env bash
# The main job, end to end on a fresh machine: build strata, make the busybox bundle,
# create a container, show its state, start it (it prints a greeting), show the state
# again, delete it; then the image half: import busybox as an image, make a container of
# it, run it (it changes a file), commit the change as a new image, show its history and
# run the new image; build a Dockerfile on it (twice: the second time from the cache) and
# save it into an archive that an empty store loads. Installs what it needs (libseccomp-dev, busybox-static) with apt-get.
set -euo pipefail
repo=$(cd "$(dirname "$0")/.." && pwd)
cd "$repo"

command -v cargo >/dev/null || { echo "demo: cargo (Rust) is required" >&2; exit 1; }
if ! dpkg -s libseccomp-dev >/dev/null 2>&1; then
    echo "== installing libseccomp-dev (strata links libseccomp in)"
    DEBIAN_FRONTEND=noninteractive apt-get install -y -q --no-install-recommends libseccomp-dev pkg-config ||
        { apt-get update -q && DEBIAN_FRONTEND=noninteractive apt-get install -y -q --no-install-recommends libseccomp-dev pkg-config; }
fi
echo "== building strata (static, as README's Install says)"
strata=$(bash "$repo/bundles/build-static.sh")
bundle="$repo/bundles/busybox"
[ -x "$bundle/rootfs/bin/busybox" ] || bash "$bundle/make-rootfs.sh"

root=$(mktemp -d /tmp/strata-demo.XXXXXX)
id=demo-$$
si="$(dirname "$strata")/strata-image"
store=$root/images
cleanup() {
    "$strata" --root "$root" delete --force "$id" 2>/dev/null || true
    "$si" --root "$store" --runtime-root "$root" rm -f demo-c1 >/dev/null 2>&1 || true
    rm -rf "$root"
}
trap cleanup EXIT

echo "== strata create $id"
"$strata" --root "$root" create --bundle "$bundle" "$id"
"$strata" --root "$root" state "$id"
echo "== strata start $id"
"$strata" --root "$root" start "$id"
# The container inherited our stdout; give it a moment to print and exit.
for _ in $(seq 100); do
    [[ $("$strata" --root "$root" state "$id") == *'"stopped"'* ]] && break
    sleep 0.02
done
"$strata" --root "$root" state "$id"
echo "== strata delete $id"
"$strata" --root "$root" delete "$id"
"$strata" --root "$root" list
echo "== strata run (create + start + wait + delete in one)"
"$strata" --root "$root" run --bundle "$bundle" "$id-run"

# The image half, in a private store ($store) with the same strata state root.
img() { "$si" --root "$store" --runtime-root "$root" "$@"; }
echo "== strata-image import (the busybox rootfs becomes a one-layer image)"
img import -q -c 'CMD ["sh"]' "$bundle/rootfs" busybox
img images
echo "== strata-image create (a bundle over the image's layers and a fresh upper dir)"
c1=$(img create --name demo-c1 busybox sh -c 'echo "hello from a layer" > /etc/motd; cat /etc/motd' | tail -1)
echo "bundle: $c1"
echo "== strata run -b <bundle> demo-c1 (its root is an overlay; the change lands in its upper dir)"
"$strata" --root "$root" run --bundle "$c1" demo-c1
img diff demo-c1
echo "== strata-image commit demo-c1 busybox:motd"
img commit -q -m "add /etc/motd" -c 'CMD ["cat", "/etc/motd"]' demo-c1 busybox:motd
img history busybox:motd
echo "== strata-image run --rm busybox:motd (the new image, its new CMD)"
img run --rm busybox:motd
echo "== strata-image build (a Dockerfile: the same run / modify / commit loop, step by step)"
ctx=$root/context
mkdir -p "$ctx"
echo "copied from the build context" >"$ctx/greeting.txt"
cat >"$ctx/Dockerfile" <<'DOCKERFILE'
FROM busybox:motd
RUN echo "made by a RUN step" > /built
COPY greeting.txt /greeting.txt
CMD ["cat", "/etc/motd", "/built", "/greeting.txt"]
DOCKERFILE
img build -t demo:built "$ctx"
img history demo:built
img run --rm demo:built
echo "== strata-image build again (nothing changed: every step from the cache, no container)"
img build -t demo:built "$ctx"
echo "== strata-image save | load into an empty store (the archive docker and podman load too)"
img save demo:built >"$root/demo.tar"
"$si" --root "$root/images2" --runtime-root "$root" load -i "$root/demo.tar"
"$si" --root "$root/images2" --runtime-root "$root" images
echo "demo: done"
