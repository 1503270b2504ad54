// The simulated tools. SIM_TOOLS are on every lab host from the start (the lab writes their wrappers);
// SIM_PACKAGE_TOOLS appear only when the sim's apt-get installs the package that ships them.
import * as fs from 'node:fs';
import * as path from 'node:path';

export const SIM_TOOLS: string[] = [
  'systemctl', 'modprobe', 'lsmod', 'sysctl', 'swapoff', 'swapon', 'apt-get', 'apt-cache', 'apt-mark', 'dpkg-query',
  'curl', 'gpg', 'ufw', 'netplan', 'iptables', 'ip6tables', 'iptables-save', 'iptables-restore', 'reboot', 'shutdown',
];

export const SIM_PACKAGE_TOOLS: string[] = ['kubeadm', 'kubelet', 'kubectl', 'crictl', 'containerd', 'ctr', 'ipvsadm', 'ipset', 'conntrack', 'socat', 'etcdctl'];

const shq = (s: string) => `'${s.replace(/'/g, `'\\''`)}'`;

/** dist/bin/kha-sim-client, built from client/ by `npm run build` when Go is present. */
export function simClientPath(): string {
  return path.resolve(__dirname, '../../../bin/kha-sim-client');
}

/**
 * The line a tool's wrapper script runs: through the small client that hands the call to the host's
 * resident sim server when it was built, else a Node process of its own (the client falls back to that too).
 */
export function toolCommand(tool: string): string {
  const node = shq(process.execPath);
  const main = shq(path.join(__dirname, 'main.js'));
  const client = simClientPath();
  if (fs.existsSync(client)) return `exec ${shq(client)} ${node} ${main} ${tool} "$@"`;
  return `exec ${node} ${main} ${tool} "$@"`;
}
