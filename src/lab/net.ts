// The lab network: one bridge per lab (this machine is .1 on it) and one network namespace per
// host, joined to the bridge by a veth pair (eth0 inside). Hosts get no default route: only the
// lab's /24 is reachable, so nothing a host sends can leave the bridge even if this machine forwards.
import { existsSync, readdirSync, statSync, writeFileSync } from 'node:fs';
import { run } from './proc';
import { bridgeName, subnetPrefix, type LabState } from './layout';

export const NETNS_DIR = '/run/netns';

/** Creates the bridge; false when it exists already (another lab owns that subnet). */
export async function createBridge(index: number): Promise<boolean> {
  const br = bridgeName(index);
  const r = await run('ip', ['link', 'add', br, 'type', 'bridge'], { allowFail: true });
  if (r.code !== 0) {
    if (/File exists/.test(r.stderr)) return false;
    throw new Error(`cannot create bridge ${br}: ${r.stderr.trim()}`);
  }
  try {
    writeFileSync(`/proc/sys/net/ipv6/conf/${br}/disable_ipv6`, '1');
  } catch {
    // IPv6 not available: nothing to disable
  }
  await run('ip', ['-b', '-'], { input: `addr add ${subnetPrefix(index)}.1/24 dev ${br}\nlink set ${br} up\n` });
  return true;
}

/** Namespaces, veth pairs and addresses (with them the /24 route, the only one) of every host. */
export async function createHostNetworks(state: LabState): Promise<void> {
  const br = state.bridge;
  const global = state.hosts
    .map((h) => `netns add ${h.netns}\nlink add ${h.veth} type veth peer name eth0 netns ${h.netns}\nlink set ${h.veth} master ${br} up\n`)
    .join('');
  await run('ip', ['-b', '-'], { input: global });
  await Promise.all(
    state.hosts.map((h) =>
      run('ip', ['-n', h.netns, '-b', '-'], {
        input: `link set lo up\naddr add ${h.address}/24 dev eth0\nlink set eth0 up\n`,
      }),
    ),
  );
}

export async function setLinkUp(veth: string, up: boolean): Promise<void> {
  await run('ip', ['link', 'set', veth, up ? 'up' : 'down']);
}

/** Lab namespaces present on this machine for a subnet index (names kha<index>-<host>). */
export function listLabNetns(index: number): string[] {
  if (!existsSync(NETNS_DIR)) return [];
  return readdirSync(NETNS_DIR).filter((n) => n.startsWith(`kha${index}-`));
}

export function netnsInode(name: string): number | undefined {
  try {
    return statSync(`${NETNS_DIR}/${name}`).ino;
  } catch {
    return undefined;
  }
}

/** Host-side veth ends of a subnet's hosts present on this machine. */
export function listLabVeths(index: number): string[] {
  return readdirSync('/sys/class/net').filter((n) => n.startsWith(`khv${index}-`));
}

/**
 * Removes veth pairs, namespaces (their processes must be gone) and the bridge; missing ones are
 * fine. The veths go first and explicitly: a deleted namespace is torn down asynchronously by the
 * kernel, and until then its peer keeps the name a new lab on this subnet wants.
 */
export async function deleteNetworks(index: number, netns: string[]): Promise<void> {
  const lines = [...listLabVeths(index).map((v) => `link del ${v}\n`), ...netns.map((n) => `netns del ${n}\n`), `link del ${bridgeName(index)}\n`];
  await run('ip', ['-force', '-b', '-'], { input: lines.join(''), allowFail: true });
}

export function bridgeExists(index: number): boolean {
  return existsSync(`/sys/class/net/${bridgeName(index)}`);
}
