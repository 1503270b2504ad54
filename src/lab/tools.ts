// Exposes the simulated Kubernetes tooling (src/lab/sim) inside lab hosts as small wrapper
// scripts in /usr/local/sbin, which comes first on root's PATH over SSH and on sudo's
// secure_path, so they shadow any real binary of the same name.
import { chmodSync, mkdirSync, readFileSync, readdirSync, rmSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { WRAPPER_MARKER, hostSimTools, toolWrapperScript } from './sim/tools';
import type { KubeTier } from './real/tier';

export const TOOL_DIRS = ['usr/local/sbin'];

/** Tool name -> its wrapper script. */
export function simTools(tier: KubeTier = 'sim'): Map<string, string> {
  return new Map(hostSimTools(tier).map((t) => [t, toolWrapperScript(t)]));
}

/**
 * Writes the wrappers under root (a host's upper layer before it boots, or its live root
 * /proc/<pid>/root). Earlier wrappers that are no longer listed are removed.
 */
export function writeToolWrappers(root: string, tier: KubeTier = 'sim'): string[] {
  const tools = simTools(tier);
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

function isWrapper(p: string): boolean {
  try {
    return readFileSync(p, 'utf8').split('\n')[1] === WRAPPER_MARKER;
  } catch {
    return false;
  }
}
