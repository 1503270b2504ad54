// Where the simulated tools find the shared lab directory, the host's files and the lab clock.
// Everything is synchronous: a tool runs either as its own short-lived process or on a thread of the
// host's resident sim server (server.ts), one call at a time per thread.
import * as fs from 'node:fs';
import * as os from 'node:os';
import * as path from 'node:path';
import * as tty from 'node:tty';
import { threadId } from 'node:worker_threads';

/** The process that called the tool: this process, or the client a sim server thread answers. */
export interface Invocation {
  pid: number;
  uid: number;
  stdinIsTTY: boolean;
  write(fd: 1 | 2, data: string | Uint8Array): void;
  /** All of stdin, read only when a tool needs it (the caller's stdin may be a script still being read). */
  readStdin(): string;
}

const thisProcess: Invocation = {
  get pid() {
    return process.pid;
  },
  get uid() {
    return process.getuid?.() ?? 0;
  },
  get stdinIsTTY() {
    return tty.isatty(0);
  },
  write: (fd, data) => void (fd === 1 ? process.stdout : process.stderr).write(data),
  readStdin: () => fs.readFileSync(0, 'utf8'),
};

let current: Invocation = thisProcess;

/** The sim server sets the caller of the call a thread runs; undefined goes back to this process. */
export function setInvocation(i: Invocation | undefined): void {
  current = i ?? thisProcess;
}

export function caller(): Invocation {
  return current;
}

/** Unique among concurrent calls on this machine: the caller's pid, plus the thread in a sim server. */
function callTag(): string {
  return threadId ? `${current.pid}-${threadId}` : String(current.pid);
}

/** Exit with a code after the tool printed its message (thrown so `finally` blocks release locks). */
export class ToolExit extends Error {
  constructor(public readonly code: number, message?: string) {
    super(message ?? `exit ${code}`);
  }
}

export function labDir(): string {
  return process.env.KHA_SIM_LAB_DIR ?? '/kha-lab';
}

/** Root of the host's filesystem; "/" on a lab host, a temp dir in unit tests. */
export function hostRoot(): string {
  return process.env.KHA_SIM_ROOT ?? '/';
}

export function hostname(): string {
  return process.env.KHA_SIM_HOSTNAME ?? os.hostname();
}

/** A path on the host (absolute in the host's view) mapped to where it lives for this process. */
export function hp(p: string): string {
  return path.join(hostRoot(), p);
}

export function runDir(): string {
  return hp('/run/kha-sim');
}

export function stateDir(): string {
  return hp('/var/lib/kha-sim');
}

export function sleepMs(ms: number): void {
  if (ms <= 0) return;
  Atomics.wait(new Int32Array(new SharedArrayBuffer(4)), 0, 0, ms);
}

export function exists(p: string): boolean {
  try {
    fs.statSync(p);
    return true;
  } catch {
    return false;
  }
}

export function readText(p: string): string | undefined {
  try {
    return fs.readFileSync(p, 'utf8');
  } catch {
    return undefined;
  }
}

export function readJson<T>(p: string, fallback: T): T {
  const t = readText(p);
  if (t === undefined || t.trim() === '') return fallback;
  try {
    return JSON.parse(t) as T;
  } catch {
    return fallback;
  }
}

/** Write through a temp file and rename, so a concurrent reader never sees half a file. */
export function writeFileAtomic(p: string, content: string | Buffer, mode = 0o644): void {
  fs.mkdirSync(path.dirname(p), { recursive: true });
  const tmp = `${p}.${callTag()}.${Date.now()}.tmp`;
  fs.writeFileSync(tmp, content, { mode });
  fs.renameSync(tmp, p);
}

export function writeJson(p: string, v: unknown, mode = 0o644): void {
  writeFileAtomic(p, JSON.stringify(v, null, 1) + '\n', mode);
}

export function rmrf(p: string): void {
  fs.rmSync(p, { recursive: true, force: true });
}

export function dirEntries(p: string): string[] {
  try {
    return fs.readdirSync(p);
  } catch {
    return [];
  }
}

const LOCK_STALE_MS = 15_000;

/**
 * Mutual exclusion across processes and hosts sharing the lab dir: O_EXCL create of the lock file.
 * A lock older than LOCK_STALE_MS belongs to a process that died (or a host that rebooted) and is broken.
 */
export function withLock<T>(lockPath: string, fn: () => T): T {
  fs.mkdirSync(path.dirname(lockPath), { recursive: true });
  const deadline = Date.now() + 60_000;
  for (;;) {
    try {
      const fd = fs.openSync(lockPath, 'wx', 0o644);
      fs.writeSync(fd, `${hostname()} ${callTag()} ${Date.now()}\n`);
      fs.closeSync(fd);
      break;
    } catch (e) {
      if ((e as NodeJS.ErrnoException).code !== 'EEXIST') throw e;
      try {
        const st = fs.statSync(lockPath);
        if (Date.now() - st.mtimeMs > LOCK_STALE_MS) {
          const aside = `${lockPath}.stale.${callTag()}`;
          fs.renameSync(lockPath, aside);
          fs.rmSync(aside, { force: true });
          continue;
        }
      } catch {
        continue; // vanished between open and stat: try again at once
      }
      if (Date.now() > deadline) throw new Error(`could not take the lab lock ${lockPath} within 60 s`);
      sleepMs(5 + Math.floor(Math.random() * 20));
    }
  }
  try {
    return fn();
  } finally {
    fs.rmSync(lockPath, { force: true });
  }
}

/** Lab clock: real time plus the offset tests set in clock.json, so expiry can be tested without waiting. */
export function now(): number {
  const c = readJson<{ offsetMs?: number }>(path.join(labDir(), 'clock.json'), {});
  return Date.now() + (typeof c.offsetMs === 'number' ? c.offsetMs : 0);
}

/** Output helpers that keep stdout/stderr ordering simple. */
export function out(s: string): void {
  current.write(1, s.endsWith('\n') || s === '' ? s : s + '\n');
}
export function err(s: string): void {
  current.write(2, s.endsWith('\n') || s === '' ? s : s + '\n');
}
/** Exactly these bytes to stdout (no newline added). */
export function writeOut(data: string | Uint8Array): void {
  current.write(1, data);
}

/** Print to stderr and stop with the code. */
export function fail(code: number, message: string): never {
  if (message) err(message);
  throw new ToolExit(code);
}

/** Minimal flag parser: --a=b, --a b (when `takesValue`), -x, positional. */
export interface ParsedArgs {
  flags: Map<string, string[]>;
  pos: string[];
  rest: string[]; // after "--"
}
export function parseArgs(argv: string[], takesValue: Set<string>): ParsedArgs {
  const flags = new Map<string, string[]>();
  const pos: string[] = [];
  let rest: string[] = [];
  const add = (k: string, v: string) => flags.set(k, [...(flags.get(k) ?? []), v]);
  for (let i = 0; i < argv.length; i++) {
    const a = argv[i]!;
    if (a === '--') {
      rest = argv.slice(i + 1);
      break;
    }
    if (a.startsWith('--')) {
      const eq = a.indexOf('=');
      if (eq > 0) add(a.slice(2, eq), a.slice(eq + 1));
      else if (takesValue.has(a.slice(2)) && i + 1 < argv.length) add(a.slice(2), argv[++i]!);
      else add(a.slice(2), 'true');
    } else if (a.startsWith('-') && a.length > 1 && a.indexOf('=') > 1) {
      add(a.slice(1, a.indexOf('=')), a.slice(a.indexOf('=') + 1));
    } else if (a.startsWith('-') && a.length > 1) {
      const k = a.slice(1);
      if (takesValue.has(k) && i + 1 < argv.length) add(k, argv[++i]!);
      else if (k.length > 1 && !takesValue.has(k)) for (const c of k) add(c, 'true');
      else add(k, 'true');
    } else pos.push(a);
  }
  return { flags, pos, rest };
}
export function flag(p: ParsedArgs, ...names: string[]): string | undefined {
  for (const n of names) {
    const v = p.flags.get(n);
    if (v && v.length) return v[v.length - 1];
  }
  return undefined;
}
export function has(p: ParsedArgs, ...names: string[]): boolean {
  return names.some((n) => p.flags.has(n) && p.flags.get(n)!.some((v) => v !== 'false'));
}
