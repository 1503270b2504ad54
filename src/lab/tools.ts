// Exposes the simulated Kubernetes tooling (src/lab/sim) inside lab hosts as small wrapper
// scripts in /usr/local/sbin, which comes first on root's PATH over SSH and on sudo's
// secure_path, so they shadow any real binary of the same name.
import { chmodSync, existsSync, mkdirSync, readFileSync, readdirSync, rmSync, writeFileSync } from 'node:fs';
import { join, resolve } from 'node:path';

const MARKER = '# kha-lab sim wrapper';
export const TOOL_DIRS = ['usr/local/sbin'];

/** dist/src/lab/sim/main.js (absolute); the lower layer of every host shows this machine's files. */
export function simMainPath(): string {
  return join(__dirname, 'sim', 'main.js');
}

/** Tool name -> its wrapper script. */
export function simTools(): Map<string, string> {
  const tools = new Map<string, string>();
  const main = simMainPath();
  const listModule = join(__dirname, 'sim', 'tools.js');
  if (existsSync(listModule) && existsSync(main)) {
    // eslint-disable-next-line @typescript-eslint/no-require-imports
    const mod = require(listModule) as { SIM_TOOLS?: unknown; toolWrapperScript?: (t: string) => string };
    const list = mod.SIM_TOOLS;
    if (Array.isArray(list)) {
      for (const t of list) {
        if (typeof t !== 'string' || !/^[A-Za-z0-9._-]+$/.test(t)) continue;
        tools.set(t, mod.toolWrapperScript ? mod.toolWrapperScript(t) : script(`exec ${shq(process.execPath)} ${shq(main)} ${t} "$@"`));
      }
    }
  }
  // Plain executables the sim module ships as files (repo/src/lab/sim/bin/<name>).
  const binDir = resolve(__dirname, '../../../src/lab/sim/bin');
  if (existsSync(binDir)) {
    for (const f of readdirSync(binDir)) if (/^[A-Za-z0-9._-]+$/.test(f)) tools.set(f, script(`exec ${shq(join(binDir, f))} "$@"`));
  }
  return tools;
}

/**
 * Writes the wrappers under root (a host's upper layer before it boots, or its live root
 * /proc/<pid>/root). Earlier wrappers that are no longer listed are removed.
 */
export function writeToolWrappers(root: string): string[] {
  const tools = simTools();
  for (const d of TOOL_DIRS) {
    const dir = join(root, d);
    mkdirSync(dir, { recursive: true });
    for (const f of readdirSync(dir)) {
      const p = join(dir, f);
      if (!tools.has(f) && isWrapper(p)) rmSync(p);
    }
    for (const [name, content] of tools) {
      const p = join(dir, name);
      writeFileSync(p, content);
      chmodSync(p, 0o755);
    }
  }
  return [...tools.keys()].sort();
}

const script = (cmd: string) => `#!/bin/sh\n${MARKER}\n${cmd}\n`;
const shq = (s: string) => `'${s.replace(/'/g, `'\\''`)}'`;

function isWrapper(p: string): boolean {
  try {
    return readFileSync(p, 'utf8').split('\n')[1] === MARKER;
  } catch {
    return false;
  }
}
