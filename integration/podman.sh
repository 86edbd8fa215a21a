#!/usr/bin/env bash
# podman end to end: podman (through conmon) drives strata as its OCI runtime.
#
#   bash integration/podman.sh                  # strata (static build)
#   STRATA_BIN=target/debug/strata bash integration/podman.sh   # skip the build
#   RUNTIME=runc bash integration/podman.sh     # the same checks with runc (or crun)
#
# Everything is private: podman's storage, run root, tmp dir, events log, network
# config and containers.conf/storage.conf/registries.conf all live in $WORKDIR, and the
# runtime keeps its state under $WORKDIR/rtroot (through a wrapper: podman does not pass
# --runtime-flag root=... to its cleanup command). The wrapper also records every
# command podman/conmon gives the runtime, to prove which runtime ran.
# Needs root, podman, conmon; busybox comes from common.sh's build_image.

source "$(dirname "$0")/lib/common.sh"

RUNTIME=${RUNTIME:-strata}
[ "$(id -u)" = 0 ] || { log "needs root"; exit 2; }
need_pkgs podman conmon util-linux

case $RUNTIME in
strata) ;;
*) RT_BIN=$(command -v "$RUNTIME") || { log "no $RUNTIME on PATH"; exit 2; } ;;
esac

PM=$WORKDIR/podman   # podman with every private flag (a script: `script -c` runs it too)
RTROOT=$WORKDIR/rtroot
CALLS=$WORKDIR/calls.log

# podman's own parent cgroup (libpod_parent, with conmon's cgroup under it): removed at
# the end unless it was there before.
PARENT_CGROUPS=$(ls -d /sys/fs/cgroup/libpod_parent /sys/fs/cgroup/*/libpod_parent 2>/dev/null)

cleanup() {
    local rc=$?
    set +e
    if [ -x "$PM" ]; then
        "$PM" rm -a -f -t 0 >/dev/null 2>&1
        "$PM" rmi -a -f >/dev/null 2>&1
    fi
    # whatever podman left: processes started from $WORKDIR (conmon, the runtime, ...)
    local p
    for p in /proc/[0-9]*; do
        [ "${p#/proc/}" = $$ ] && continue
        if tr '\0' ' ' 2>/dev/null <"$p/cmdline" | grep -qF -- "$WORKDIR"; then
            kill -9 "${p#/proc/}" 2>/dev/null
        fi
    done
    # mounts under $WORKDIR (overlay layers, the storage's private bind, shm), deepest first
    awk -v d="$WORKDIR" 'index($5, d) == 1 { print $5 }' /proc/self/mountinfo | sort -r |
        while read -r m; do umount -l "$m" 2>/dev/null; done
    # cgroups of the containers this run created
    if [ -f "$CALLS" ]; then
        local id
        for id in $(awk '$1 == "create" { print $NF }' "$CALLS" | sort -u); do
            find /sys/fs/cgroup -depth -type d -name "*$id*" -exec rmdir {} \; 2>/dev/null
        done
    fi
    if [ -z "$PARENT_CGROUPS" ]; then
        find /sys/fs/cgroup/libpod_parent /sys/fs/cgroup/*/libpod_parent -depth -type d \
            -exec rmdir {} \; 2>/dev/null
    fi
    rm -rf "$WORKDIR" /tmp/strata-check.$$
    exit $rc
}
trap cleanup EXIT
trap 'exit 130' INT TERM

if [ "$RUNTIME" = strata ]; then
    build_strata || { log "strata build failed"; exit 1; }
    RT_BIN=$STRATA
fi
build_image || { log "image build failed"; exit 1; }
log "runtime: $RUNTIME ($RT_BIN)"

# ---- private podman environment ---------------------------------------------------
mkdir -p "$WORKDIR"/{storage,runroot,tmp,cni,rtroot}

# The runtime, wrapped: a private --root, and a record of each command.
cat >"$WORKDIR/runtime" <<EOF
#!/bin/sh
echo "\$*" >>"$CALLS"
exec "$RT_BIN" --root "$RTROOT" "\$@"
EOF
chmod 0755 "$WORKDIR/runtime"

podman_ulimits
cat >"$WORKDIR/containers.conf" <<EOF
[containers]
$PODMAN_ULIMITS
netns = "none"

[engine]
cgroup_manager = "cgroupfs"
events_logger = "file"
events_logfile_path = "$WORKDIR/tmp/events.log"
runtime = "test"

[engine.runtimes]
test = ["$WORKDIR/runtime"]

[network]
network_config_dir = "$WORKDIR/cni"
EOF
cat >"$WORKDIR/storage.conf" <<EOF
[storage]
driver = "overlay"
runroot = "$WORKDIR/runroot"
graphroot = "$WORKDIR/storage"
EOF
cat >"$WORKDIR/registries.conf" <<EOF
unqualified-search-registries = ["docker.io"]
EOF
cat >"$PM" <<EOF
#!/bin/sh
export CONTAINERS_CONF="$WORKDIR/containers.conf"
export CONTAINERS_STORAGE_CONF="$WORKDIR/storage.conf"
export CONTAINERS_REGISTRIES_CONF="$WORKDIR/registries.conf"
exec timeout --foreground 120 podman --root "$WORKDIR/storage" --runroot "$WORKDIR/runroot" \\
    --tmpdir "$WORKDIR/tmp" --cgroup-manager cgroupfs --events-backend file \\
    --network-config-dir "$WORKDIR/cni" --storage-driver overlay \\
    --runtime "$WORKDIR/runtime" "\$@"
EOF
chmod 0755 "$PM"

pm() { "$PM" "$@"; }
# podman run/create, always without a network
prun() { pm run --network none "$@"; }

# ---- checks -------------------------------------------------------------------------
IMG=docker.io/library/busybox:latest   # fully qualified: no short-name resolution (and no alias cache)
check "podman load busybox" pm load -i "$IMAGE_DOCKER_TAR"
expect_eq "podman uses the runtime wrapper" "$WORKDIR/runtime" \
    "$(pm info --format '{{.Host.OCIRuntime.Path}}' 2>/dev/null)"

expect_eq "run --rm echo" hello "$(prun --rm "$IMG" echo hello 2>&1)"
grep -q '^create --bundle' "$CALLS" 2>/dev/null && grep -q '^start ' "$CALLS"
expect_eq "the runtime wrapper saw create and start" 0 $?

prun --rm "$IMG" sh -c 'exit 3' >/dev/null 2>&1
expect_eq "run exit code 3" 3 $?
prun --rm "$IMG" /nonexistent >/dev/null 2>&1
expect_eq "run of a missing binary: 127" 127 $?
prun --rm "$IMG" no-such-command >/dev/null 2>&1
expect_eq "run of a command not in \$PATH: 127" 127 $?
prun --rm "$IMG" /etc/passwd >/dev/null 2>&1
expect_eq "run of a file that is not executable: 126" 126 $?

expect_eq "seccomp enforced (podman's default profile)" 2 \
    "$(prun --rm "$IMG" sh -c 'grep "^Seccomp:" /proc/self/status' 2>&1 | awk '{print $2}')"
expect_eq "run --security-opt seccomp=unconfined" 0 \
    "$(prun --rm --security-opt seccomp=unconfined "$IMG" sh -c 'grep "^Seccomp:" /proc/self/status' 2>&1 | awk '{print $2}')"
expect_eq "rlimits pinned (nofile)" "$nofile" "$(prun --rm "$IMG" sh -c 'ulimit -Hn' 2>&1)"
expect_eq "run --user 1000:1000" "1000 1000" "$(prun --rm --user 1000:1000 "$IMG" sh -c 'echo $(id -u) $(id -g)' 2>&1)"
expect_eq "run --hostname" box1 "$(prun --rm --hostname box1 "$IMG" hostname 2>&1)"
expect_eq "run -e and -w" "bar /tmp" "$(prun --rm -e FOO=bar -w /tmp "$IMG" sh -c 'echo $FOO $(pwd)' 2>&1)"
check "run --read-only: root not writable" sh -c "! '$PM' run --rm --network none --read-only $IMG touch /x"
expect_eq "run --cap-drop all: no effective caps" 0000000000000000 \
    "$(prun --rm --cap-drop all "$IMG" sh -c 'grep ^CapEff /proc/self/status' 2>&1 | awk '{print $2}')"
expect_eq "run is pid 1 in its pid namespace" 1 "$(prun --rm "$IMG" sh -c 'echo $$' 2>&1)"

# Mounts, devices, sysctls, privileged, user namespaces.
mkdir -p "$WORKDIR/vol" && echo hostfile >"$WORKDIR/vol/f"
expect_eq "-v bind: read the host's file, write one back" "hostfile w" \
    "$(prun --rm -v "$WORKDIR/vol:/data" "$IMG" sh -c 'cat /data/f; echo w > /data/g' 2>&1) $(cat "$WORKDIR/vol/g" 2>&1)"
check "-v bind :ro is read-only" sh -c "! '$PM' run --rm --network none -v '$WORKDIR/vol:/data:ro' $IMG touch /data/x"
expect_eq "named volume persists" v \
    "$(prun --rm -v vol1:/v "$IMG" sh -c 'echo v > /v/a' 2>&1)$(prun --rm -v vol1:/v "$IMG" cat /v/a 2>&1)"
expect_eq "--mount bind-propagation=rshared: a shared mount" shared \
    "$(prun --rm --mount "type=bind,src=$WORKDIR/vol,dst=/m,bind-propagation=rshared" "$IMG" \
        sh -c 'grep " /m " /proc/self/mountinfo | cut -d" " -f7 | cut -d: -f1' 2>&1)"
expect_eq "--tmpfs" "tmpfs /scratch" "$(prun --rm --tmpfs /scratch "$IMG" sh -c 'grep " /scratch " /proc/mounts | cut -d" " -f1,2' 2>&1)"
expect_eq "--shm-size 32m" 32768 "$(prun --rm --shm-size 32m "$IMG" sh -c 'df -k /dev/shm | awk "NR==2 {print \$2}"' 2>&1)"
expect_eq "--device /dev/null:/dev/xnull" "c written" \
    "$(prun --rm --device /dev/null:/dev/xnull "$IMG" sh -c 'ls -l /dev/xnull | cut -c1; echo x > /dev/xnull && echo written' 2>&1 | tr '\n' ' ' | sed 's/ $//')"
expect_eq "--sysctl net.ipv4.ip_forward=1" 1 "$(prun --rm --sysctl net.ipv4.ip_forward=1 "$IMG" cat /proc/sys/net/ipv4/ip_forward 2>&1)"
expect_eq "/proc/kcore masked, /proc/sys read-only" "masked ro" \
    "$(prun --rm "$IMG" sh -c '[ -s /proc/kcore ] || echo -n masked; echo 1 2>/dev/null > /proc/sys/kernel/domainname || echo " ro"' 2>&1)"
expect_eq "--privileged: all caps, no seccomp, /sys writable" "000001fffeffffff 0 rw" \
    "$(prun --rm --privileged "$IMG" sh -c 'echo $(awk "/^CapEff/ {print \$2}" /proc/self/status) $(awk "/^Seccomp:/ {print \$2}" /proc/self/status) $(awk "\$2 == \"/sys\" {print substr(\$4, 1, 2)}" /proc/mounts)' 2>&1)"
expect_eq "--uidmap/--gidmap: a user namespace" "0 100000 65536 uid=0" \
    "$(prun --rm --uidmap 0:100000:65536 --gidmap 0:100000:65536 "$IMG" sh -c 'echo $(cat /proc/self/uid_map) $(id | cut -d"(" -f1)' 2>&1)"
check "--uidmap: root can write its rootfs" prun --rm --uidmap 0:100000:65536 --gidmap 0:100000:65536 "$IMG" touch /x
check "--pid host: not pid 1" sh -c "[ \"\$('$PM' run --rm --network none --pid host $IMG sh -c 'echo \$\$')\" != 1 ]"
prun -d --name s1 --hostname shared "$IMG" sleep 600 >/dev/null 2>&1
expect_eq "--pid/--uts/--ipc/--network container:s1 (namespaces joined by path)" "sleep shared $(pm exec s1 readlink /proc/self/ns/ipc 2>&1)" \
    "$(pm run --rm --pid container:s1 --uts container:s1 --ipc container:s1 --network container:s1 "$IMG" \
        sh -c 'echo $(cat /proc/1/comm) $(hostname) $(readlink /proc/self/ns/ipc)' 2>&1)"
check "rm -f s1" pm rm -f -t 0 s1

# A detached container: exec, state, pause/unpause, stop, start, rm.
cid=$(prun -d --name c1 --memory 64m --pids-limit 50 "$IMG" sleep 600 2>/dev/null)
expect_eq "run -d: a container ID" 64 "${#cid}"
expect_eq "run -d: running" running "$(pm inspect -f '{{.State.Status}}' c1 2>&1)"
check "runtime state dir holds the container" test -d "$RTROOT/$cid"
pid=$(pm inspect -f '{{.State.Pid}}' c1 2>/dev/null)
expect_eq "runtime state: running, same pid as podman's" "running $pid" \
    "$("$RT_BIN" --root "$RTROOT" state "$cid" 2>&1 | awk -F'"' '/"status"/ {s=$4} /"pid"/ {gsub(/[^0-9]/, "", $3); p=$3} END {print s, p}')"
memcg=$(find /sys/fs/cgroup/memory /sys/fs/cgroup/unified /sys/fs/cgroup -maxdepth 4 -type d -name "*$cid*" 2>/dev/null | head -1)
if [ -f "/sys/fs/cgroup/memory/libpod_parent/libpod-$cid/memory.limit_in_bytes" ]; then
    expect_eq "--memory 64m (v1 memory.limit_in_bytes)" 67108864 \
        "$(cat "/sys/fs/cgroup/memory/libpod_parent/libpod-$cid/memory.limit_in_bytes")"
    expect_eq "--pids-limit 50 (v1 pids.max)" 50 "$(cat "/sys/fs/cgroup/pids/libpod_parent/libpod-$cid/pids.max" 2>&1)"
else
    expect_eq "--memory 64m (memory.max)" 67108864 "$(cat "$memcg/memory.max" 2>&1)"
    expect_eq "--pids-limit 50 (pids.max)" 50 "$(cat "$memcg/pids.max" 2>&1)"
fi
expect_eq "exec output" hi-exec "$(pm exec c1 echo hi-exec 2>&1)"
pm exec c1 sh -c 'exit 7' >/dev/null 2>&1
expect_eq "exec exit code 7" 7 $?
pm exec c1 /nonexistent >/dev/null 2>&1
expect_eq "exec of a missing binary: 127" 127 $?
pm exec c1 /etc/passwd >/dev/null 2>&1
expect_eq "exec of a file that is not executable: 126" 126 $?
expect_eq "exec --user 1000 -w /tmp -e" "1000 /tmp bar" \
    "$(pm exec --user 1000 -w /tmp -e FOO=bar c1 sh -c 'echo $(id -u) $(pwd) $FOO' 2>&1)"
expect_eq "exec joins the pid namespace (pid 1 is sleep)" sleep "$(pm exec c1 cat /proc/1/comm 2>&1)"
pm exec -d c1 sleep 300 >/dev/null 2>&1
expect_eq "exec -d: the process runs" 0 $?
expect_eq "exec -d: two sleeps in the container" 2 "$(pm exec c1 sh -c 'cat /proc/[0-9]*/comm | grep -cx sleep' 2>&1)"
expect_eq "exec -t: a tty" /dev/pts/0 \
    "$(script -qec "'$PM' exec -t c1 tty" /dev/null 2>&1 | tr -d '\r')"
expect_eq "top" "sleep 600" "$(pm top c1 args 2>&1 | sed -n 2p | sed 's/ *$//')"
grep -q '^exec ' "$CALLS"
expect_eq "the runtime wrapper saw exec" 0 $?

check "pause" pm pause c1
expect_eq "pause: podman ps status" Paused "$(pm ps -a --filter name=c1 --format '{{.Status}}' 2>&1)"
expect_eq "pause: runtime state" paused "$("$RT_BIN" --root "$RTROOT" state "$cid" 2>&1 | awk -F'"' '/"status"/ {print $4}')"
if [ -d /sys/fs/cgroup/freezer ]; then
    expect_eq "pause: v1 freezer FROZEN" FROZEN \
        "$(cat "$(find /sys/fs/cgroup/freezer -type d -name "*$cid*" | head -1)/freezer.state" 2>&1)"
else
    expect_eq "pause: cgroup.events frozen 1" "frozen 1" \
        "$(grep frozen "$(find /sys/fs/cgroup -type d -name "*$cid*" | head -1)/cgroup.events" 2>&1)"
fi
check "unpause" pm unpause c1
expect_eq "unpause: podman status running" running "$(pm inspect -f '{{.State.Status}}' c1 2>&1)"
if [ -d /sys/fs/cgroup/freezer ]; then
    expect_eq "unpause: v1 freezer THAWED" THAWED \
        "$(cat "$(find /sys/fs/cgroup/freezer -type d -name "*$cid*" | head -1)/freezer.state" 2>&1)"
fi
expect_eq "exec after unpause" back "$(pm exec c1 echo back 2>&1)"

# sleep as pid 1 ignores SIGTERM: podman escalates to SIGKILL after -t seconds.
check "stop (SIGTERM ignored, then SIGKILL)" pm stop -t 2 c1
expect_eq "stop: exited" exited "$(pm inspect -f '{{.State.Status}}' c1 2>&1)"
expect_eq "stop: exit code 137" 137 "$(pm inspect -f '{{.State.ExitCode}}' c1 2>&1)"
grep -q "^kill $cid 15" "$CALLS" && grep -q "^kill $cid 9" "$CALLS"
expect_eq "the runtime wrapper saw kill 15 and kill 9" 0 $?
check "stop: runtime state dir gone" test ! -e "$RTROOT/$cid"
check "start again" pm start c1
expect_eq "start again: running" running "$(pm inspect -f '{{.State.Status}}' c1 2>&1)"
expect_eq "exec after restart" again "$(pm exec c1 echo again 2>&1)"
check "kill -s KILL" pm kill -s KILL c1
expect_eq "wait after kill: 137" 137 "$(pm wait c1 2>&1)"
check "rm" pm rm c1
check "rm: gone from podman" sh -c "! '$PM' container exists c1"

# A graceful stop: the container handles SIGTERM and exits 0.
prun -d --name c2 "$IMG" sh -c 'trap "exit 0" TERM; echo started; while :; do sleep 0.1; done' >/dev/null 2>&1
sleep 0.5
check "stop (SIGTERM handled)" pm stop -t 30 c2
expect_eq "graceful stop: exit code 0" 0 "$(pm inspect -f '{{.State.ExitCode}}' c2 2>&1)"
expect_eq "logs" started "$(pm logs c2 2>&1)"
check "rm c2" pm rm c2

# commit and export
prun --name w1 "$IMG" sh -c 'echo committed-data > /marker' >/dev/null 2>&1
expect_eq "writer container exit 0" 0 "$(pm inspect -f '{{.State.ExitCode}}' w1 2>&1)"
check "commit" pm commit -q w1 localhost/strata-commit:test
expect_eq "run the committed image" committed-data "$(prun --rm localhost/strata-commit:test cat /marker 2>&1)"
check "export" pm export -o "$WORKDIR/w1.tar" w1
expect_eq "export: the file is in the tar" committed-data "$(tar -xOf "$WORKDIR/w1.tar" marker 2>&1)"
check "rm w1" pm rm w1

# terminals
expect_eq "run -t: tty" /dev/pts/0 \
    "$(script -qec "'$PM' run --rm -t --network none $IMG tty" /dev/null 2>&1 | tr -d '\r')"
expect_eq "run -it: stdin reaches the container" "got abc" \
    "$(echo abc | script -qec "'$PM' run --rm -it --network none $IMG sh -c 'read x; echo got \$x'" /dev/null 2>&1 |
        tr -d '\r' | grep '^got')"
expect_eq "run -t: exit code" 5 \
    "$(script -qec "'$PM' run --rm -t --network none $IMG sh -c 'exit 5'; echo rc=\$?" /dev/null 2>&1 |
        tr -d '\r' | sed -n 's/^rc=//p')"

# create + start separately
pm create --network none --name c3 "$IMG" echo created-then-started >/dev/null 2>&1
expect_eq "create: created" created "$(pm inspect -f '{{.State.Status}}' c3 2>&1)"
expect_eq "start -a" created-then-started "$(pm start -a c3 2>&1)"
check "rm c3" pm rm c3

# ---- nothing left behind --------------------------------------------------------------
check "no containers left" test -z "$(pm ps -aq 2>&1)"
ids=$(awk '$1 == "create" { print $NF }' "$CALLS" | sort -u)
expect_eq "the runtime created the containers" yes "$([ -n "$ids" ] && echo yes)"
for id in $ids; do
    short=${id:0:12}
    left=$(leftovers "$id")
    procs=$(for p in /proc/[0-9]*; do
        [ "${p#/proc/}" = $$ ] && continue
        tr '\0' ' ' 2>/dev/null <"$p/cmdline" | grep -qF -- "$id" && echo "process: ${p#/proc/} $(tr '\0' ' ' 2>/dev/null <"$p/cmdline")"
    done)
    expect_eq "no mounts, cgroups, processes left for $short" "" "$left$procs"
done
expect_eq "runtime state dir empty" "" "$(ls -A "$RTROOT" 2>&1)"

summary
