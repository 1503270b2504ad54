// Applies the faults a test set for this host (<lab>/faults/<host>.json, written by src/lab/faults.ts).
import * as fs from 'node:fs';
import * as path from 'node:path';
import { err, hostname, labDir, readJson, sleepMs, withLock, writeJson, caller } from './env';
import { callWords, commandLatencyMs, type HostFaultsFile, type LabFault } from '../faults';
import { requestReboot } from './system';

interface Counters {
  generation: string;
  runs: number[]; // matching runs seen per fault index
  /** Boot id when this generation of faults was first seen: untilReboot faults stop once it changes. */
  bootId?: string;
}

function currentBootId(): string {
  try {
    return fs.readFileSync('/proc/sys/kernel/random/boot_id', 'utf8').trim();
  } catch {
    return '';
  }
}

/** What the dispatcher must do instead of (or before) running the tool. */
export type FaultAction = { kind: 'none' } | { kind: 'exit'; code: number };

function matches(f: LabFault, tool: string, args: string[]): boolean {
  if (f.command !== tool) return false;
  if (!f.argsMatch) return true;
  return new RegExp(f.argsMatch).test(args.join(' '));
}

/** Counts this run against every matching fault and returns the first that fires. */
export function faultFor(tool: string, args: string[]): { fault?: LabFault; latencyMs: number } {
  const file = path.join(labDir(), 'faults', `${hostname()}.json`);
  if (!fs.existsSync(file)) return { latencyMs: 0 };
  const cfg = readJson<Partial<HostFaultsFile>>(file, {});
  const faults = cfg.faults ?? [];
  const latencyMs = commandLatencyMs({ latencyMs: cfg.latencyMs ?? 0, latencyByCommand: cfg.latencyByCommand }, tool, callWords(args));
  if (!faults.some((f) => matches(f, tool, args))) return { latencyMs };
  const countsFile = path.join(labDir(), 'faults', `${hostname()}.counts.json`);
  const fault = withLock(countsFile + '.lock', () => {
    const c = readJson<Counters>(countsFile, { generation: '', runs: [] });
    if (c.generation !== (cfg.generation ?? '')) {
      c.generation = cfg.generation ?? '';
      c.runs = [];
      c.bootId = currentBootId();
    }
    const rebooted = c.bootId !== undefined && c.bootId !== currentBootId();
    let fired: LabFault | undefined;
    faults.forEach((f, i) => {
      if (!matches(f, tool, args)) return;
      const n = (c.runs[i] = (c.runs[i] ?? 0) + 1);
      const first = f.nth ?? 1;
      const times = f.times ?? 1;
      const active = f.untilReboot ? !rebooted : times <= 0 || n < first + times;
      if (!fired && n >= first && active) fired = f;
    });
    writeJson(countsFile, c);
    return fired;
  });
  return { fault, latencyMs };
}

/** The nearest ancestor that is an sshd session process (the one serving this command's channel). */
export function sshdSessionAncestor(pid = caller().pid): number | undefined {
  let cur = pid;
  for (let i = 0; i < 64 && cur > 1; i++) {
    let stat: string;
    try {
      stat = fs.readFileSync(`/proc/${cur}/stat`, 'utf8');
    } catch {
      return undefined;
    }
    const close = stat.lastIndexOf(')');
    const comm = stat.slice(stat.indexOf('(') + 1, close);
    const ppid = Number(stat.slice(close + 2).split(' ')[1]);
    if (cur !== pid && (comm === 'sshd' || comm === 'sshd-session')) {
      const cmd = fs.readFileSync(`/proc/${cur}/cmdline`, 'utf8');
      // The listener runs with -D (or is PID 1 of the host); never kill it.
      if (!cmd.includes('\0-D') && cur !== 1) return cur;
      return undefined;
    }
    cur = ppid;
  }
  return undefined;
}

export const FAIL_AFTER_ETCD_MEMBER_ENV = 'KHA_SIM_FAIL_AFTER_ETCD_MEMBER';

export function applyFault(f: LabFault): FaultAction {
  if (f.failAfterEtcdMember) {
    // The tool runs and fails half-way; kubeadm reads this.
    process.env[FAIL_AFTER_ETCD_MEMBER_ENV] = '1';
    return { kind: 'none' };
  }
  if (f.dropConnection) {
    const sshd = sshdSessionAncestor();
    if (sshd) process.kill(sshd, 'SIGKILL');
    else err('kha-sim: dropConnection fault but no sshd session above this command');
    return { kind: 'exit', code: 255 };
  }
  if (f.reboot) return { kind: 'exit', code: requestReboot(`fault on ${f.command}`) };
  if (f.hang) {
    for (;;) sleepMs(60_000);
  }
  if (f.stderr) err(f.stderr);
  return { kind: 'exit', code: f.exitCode ?? 1 };
}
