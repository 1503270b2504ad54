// A kha worker in its own process (`bin/kha worker`, as operators run it) and a sampler of its memory and
// CPU time from /proc.
import { spawn, type ChildProcess } from 'node:child_process';
import { readFileSync } from 'node:fs';
import { join, resolve } from 'node:path';

const ROOT = resolve(__dirname, __dirname.endsWith('lib') ? '../../..' : '../..');
/** Clock ticks per second of /proc/<pid>/stat times (USER_HZ, 100 on Linux). */
const TICKS = 100;

export interface WorkerProcess {
  child: ChildProcess;
  spawnedMs: number;
  /** Resolves when the worker says it polls the task queue. */
  ready: Promise<number>;
  stderr(): string;
  /** Spawn to the SDK's "Workflow bundle created" line (webpack bundling the workflows at start), if it bundled. */
  bundledAfterMs(): number | undefined;
  kill(signal?: NodeJS.Signals): Promise<void>;
}

export function startWorkerProcess(address: string, taskQueue: string): WorkerProcess {
  const spawnedMs = Date.now();
  // Through its shebang, with the Node flags it sets, as an installed kha runs.
  const child = spawn(join(ROOT, 'bin', 'kha'), ['worker'], {
    env: { ...process.env, TEMPORAL_ADDRESS: address, TEMPORAL_NAMESPACE: 'default', KHA_TASK_QUEUE: taskQueue },
    stdio: ['ignore', 'ignore', 'pipe'],
  });
  let err = '';
  const ready = new Promise<number>((res, rej) => {
    child.stderr!.setEncoding('utf8').on('data', (d: string) => {
      err += d;
      if (err.includes('kha worker: polling task queue')) res(Date.now());
    });
    child.once('exit', (code, sig) => rej(new Error(`worker exited (${code ?? sig}) before polling: ${err.slice(-2000)}`)));
  });
  ready.catch(() => undefined);
  return {
    child,
    spawnedMs,
    ready,
    stderr: () => err,
    bundledAfterMs: () => {
      const m = /^(\S+) \[INFO\] Workflow bundle created/m.exec(err);
      return m ? Date.parse(m[1]!) - spawnedMs : undefined;
    },
    kill: (signal = 'SIGKILL') =>
      new Promise<void>((res) => {
        if (child.exitCode !== null || child.signalCode !== null) return res();
        child.once('exit', () => res());
        child.kill(signal);
      }),
  };
}

export interface ProcSample {
  ms: number;
  rssKiB: number;
  cpuMs: number;
}

function read(pid: number): { rssKiB: number; hwmKiB: number; cpuMs: number } | undefined {
  try {
    const status = readFileSync(`/proc/${pid}/status`, 'utf8');
    const stat = readFileSync(`/proc/${pid}/stat`, 'utf8');
    // Fields after the command name: state is 3rd, utime 14th, stime 15th (1-based over the whole line).
    const f = stat.slice(stat.lastIndexOf(')') + 2).split(' ');
    const cpuTicks = Number(f[11]) + Number(f[12]);
    return {
      rssKiB: Number(/^VmRSS:\s+(\d+)/m.exec(status)?.[1] ?? 0),
      hwmKiB: Number(/^VmHWM:\s+(\d+)/m.exec(status)?.[1] ?? 0),
      cpuMs: (cpuTicks / TICKS) * 1000,
    };
  } catch {
    return undefined;
  }
}

/** Samples a process every `everyMs`; `stop()` returns the samples and the kernel's peak RSS (VmHWM). */
export function sampleProcess(pid: number, everyMs = 250): { stop(): { samples: ProcSample[]; peakRssKiB: number; cpuMs: number } } {
  const samples: ProcSample[] = [];
  let hwm = 0;
  const take = () => {
    const r = read(pid);
    if (!r) return;
    hwm = Math.max(hwm, r.hwmKiB);
    samples.push({ ms: Date.now(), rssKiB: r.rssKiB, cpuMs: r.cpuMs });
  };
  take();
  const t = setInterval(take, everyMs);
  return {
    stop() {
      take();
      clearInterval(t);
      return { samples, peakRssKiB: Math.max(hwm, ...samples.map((s) => s.rssKiB)), cpuMs: samples.at(-1)?.cpuMs ?? 0 };
    },
  };
}

/** This machine's CPU: busy and total jiffies from /proc/stat, to tell how saturated the cores were. */
export function machineCpu(): { busy: number; total: number } {
  const line = readFileSync('/proc/stat', 'utf8').split('\n')[0]!.trim().split(/\s+/).slice(1).map(Number);
  const idle = (line[3] ?? 0) + (line[4] ?? 0);
  const total = line.reduce((s, x) => s + x, 0);
  return { busy: total - idle, total };
}
