#!/usr/bin/env bash
# docker end to end: a private dockerd (20.10, Debian's docker.io) on a private containerd,
# with strata registered by `--add-runtime` and made the default runtime. Docker drives
# it through containerd's runc v2 shim (create/start/state/kill/delete/exec/pause/
# resume/ps/update with `--root <exec-root>/runtime-<name>/moby`, `--log-format json`).
#
#   bash integration/docker.sh                 # the static strata (bundles/build-static.sh)
#   STRATA_BIN=target/debug/strata bash integration/docker.sh
#   RUNTIME=runc bash integration/docker.sh    # the same checks with the host's runc
#
# Everything is private to $WORKDIR (sockets, data-root, exec-root, containerd root and
# state) and a cgroup parent of its own; the trap stops dockerd, containerd and the shims,
# unmounts and removes it all, even on failure. KEEP_LOGS=1 keeps the daemons' logs.
source "$(dirname "$0")/lib/common.sh"
source "$(dirname "$0")/lib/daemons.sh"

RUNTIME=${RUNTIME:-strata}
DOCKER=/usr/bin/docker # docker.io's client (/usr/local/bin/docker may be another one)
need_pkgs docker.io containerd runc util-linux jq tar

case $RUNTIME in
strata)
    build_strata || { log "strata build failed"; exit 1; }
    RT_NAME=strata RT_BIN=$STRATA
    ;;
runc)
    # "runc" is a reserved runtime name in dockerd: register the host's runc under
    # another one so both runs go through --add-runtime the same way.
    RT_NAME=hostrunc RT_BIN=$(command -v runc)
    ;;
*)
    log "RUNTIME must be strata or runc"
    exit 2
    ;;
esac

CD=$WORKDIR/containerd
DD=$WORKDIR/docker
EXEC_ROOT=$DD/exec
# The shim's --root: <exec-root>/runtime-<name>/moby on newer dockerd, but 20.10 puts
# every runtime under runtime-runc (defaultV2ShimConfig); found below from a container.
RT_ROOT=$EXEC_ROOT/runtime-runc/moby
CGPARENT=/strata-it-docker-$$
export DOCKER_HOST=unix://$WORKDIR/docker.sock
unset DOCKER_CONTEXT DOCKER_TLS_VERIFY DOCKER_CERT_PATH
export DOCKER_CONFIG=$WORKDIR/docker-client
CONTAINERD_PID= DOCKERD_PID=
RUN_CONTAINERD_EXISTED=$([ -e /run/containerd ] && echo 1)
KEY_JSON_EXISTED=$([ -e /etc/docker/key.json ] && echo 1)

d() { timeout 120 "$DOCKER" "$@"; }

# pids whose command line mentions $WORKDIR (our daemons, shims, hooks).
our_pids() {
    local p
    for p in /proc/[0-9]*; do
        [ "${p#/proc/}" = $$ ] && continue
        { tr '\0' ' ' <"$p/cmdline"; } 2>/dev/null | grep -qF -- "$WORKDIR" && echo "${p#/proc/}"
    done
}

cgroup_dirs() { find /sys/fs/cgroup -maxdepth 3 -type d -name "${CGPARENT#/}" 2>/dev/null; }

cleanup() {
    set +e
    if [ -n "$DOCKERD_PID" ] && kill -0 "$DOCKERD_PID" 2>/dev/null; then
        local ids
        ids=$(timeout 20 "$DOCKER" ps -aq 2>/dev/null)
        [ -n "$ids" ] && timeout 60 "$DOCKER" rm -f $ids >/dev/null 2>&1
    fi
    stop_pid "$DOCKERD_PID" 20
    stop_pid "$CONTAINERD_PID" 10
    local pid
    for pid in $(our_pids); do kill -KILL "$pid" 2>/dev/null; done
    # container processes still in our cgroups (a runtime that lost track of them)
    local dir
    for dir in $(cgroup_dirs); do
        find "$dir" -name cgroup.procs -exec cat {} + 2>/dev/null | xargs -r kill -KILL 2>/dev/null
    done
    sleep 0.3
    for dir in $(cgroup_dirs); do
        find "$dir" -depth -type d -exec rmdir {} + 2>/dev/null
    done
    # every mount under $WORKDIR, deepest first
    local m
    for m in $(awk -v w="$WORKDIR" 'index($5, w) == 1 { print $5 }' /proc/self/mountinfo | sort -r); do
        umount "$m" 2>/dev/null || umount -l "$m" 2>/dev/null
    done
    if [ -n "${KEEP_LOGS:-}" ]; then
        local keep=/tmp/strata-docker-$RUNTIME-logs
        mkdir -p "$keep" && cp -f "$WORKDIR"/*.log "$keep"/ 2>/dev/null && log "logs kept in $keep"
    fi
    rm -rf --one-file-system "$WORKDIR"
    # containerd 1.6 puts shim sockets in /run/containerd/s whatever its state dir is
    [ -z "$RUN_CONTAINERD_EXISTED" ] && rmdir /run/containerd/s /run/containerd 2>/dev/null
    [ -z "$KEY_JSON_EXISTED" ] && rm -f /etc/docker/key.json && rmdir /etc/docker 2>/dev/null
    rm -f /tmp/strata-check.$$
}
trap cleanup EXIT
trap 'exit 130' INT TERM

# --- image --------------------------------------------------------------------------
build_image || { log "image build failed"; exit 1; }

# --- daemons ------------------------------------------------------------------------
mkdir -p "$DOCKER_CONFIG"
start_containerd "$CD" "$WORKDIR/containerd.log" debug
start_dockerd "$DD" "$CD" "$DOCKER_HOST" "$WORKDIR/dockerd.log" --debug \
    --userland-proxy=false --cgroup-parent "$CGPARENT" \
    --add-runtime "$RT_NAME=$RT_BIN" --default-runtime "$RT_NAME"

dlog() { # the last errors and warnings of the daemons, for a failure
    # (the shim's cleanup "failed to remove runc container ... exit status 255" shows
    # with runc too, after the container was already deleted: not counted as a clue)
    grep -hE 'level=(error|warning|fatal)' "$WORKDIR/dockerd.log" "$WORKDIR/containerd.log" |
        grep -vE 'cleaning up after shim disconnected|starting signal loop|devmapper not configured|blkio weight|IPv4 forwarding' |
        tail -n "${1:-15}"
}

check "dockerd is up with $RT_NAME as its default runtime" \
    sh -c "d() { timeout 20 $DOCKER \"\$@\"; }; d info --format '{{.DefaultRuntime}}' | grep -qx $RT_NAME"
if [ "$FAIL" -gt 0 ]; then
    tail -30 "$WORKDIR/dockerd.log"
    summary
    exit 1
fi

# --- images -------------------------------------------------------------------------
check "docker load" d load -i "$IMAGE_DOCKER_TAR"

# --- one-shot runs ------------------------------------------------------------------
expect_eq "docker run --rm echo" hello "$(d run --rm --network none busybox echo hello 2>&1)"
d run --rm --network none busybox sh -c 'exit 3' >/dev/null 2>&1
expect_eq "docker run exit code" 3 "$?"
# docker reads the runtime's error text: "no such file or directory" and "executable
# file not found" become 127, "permission denied" 126 (runc's words).
d run --rm --network none busybox /no/such/binary >/dev/null 2>&1
expect_eq "docker run of a missing binary: 127" 127 "$?"
d run --rm --network none busybox no-such-command >/dev/null 2>&1
expect_eq "docker run of a command not in \$PATH: 127" 127 "$?"
d run --rm --network none busybox /etc/passwd >/dev/null 2>&1
expect_eq "docker run of a file that is not executable: 126" 126 "$?"
expect_eq "docker run -i: stdin reaches the container" "from stdin" \
    "$(echo 'from stdin' | d run --rm -i --network none busybox cat 2>&1)"
expect_eq "docker's default seccomp profile is enforced" "Seccomp:	2" \
    "$(d run --rm --network none busybox grep '^Seccomp:' /proc/self/status 2>&1)"
expect_eq "docker run --rm -t: a terminal" /dev/pts/0 \
    "$(script -qec "$DOCKER run --rm -t --network none busybox tty" /dev/null </dev/null 2>&1 | tr -d '\r')"
expect_eq "container is pid 1, hostname is its id prefix" "1 abcdef" \
    "$(d run --rm --network none --hostname abcdef busybox sh -c 'echo $$ $(hostname)' 2>&1)"
expect_eq "docker run --user" "1000:1000" \
    "$(d run --rm --network none --user 1000:1000 busybox sh -c 'echo $(id -u):$(id -g)' 2>&1)"
expect_eq "docker run --read-only" "ro" \
    "$(d run --rm --network none --read-only busybox sh -c 'touch /x 2>/dev/null && echo rw || echo ro' 2>&1)"
expect_eq "docker run --memory: the cgroup limit" 67108864 \
    "$(d run --rm --network none --memory 64m --memory-swap 64m busybox cat /sys/fs/cgroup/memory/memory.limit_in_bytes 2>&1)"
expect_eq "docker run --cpus --pids-limit" "50000 100000 42" \
    "$(d run --rm --network none --cpus 0.5 --pids-limit 42 busybox sh -c \
        'echo $(cat /sys/fs/cgroup/cpu/cpu.cfs_quota_us /sys/fs/cgroup/cpu/cpu.cfs_period_us /sys/fs/cgroup/pids/pids.max)' 2>&1)"
expect_eq "docker run --ulimit" "1024 2048" \
    "$(d run --rm --network none --ulimit nofile=1024:2048 busybox sh -c 'echo $(ulimit -n) $(ulimit -Hn)' 2>&1)"
expect_eq "docker run --cap-drop ALL: no effective capabilities" "CapEff:	0000000000000000" \
    "$(d run --rm --network none --cap-drop ALL busybox grep '^CapEff:' /proc/self/status 2>&1)"
# --privileged asks for every capability the kernel has; runc 1.1 fails ("unable to
# apply caps") when its own bounding set lacks one, strata grants what it holds.
all_caps=$(printf '%x' $(((1 << ($(cat /proc/sys/kernel/cap_last_cap) + 1)) - 1)))
if [ "$RUNTIME" = runc ] && [ "$(sed -n 's/^CapBnd:\s*0*//p' /proc/self/status)" != "$all_caps" ]; then
    echo "skip - docker run --privileged (runc 1.1 cannot grant capabilities missing from its bounding set)"
else
    expect_eq "docker run --privileged: no seccomp, host devices" "Seccomp:	0 yes" \
        "$(d run --rm --network none --privileged busybox sh -c \
            'echo "$(grep ^Seccomp: /proc/self/status) $([ -c /dev/kmsg ] && echo yes)"' 2>&1)"
fi
expect_eq "docker run --security-opt seccomp=unconfined" "Seccomp:	0" \
    "$(d run --rm --network none --security-opt seccomp=unconfined busybox grep '^Seccomp:' /proc/self/status 2>&1)"
expect_eq "docker run --init: docker-init is pid 1" docker-init \
    "$(d run --rm --network none --init busybox cat /proc/1/comm 2>&1)"
mkdir -p "$WORKDIR/vol"
echo from-host >"$WORKDIR/vol/in"
expect_eq "docker run -v: a bind mount, both ways" from-host \
    "$(d run --rm --network none -v "$WORKDIR/vol:/vol" busybox sh -c 'cat /vol/in; echo from-ctr > /vol/out' 2>&1)"
expect_eq "docker run -v: the host sees the container's file" from-ctr "$(cat "$WORKDIR/vol/out" 2>&1)"
expect_eq "docker run --tmpfs" tmpfs \
    "$(d run --rm --network none --tmpfs /scratch busybox sh -c 'grep " /scratch " /proc/mounts | cut -d" " -f3' 2>&1)"
expect_eq "docker run --device" "c 1,3" \
    "$(d run --rm --network none --device /dev/null:/dev/mynull busybox sh -c \
        'ls -l /dev/mynull | awk "{print substr(\$1,1,1), \$5 \$6}"' 2>&1)"
expect_eq "docker run --sysctl (netns)" 1 \
    "$(d run --rm --network none --sysctl net.ipv4.ip_forward=1 busybox cat /proc/sys/net/ipv4/ip_forward 2>&1)"
expect_eq "docker run --network none: only lo" lo \
    "$(d run --rm --network none busybox sh -c 'ls /sys/class/net' 2>&1)"

# --- a long-running container -------------------------------------------------------
c1=$(d run -d --network none --ipc shareable --name c1 busybox sleep 600 2>&1)
check "docker run -d" sh -c "[ \"\$(timeout 20 $DOCKER inspect -f '{{.State.Running}}' c1)\" = true ]"
expect_eq "the container id is docker's" 64 "${#c1}"
pid1=$(d inspect -f '{{.State.Pid}}' c1 2>/dev/null)
for dir in "$EXEC_ROOT/runtime-$RT_NAME/moby" "$EXEC_ROOT/runtime-runc/moby"; do
    [ -d "$dir/$c1" ] && RT_ROOT=$dir && break
done
check "$RT_NAME's state dir is under <exec-root>/runtime-*/moby (${RT_ROOT#"$EXEC_ROOT"/})" test -d "$RT_ROOT/$c1"
check "the shim runs $RT_BIN" grep -qF "\"binary_name\":\"$RT_BIN\"" \
    "$CD/state/io.containerd.runtime.v2.task/moby/$c1/options.json"
check "$RT_NAME state: running, docker's pid" \
    sh -c "'$RT_BIN' --root '$RT_ROOT' state '$c1' | jq -e '.status == \"running\" and .pid == $pid1'"
check "the runtime's own list has it" sh -c "'$RT_BIN' --root '$RT_ROOT' list -q | grep -qx '$c1'"
check "the container is in $CGPARENT/<id> on v1 memory" \
    grep -qE "^[0-9]+:memory:$CGPARENT/$c1\$" "/proc/$pid1/cgroup"

expect_eq "docker exec: output" "hi from exec" "$(d exec c1 echo hi from exec 2>&1)"
d exec c1 sh -c 'exit 5' >/dev/null 2>&1
expect_eq "docker exec: exit code" 5 "$?"
# dockerd answers any failed exec start with 126, runc's too.
d exec c1 /no/such/binary >/dev/null 2>&1
expect_eq "docker exec of a missing binary: 126 (as with runc)" 126 "$?"
d exec c1 /etc/passwd >/dev/null 2>&1
expect_eq "docker exec of a file that is not executable: 126" 126 "$?"
expect_eq "docker exec: same pid namespace (sees pid 1 sleep)" "sleep" \
    "$(d exec c1 sh -c 'cat /proc/1/comm' 2>&1)"
expect_eq "docker exec --user --workdir --env" "1000 /tmp bar" \
    "$(d exec --user 1000 --workdir /tmp --env FOO=bar c1 sh -c 'echo $(id -u) $(pwd) $FOO' 2>&1)"
check "docker exec -t: a terminal" sh -c \
    "script -qec '$DOCKER exec -t c1 tty' /dev/null </dev/null | tr -d '\\r' | grep -qxE '/dev/pts/[0-9]+'"
expect_eq "docker exec -i: stdin" "exec stdin" "$(echo 'exec stdin' | d exec -i c1 cat 2>&1)"
expect_eq "docker exec -d" "bg" \
    "$(d exec -d c1 sh -c 'echo bg > /tmp/bg' >/dev/null 2>&1; sleep 1; d exec c1 cat /tmp/bg 2>&1)"
expect_eq "docker run --pid container:c1 (a namespace joined by path)" sleep \
    "$(d run --rm --network none --pid container:c1 busybox cat /proc/1/comm 2>&1)"
expect_eq "docker run --network container:c1 --ipc container:c1" "$(readlink /proc/$pid1/ns/net) $(readlink /proc/$pid1/ns/ipc)" \
    "$(d run --rm --network container:c1 --ipc container:c1 busybox sh -c 'echo $(readlink /proc/self/ns/net) $(readlink /proc/self/ns/ipc)' 2>/dev/null)"
check "the shim's kill --all after an init without its own pid namespace exited" \
    sh -c "! grep \"failed to kill init's children\" '$WORKDIR/dockerd.log'"
check "docker top (runtime ps)" sh -c "timeout 20 $DOCKER top c1 | grep -q 'sleep 600'"

check "docker update --cpu-shares --pids-limit" d update --cpu-shares 512 --pids-limit 77 c1
expect_eq "update: cpu.shares" 512 "$(cat "/sys/fs/cgroup/cpu/$CGPARENT/$c1/cpu.shares" 2>&1)"
expect_eq "update: pids.max" 77 "$(cat "/sys/fs/cgroup/pids/$CGPARENT/$c1/pids.max" 2>&1)"
check "docker stats --no-stream" sh -c "timeout 30 $DOCKER stats --no-stream c1 | grep -q c1"

check "docker pause" d pause c1
expect_eq "paused: docker inspect State.Paused" true "$(d inspect -f '{{.State.Paused}}' c1 2>&1)"
expect_eq "paused: the v1 freezer" FROZEN "$(cat "/sys/fs/cgroup/freezer/$CGPARENT/$c1/freezer.state" 2>&1)"
expect_eq "paused: $RT_NAME state" paused "$("$RT_BIN" --root "$RT_ROOT" state "$c1" 2>&1 | jq -r .status)"
check "docker unpause" d unpause c1
expect_eq "unpaused: State.Paused" false "$(d inspect -f '{{.State.Paused}}' c1 2>&1)"
expect_eq "unpaused: the v1 freezer" THAWED "$(cat "/sys/fs/cgroup/freezer/$CGPARENT/$c1/freezer.state" 2>&1)"
expect_eq "unpaused: exec works" ok "$(d exec c1 echo ok 2>&1)"

check "docker stop (SIGTERM ignored by pid 1, then SIGKILL)" d stop -t 1 c1
expect_eq "stopped: exit code 137" "false 137" "$(d inspect -f '{{.State.Running}} {{.State.ExitCode}}' c1 2>&1)"
check "stopped: the init is gone" sh -c "! kill -0 $pid1 2>/dev/null"
check "stopped: $RT_NAME state dir gone" test ! -e "$RT_ROOT/$c1"
check "docker start" d start c1
expect_eq "started: running" true "$(d inspect -f '{{.State.Running}}' c1 2>&1)"
pid2=$(d inspect -f '{{.State.Pid}}' c1 2>/dev/null)
check "started: a new init" test "$pid2" != "$pid1" -a -d "/proc/$pid2"
check "docker restart" d restart -t 1 c1
pid3=$(d inspect -f '{{.State.Pid}}' c1 2>/dev/null)
check "restarted: running, a new init" \
    sh -c "[ \"\$(timeout 20 $DOCKER inspect -f '{{.State.Running}}' c1)\" = true ] && [ '$pid3' != '$pid2' ] && [ -d /proc/$pid3 ]"
check "docker kill" d kill c1
expect_eq "killed: exit code 137" "false 137" "$(d inspect -f '{{.State.Running}} {{.State.ExitCode}}' c1 2>&1)"
check "docker rm" d rm c1

# a signal the container handles
d run -d --network none --name c2 busybox \
    sh -c 'trap "echo got USR1; exit 7" USR1; echo ready; while :; do sleep 0.2; done' >/dev/null 2>&1
for _ in $(seq 50); do d logs c2 2>/dev/null | grep -q ready && break; sleep 0.1; done
check "docker kill -s SIGUSR1" d kill -s SIGUSR1 c2
expect_eq "SIGUSR1: the handler's exit code" 7 "$(d wait c2 2>&1)"
check "SIGUSR1: docker logs" sh -c "timeout 20 $DOCKER logs c2 | grep -q 'got USR1'"
check "docker rm of an exited container" d rm c2
check "docker rm -f of a running container" \
    sh -c "timeout 20 $DOCKER run -d --network none --name c3 busybox sleep 600 >/dev/null && timeout 30 $DOCKER rm -f c3"

# --- commit, save, export -----------------------------------------------------------
d run --network none --name writer busybox sh -c 'mkdir -p /data && echo committed > /data/file' >/dev/null 2>&1
check "docker commit" d commit writer strata-it/committed:1
expect_eq "run the committed image: the file the container wrote" committed \
    "$(d run --rm --network none strata-it/committed:1 cat /data/file 2>&1)"
check "docker save of the committed image: manifest.json" \
    sh -c "timeout 60 $DOCKER save -o '$WORKDIR/committed.tar' strata-it/committed:1 && tar tf '$WORKDIR/committed.tar' | grep -qx manifest.json"
check "docker export of the container: the file" \
    sh -c "timeout 60 $DOCKER export -o '$WORKDIR/w.tar' writer && tar tf '$WORKDIR/w.tar' | grep -qx data/file"
check "docker rm" d rm writer

# --- nothing left -------------------------------------------------------------------
check "no containers left" sh -c "[ -z \"\$(timeout 20 $DOCKER ps -aq)\" ]"
check "no $RT_NAME state dirs left" sh -c "[ -z \"\$(ls -A '$RT_ROOT' 2>/dev/null)\" ]"
check "no container cgroups left under $CGPARENT" \
    sh -c "! find /sys/fs/cgroup -mindepth 2 -path '*$CGPARENT/*' -type d | grep ."
check "no container processes left" sh -c "for p in $pid1 $pid2 $pid3; do ! kill -0 \$p 2>/dev/null || exit 1; done"
check "no container mounts left (rootfs merged dirs, netns)" \
    sh -c "! grep -E '$DD/data/overlay2/[^/]+/merged|$EXEC_ROOT/netns/' /proc/self/mountinfo"

if [ "$FAIL" -gt 0 ]; then
    echo "--- daemons' errors:"
    dlog 30 | cut -c1-400
fi
summary
