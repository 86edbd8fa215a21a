#!/usr/bin/env bash
# strata-image build end to end: Dockerfiles covering every instruction and a multi-stage
# build; the images run and show what each step did; the same Dockerfiles built with
# `buildah bud` give the same file trees and config fields; a rebuild is all cache.
#
#   bash integration/build.sh                                 # static release build
#   STRATA_BIN=target/debug/strata bash integration/build.sh    # skip the build (needs
#                                                             # target/debug/strata-image)
#
# No network: both builders start from the same local busybox image (made as
# lib/common.sh makes it), loaded into a private strata-image store and a private
# buildah store. Needs root, buildah, umoci, skopeo, jq, python3.

source "$(dirname "$0")/lib/common.sh"

[ "$(id -u)" = 0 ] || { log "needs root"; exit 2; }
need_pkgs buildah umoci skopeo jq python3 tar

build_strata || { log "build failed"; exit 1; }
SI=$WORKDIR/bin/strata-image
built=$(readlink -f "${STRATA_BIN:-$REPO/target/$(rustc -vV | sed -n 's/^host: //p')/release/strata}")
install -m 0755 "$(dirname "$built")/strata-image" "$SI" || { log "no strata-image beside $built"; exit 1; }
export STRATA_IMAGE_ROOT=$WORKDIR/store STRATA_RUNTIME_ROOT=$WORKDIR/rt
BUILDAH=(buildah --root "$WORKDIR/buildah" --runroot "$WORKDIR/buildah-run" --storage-driver vfs)

cleanup() {
    set +e
    "${BUILDAH[@]}" rm --all >/dev/null 2>&1
    awk -v d="$WORKDIR" 'index($5, d) == 1 { print $5 }' /proc/self/mountinfo | sort -r |
        while read -r m; do umount -l "$m"; done
    rm -rf "$WORKDIR"
}
trap cleanup EXIT

build_image || { log "could not make the busybox image"; exit 1; }
check "load busybox into strata-image" "$SI" load -q -i "$IMAGE_OCI_TAR"
check "load busybox into buildah" "${BUILDAH[@]}" pull -q "oci-archive:$IMAGE_OCI_TAR" 

# --- the build context: files for COPY and ADD ---------------------------------------
CTX=$WORKDIR/ctx
mkdir -p "$CTX/bin" "$CTX/sub" "$CTX/tree/inner" "$CTX/ignored"
echo A >"$CTX/a.txt"
printf '#!/bin/sh\necho tool\n' >"$CTX/bin/tool"
chmod 755 "$CTX/bin/tool"
echo x >"$CTX/sub/x.txt"
echo y >"$CTX/sub/y.txt"
echo z >"$CTX/sub/z.md"
echo secret >"$CTX/ignored/secret"
echo "in tar" >"$CTX/tree/inner/f"
tar -C "$CTX/tree" -cf "$CTX/files.tar" inner
printf 'ignored\n*.log\n' >"$CTX/.dockerignore"
echo noise >"$CTX/debug.log"

# Every instruction both builders know (heredocs are checked for strata alone below:
# buildah learnt them after the version Debian ships).
cat >"$CTX/Dockerfile.all" <<'EOF'
ARG BASE=busybox
FROM ${BASE} AS base
ONBUILD RUN echo triggered > /onbuild.txt

FROM base
MAINTAINER someone
ARG V=1
ENV GREETING=hello DIR=/srv
LABEL org.example.v=$V maintainer="me"
WORKDIR $DIR
WORKDIR app
COPY a.txt ./
COPY --chown=1000:1001 --chmod=0750 bin/ /opt/bin/
COPY sub/*.txt /globbed/
COPY . /ctx/
ADD files.tar /unpacked/
RUN echo "v=$V greeting=$GREETING pwd=$(pwd)" > /run.txt
RUN ["/bin/sh", "-c", "echo exec-form > /exec.txt"]
SHELL ["/bin/sh", "-ec"]
RUN echo shelled > /shell.txt && rm -f /etc/motd
USER 1000:1001
EXPOSE 8080 53/udp
VOLUME /data
STOPSIGNAL SIGINT
HEALTHCHECK --interval=30s --retries=3 CMD true
ONBUILD RUN echo child
ENTRYPOINT ["/bin/sh", "-c"]
CMD ["cat /run.txt"]
EOF

cat >"$CTX/Dockerfile.stages" <<'EOF'
FROM busybox AS broken
RUN exit 3

FROM busybox AS builder
RUN mkdir -p /out && echo compiled > /out/artifact && cp /bin/busybox /out/

FROM scratch AS final
COPY --from=builder /out/ /bin/
CMD ["/bin/busybox", "cat", "/bin/artifact"]
EOF

cat >"$CTX/Dockerfile.heredoc" <<'EOF'
FROM busybox
ARG WHO=world
COPY <<EOT /etc/greeting
hello $WHO
EOT
RUN <<EOT
set -e
cat /etc/greeting > /out.txt
echo second line >> /out.txt
EOT
EOF

# --- strata-image ----------------------------------------------------------------
check "build every instruction" "$SI" build -q -f "$CTX/Dockerfile.all" -t all:1 --build-arg V=7 "$CTX"
expect_eq "the image runs its ENTRYPOINT + CMD as USER" \
    "v=7 greeting=hello pwd=/srv/app" "$("$SI" run --rm all:1 2>&1)"
expect_eq "each step's files are there" \
    "1000 A x y in tar exec-form shelled triggered 1000:1001 750 tool" \
    "$("$SI" run --rm all:1 'id -u; cat /srv/app/a.txt /globbed/x.txt /globbed/y.txt /unpacked/inner/f /exec.txt /shell.txt /onbuild.txt; stat -c "%u:%g %a" /opt/bin/tool; /opt/bin/tool' 2>&1 | tr '\n' ' ' | sed 's/ $//')"
expect_eq ".dockerignore kept files out" "" \
    "$("$SI" run --rm all:1 'ls /ctx/ignored /ctx/debug.log 2>/dev/null')"
expect_eq "history reads as docker's" "RUN |1 V=7 /bin/sh -ec echo shelled > /shell.txt && rm -f /etc/motd # buildkit" \
    "$("$SI" history --format json all:1 | jq -r '.[].created_by' | grep -m1 'shelled')"
check "a rebuild is all cache (no container)" bash -c "
    t0=\$(date +%s%N)
    id1=\$('$SI' build -q -f '$CTX/Dockerfile.all' -t all:1 --build-arg V=7 '$CTX')
    t1=\$(date +%s%N)
    ms=\$(( (t1 - t0) / 1000000 ))
    echo \"took \$ms ms\"
    [ \"\$id1\" = \"\$('$SI' inspect --type image all:1 | jq -r '.[0].Id')\" ] && [ \$ms -lt 1000 ] &&
    [ -z \"\$(ls '$STRATA_RUNTIME_ROOT' 2>/dev/null | grep -v '^@')\" ]"
check "build the final stage only (the broken one is skipped)" \
    "$SI" build -q -f "$CTX/Dockerfile.stages" --target final -t stages:1 "$CTX"
expect_eq "the multi-stage image runs" "compiled" "$("$SI" run --rm stages:1 2>&1)"
check "heredocs" "$SI" build -q -f "$CTX/Dockerfile.heredoc" -t heredoc:1 "$CTX"
expect_eq "heredoc files and scripts" "hello world second line" \
    "$("$SI" run --rm heredoc:1 cat /out.txt | tr '\n' ' ' | sed 's/ $//')"
out=$("$SI" build -q -f "$CTX/Dockerfile.stages" --target broken "$CTX" 2>&1)
expect_eq "a failing RUN names its exit code" "1" "$(echo "$out" | grep -c 'exited with code 3')"
expect_eq "nothing left behind after failures" "" \
    "$(find "$STRATA_IMAGE_ROOT/tmp" "$STRATA_IMAGE_ROOT/containers" -mindepth 1; leftovers "$WORKDIR/store")"

# --- buildah, the same Dockerfiles --------------------------------------------------
BFLAGS=(--isolation chroot --format docker --layers -q)
check "buildah bud every instruction" "${BUILDAH[@]}" bud "${BFLAGS[@]}" \
    -f "$CTX/Dockerfile.all" -t all:1 --build-arg V=7 "$CTX"
check "buildah bud the final stage" "${BUILDAH[@]}" bud "${BFLAGS[@]}" \
    -f "$CTX/Dockerfile.stages" --target final -t stages:1 "$CTX"

# A tree as one line a path: type, mode, owner, size, link target and content digest
# (times and the files either builder makes for its runtime left out).
normalise() {
    python3 - "$1" <<'PY'
import hashlib, sys, tarfile
skip = {"etc/hostname", "etc/hosts", "etc/resolv.conf", "run", "proc", "sys", "dev"}
with tarfile.open(sys.argv[1]) as t:
    rows = set()
    for m in t.getmembers():
        n = m.name.lstrip("./").rstrip("/")
        if not n or n in skip or n.split("/")[0] in ("proc", "sys", "dev", "run"):
            continue
        digest = ""
        if m.isfile():
            digest = hashlib.sha256(t.extractfile(m).read()).hexdigest()[:16]
        kind = "d" if m.isdir() else "l" if m.issym() else "h" if m.islnk() else "f" if m.isfile() else "o"
        # A hard link is its target's content: compare as a file.
        if m.islnk():
            kind, digest = "f", ""
        rows.add(f"{kind} {n} {m.mode:o} {m.uid}:{m.gid} {m.size if m.isfile() else 0} {m.linkname if m.issym() else ''} {digest}")
    print("\n".join(sorted(rows)))
PY
}

tree_of_strata() {
    local c=cmp-$RANDOM
    "$SI" create --name "$c" "$1" true >/dev/null 2>&1 &&
        "$SI" export -o "$2" "$c" && "$SI" rm "$c" >/dev/null
}

# Through an OCI layout and umoci: `buildah from` would run the image's ONBUILD triggers.
tree_of_buildah() {
    local tag=${1//:/-}
    rm -rf "$WORKDIR/unpacked-$tag"
    "${BUILDAH[@]}" push -q "$1" "oci:$WORKDIR/boci:$tag" &&
        umoci unpack --image "$WORKDIR/boci:$tag" "$WORKDIR/unpacked-$tag" >/dev/null &&
        tar -C "$WORKDIR/unpacked-$tag/rootfs" -cf "$2" .
}

for img in all:1 stages:1; do
    tree_of_strata "$img" "$WORKDIR/s.tar" && tree_of_buildah "$img" "$WORKDIR/b.tar" &&
        normalise "$WORKDIR/s.tar" >"$WORKDIR/s.txt" && normalise "$WORKDIR/b.tar" >"$WORKDIR/b.txt"
    check "$img: the same file tree as buildah's" diff "$WORKDIR/b.txt" "$WORKDIR/s.txt"
    fields='{Env, Cmd, Entrypoint, WorkingDir, User, ExposedPorts, Volumes, Labels, StopSignal, Healthcheck, OnBuild, Shell}'
    # Empty and null are the same; buildah labels its version.
    tidy='del(.Labels["io.buildah.version"]) | with_entries(select(.value != null and .value != [] and .value != {} and .value != ""))'
    s_cfg=$("$SI" inspect --type image "$img" | jq -S ".[0].Config | $fields | $tidy")
    b_cfg=$("${BUILDAH[@]}" inspect --type image "$img" | jq -S ".Docker.config | $fields | $tidy")
    check "$img: the same config fields as buildah's" diff <(echo "$b_cfg") <(echo "$s_cfg")
done

summary
