// Entry of every simulated tool: `node main.js <tool> args...`.
import * as fs from 'node:fs';
import { spawnSync } from 'node:child_process';
import { ToolExit, err, exists, hostRoot, hostname, hp, labDir, readText, sleepMs, writeFileAtomic } from './env';
import { ensureBooted, syncRuntimeSocket, toolInstalled } from './host';
import { procSwapsLines, systemctl, modprobe, lsmod, sysctl, swapoff, swapon, reboot, ufw, netplan } from './system';
import { aptCache, aptGet, aptMark, dpkgQuery } from './apt';
import { kubeadm, noteKubeVip } from './kubeadm';
import { containerd, criDockerd, crictl, ctr, docker, etcdctl, kubectl, kubelet } from './kubectl';
import { conntrack, curl, gpg, ipset, iptables, ipvsadm } from './net';
import { cniApplied, readModel, updateModel } from './model';
import { applyFault, faultFor } from './faults';
import { realTier } from './real';

const HANDLERS: Record<string, (args: string[], tool: string) => number> = {
  systemctl: (a) => systemctl(a),
  modprobe: (a) => modprobe(a),
  lsmod: () => lsmod(),
  sysctl: (a) => sysctl(a),
  swapoff: (a) => swapoff(a),
  swapon: (a) => swapon(a),
  'apt-get': (a) => aptGet(a),
  'apt-cache': (a) => aptCache(a),
  'apt-mark': (a) => aptMark(a),
  'dpkg-query': (a) => dpkgQuery(a),
  curl: (a) => curl(a),
  gpg: (a) => gpg(a),
  ufw: (a) => ufw(a),
  netplan: (a) => netplan(a),
  iptables: (a, t) => iptables(t, a),
  ip6tables: (a, t) => iptables(t, a),
  'iptables-save': (a, t) => iptables(t, a),
  'iptables-restore': (a, t) => iptables(t, a),
  reboot: (a, t) => reboot(t, a),
  shutdown: (a, t) => reboot(t, a),
  kubeadm: (a) => kubeadm(a),
  kubectl: (a) => kubectl(a),
  kubelet: (a) => kubelet(a),
  etcdctl: (a) => etcdctl(a),
  crictl: (a) => crictl(a),
  containerd: (a) => containerd(a),
  ctr: (a) => ctr(a),
  docker: (a) => docker(a),
  'cri-dockerd': (a) => criDockerd(a),
  ipvsadm: (a) => ipvsadm(a),
  ipset: (a) => ipset(a),
  conntrack: (a) => conntrack(a),
  socat: () => 0,
};

/** Inside a lab host only: show the simulated swap state at /proc/swaps (the host has its own mount namespace). */
function syncProcSwaps(): void {
  if (hostRoot() !== '/' || process.env.KHA_SIM_ROOT) return;
  const mountinfo = readText('/proc/self/mountinfo') ?? '';
  if (!mountinfo.includes(` ${labDir()} `)) return; // not a lab host: never mount anything
  const file = '/run/kha-sim/proc-swaps';
  const content = procSwapsLines().join('\n') + '\n';
  if (readText(file) !== content) fs.writeFileSync(file, content); // in place: a bind mount follows the inode
  if (!mountinfo.includes(' /proc/swaps ')) spawnSync('mount', ['--bind', file, '/proc/swaps'], { stdio: 'ignore' });
}

/** What the cluster does to this host on its own: Calico writes its CNI config once the CNI is applied. */
function reconcile(): void {
  if (realTier()) return; // the real cluster does this itself
  const m = readModel();
  const c = m.cluster;
  if (!c) return;
  const me = hostname();
  const node = c.nodes.find((n) => n.name === me);
  if (!node) return;
  if (cniApplied(c) && exists(hp('/etc/kubernetes/kubelet.conf')) && !exists(hp('/etc/cni/net.d/10-calico.conflist'))) {
    writeFileAtomic(hp('/etc/cni/net.d/10-calico.conflist'), JSON.stringify({ name: 'k8s-pod-network', cniVersion: '0.3.1', plugins: [{ type: 'calico' }, { type: 'portmap' }] }, null, 2) + '\n');
    writeFileAtomic(hp('/etc/cni/net.d/calico-kubeconfig'), '# sim calico kubeconfig\n', 0o600);
    fs.mkdirSync(hp('/var/lib/cni/networks/k8s-pod-network'), { recursive: true });
  }
  if (node.controlPlane && exists(hp('/etc/kubernetes/manifests/kube-vip.yaml')) && !c.vipHolders.includes(me)) updateModel(noteKubeVip);
}

/**
 * Appends "<time> <tool> <first two args>" to <lab>/calls/<host>.log so tests can count what ran where (e.g.
 * that kubeadm init ran once). Only the subcommand words are kept: arguments may carry secrets.
 */
function recordCall(tool: string, args: string[]): void {
  try {
    const dir = `${labDir()}/calls`;
    fs.mkdirSync(dir, { recursive: true });
    const words = args.filter((a) => !a.startsWith('-')).slice(0, 2).filter((a) => /^[a-z][a-z0-9-]*$/.test(a));
    fs.appendFileSync(`${dir}/${hostname()}.log`, `${Date.now()} ${[tool, ...words].join(' ')}\n`);
  } catch {
    /* the log is for tests; never fail a tool over it */
  }
}

/** latencyApplied: the sim server already waited the command's latency (without holding a thread). */
export function main(argv: string[], opts: { latencyApplied?: boolean } = {}): number {
  const tool = argv[0] ?? '';
  const args = argv.slice(1);
  const handler = HANDLERS[tool];
  if (!handler) {
    err(`kha-sim: unknown tool ${tool}`);
    return 127;
  }
  try {
    if (!toolInstalled(tool)) {
      err(`${tool}: command not found`);
      return 127;
    }
    ensureBooted();
    const { fault, latencyMs } = faultFor(tool, args);
    if (!opts.latencyApplied) sleepMs(latencyMs);
    // After the latency: a command killed while "slow" never ran, so it is not counted.
    recordCall(tool, args);
    if (fault) {
      const a = applyFault(fault);
      if (a.kind === 'exit') return a.code;
    }
    reconcile();
    const rc = handler(args, tool);
    reconcile();
    syncRuntimeSocket();
    syncProcSwaps();
    return rc;
  } catch (e) {
    if (e instanceof ToolExit) {
      try {
        syncRuntimeSocket();
        syncProcSwaps();
      } catch {
        /* best effort */
      }
      return e.code;
    }
    err(`kha-sim ${tool}: ${(e as Error).stack ?? String(e)}`);
    return 70;
  }
}

if (require.main === module) {
  const code = main(process.argv.slice(2));
  // Let stdout drain before exiting (pipes).
  process.exitCode = code;
}
