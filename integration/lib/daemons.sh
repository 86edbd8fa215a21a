# A private containerd and dockerd, started and stopped, for the scripts that run docker
# beside us (integration/docker.sh and archive.sh, bench/image.sh and build.sh). Source it.
# Everything lives under the directories given: the host's daemons, sockets and
# /etc/docker are never touched.

# start_containerd DIR LOG [LEVEL]: containerd with its root, state, sockets and opt dir
# under DIR and no CRI plugin, logging to LOG; waits for its socket. Sets CONTAINERD_PID.
start_containerd() {
    local dir=$1 log=$2 level=${3:-info} i
    mkdir -p "$dir"
    cat >"$dir/config.toml" <<EOF
version = 2
root = "$dir/root"
state = "$dir/state"
disabled_plugins = ["io.containerd.grpc.v1.cri"]
[grpc]
  address = "$dir/containerd.sock"
[ttrpc]
  address = "$dir/containerd.sock.ttrpc"
[debug]
  level = "$level"
[plugins."io.containerd.internal.v1.opt"]
  path = "$dir/opt"
EOF
    containerd --config "$dir/config.toml" >"$log" 2>&1 &
    CONTAINERD_PID=$!
    for ((i = 0; i < 100; i++)); do
        [ -S "$dir/containerd.sock" ] && return 0
        sleep 0.1
    done
    return 1
}

# start_dockerd DIR CONTAINERD_DIR HOST LOG [FLAG...]: dockerd on that containerd, with its
# data, exec root, pid file and (empty) daemon.json under DIR, listening on HOST
# (unix://…), logging to LOG; no networking of its own (no iptables, bridge or
# forwarding), overlay2, cgroupfs; the FLAGs after those (runtimes, --debug, a cgroup
# parent). Waits until docker ($DOCKER, else docker.io's /usr/bin/docker) answers on HOST.
# Sets DOCKERD_PID.
start_dockerd() {
    local dir=$1 cd=$2 host=$3 log=$4 i
    shift 4
    mkdir -p "$dir"
    echo '{}' >"$dir/daemon.json" # not /etc/docker/daemon.json
    dockerd --config-file "$dir/daemon.json" --containerd "$cd/containerd.sock" \
        --data-root "$dir/data" --exec-root "$dir/exec" --pidfile "$dir/docker.pid" -H "$host" \
        --iptables=false --ip6tables=false --ip-forward=false --ip-masq=false --bridge=none \
        --storage-driver overlay2 --exec-opt native.cgroupdriver=cgroupfs "$@" \
        >"$log" 2>&1 &
    DOCKERD_PID=$!
    for ((i = 0; i < 300; i++)); do
        DOCKER_HOST=$host timeout 20 "${DOCKER:-/usr/bin/docker}" version >/dev/null 2>&1 && return 0
        sleep 0.1
    done
    return 1
}

# Stop a daemon we started: SIGTERM, SECONDS to go, then SIGKILL.
stop_pid() { # stop_pid PID SECONDS
    local pid=$1 i
    [ -n "$pid" ] && kill -0 "$pid" 2>/dev/null || return 0
    kill -TERM "$pid" 2>/dev/null
    for ((i = 0; i < $2 * 10; i++)); do
        kill -0 "$pid" 2>/dev/null || return 0
        sleep 0.1
    done
    kill -KILL "$pid" 2>/dev/null
    sleep 0.2
}
