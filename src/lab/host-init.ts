// The first process of a lab host. The supervisor starts it as
//   nsenter --net=/run/netns/<ns> unshare --mount --uts --ipc --pid --fork --kill-child --propagation private sh <this>
// so it runs as PID 1 of a fresh PID namespace in private mount/UTS/IPC namespaces. It builds the
// host's root (overlay over /, own /proc, /sys, /dev, /run, /tmp), pivots into it and becomes sshd.
// Killing it kills every process of the host, and its mounts vanish with its mount namespace.
export const HOST_INIT_SCRIPT = `#!/bin/sh
set -eu
: "\${KHA_HOST:?}" "\${KHA_HOSTDIR:?}" "\${KHA_LABDIR:?}" "\${KHA_SHARED:?}"
M="$KHA_HOSTDIR/merged"
# Our pid as this machine sees it (/proc is still the machine's here); it stays PID 1 of the host.
read -r KPID _ </proc/self/stat
echo "$KPID" >"$KHA_HOSTDIR/init.pid"
mount -t overlay overlay -o "lowerdir=/,upperdir=$KHA_HOSTDIR/upper,workdir=$KHA_HOSTDIR/work" "$M"
hostname "$KHA_HOST"
# Real tier: the host's dpkg database is its own overlay over the lab's copy of this machine's, so an apt run
# on this machine cannot change it under the host (src/lab/real/setup.ts, snapshotMachineDpkg).
if [ -n "\${KHA_DPKG_LOWER:-}" ]; then
  mkdir -p "$KHA_HOSTDIR/dpkg/upper" "$KHA_HOSTDIR/dpkg/work"
  mount -t overlay overlay -o "lowerdir=$KHA_DPKG_LOWER,upperdir=$KHA_HOSTDIR/dpkg/upper,workdir=$KHA_HOSTDIR/dpkg/work" "$M/var/lib/dpkg"
fi

mount -t proc -o nosuid,nodev,noexec proc "$M/proc"
# /proc/sys read-only: sysctls of the real kernel must not change from inside a host.
mount --bind "$M/proc/sys" "$M/proc/sys"
mount -o remount,bind,ro "$M/proc/sys"
mount --bind "$KHA_HOSTDIR/boot_id" "$M/proc/sys/kernel/random/boot_id"
if [ -e "$M/proc/sysrq-trigger" ]; then mount --bind /dev/null "$M/proc/sysrq-trigger"; fi
mount -t sysfs -o ro,nosuid,nodev,noexec sysfs "$M/sys"

# The real tier (src/lab/real): the real kubelet, containerd and runc need what a Linux host gives them.
if [ -n "\${KHA_CGROUP:-}" ]; then
  # This machine's cgroup (v1) hierarchies; each host's kubelet keeps to its own root, made here.
  mount --rbind /sys/fs/cgroup "$M/sys/fs/cgroup"
  for c in /sys/fs/cgroup/*/; do
    case "$c" in */unified/) continue ;; esac
    mkdir -p "$c$KHA_CGROUP"
    if [ -f "$c/cpuset.cpus" ]; then
      cat "$c/cpuset.cpus" >"$c$KHA_CGROUP/cpuset.cpus"
      cat "$c/cpuset.mems" >"$c$KHA_CGROUP/cpuset.mems"
    fi
  done
  # net.* sysctls are the host's own (its network namespace): writable, unlike the rest of /proc/sys.
  mount --bind "$M/proc/sys/net" "$M/proc/sys/net"
  mount -o remount,bind,rw "$M/proc/sys/net"
  # containerd's overlay snapshots cannot live on the host's overlay root: a directory of the host's disk.
  mkdir -p "$KHA_HOSTDIR/containerd" "$M/var/lib/containerd"
  mount --bind "$KHA_HOSTDIR/containerd" "$M/var/lib/containerd"
  # Kernel settings the kubelet insists on, shown as files: the machine's own values stay as they are.
  for kv in vm/overcommit_memory=1 vm/panic_on_oom=0 kernel/panic=10 kernel/panic_on_oops=1; do
    f="\${kv%%=*}"
    echo "\${kv#*=}" >"$KHA_HOSTDIR/sysctl-\${f##*/}"
    mount --bind "$KHA_HOSTDIR/sysctl-\${f##*/}" "$M/proc/sys/$f"
  done
fi

# A private /dev: writes there stay in the host.
mount -t tmpfs -o mode=755,size=1m,nosuid tmpfs "$M/dev"
for d in null:1:3 zero:1:5 full:1:7 random:1:8 urandom:1:9 tty:5:0; do
  IFS=: read -r n ma mi <<EOF
$d
EOF
  mknod -m 666 "$M/dev/$n" c "$ma" "$mi"
done
mkdir -m 755 "$M/dev/pts"
mkdir -m 1777 "$M/dev/shm"
mount -t devpts -o newinstance,ptmxmode=0666,mode=620,gid=5 devpts "$M/dev/pts"
ln -s pts/ptmx "$M/dev/ptmx"
ln -s /proc/self/fd "$M/dev/fd"
ln -s /proc/self/fd/0 "$M/dev/stdin"
ln -s /proc/self/fd/1 "$M/dev/stdout"
ln -s /proc/self/fd/2 "$M/dev/stderr"
mount -t tmpfs -o mode=1777,nosuid,nodev tmpfs "$M/dev/shm"
# The kubelet's OOM watcher reads the kernel log.
if [ -n "\${KHA_CGROUP:-}" ]; then mknod -m 600 "$M/dev/kmsg" c 1 11; fi

# Runtime state: new on every boot.
mount -t tmpfs -o mode=755,nosuid,nodev tmpfs "$M/run"
mkdir -p "$M/run/sshd" "$M/run/lock"
chmod 755 "$M/run/sshd"
mount -t tmpfs -o mode=1777,nosuid,nodev tmpfs "$M/tmp"

# Hide the lab directory (keys, other hosts' layers) that the lower layer would show.
if [ -d "$M$KHA_LABDIR" ]; then
  mount -t tmpfs -o ro,mode=755,size=4k tmpfs "$M$KHA_LABDIR"
fi
mkdir -p "$M/kha-lab"
mount --bind "$KHA_SHARED" "$M/kha-lab"

# The checkout whose dist/ holds the simulated tools, read-only at its own path (a clone under /tmp would
# otherwise be hidden by the host's fresh /tmp).
if [ -n "\${KHA_PROJECT:-}" ] && [ -d "$KHA_PROJECT" ]; then
  mkdir -p "$M$KHA_PROJECT"
  mount --bind "$KHA_PROJECT" "$M$KHA_PROJECT"
  mount -o remount,bind,ro "$M$KHA_PROJECT"
fi

cd "$M"
pivot_root . .
umount -l .
cd /
export PATH=/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin
# The simulated tools' resident server (a child of sshd once we exec it; dies with the host).
if [ -n "\${KHA_SIM_NODE:-}" ] && [ -f "\${KHA_SIM_SERVER:-}" ]; then
  (unset KHA_HOST KHA_HOSTDIR KHA_LABDIR KHA_SHARED KHA_PROJECT KHA_CGROUP KHA_DPKG_LOWER; exec "$KHA_SIM_NODE" "$KHA_SIM_SERVER") </dev/null >/run/kha-sim-server.log 2>&1 &
fi
# Real tier: what systemd starts at boot (enabled units: containerd, kubelet) comes up without waiting for a tool call.
if [ -n "\${KHA_CGROUP:-}" ]; then
  (i=0; while [ ! -S /run/kha-sim-server.sock ] && [ "$i" -lt 300 ]; do sleep 0.1; i=$((i + 1)); done
   exec env -i PATH="$PATH" HOME=/root /usr/local/sbin/systemctl daemon-reload) </dev/null >/run/kha-boot.log 2>&1 &
fi
unset KHA_HOST KHA_HOSTDIR KHA_LABDIR KHA_SHARED KHA_PROJECT KHA_SIM_NODE KHA_SIM_SERVER KHA_CGROUP KHA_DPKG_LOWER
exec /usr/sbin/sshd -D -e -f /etc/ssh/sshd_config
`;

/** sshd_config of every lab host: Debian's defaults plus the per-host key only. */
export const SSHD_CONFIG = `# Written by the kha lab.
Port 22
HostKey /etc/ssh/ssh_host_ed25519_key
PermitRootLogin prohibit-password
PubkeyAuthentication yes
PasswordAuthentication yes
KbdInteractiveAuthentication no
UsePAM yes
X11Forwarding no
PrintMotd no
UseDNS no
AcceptEnv LANG LC_*
MaxStartups 200:30:400
MaxSessions 64
Subsystem sftp /usr/lib/openssh/sftp-server
`;
