#!/usr/bin/env bash
# Build bundles/busybox/rootfs from Debian's busybox-static: every applet as a link,
# /etc/passwd and /etc/group with root and nobody, empty /proc /sys /dev /tmp.
# Idempotent; installs busybox-static with apt-get when it is missing.
set -euo pipefail
here=$(cd "$(dirname "$0")" && pwd)
rootfs=${1:-$here/rootfs}

if ! dpkg -s busybox-static >/dev/null 2>&1; then
    echo "installing busybox-static" >&2
    (apt-get update -qq && DEBIAN_FRONTEND=noninteractive apt-get install -y -qq busybox-static) >&2
fi
bb=/bin/busybox

rm -rf "$rootfs.tmp"
mkdir -p "$rootfs.tmp"/{bin,sbin,usr/bin,usr/sbin,etc,proc,sys,dev,tmp,root,home}
chmod 1777 "$rootfs.tmp/tmp"
cp "$bb" "$rootfs.tmp/bin/busybox"
for applet in $("$rootfs.tmp/bin/busybox" --list-full); do
    [ "$applet" = bin/busybox ] && continue
    mkdir -p "$rootfs.tmp/$(dirname "$applet")"
    ln -sf /bin/busybox "$rootfs.tmp/$applet"
done
cat > "$rootfs.tmp/etc/passwd" <<'P'
root:x:0:0:root:/root:/bin/sh
nobody:x:65534:65534:nobody:/nonexistent:/bin/false
P
cat > "$rootfs.tmp/etc/group" <<'G'
root:x:0:
nogroup:x:65534:
G
echo strata > "$rootfs.tmp/etc/hostname"
rm -rf "$rootfs"
mv "$rootfs.tmp" "$rootfs"
echo "rootfs ready: $rootfs"
