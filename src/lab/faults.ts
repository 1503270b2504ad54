// Files in the lab's shared directory that tests write and the simulated tools read.
// Shared contract between the lab host infrastructure (writer) and src/lab/sim (reader).
// Inside a host the shared directory is mounted at LAB_SHARED_MOUNT.
import { mkdirSync, readFileSync, rmSync } from 'node:fs';
import { join } from 'node:path';
import { randomUUID } from 'node:crypto';
import { writeJson } from './layout';

/** Where <lab dir>/shared appears inside every host. */
export const LAB_SHARED_MOUNT = '/kha-lab';

export interface LabFault {
  /** Simulated command name, e.g. "kubeadm", "apt-get", "systemctl". */
  command: string;
  /** Regular expression tested against the arguments joined by single spaces. */
  argsMatch?: string;
  /** Fire on the Nth matching run (1-based) of this host; default 1. */
  nth?: number;
  /** How many consecutive matching runs fire, starting at the Nth; default 1. */
  times?: number;
  /** Exit with this code instead of running (default 1 when stderr is set). */
  exitCode?: number;
  stderr?: string;
  /** Never return (until killed). */
  hang?: boolean;
  /** Kill the host's SSH session running this command (the client sees a dropped connection). */
  dropConnection?: boolean;
  /** Reboot the host unexpectedly while the command runs. */
  reboot?: boolean;
  /** Fire on every matching run from the Nth on, until the host has rebooted (a state only a reboot clears). */
  untilReboot?: boolean;
  /** kubeadm join --control-plane only: register the etcd member, then fail before it ever starts. */
  failAfterEtcdMember?: boolean;
}

/** Content of <shared>/faults/<host>.json. */
export interface HostFaultsFile {
  /** Changes on every write, so a reader can reset its per-fault run counters. */
  generation: string;
  faults: LabFault[];
  /** Extra delay before every simulated command, in milliseconds. */
  latencyMs: number;
  /**
   * Delay per command instead of latencyMs, keyed by "<tool>" or "<tool> <word>" / "<tool> <word> <word>"
   * (the words of the call log: arguments that are not flags), the longest matching key wins,
   * e.g. { "kubeadm init": 3000, "kubeadm join": 3000 }.
   */
  latencyByCommand?: Record<string, number>;
}

/** The subcommand words of a call: the first two arguments that are not flags, when they look like words. */
export function callWords(args: string[]): string[] {
  return args.filter((a) => !a.startsWith('-')).slice(0, 2).filter((a) => /^[a-z][a-z0-9-]*$/.test(a));
}

/** The delay of one command: the longest key of latencyByCommand that prefixes "<tool> <words>", else latencyMs. */
export function commandLatencyMs(cfg: Pick<HostFaultsFile, 'latencyMs' | 'latencyByCommand'>, tool: string, words: string[]): number {
  const map = cfg.latencyByCommand ?? {};
  for (let n = words.length; n >= 0; n--) {
    const v = map[[tool, ...words.slice(0, n)].join(' ')];
    if (v !== undefined) return v;
  }
  return cfg.latencyMs;
}

/** Content of <shared>/clock.json: lab time = real time + offsetMs. */
export interface LabClockFile {
  offsetMs: number;
}

export const sharedPaths = {
  faultsDir: (shared: string) => join(shared, 'faults'),
  faults: (shared: string, host: string) => join(shared, 'faults', `${host}.json`),
  clock: (shared: string) => join(shared, 'clock.json'),
  /** A file <host> or <host>.json created here (any content) makes the lab reboot <host>; the lab deletes it. */
  rebootRequestsDir: (shared: string) => join(shared, 'reboot-requests'),
  rebootRequest: (shared: string, host: string) => join(shared, 'reboot-requests', host),
};

export function readHostFaults(shared: string, host: string): HostFaultsFile {
  try {
    const v = JSON.parse(readFileSync(sharedPaths.faults(shared, host), 'utf8')) as Partial<HostFaultsFile>;
    return { generation: v.generation ?? '', faults: v.faults ?? [], latencyMs: v.latencyMs ?? 0, latencyByCommand: v.latencyByCommand };
  } catch (e) {
    if ((e as NodeJS.ErrnoException).code === 'ENOENT') return { generation: '', faults: [], latencyMs: 0 };
    throw e;
  }
}

export function writeHostFaults(shared: string, host: string, update: Partial<Omit<HostFaultsFile, 'generation'>>): HostFaultsFile {
  mkdirSync(sharedPaths.faultsDir(shared), { recursive: true });
  const cur = readHostFaults(shared, host);
  const next: HostFaultsFile = {
    generation: randomUUID(),
    faults: update.faults ?? cur.faults,
    latencyMs: update.latencyMs ?? cur.latencyMs,
    latencyByCommand: update.latencyByCommand ?? cur.latencyByCommand,
  };
  writeJson(sharedPaths.faults(shared, host), next);
  return next;
}

export function clearHostFaults(shared: string, host: string): void {
  rmSync(sharedPaths.faults(shared, host), { force: true });
}

export function writeClockOffset(shared: string, offsetSeconds: number): void {
  const v: LabClockFile = { offsetMs: Math.round(offsetSeconds * 1000) };
  writeJson(sharedPaths.clock(shared), v);
}
