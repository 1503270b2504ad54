// Tearing a lab down, also after a crash: supervisor, every process in the lab's namespaces,
// mounts under the lab directory, namespaces, bridge, files. Each step tolerates missing parts.
import { existsSync, lstatSync, mkdirSync, readFileSync, readdirSync, rmSync, rmdirSync, writeFileSync } from 'node:fs';
import { join, resolve } from 'node:path';
import { controlRequest } from './control';
import { labPaths, readState, MAX_SUBNET_INDEX } from './layout';
import { bridgeExists, deleteNetworks, listLabNetns, listLabVeths, netnsInode } from './net';
import { pidAlive, pidsInNetns, readProc, run } from './proc';
import { sleep } from '../util/sleep';

/**
 * Written first into every directory the lab creates or takes over while empty. Clean-up deletes
 * fixed names (hosts, keys, lab.json...) and unmounts what is under the directory, so it refuses
 * any directory without this file: `kha lab down --dir /etc` must not remove /etc/hosts.
 */
export const LAB_MARKER = '.kha-lab';
const MARKER_TEXT = 'This directory belongs to a kha lab; `kha lab down` removes it.\n';

export class LabDirRefusedError extends Error {
  constructor(dir: string, action: string) {
    super(`${dir} was not created by kha lab (no ${LAB_MARKER} file in it); refusing to ${action}; give --dir a new or empty directory`);
    this.name = 'LabDirRefusedError';
  }
}

function isEmptyDir(dir: string): boolean {
  return readdirSync(dir).length === 0;
}

/** Whether clean-up may touch dir: it does not exist, is empty, or carries the lab's marker. */
export function assertLabDir(dir: string, action: string): void {
  if (!existsSync(dir) || existsSync(join(dir, LAB_MARKER))) return;
  if (!lstatSync(dir).isDirectory() || !isEmptyDir(dir)) throw new LabDirRefusedError(dir, action);
}

/** Creates dir if needed and marks it as the lab's (assertLabDir must have passed). */
export function markLabDir(dir: string): void {
  mkdirSync(dir, { recursive: true });
  writeFileSync(join(dir, LAB_MARKER), MARKER_TEXT);
}

/** Which lab directory uses a subnet index (this machine only). */
const REGISTRY = '/run/kha-lab';

export function claimSubnet(index: number, dir: string): void {
  mkdirSync(REGISTRY, { recursive: true });
  writeFileSync(join(REGISTRY, `subnet-${index}`), resolve(dir) + '\n');
}

function subnetOwner(index: number): string | undefined {
  try {
    return readFileSync(join(REGISTRY, `subnet-${index}`), 'utf8').trim() || undefined;
  } catch {
    return undefined;
  }
}

function subnetsClaimedBy(dir: string): number[] {
  if (!existsSync(REGISTRY)) return [];
  return readdirSync(REGISTRY)
    .map((f) => /^subnet-(\d+)$/.exec(f)?.[1])
    .filter((i): i is string => i !== undefined && subnetOwner(Number(i)) === resolve(dir))
    .map(Number);
}

function releaseSubnet(index: number, dir: string): void {
  if (subnetOwner(index) === resolve(dir)) rmSync(join(REGISTRY, `subnet-${index}`), { force: true });
}

/** The supervisor pid of a lab directory, when that process is alive and is our supervisor. */
export function liveSupervisor(dir: string): number | undefined {
  try {
    const pid = Number(readFileSync(labPaths(dir).supervisorPid, 'utf8').trim());
    const cmd = readProc(pid, 'cmdline')?.split('\0') ?? [];
    return pid > 0 && cmd.some((a) => a.endsWith('supervisor.js')) && cmd.includes(dir) ? pid : undefined;
  } catch {
    return undefined;
  }
}

/** The directory of another running lab that uses this subnet index, if any. */
export function subnetHeldBy(index: number, dir: string): string | undefined {
  const owner = subnetOwner(index);
  return owner && owner !== resolve(dir) && liveSupervisor(owner) ? owner : undefined;
}

/**
 * The lowest subnet index from 1 on that no other lab holds or left behind. A claim whose lab is
 * not running and left nothing on the network (e.g. from before this machine rebooted) is stale.
 */
export function pickSubnet(): number {
  for (let i = 1; i <= MAX_SUBNET_INDEX; i++) {
    if (bridgeExists(i) || listLabNetns(i).length > 0 || listLabVeths(i).length > 0) continue;
    const owner = subnetOwner(i);
    if (!owner || !liveSupervisor(owner)) return i;
  }
  throw new Error('no free lab subnet (198.18.1.0/24 .. 198.18.255.0/24 all in use)');
}

async function killAll(pids: number[]): Promise<void> {
  for (const pid of pids) {
    try {
      process.kill(pid, 'SIGKILL');
    } catch {
      // already gone
    }
  }
  const deadline = Date.now() + 10_000;
  while (pids.some(pidAlive) && Date.now() < deadline) await sleep(20);
}

/** Kills every process in the subnet's namespaces and removes namespaces and bridge. */
export async function clearSubnet(index: number, extraNetns: string[] = []): Promise<void> {
  const names = [...new Set([...listLabNetns(index), ...extraNetns])];
  const inodes = names.map(netnsInode).filter((i): i is number => i !== undefined);
  for (let round = 0; round < 3; round++) {
    const pids = inodes.flatMap(pidsInNetns);
    if (!pids.length) break;
    await killAll(pids);
  }
  await deleteNetworks(index, names);
  await removeHostCgroups(index);
}

/** The real tier's per-host cgroups (kha<index>-<host> in every v1 hierarchy), deepest first, once empty. */
async function removeHostCgroups(index: number): Promise<void> {
  const root = '/sys/fs/cgroup';
  if (!existsSync(root)) return;
  const dirs: string[] = [];
  const walk = (d: string) => {
    for (const e of readdirSync(d, { withFileTypes: true })) if (e.isDirectory()) walk(join(d, e.name));
    dirs.push(d);
  };
  for (const h of readdirSync(root)) {
    const base = join(root, h);
    let entries: string[] = [];
    try {
      entries = readdirSync(base).filter((e) => e.startsWith(`kha${index}-`));
    } catch {
      continue;
    }
    for (const e of entries) walk(join(base, e));
  }
  for (let round = 0; round < 20 && dirs.length; round++) {
    for (let i = 0; i < dirs.length; i++) {
      try {
        rmdirSync(dirs[i]!);
        dirs.splice(i--, 1);
      } catch {
        // still has processes exiting, or a child left: next round
      }
    }
    if (dirs.length) await sleep(100);
  }
}

/** Mount points at or under dir in this mount namespace, deepest first. */
function mountsUnder(dir: string): string[] {
  const abs = resolve(dir);
  const out: string[] = [];
  for (const line of readFileSync('/proc/self/mountinfo', 'utf8').split('\n')) {
    const mp = line.split(' ')[4];
    if (!mp) continue;
    const path = mp.replace(/\\(\d{3})/g, (_, o: string) => String.fromCharCode(parseInt(o, 8)));
    if (path === abs || path.startsWith(abs + '/')) out.push(path);
  }
  return out.sort((a, b) => b.length - a.length);
}

const LAB_FILES = ['hosts', 'shared', 'keys', 'real', 'lab.json', 'status.json', 'control.sock', 'supervisor.pid', 'supervisor.log', 'host-init.sh', 'known_hosts'];

/**
 * Removes everything a lab in dir created, whether it is running, was shut down or crashed.
 * With keepLog, supervisor.log stays (for a post-mortem).
 */
export async function downDir(dir: string, opts: { keepLog?: boolean } = {}): Promise<void> {
  assertLabDir(dir, 'remove lab files from it');
  const p = labPaths(dir);
  const state = readState(dir);
  if (existsSync(p.control)) await controlRequest(dir, { op: 'shutdown' }, 5000).catch(() => undefined);
  const sup = liveSupervisor(dir);
  if (sup) await killAll([sup]);
  if (state) {
    await clearSubnet(state.subnetIndex, state.hosts.map((h) => h.netns));
    releaseSubnet(state.subnetIndex, dir);
  }
  // A run that died between claiming its subnet and writing lab.json.
  for (const i of subnetsClaimedBy(dir)) {
    await clearSubnet(i);
    releaseSubnet(i, dir);
  }
  for (const m of mountsUnder(dir)) await run('umount', ['-l', m], { allowFail: true });
  if (!existsSync(dir)) return;
  for (const f of LAB_FILES) {
    if (opts.keepLog && f === 'supervisor.log') continue;
    rmSync(join(dir, f), { recursive: true, force: true });
  }
  for (const f of readdirSync(dir)) if (/^(lab|status)\.json\..*\.tmp$/.test(f)) rmSync(join(dir, f), { force: true });
  // The marker goes last and only with the directory: files that are not the lab's stay, and so
  // does the mark that lets the next up use the directory again.
  if (readdirSync(dir).every((f) => f === LAB_MARKER)) {
    rmSync(join(dir, LAB_MARKER), { force: true });
    rmdirSync(dir);
  }
}
