// The sim's part on the lab's real tier: the units it starts are real daemons (the packages are real ones, which
// the real apt installs from the lab's repository: src/lab/real/apt-repo.ts). A host has no systemd, so
// this file is the stand-in for the two units kubeadm relies on, containerd and kubelet: each runs under a
// small restart loop (systemd's Restart=always), in its own session, logging to /var/log/kha-lab/<unit>.log.
import * as fs from 'node:fs';
import * as path from 'node:path';
import { spawn, spawnSync } from 'node:child_process';
import { hostRoot, hostname, hp, labDir, runDir } from './env';
import { readTier, type TierRecord } from '../real/tier';

let cached: { tier: TierRecord | undefined } | undefined;

/** The real tier's record, when this host belongs to a real-tier lab (never in the sim's unit tests). */
export function realTier(): TierRecord | undefined {
  if (process.env.KHA_SIM_ROOT) return undefined;
  cached ??= { tier: readTier(labDir()) };
  return cached.tier?.kube === 'real' ? cached.tier : undefined;
}

const DAEMON_UNITS = ['containerd', 'kubelet'] as const;
type DaemonUnit = (typeof DAEMON_UNITS)[number];
const isDaemonUnit = (u: string): u is DaemonUnit => (DAEMON_UNITS as readonly string[]).includes(u);

const daemonDir = () => path.join(runDir(), 'daemons');
const pidFile = (u: DaemonUnit) => path.join(daemonDir(), `${u}.pid`);

function alive(pid: number): boolean {
  try {
    process.kill(pid, 0);
    return true;
  } catch {
    return false;
  }
}

function loopPid(u: DaemonUnit): number | undefined {
  try {
    const pid = Number(fs.readFileSync(pidFile(u), 'utf8').trim());
    return pid > 0 && alive(pid) ? pid : undefined;
  } catch {
    return undefined;
  }
}

/** The kubelet's settings that differ from a real host's here, as a drop-in (it overrides config.yaml). */
function kubeletDropIn(t: TierRecord): string {
  return [
    '# kha lab real tier: no systemd in a lab host (cgroupfs), and each host keeps its pods under its own cgroup root.',
    'apiVersion: kubelet.config.k8s.io/v1beta1',
    'kind: KubeletConfiguration',
    'cgroupDriver: cgroupfs',
    `cgroupRoot: /${t.cgroupPrefix}-${hostname()}`,
    // The host's resolv.conf names 127.0.0.1, which CoreDNS would forward to itself (its loop check stops it).
    'resolvConf: /run/kha-sim/pod-resolv.conf',
    '',
  ].join('\n');
}

/** The restart loop of a unit: the command line is built anew on every start, as systemd reads its files. */
function loopScript(u: DaemonUnit): string {
  const log = `/var/log/kha-lab/${u}.log`;
  const run =
    u === 'containerd'
      ? [
          // No systemd to delegate cgroups to: runc uses cgroupfs, whatever the file asks.
          'cfg=/run/kha-sim/containerd.toml',
          'if [ -f /etc/containerd/config.toml ]; then sed "s/SystemdCgroup = true/SystemdCgroup = false/" /etc/containerd/config.toml >"$cfg"; else : >"$cfg"; fi',
          `/usr/bin/containerd --config "$cfg" >>${log} 2>&1 &`,
        ]
      : [
          // kubeadm's drop-in for kubelet.service (10-kubeadm.conf) and the files it names.
          'KUBELET_KUBEADM_ARGS="" KUBELET_EXTRA_ARGS=""',
          'if [ -f /var/lib/kubelet/kubeadm-flags.env ]; then . /var/lib/kubelet/kubeadm-flags.env; fi',
          'if [ -f /etc/default/kubelet ]; then . /etc/default/kubelet; fi',
          '# shellcheck disable=SC2086',
          `/usr/bin/kubelet --bootstrap-kubeconfig=/etc/kubernetes/bootstrap-kubelet.conf --kubeconfig=/etc/kubernetes/kubelet.conf --config=/var/lib/kubelet/config.yaml --config-dir=/run/kha-sim/kubelet.conf.d $KUBELET_KUBEADM_ARGS $KUBELET_EXTRA_ARGS >>${log} 2>&1 &`,
        ];
  return [
    '#!/bin/sh',
    `# kha lab: stand-in for systemd running ${u}.service (Restart=always).`,
    'trap \'kill -TERM "$child" 2>/dev/null; wait "$child"; exit 0\' TERM INT',
    'while :; do',
    ...run.map((l) => `  ${l}`),
    '  child=$!',
    '  wait "$child"',
    '  rc=$?',
    `  echo "$(date -u +%FT%TZ) kha-lab: ${u} exited ($rc), restarting" >>${log}`,
    '  sleep 1',
    'done',
    '',
  ].join('\n');
}

function startDaemon(t: TierRecord, u: DaemonUnit): void {
  if (loopPid(u)) return;
  fs.mkdirSync(daemonDir(), { recursive: true });
  fs.mkdirSync(hp('/var/log/kha-lab'), { recursive: true });
  if (u === 'kubelet') {
    fs.mkdirSync(path.join(runDir(), 'kubelet.conf.d'), { recursive: true });
    fs.writeFileSync(path.join(runDir(), 'kubelet.conf.d', '50-kha-lab.conf'), kubeletDropIn(t));
    // This machine's bridge address: nothing answers DNS there, so a lookup outside the cluster fails at once.
    fs.writeFileSync(path.join(runDir(), 'pod-resolv.conf'), `nameserver ${t.gateway}\noptions timeout:1 attempts:1\n`);
  }
  const script = path.join(daemonDir(), `${u}.sh`);
  fs.writeFileSync(script, loopScript(u), { mode: 0o755 });
  const child = spawn('/bin/sh', [script], {
    detached: true,
    stdio: 'ignore',
    cwd: '/',
    env: { PATH: '/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin', HOME: '/root', LANG: 'C.UTF-8' },
  });
  child.unref();
  fs.writeFileSync(pidFile(u), `${child.pid}\n`);
}

function stopDaemon(u: DaemonUnit): void {
  const pid = loopPid(u);
  if (!pid) return;
  try {
    process.kill(-pid, 'SIGTERM');
  } catch {
    process.kill(pid, 'SIGTERM');
  }
  // systemd waits for the unit to stop before `systemctl stop` returns; a kubelet that ignores SIGTERM for 5 s is killed.
  for (let i = 0; i < 50 && alive(pid); i++) spawnSync('sleep', ['0.1']);
  if (alive(pid)) {
    try {
      process.kill(-pid, 'SIGKILL');
    } catch {
      /* gone */
    }
  }
  fs.rmSync(pidFile(u), { force: true });
}

/** Brings the real daemons in line with the units the sim counts as active; `restart` ones start afresh. */
export function reconcileDaemons(active: Record<string, string>, restart: string[] = []): void {
  const t = realTier();
  if (!t || hostRoot() !== '/') return;
  for (const u of DAEMON_UNITS) {
    const want = active[u] === 'active';
    if (!want || restart.includes(u)) stopDaemon(u);
    if (want) startDaemon(t, u);
  }
}

export function daemonRunning(u: string): boolean {
  return isDaemonUnit(u) && loopPid(u) !== undefined;
}
