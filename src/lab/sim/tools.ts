// The simulated tools. SIM_TOOLS are on every lab host from the start (the lab writes their wrappers);
// SIM_PACKAGE_TOOLS appear only when the sim's apt-get installs the package that ships them.
import * as fs from 'node:fs';
import * as path from 'node:path';

export const SIM_TOOLS: string[] = [
  'systemctl', 'modprobe', 'lsmod', 'sysctl', 'swapoff', 'swapon', 'apt-get', 'apt-cache', 'apt-mark', 'dpkg-query',
  'curl', 'gpg', 'ufw', 'netplan', 'iptables', 'ip6tables', 'iptables-save', 'iptables-restore', 'reboot', 'shutdown',
];

export const SIM_PACKAGE_TOOLS: string[] = ['kubeadm', 'kubelet', 'kubectl', 'crictl', 'containerd', 'ctr', 'docker', 'cri-dockerd', 'ipvsadm', 'ipset', 'conntrack', 'socat', 'etcdctl'];

/**
 * On the real tier these are this machine's own programs: they touch only the host's own files and netns. apt
 * and dpkg install from the lab's signed repository (src/lab/real/apt-repo.ts) into the host's own root.
 */
export const REAL_TIER_OWN_TOOLS: string[] = [
  'curl', 'gpg', 'iptables', 'ip6tables', 'iptables-save', 'iptables-restore', 'apt-get', 'apt-cache', 'apt-mark', 'dpkg-query',
];

/** Tools a host of the tier starts with as wrappers of the sim. */
export function hostSimTools(tier: 'sim' | 'real'): string[] {
  return tier === 'real' ? SIM_TOOLS.filter((t) => !REAL_TIER_OWN_TOOLS.includes(t)) : SIM_TOOLS;
}

/**
 * Package tools this machine may have that a fresh host must not show. On the real tier the packages phase
 * installs the real Kubernetes packages with dpkg; containerd, ipset and friends are Debian's own, installed.
 */
export function hiddenPackageTools(tier: 'sim' | 'real'): string[] {
  return tier === 'real' ? ['kubeadm', 'kubelet', 'kubectl', 'crictl', 'etcdctl'] : SIM_PACKAGE_TOOLS;
}

const shq = (s: string) => `'${s.replace(/'/g, `'\\''`)}'`;

/** dist/bin/kha-sim-client, built from client/client.c by `npm run build` when a C compiler is present. */
export function simClientPath(): string {
  return path.resolve(__dirname, '../../../bin/kha-sim-client');
}

/** Second line of every wrapper: how the lab recognises the files it wrote. */
export const WRAPPER_MARKER = '# kha-lab sim wrapper';

/**
 * The wrapper script of a tool. With the client built, the kernel starts the client directly (shebang, no
 * shell), which hands the call to the host's resident sim server; without a server the client runs this same
 * file with /bin/sh, whose third line starts the tool as a Node process of its own.
 */
export function toolWrapperScript(tool: string): string {
  const node = shq(process.execPath);
  const main = shq(path.join(__dirname, 'main.js'));
  const client = simClientPath();
  const shebang = fs.existsSync(client) && client.length < 200 && !/\s/.test(client) ? `#!${client} --wrapper` : '#!/bin/sh';
  return `${shebang}\n${WRAPPER_MARKER}\nexec ${node} ${main} ${tool} "$@"\n`;
}
