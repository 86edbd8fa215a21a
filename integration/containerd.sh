#!/usr/bin/env bash
# containerd end to end: a private containerd (Debian's package) runs busybox through the
# runc v2 shim (containerd-shim-runc-v2) with strata as the runtime binary
# (`ctr run --runc-binary`), and checks what ctr sees: output, exit codes, exec, pause and
# resume, signals, ps, terminals, a few spec options, and that nothing is left behind.
#
#   bash integration/containerd.sh                  # strata (static release build)
#   STRATA_BIN=target/debug/strata bash integration/containerd.sh   # skip the build
#   RUNTIME=runc bash integration/containerd.sh     # the same checks with /usr/sbin/runc
#   KEEP=1 ...                                      # keep $WORKDIR (logs) after the run
#
# Needs root and containerd, ctr, containerd-shim-runc-v2 (Debian: containerd), script
# (util-linux), umoci and skopeo (for the image; installed if missing).
source "$(dirname "$0")/lib/common.sh"

RUNTIME=${RUNTIME:-strata}
NS=strata-it
PFX=ctd$$           # every container ID starts with this: leftovers are ours
IMG=docker.io/library/busybox:latest
CTD=$WORKDIR/containerd
SOCK=$CTD/containerd.sock
RROOT=$WORKDIR/runtime-root # the shim's --runc-root: the runtime's --root is $RROOT/$NS
CTD_PID=
SHIM_SOCKS=()       # the shims' sockets (under /run/containerd/s, fixed by containerd)
# containerd's fixed paths outside its state dir; removed at exit (when empty) if new.
RUN_DIRS=()
for d in /run/containerd/s /run/containerd/runc /run/containerd; do [ -e $d ] || RUN_DIRS+=("$d"); done
[ -e "/sys/fs/cgroup/freezer/$NS" ] && NS_CG_EXISTED=1 || NS_CG_EXISTED=
PIDS=()             # container processes seen; none may survive

# --- cleanup (always) ---------------------------------------------------------------

# Processes whose cmdline mentions our socket: containerd and its shims.
our_daemons() {
    local p
    for p in /proc/[0-9]*; do
        tr '\0' ' ' 2>/dev/null <"$p/cmdline" | grep -qF -- "$SOCK" && echo "${p#/proc/}"
    done
    return 0
}

# Processes in one of our containers' cgroups.
our_container_procs() {
    local p
    for p in /proc/[0-9]*; do
        grep -qE ":/$NS/$PFX-" "$p/cgroup" 2>/dev/null && echo "${p#/proc/}"
    done
    return 0
}

cleanup() {
    local rc=$? p i
    trap - EXIT INT TERM
    if [ -n "$CTD_PID" ] && kill -0 "$CTD_PID" 2>/dev/null; then
        for i in $(ctrc task ls -q 2>/dev/null); do
            ctrc task kill -a -s SIGKILL "$i" >/dev/null 2>&1
        done
        sleep 0.5
        for i in $(ctrc task ls -q 2>/dev/null); do ctrc task delete -f "$i" >/dev/null 2>&1; done
        for i in $(ctrc containers ls -q 2>/dev/null); do ctrc containers delete "$i" >/dev/null 2>&1; done
        kill "$CTD_PID" 2>/dev/null
        for i in $(seq 50); do kill -0 "$CTD_PID" 2>/dev/null || break; sleep 0.1; done
        kill -9 "$CTD_PID" 2>/dev/null
    fi
    for p in $(our_daemons) $(our_container_procs); do kill -9 "$p" 2>/dev/null; done
    # Cgroups named after our containers (children first).
    find /sys/fs/cgroup -depth -type d -name "$PFX-*" -exec rmdir {} \; 2>/dev/null
    # The namespace's parent cgroups (runtimes leave them, runc too) if we made them.
    [ -n "$NS_CG_EXISTED" ] || rmdir /sys/fs/cgroup/*/"$NS" 2>/dev/null
    rmdir /run/containerd/runc/"$NS" "${RUN_DIRS[@]}" 2>/dev/null
    # Mounts under the work dir (snapshots, rootfs), deepest first.
    awk -v w="$WORKDIR" 'index($5, w) == 1 { print $5 }' /proc/self/mountinfo | sort -r |
        while read -r m; do umount -l "$m" 2>/dev/null; done
    if [ -n "${KEEP:-}" ]; then
        log "kept $WORKDIR"
    else
        rm -rf "$WORKDIR"
    fi
    exit "$rc"
}
trap cleanup EXIT
trap 'exit 130' INT TERM

# --- helpers --------------------------------------------------------------------------

ctrc() { timeout -k 5 60 ctr --address "$SOCK" -n "$NS" "$@"; }
ctr_run() { ctrc run --fifo-dir "$WORKDIR/fifo" --runc-binary "$RB" --runc-root "$RROOT" "$@"; }
ctr_exec() { ctrc task exec --fifo-dir "$WORKDIR/fifo" "$@"; }
# The same under a terminal (ctr -t wants one): script's exit status is ctr's.
# --foreground: plain timeout puts itself in a new process group, and when script's shell
# does not exec it (dash, script's choice when SHELL is unset, as under CI) that group is
# in the background of the pty: ctr's tcsetattr then stops it with SIGTTOU, a hang.
ctr_tty() {
    local cmd
    cmd=$(printf '%q ' timeout --foreground -k 5 60 ctr --address "$SOCK" -n "$NS" "$@")
    script -qec "$cmd" /dev/null </dev/null | tr -d '\r\000'
    return "${PIPESTATUS[0]}"
}
task_field() { ctrc task ls | awk -v id="$1" -v f="$2" '$1 == id { print $f }'; }
task_status() { task_field "$1" 3; }
task_pid() { task_field "$1" 2; }
# wait_status ID WANT: up to 10 s.
wait_status() {
    local i s
    for i in $(seq 100); do
        s=$(task_status "$1")
        [ "$s" = "$2" ] && return 0
        sleep 0.1
    done
    echo "task $1: status [$s], want [$2]"
    return 1
}
# The v1 freezer state of a process's cgroup (or v2's cgroup.freeze as FROZEN/THAWED).
freezer_state() {
    local path
    path=$(awk -F: '$2 == "freezer" { print $3 }' "/proc/$1/cgroup")
    if [ -n "$path" ]; then
        cat "/sys/fs/cgroup/freezer$path/freezer.state"
    else
        path=$(awk -F: '$1 == "0" { print $3 }' "/proc/$1/cgroup")
        local v2=/sys/fs/cgroup/unified
        [ -e $v2/cgroup.controllers ] || v2=/sys/fs/cgroup
        case $(cat "$v2$path/cgroup.freeze") in 1) echo FROZEN ;; *) echo THAWED ;; esac
    fi
}
# The runtime's own view through its state dir under the shim's --runc-root.
rt_state() { "$RB" --root "$RROOT/$NS" state "$1" 2>&1; }
bundle_dir() { echo "$CTD/state/io.containerd.runtime.v2.task/$NS/$1"; }
not_running() { ! kill -0 "$1" 2>/dev/null; }
grep_q() { grep -q -- "$1" <<<"$2" || { echo "no [$1] in:"; echo "$2"; return 1; }; }

# --- setup ----------------------------------------------------------------------------

for b in containerd ctr containerd-shim-runc-v2 script jq; do
    command -v "$b" >/dev/null || { log "missing $b"; exit 1; }
done
case $RUNTIME in
strata)
    build_strata || { log "strata build failed"; exit 1; }
    RB=$STRATA
    ;;
runc) RB=$(command -v runc) || { log "no runc"; exit 1; } ;;
*) log "RUNTIME must be strata or runc"; exit 1 ;;
esac
log "runtime: $RUNTIME ($RB), work dir $WORKDIR"
build_image || { log "image build failed"; exit 1; }

mkdir -p "$CTD"/{root,state,opt} "$RROOT" "$WORKDIR/path"
# Container users of a user namespace must reach the bundles under here.
chmod 0711 "$WORKDIR"
# `runc` on containerd's (so the shims') PATH is the runtime under test too: ctr drops
# --runc-binary when task options replace the container's (--uidmap sets IoUid/IoGid).
ln -s "$RB" "$WORKDIR/path/runc"
cat >"$CTD/config.toml" <<EOF
version = 2
root = "$CTD/root"
state = "$CTD/state"
disabled_plugins = ["io.containerd.grpc.v1.cri"]

[grpc]
  address = "$SOCK"
  tcp_address = ""

[ttrpc]
  address = "$SOCK.ttrpc"

[debug]
  address = ""
  level = "debug"

[metrics]
  address = ""

[plugins]
  [plugins."io.containerd.internal.v1.opt"]
    path = "$CTD/opt"
EOF
PATH=$WORKDIR/path:$PATH setsid containerd --config "$CTD/config.toml" >"$CTD/containerd.log" 2>&1 </dev/null &
CTD_PID=$!
up() {
    local i
    for i in $(seq 100); do
        ctrc version >/dev/null 2>&1 && return 0
        kill -0 "$CTD_PID" 2>/dev/null || { tail "$CTD/containerd.log"; return 1; }
        sleep 0.1
    done
    return 1
}
check "containerd up on a private socket" up
no_tcp() { ! ss -ltnpH | grep "pid=$CTD_PID,"; }
check "containerd: no TCP listeners" no_tcp

check "image import" ctrc images import "$IMAGE_OCI_TAR"
check "image listed" grep_q "$IMG" "$(ctrc images ls -q)"

# --- foreground runs ------------------------------------------------------------------

out=$(ctr_run --rm "$IMG" "$PFX-hello" echo hello </dev/null 2>&1)
rc=$?
expect_eq "run echo: output" hello "$out"
expect_eq "run echo: exit status" 0 "$rc"

ctr_run --rm "$IMG" "$PFX-exit3" sh -c 'exit 3' </dev/null
expect_eq "run: exit status 3" 3 "$?"

ctr_run --rm "$IMG" "$PFX-nocmd" /nonexistent </dev/null >"$WORKDIR/nocmd.out" 2>&1
rc=$?
check "run a missing binary fails" test "$rc" -ne 0
check "run a missing binary: no container left" \
    bash -c "! ctr --address '$SOCK' -n '$NS' containers ls -q | grep -q '$PFX-nocmd'"
ctrc containers delete "$PFX-nocmd" >/dev/null 2>&1

out=$(ctr_run --rm --env FOO=bar --cwd /tmp "$IMG" "$PFX-env" sh -c 'echo $FOO $(pwd)' </dev/null 2>&1)
expect_eq "run --env --cwd" "bar /tmp" "$out"

out=$(ctr_run --rm --read-only "$IMG" "$PFX-ro" sh -c 'touch /x 2>/dev/null && echo rw || echo ro' </dev/null 2>&1)
expect_eq "run --read-only" ro "$out"

mkdir -p "$WORKDIR/vol" && echo volume >"$WORKDIR/vol/f"
out=$(ctr_run --rm --mount "type=bind,src=$WORKDIR/vol,dst=/vol,options=rbind:ro" "$IMG" "$PFX-mnt" \
    sh -c 'cat /vol/f; touch /vol/g 2>/dev/null && echo rw || echo ro' </dev/null 2>&1)
expect_eq "run --mount (bind, ro)" "volume ro" "$(echo $out)"

out=$(ctr_run --rm --seccomp "$IMG" "$PFX-seccomp" sh -c 'grep ^Seccomp: /proc/self/status' </dev/null 2>&1)
expect_eq "run --seccomp: filter on" "Seccomp: 2" "$(echo $out)"

out=$(ctr_run --rm --privileged "$IMG" "$PFX-priv" sh -c 'grep ^CapEff: /proc/self/status; test -c /dev/null && echo dev' </dev/null 2>&1)
check "run --privileged" grep_q dev "$out"

out=$(ctr_run --rm --uidmap 0:100000:65536 --gidmap 0:100000:65536 "$IMG" "$PFX-userns" \
    sh -c 'cat /proc/self/uid_map' </dev/null 2>&1)
expect_eq "run --uidmap (user namespace)" "0 100000 65536" "$(echo $out)"

# Several at once: state dir locks, cgroup creation, the exec seal.
par() {
    local i pids=() bad=0
    for i in 1 2 3 4; do
        ctr_run --rm "$IMG" "$PFX-par$i" echo "par$i" </dev/null >"$WORKDIR/par$i.out" 2>&1 &
        pids+=($!)
    done
    for i in "${!pids[@]}"; do wait "${pids[$i]}" || bad=1; done
    for i in 1 2 3 4; do grep -qx "par$i" "$WORKDIR/par$i.out" || { cat "$WORKDIR/par$i.out"; bad=1; }; done
    return $bad
}
check "4 runs in parallel" par

# --- terminal -------------------------------------------------------------------------

out=$(ctr_tty run --rm -t --fifo-dir "$WORKDIR/fifo" --runc-binary "$RB" --runc-root "$RROOT" "$IMG" "$PFX-tty" \
    sh -c 'tty; stty size >/dev/null && echo ttyok; exit 4')
rc=$?
check "run -t: a pty inside" grep_q /dev/pts/ "$out"
check "run -t: output" grep_q ttyok "$out"
expect_eq "run -t: exit status" 4 "$rc"

# --- a detached task ------------------------------------------------------------------

D=$PFX-d1
check "run -d" ctr_run -d --memory-limit 67108864 "$IMG" "$D" sleep 600 </dev/null
check "run -d: RUNNING" wait_status "$D" RUNNING
DPID=$(task_pid "$D")
PIDS+=("$DPID")
SHIM_SOCKS+=("$(sed 's|^unix://||' "$(bundle_dir "$D")/address")")
check "run -d: the task's pid is sleep" grep_q sleep "$(tr '\0' ' ' <"/proc/$DPID/cmdline" 2>&1)"

mem_limit() {
    local path
    path=$(awk -F: '$2 == "memory" { print $3 }' "/proc/$1/cgroup")
    if [ -n "$path" ]; then
        cat "/sys/fs/cgroup/memory$path/memory.limit_in_bytes"
    else
        cat "/sys/fs/cgroup/$(awk -F: '$1 == "0" { print $3 }' "/proc/$1/cgroup")/memory.max"
    fi
}
expect_eq "run -d --memory-limit: the cgroup's limit" 67108864 "$(mem_limit "$DPID" 2>&1)"
check "run -d: cgroup named after the container" grep_q "/$NS/$D\$" "$(cat "/proc/$DPID/cgroup")"

# The runtime really is $RB: its state dir is under the shim's --runc-root and it reads it.
st=$(rt_state "$D")
expect_eq "$RUNTIME state: status running" running "$(jq -r .status <<<"$st" 2>&1)"
expect_eq "$RUNTIME state: pid = ctr's pid" "$DPID" "$(jq -r .pid <<<"$st" 2>&1)"
if [ "$RUNTIME" = strata ]; then
    # Only strata keeps the created config.json in its state dir (runc does not).
    check "strata ran it: strata's state dir layout" test -f "$RROOT/$NS/$D/config.json"
    check "strata list shows it" grep_q "$D" "$("$RB" --root "$RROOT/$NS" list 2>&1)"
fi
# The shim passes --log <bundle>/log.json --log-format json: whatever is there is JSON.
log_json_ok() {
    local f
    f="$(bundle_dir "$D")/log.json"
    [ -e "$f" ] || { echo "no $f"; return 1; }
    [ ! -s "$f" ] || jq -e . "$f" >/dev/null
}
check "log.json in the bundle is JSON lines" log_json_ok

# exec
out=$(ctr_exec --exec-id x1 "$D" sh -c 'echo fromexec; exit 5' </dev/null 2>&1)
rc=$?
expect_eq "exec: output" fromexec "$out"
expect_eq "exec: exit status" 5 "$rc"
out=$(ctr_exec --exec-id x2 --cwd /etc "$D" sh -c 'echo $(pwd) $$' </dev/null 2>&1)
check "exec --cwd: cwd, and not pid 1" grep_q "^/etc [0-9][0-9]*$" "$out"
check "exec --cwd: not pid 1" test "$(awk '{print $2}' <<<"$out")" != 1
out=$(ctr_tty task exec -t --fifo-dir "$WORKDIR/fifo" --exec-id x3 "$D" sh -c 'tty; echo exectty; exit 6')
rc=$?
check "exec -t: a pty" grep_q /dev/pts/ "$out"
check "exec -t: output" grep_q exectty "$out"
expect_eq "exec -t: exit status" 6 "$rc"

# ps: the init, and an exec'd process while it runs
ctr_exec --exec-id x4 "$D" sleep 600 </dev/null >/dev/null 2>&1 &
X4=$!
sleep 1
ps_out=$(ctrc task ps "$D" 2>&1)
check "ps: lists the init" grep_q "^$DPID " "$ps_out"
expect_eq "ps: init + exec" 2 "$(tail -n +2 <<<"$ps_out" | grep -c .)"
XPID=$(tail -n +2 <<<"$ps_out" | awk -v p="$DPID" '$1 != p { print $1 }' | head -1)
[ -n "$XPID" ] && PIDS+=("$XPID")

# pause / resume
check "pause" ctrc task pause "$D"
check "pause: PAUSED" wait_status "$D" PAUSED
expect_eq "pause: freezer FROZEN" FROZEN "$(freezer_state "$DPID" 2>&1)"
expect_eq "pause: $RUNTIME state paused" paused "$(rt_state "$D" | jq -r .status 2>&1)"
check "resume" ctrc task resume "$D"
check "resume: RUNNING" wait_status "$D" RUNNING
expect_eq "resume: freezer THAWED" THAWED "$(freezer_state "$DPID" 2>&1)"

# A signal to an exec'd process (the shim signals it itself) and its status by signal.
ctrc task kill --exec-id x4 -s SIGTERM "$D" >/dev/null 2>&1
wait "$X4"
expect_eq "exec killed by SIGTERM: status 143" 143 "$?"
check "still RUNNING after the exec's death" wait_status "$D" RUNNING

# SIGKILL to the init through the runtime: stops, status 137.
check "kill -s SIGKILL" ctrc task kill -s SIGKILL "$D"
check "kill: STOPPED" wait_status "$D" STOPPED
check "kill: the init is gone" not_running "$DPID"
out=$(ctrc task delete "$D" 2>&1)
check "task delete" test $? -eq 0
check "task delete: exit code 137 reported" grep_q "exit code 137" "$out"
check "task delete: the runtime's state dir is gone" test ! -e "$RROOT/$NS/$D"
check "container delete" ctrc containers delete "$D"
check "container delete: bundle gone" test ! -e "$(bundle_dir "$D")"

# --- signals to foreground tasks ------------------------------------------------------

# The init is pid 1 of its namespace: SIGTERM kills it only through a handler.
T=$PFX-term
ctr_run --rm "$IMG" "$T" sh -c 'trap "exit 143" TERM; while :; do sleep 0.2; done' </dev/null >/dev/null 2>&1 &
TJOB=$!
check "sh with a TERM trap: RUNNING" wait_status "$T" RUNNING
PIDS+=("$(task_pid "$T")")
check "kill -s SIGTERM" ctrc task kill -s SIGTERM "$T"
wait "$TJOB"
expect_eq "kill -s SIGTERM: ctr run's status 143" 143 "$?"

K=$PFX-kill
ctr_run --rm "$IMG" "$K" sleep 600 </dev/null >/dev/null 2>&1 &
KJOB=$!
check "sleep: RUNNING" wait_status "$K" RUNNING
PIDS+=("$(task_pid "$K")")
check "kill -s SIGKILL (foreground task)" ctrc task kill -s SIGKILL "$K"
wait "$KJOB"
expect_eq "kill -s SIGKILL: ctr run's status 137" 137 "$?"

# kill --all: the shim asks the runtime to signal every process of the container.
A=$PFX-all
check "run -d (kill --all)" ctr_run -d "$IMG" "$A" sleep 600 </dev/null
check "kill --all: RUNNING" wait_status "$A" RUNNING
APID=$(task_pid "$A")
PIDS+=("$APID")
ctr_exec --exec-id y "$A" sleep 600 </dev/null >/dev/null 2>&1 &
YJOB=$!
sleep 1
check "kill -a -s SIGKILL" ctrc task kill -a -s SIGKILL "$A"
wait "$YJOB"
expect_eq "kill -a: the exec'd process died by SIGKILL" 137 "$?"
check "kill -a: STOPPED" wait_status "$A" STOPPED
check "task delete" ctrc task delete "$A"
check "container delete" ctrc containers delete "$A"

# ctr container create has no --runc-binary: the shim runs `runc` from containerd's PATH
# (the runtime under test, see above) with its default --root /run/containerd/runc/<ns>.
P=$PFX-path
check "container create (runtime from PATH)" ctrc containers create "$IMG" "$P" sleep 600
check "task start -d" ctrc task start -d --fifo-dir "$WORKDIR/fifo" "$P"
check "task start: RUNNING" wait_status "$P" RUNNING
PPID_=$(task_pid "$P")
PIDS+=("$PPID_")
expect_eq "$RUNTIME (from PATH) state: pid" "$PPID_" \
    "$("$RB" --root "/run/containerd/runc/$NS" state "$P" 2>&1 | jq -r .pid 2>&1)"
out=$(ctr_exec --exec-id u --user 1000 "$P" id -u </dev/null 2>&1)
expect_eq "exec --user 1000" 1000 "$out"
check "metrics" grep_q memory "$(ctrc task metrics "$P" 2>&1)"
check "pause (for a forced delete)" ctrc task pause "$P"
check "paused: PAUSED" wait_status "$P" PAUSED
out=$(ctr_exec --exec-id p "$P" echo no </dev/null 2>&1)
rc=$?
check "exec into a paused task fails" test "$rc" -ne 0 -a "$out" != no
check "task delete -f of a paused task" ctrc task delete -f "$P"
check "task delete -f: the init is gone" not_running "$PPID_"
check "task delete -f: the runtime's state dir is gone" test ! -e "/run/containerd/runc/$NS/$P"
out=$(ctrc task kill -s SIGKILL "$P" 2>&1)
check "kill after delete: fails (no task)" test $? -ne 0
check "container delete" ctrc containers delete "$P"

# --- nothing left ---------------------------------------------------------------------

check "no containers left" test -z "$(ctrc containers ls -q | grep "^$PFX-")"
check "no tasks left" test -z "$(ctrc task ls -q | grep "^$PFX-")"
no_procs() {
    local p bad=0
    for p in "${PIDS[@]}"; do
        kill -0 "$p" 2>/dev/null && { echo "pid $p alive: $(tr '\0' ' ' <"/proc/$p/cmdline")"; bad=1; }
    done
    [ -z "$(our_container_procs)" ] || { echo "in our cgroups: $(our_container_procs)"; bad=1; }
    return $bad
}
check "no container processes left" no_procs
no_leftovers() {
    local l
    l=$(leftovers "$PFX-")
    [ -z "$l" ] || { echo "$l"; return 1; }
}
check "no mounts or cgroups named after the containers" no_leftovers
check "no runtime state left" test -z "$(ls -A "$RROOT/$NS" 2>/dev/null)"
# The namespace's parent cgroup, made by whichever container came first, goes with the
# last one (runc leaves it).
if [ -z "$NS_CG_EXISTED" ]; then
    check "the namespace's parent cgroup is gone" test -z "$(find /sys/fs/cgroup -maxdepth 2 -type d -name "$NS")"
fi
no_shims() {
    local p
    p=$(our_daemons | grep -vx "$CTD_PID")
    [ -z "$p" ] || { ps -o pid,args -p "$p"; return 1; }
}
check "no shims left" no_shims
check "the shim's socket is gone" test ! -e "${SHIM_SOCKS[0]}"
# Known with runc too: "copy shim log ... file already closed" (containerd 1.6 noise) and
# "resuming exited container from paused state" (the shim resumes a paused task after the
# forced delete killed it; the runtime rightly says it is not paused).
errs=$(grep 'level=error' "$CTD/containerd.log" |
    grep -v -e 'msg="copy shim log"' -e 'msg="resuming exited container from paused state"')
check "containerd log: no errors" test -z "$errs"
[ -z "$errs" ] || sed 's/^/       /' <<<"$errs" | tail -20

# containerd stops cleanly and leaves no mounts in its root.
kill "$CTD_PID"
stopped() {
    local i
    for i in $(seq 100); do kill -0 "$CTD_PID" 2>/dev/null || return 0; sleep 0.1; done
    return 1
}
check "containerd stops on SIGTERM" stopped
check "no mounts under the work dir" bash -c "! grep -F '$WORKDIR' /proc/self/mountinfo"

summary
