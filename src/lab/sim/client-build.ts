// Builds the lab's sim client (dist/bin/kha-sim-client) from client/client.c with the machine's C compiler.
// `npm run build` builds it; an installed package ships only the C source, so the first `kha lab up` builds it
// (the lab runs as root, and gcc is one of its Debian packages). Without a compiler the lab still works: each
// tool call then starts a Node process of its own.
import { spawnSync } from 'node:child_process';
import { existsSync, mkdirSync, renameSync, rmSync, statSync } from 'node:fs';
import { dirname, resolve } from 'node:path';
import { simClientPath } from './tools';

export function simClientSource(): string {
  return resolve(__dirname, '..', '..', '..', '..', 'src', 'lab', 'sim', 'client', 'client.c');
}

export interface SimClientBuild {
  path: string;
  /** True when this call compiled it. */
  built: boolean;
  /** Why there is no client (no source, no compiler, compile error). */
  error?: string;
}

/** Compiles the client unless an up-to-date one exists (force: always). */
export function ensureSimClient(o: { force?: boolean; cc?: string } = {}): SimClientBuild {
  const out = simClientPath();
  const src = simClientSource();
  if (!existsSync(src)) return { path: out, built: false, error: existsSync(out) ? undefined : `no source at ${src}` };
  if (!o.force && existsSync(out) && statSync(out).mtimeMs >= statSync(src).mtimeMs) return { path: out, built: false };
  const cc = o.cc || process.env.CC || 'cc';
  try {
    mkdirSync(dirname(out), { recursive: true });
  } catch (e) {
    return { path: out, built: false, error: `cannot create ${dirname(out)}: ${(e as NodeJS.ErrnoException).code ?? (e as Error).message}` };
  }
  // Built under another name and renamed: a lab running from this directory never sees half a binary.
  const tmp = `${out}.${process.pid}.tmp`;
  const r = spawnSync(cc, ['-O2', '-Wall', '-Wextra', '-Werror', '-o', tmp, src], { encoding: 'utf8' });
  if (r.error || r.status !== 0) {
    rmSync(tmp, { force: true });
    const why = r.error ? (r.error as NodeJS.ErrnoException).code === 'ENOENT' ? `no C compiler (${cc}); install gcc` : r.error.message : `${cc} exit ${r.status}: ${r.stderr.trim()}`;
    return { path: out, built: false, error: why };
  }
  renameSync(tmp, out);
  return { path: out, built: true };
}
