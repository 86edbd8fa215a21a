#!/usr/bin/env bash
# strata-image end to end: import busybox, make a container, change it, commit, run the
# new image, export it, read the store with skopeo and umoci, remove it all again.
#
#   bash integration/image.sh                               # static release build
#   STRATA_BIN=target/debug/strata bash integration/image.sh  # skip the build (needs
#                                                           # target/debug/strata-image)
#
# Everything is private: the store, strata's state root and the scratch files live in
# $WORKDIR. Needs root, skopeo, umoci, busybox-static.

source "$(dirname "$0")/lib/common.sh"

[ "$(id -u)" = 0 ] || { log "needs root"; exit 2; }
need_pkgs skopeo umoci busybox-static tar attr acl libcap2-bin

build_strata || { log "build failed"; exit 1; }
# strata-image is built beside strata; installed beside it, it finds it there.
SI=$WORKDIR/bin/strata-image
built=$(readlink -f "${STRATA_BIN:-$REPO/target/$(rustc -vV | sed -n 's/^host: //p')/release/strata}")
install -m 0755 "$(dirname "$built")/strata-image" "$SI" || { log "no strata-image beside $built"; exit 1; }
export STRATA_IMAGE_ROOT=$WORKDIR/store STRATA_RUNTIME_ROOT=$WORKDIR/rt
ROOTFS=$REPO/bundles/busybox/rootfs
[ -x "$ROOTFS/bin/busybox" ] || bash "$REPO/bundles/busybox/make-rootfs.sh" >&2

cleanup() {
    set +e
    for c in $("$SI" ps -a -q 2>/dev/null); do "$SI" rm -f "$c" >/dev/null 2>&1; done
    awk -v d="$WORKDIR" 'index($5, d) == 1 { print $5 }' /proc/self/mountinfo | sort -r |
        while read -r m; do umount -l "$m"; done
    rm -rf "$WORKDIR"
}
trap cleanup EXIT

# The lower layer gets what the script below changes: a file to change, one to delete, a
# directory to replace.
BASE=$WORKDIR/base
cp -a "$ROOTFS" "$BASE"
mkdir -p "$BASE/data/old" "$BASE/data/keep"
echo original >"$BASE/data/change-me"
echo doomed >"$BASE/data/delete-me"
echo old >"$BASE/data/old/inner"
echo kept >"$BASE/data/keep/file"
setfattr -n user.origin -v base "$BASE/data/keep/file"
# File capabilities and ACLs must travel with a layer too.
cp "$BASE/bin/busybox" "$BASE/data/keep/pinger"
setcap cap_net_raw+ep "$BASE/data/keep/pinger"
setfacl -m u:1234:r "$BASE/data/keep/file"

SCRIPT='echo added >/data/added
echo changed >>/data/change-me
rm /data/delete-me
rm -rf /data/old && mkdir /data/old && echo new >/data/old/fresh
mkdir -p /data/newdir/sub && ln -s ../added /data/newdir/link
echo done'

# What the container's view must be afterwards, made on the host the same way.
EXPECT=$WORKDIR/expect
cp -a "$BASE" "$EXPECT"
(cd "$EXPECT" && echo added >data/added && echo changed >>data/change-me && rm data/delete-me &&
    rm -rf data/old && mkdir data/old && echo new >data/old/fresh &&
    mkdir -p data/newdir/sub && ln -s ../added data/newdir/link)

# A listing that compares trees: type, mode, owner, size, link target, content hash.
tree_list() {
    (cd "$1" && find . -mindepth 1 -not -path './proc/*' -not -path './sys/*' -not -path './dev/*' \
        -printf '%y %m %U:%G %s %p -> %l\n' | sort) |
        while read -r line; do
            p=$(echo "$line" | awk '{print $5}')
            if [ -f "$1/$p" ] && [ ! -L "$1/$p" ]; then
                echo "$line $(sha256sum <"$1/$p" | cut -c1-16)"
            else
                echo "$line"
            fi
        done
}

echo "== import, create, run, commit"
IMG1=$("$SI" import -q -c 'CMD ["sh"]' -c 'ENV GREETING=hello' "$BASE" busybox) 
check "import prints the image ID" grep -qE '^sha256:[0-9a-f]{64}$' <<<"$IMG1"
check "images lists busybox:latest" bash -c "'$SI' images | grep -E '^busybox +latest +${IMG1:7:12} '"
BUNDLE=$("$SI" create --name c1 busybox sh -c "$SCRIPT" 2>/dev/null | tail -1)
check "create prints a bundle" test -f "$BUNDLE/config.json"
check "strata run -b <bundle> c1 runs the script" bash -c "'$STRATA' --root '$WORKDIR/rt' run -b '$BUNDLE' c1 | grep -qx done"
check "the upper dir holds a whiteout for the deleted file" bash -c "stat -c %t:%T '$BUNDLE/upper/data/delete-me' | grep -qx 0:0"
check "the replaced dir is opaque in the upper dir" bash -c "getfattr --only-values -n trusted.overlay.opaque '$BUNDLE/upper/data/old' | grep -qx y"
DIFF=$("$SI" diff c1)
expect_eq "diff lists A/C/D as docker does" \
"C /data
A /data/added
C /data/change-me
D /data/delete-me
A /data/newdir
A /data/newdir/link
A /data/newdir/sub
C /data/old
A /data/old/fresh" "$DIFF"
IMG2=$("$SI" commit -q -m "the change" --author "Strata Tests" -c 'CMD ["cat", "/data/added"]' c1 img2)
check "commit prints the new image ID" grep -qE '^sha256:[0-9a-f]{64}$' <<<"$IMG2"
HIST=$("$SI" history --no-trunc img2)
check "history: the new layer, newest first, with the comment" bash -c "sed -n 2p <<<'$HIST' | grep -q '#(nop) CMD'; sed -n 3p <<<'$HIST' | grep -q 'the change'"
check "history: the commit's parent is busybox" bash -c "grep -q '${IMG1}' <<<'$HIST'"
expect_eq "history has both layers and the change entry" 3 "$("$SI" history --format json img2 | jq length)"
check "inspect shows two layers" bash -c "'$SI' inspect img2 | grep -c '\"ChainID\"' | grep -qx 2"

echo "== the committed image, run and exported"
expect_eq "run of img2 uses its new CMD" added "$("$SI" run --rm img2)"
expect_eq "exit codes pass through" 7 "$("$SI" run --rm img2 sh -c 'exit 7' >/dev/null; echo $?)"
"$SI" create --name c2 img2 >/dev/null 2>&1
"$SI" export -q -o "$WORKDIR/c2.tar" c2
check "export has no whiteouts" bash -c "! tar -tf '$WORKDIR/c2.tar' | grep -q '\\.wh\\.'"
mkdir "$WORKDIR/c2"
tar --xattrs --xattrs-include='*' --acls -xpf "$WORKDIR/c2.tar" -C "$WORKDIR/c2"
expect_eq "export of c2 is exactly the expected tree" "$(tree_list "$EXPECT")" "$(tree_list "$WORKDIR/c2")"
check "xattrs survive import, commit and export" bash -c "getfattr --only-values -n user.origin '$WORKDIR/c2/data/keep/file' | grep -qx base"
check "file capabilities survive import and export" bash -c "getcap '$WORKDIR/c2/data/keep/pinger' | grep -q cap_net_raw"
# GNU tar does not restore an ACL carried as an xattr record (docker's form), so look at
# the record in the tar, and at the ACL in the image's layer dir.
check "ACLs survive export (as docker writes them)" bash -c "tar --xattrs --xattrs-include='*' -tvvf '$WORKDIR/c2.tar' data/keep/file | grep -q 'system.posix_acl_access'"
check "ACLs survive import into the layer dir" bash -c "getfacl -n \"\$(jq -r '.[0].GraphDriver.Data.LowerDir' <<<\"\$('$SI' inspect c2)\" | tr : '\n' | tail -1)/data/keep/file\" | grep -qx 'user:1234:r--'"
VIEW=$("$SI" run --rm img2 sh -c 'cat /data/added /data/change-me /data/old/fresh; ls /data/old; test ! -e /data/delete-me && echo gone; readlink /data/newdir/link; echo $GREETING')
expect_eq "a container of img2 sees the change file by file" "added
original
changed
new
fresh
gone
../added
hello" "$VIEW"

echo "== real tools read the store"
check "skopeo inspect oci:STORE:img2" bash -c "skopeo inspect 'oci:$STRATA_IMAGE_ROOT:img2:latest' | grep -q '\"Layers\"'"
expect_eq "skopeo sees two layers" 2 "$(skopeo inspect "oci:$STRATA_IMAGE_ROOT:img2:latest" | jq '.Layers | length')"
check "umoci unpack of img2" umoci unpack --image "$STRATA_IMAGE_ROOT:img2:latest" "$WORKDIR/umoci"
expect_eq "umoci's tree equals the container's view" "$(tree_list "$EXPECT")" "$(tree_list "$WORKDIR/umoci/rootfs")"

echo "== running containers: ps, commit while running, rm"
"$SI" create --name c3 busybox sleep 1000 >/dev/null 2>&1
BUNDLE3=$("$SI" inspect c3 | jq -r '.[0].Bundle')
"$STRATA" --root "$WORKDIR/rt" run -d -b "$BUNDLE3" c3 >/dev/null 2>&1 </dev/null
check "ps shows c3 running" bash -c "'$SI' ps | grep -E ' running +c3\$'"
check "commit of a running container" "$SI" commit -q c3 img3
check "c3 was resumed after the commit" bash -c "'$SI' ps | grep -E ' running +c3\$'"
check "rm refuses a running container, naming rm -f" bash -c "'$SI' rm c3 2>&1 | grep -q 'rm -f'"
check "rm of a running container fails" bash -c "! '$SI' rm c3 2>/dev/null"
check "rm -f kills and removes it" "$SI" rm -f c3
check "c3 is gone from strata too" bash -c "! '$STRATA' --root '$WORKDIR/rt' state c3"

echo "== removal frees the space"
check "rmi refuses an image a container uses" bash -c "! '$SI' rmi img2"
"$SI" rm c1 c2 >/dev/null
LAYERS_BEFORE=$(ls "$STRATA_IMAGE_ROOT/layers" | wc -l)
check "rmi img2 deletes it" bash -c "'$SI' rmi img2 | grep -q '^Deleted: $IMG2'"
"$SI" rmi img3 >/dev/null
expect_eq "img2's and img3's layers are gone" $((LAYERS_BEFORE - 2)) "$(ls "$STRATA_IMAGE_ROOT/layers" | wc -l)"
"$SI" rmi busybox >/dev/null
"$SI" gc >/dev/null
expect_eq "an empty store has no blobs left" 0 "$(ls "$STRATA_IMAGE_ROOT/blobs/sha256" | wc -l)"
expect_eq "and no layers" 0 "$(ls "$STRATA_IMAGE_ROOT/layers" | wc -l)"
expect_eq "nothing is mounted under the work dir" "" "$(awk -v d="$WORKDIR" 'index($5, d) == 1' /proc/self/mountinfo)"
summary
