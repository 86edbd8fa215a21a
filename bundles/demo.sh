#!/usr/bin/env bash
# The main job, end to end on a fresh machine: build strata, make the busybox bundle,
# create a container, show its state, start it (it prints a greeting), show the state
# again, delete it. Installs what it needs (libseccomp-dev, busybox-static) with apt-get.
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
trap '"$strata" --root "$root" delete --force "$id" 2>/dev/null || true; rm -rf "$root"' EXIT

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
echo "demo: done"
