// Names, addresses and paths of one lab. Pure functions plus the state file, shared by the Lab
// class, the supervisor and the clean-up of a crashed run.
import { readFileSync, renameSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { randomUUID } from 'node:crypto';
import type { KubeTier } from './real/tier';

export type LabRole = 'control-plane' | 'worker' | 'bastion';

export interface LabHost {
  name: string;
  address: string;
  role: LabRole;
}

/** What the lab records about itself in <dir>/lab.json. */
export interface LabState {
  version: 1;
  dir: string;
  subnetIndex: number;
  bridge: string;
  gateway: string;
  vip: string;
  rebootDelayMs: number;
  /** Which Kubernetes the hosts get (absent: the simulator). */
  kube?: KubeTier;
  hosts: (LabHost & { netns: string; veth: string })[];
}

/** Runtime state the supervisor publishes in <dir>/status.json. */
export type HostRunState = 'starting' | 'up' | 'rebooting' | 'stopped';
export interface LabStatusFile {
  supervisorPid: number;
  ready: boolean;
  error?: string;
  hosts: Record<string, { state: HostRunState; unreachableUntil?: number; initPid?: number; boots: number }>;
}

export const MAX_SUBNET_INDEX = 255;

export function subnetPrefix(index: number): string {
  if (!Number.isInteger(index) || index < 0 || index > MAX_SUBNET_INDEX) {
    throw new Error(`subnetIndex must be an integer from 0 to ${MAX_SUBNET_INDEX}, got ${index}`);
  }
  return `198.18.${index}`;
}

export const bridgeName = (index: number) => `khabr${index}`;
export const netnsName = (index: number, host: string) => `kha${index}-${host}`;
// At most 15 characters: "khv" + index (<=3) + "-" + octet (<=3).
export const vethName = (index: number, octet: number) => `khv${index}-${octet}`;

/** Gateway .1 (this machine), VIP .10, bastion .5, nodes from .11 on. */
export function planHosts(index: number, controlPlanes: number, workers: number, bastion: boolean): LabState['hosts'] {
  if (controlPlanes < 0 || workers < 0 || controlPlanes + workers < 1) throw new Error('a lab needs at least one host');
  if (controlPlanes + workers > 240) throw new Error('a lab has room for at most 240 nodes');
  const p = subnetPrefix(index);
  const hosts: LabState['hosts'] = [];
  const add = (name: string, role: LabRole, octet: number) =>
    hosts.push({ name, role, address: `${p}.${octet}`, netns: netnsName(index, name), veth: vethName(index, octet) });
  const two = (n: number) => String(n).padStart(2, '0');
  for (let i = 0; i < controlPlanes; i++) add(`k8scp-${two(i + 1)}`, 'control-plane', 11 + i);
  for (let i = 0; i < workers; i++) add(`k8swn-${two(i + 1)}`, 'worker', 11 + controlPlanes + i);
  if (bastion) add('bastion', 'bastion', 5);
  return hosts;
}

export function labPaths(dir: string) {
  return {
    dir,
    state: join(dir, 'lab.json'),
    status: join(dir, 'status.json'),
    control: join(dir, 'control.sock'),
    supervisorLog: join(dir, 'supervisor.log'),
    supervisorPid: join(dir, 'supervisor.pid'),
    initScript: join(dir, 'host-init.sh'),
    keys: join(dir, 'keys'),
    rootKey: join(dir, 'keys', 'root_ed25519'),
    userKey: join(dir, 'keys', 'kha_ed25519'),
    pwUserKey: join(dir, 'keys', 'khapw_ed25519'),
    pwUserPassword: join(dir, 'keys', 'khapw.password'),
    knownHosts: join(dir, 'known_hosts'),
    shared: join(dir, 'shared'),
    hosts: join(dir, 'hosts'),
    /** Real tier: the copy of this machine's /var/lib/dpkg under every host's own dpkg overlay. */
    dpkgLower: join(dir, 'hosts', '.dpkg'),
    host: (name: string) => {
      const h = join(dir, 'hosts', name);
      return {
        dir: h,
        upper: join(h, 'upper'),
        work: join(h, 'work'),
        merged: join(h, 'merged'),
        bootId: join(h, 'boot_id'),
        initPid: join(h, 'init.pid'),
        log: join(h, 'sshd.log'),
      };
    },
  };
}
export type LabPaths = ReturnType<typeof labPaths>;

export function readState(dir: string): LabState | undefined {
  try {
    return JSON.parse(readFileSync(labPaths(dir).state, 'utf8')) as LabState;
  } catch {
    return undefined;
  }
}

export function writeJson(path: string, value: unknown): void {
  const tmp = `${path}.${process.pid}.${randomUUID()}.tmp`;
  writeFileSync(tmp, JSON.stringify(value, null, 2) + '\n');
  renameSync(tmp, path);
}

export function readStatus(dir: string): LabStatusFile | undefined {
  try {
    return JSON.parse(readFileSync(labPaths(dir).status, 'utf8')) as LabStatusFile;
  } catch {
    return undefined;
  }
}
