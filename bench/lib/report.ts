// What every benchmark prints and writes: the machine, a table, a JSON file under bench/results/.
import { mkdirSync, readFileSync, writeFileSync } from 'node:fs';
import { cpus, freemem, loadavg, release, totalmem } from 'node:os';
import { join, resolve } from 'node:path';

/**
 * Lab hosts share this machine's clock, but preflight estimates each node's offset over its whole script run,
 * so on a saturated machine (53 hosts on 2 cores) the estimate is off by seconds: the benches do not test it.
 */
export const LAB_CLOCK_SKEW_MS = 600_000;

export interface Machine {
  cores: number;
  cpuModel: string;
  memoryMiB: number;
  freeMemoryMiB: number;
  /** 1-minute load average when the run started: other work on the machine skews every figure. */
  loadAverage1m: number;
  kernel: string;
  node: string;
}

export function machine(): Machine {
  return {
    cores: cpus().length,
    cpuModel: cpus()[0]?.model ?? 'unknown',
    memoryMiB: Math.round(totalmem() / 2 ** 20),
    freeMemoryMiB: Math.round(freemem() / 2 ** 20),
    loadAverage1m: Math.round(loadavg()[0]! * 100) / 100,
    kernel: release(),
    node: process.version,
  };
}

export function machineLine(m: Machine): string {
  return `machine: ${m.cores} cores (${m.cpuModel}), ${m.memoryMiB} MiB memory (${m.freeMemoryMiB} free), load ${m.loadAverage1m}, Linux ${m.kernel}, node ${m.node}`;
}

/** bench/results in the repository (the scripts run from dist/bench or dist/bench/lib). */
export function resultsDir(): string {
  const repo = resolve(__dirname, __dirname.endsWith('lib') ? '../../..' : '../..');
  const dir = join(repo, 'bench', 'results');
  mkdirSync(dir, { recursive: true });
  return dir;
}

/** Writes bench/results/<name>.json with the date and machine, returns its path. */
export function writeResult(name: string, m: Machine, body: Record<string, unknown>): string {
  const file = join(resultsDir(), `${name}.json`);
  writeFileSync(file, JSON.stringify({ date: new Date().toISOString(), machine: m, ...body }, null, 2) + '\n');
  return file;
}

export function readResult<T>(name: string): T | undefined {
  try {
    return JSON.parse(readFileSync(join(resultsDir(), `${name}.json`), 'utf8')) as T;
  } catch {
    return undefined;
  }
}

/** A right-aligned text table. */
export function table(head: string[], rows: Array<Array<string | number>>): string {
  const cells = rows.map((r) => r.map(String));
  const widths = head.map((h, i) => Math.max(h.length, ...cells.map((l) => (l[i] ?? '').length)));
  const fmt = (c: string[]) => c.map((x, i) => (i === 0 ? x.padEnd(widths[i]!) : x.padStart(widths[i]!))).join('  ');
  return [fmt(head), fmt(widths.map((w) => '-'.repeat(w))), ...cells.map(fmt)].join('\n') + '\n';
}

export function percentile(xs: number[], p: number): number {
  if (!xs.length) return NaN;
  const s = [...xs].sort((a, b) => a - b);
  // Nearest rank: the smallest value with at least p% of the samples at or below it.
  return s[Math.min(s.length - 1, Math.max(0, Math.ceil((p / 100) * s.length) - 1))]!;
}

export const median = (xs: number[]) => percentile(xs, 50);

export interface Stats {
  n: number;
  medianMs: number;
  p95Ms: number;
  meanMs: number;
}

export function stats(xs: number[]): Stats {
  return { n: xs.length, medianMs: round1(median(xs)), p95Ms: round1(percentile(xs, 95)), meanMs: round1(xs.reduce((s, x) => s + x, 0) / xs.length) };
}
export const round1 = (x: number) => Math.round(x * 10) / 10;
export const round2 = (x: number) => Math.round(x * 100) / 100;

export function log(line: string): void {
  process.stderr.write(`[${new Date().toISOString().slice(11, 19)}] ${line}\n`);
}
