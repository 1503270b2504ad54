// Small helpers to run this machine's commands (ip, ssh-keygen, nsenter) and read /proc.
import { spawn } from 'node:child_process';
import { readFileSync, readdirSync, readlinkSync } from 'node:fs';

export interface RunResult {
  code: number;
  stdout: string;
  stderr: string;
}

/** Runs a command; rejects with its stderr when it exits non-zero, unless allowFail. */
export function run(cmd: string, args: string[], opts: { input?: string; allowFail?: boolean; timeoutMs?: number } = {}): Promise<RunResult> {
  return new Promise((resolve, reject) => {
    const child = spawn(cmd, args, { stdio: ['pipe', 'pipe', 'pipe'], timeout: opts.timeoutMs });
    let stdout = '';
    let stderr = '';
    child.stdout.setEncoding('utf8').on('data', (d: string) => (stdout += d));
    child.stderr.setEncoding('utf8').on('data', (d: string) => (stderr += d));
    child.on('error', reject);
    child.on('close', (code, signal) => {
      const r = { code: code ?? 128 + (signal ? 9 : 0), stdout, stderr };
      if (r.code !== 0 && !opts.allowFail) reject(new Error(`${cmd} ${args.join(' ')}: exit ${r.code}: ${stderr.trim()}`));
      else resolve(r);
    });
    child.stdin.on('error', () => undefined);
    child.stdin.end(opts.input ?? '');
  });
}

/** True while the process exists and is not a zombie (this machine's PID 1 may reap late). */
export function pidAlive(pid: number): boolean {
  const stat = readProc(pid, 'stat');
  if (stat === undefined) return false;
  return !/^\d+ \(.*\) [ZX] /s.test(stat);
}

export function readProc(pid: number, file: string): string | undefined {
  try {
    return readFileSync(`/proc/${pid}/${file}`, 'utf8');
  } catch {
    return undefined;
  }
}

export function allPids(): number[] {
  return readdirSync('/proc').filter((e) => /^\d+$/.test(e)).map(Number);
}

/** Resident memory of a process in KiB. */
export function rssKiB(pid: number): number {
  return Number(/^VmRSS:\s+(\d+)/m.exec(readProc(pid, 'status') ?? '')?.[1] ?? 0);
}

/** Processes whose network namespace is the given /run/netns entry (by inode). */
export function pidsInNetns(nsInode: number): number[] {
  const out: number[] = [];
  for (const pid of allPids()) {
    try {
      if (readlinkSync(`/proc/${pid}/ns/net`) === `net:[${nsInode}]`) out.push(pid);
    } catch {
      // gone
    }
  }
  return out;
}

