// Shared by the render and plan tests: where the repository's files are, and loading clusters.
import { readdirSync } from 'node:fs';
import { join, resolve } from 'node:path';
import { loadClusterFile } from '../src/spec/load';
import type { ClusterSpec } from '../src/spec/types';

/** dist/test/<file>.js -> the repository root. */
export const ROOT = resolve(__dirname, '..', '..');
export const GOLDEN_DIR = join(ROOT, 'test', 'golden');
export const SPEC_FIXTURES = join(GOLDEN_DIR, 'specs');

export function loadOrFail(path: string): ClusterSpec {
  const r = loadClusterFile(path);
  if (!r.cluster) throw new Error(`${path}: ${JSON.stringify(r.errors)}`);
  return r.cluster;
}

/** Every example plus the render fixtures. */
export function allSpecFiles(): string[] {
  const examples = readdirSync(join(ROOT, 'examples'))
    .filter((f) => f.endsWith('.yaml'))
    .map((f) => join(ROOT, 'examples', f));
  const fixtures = readdirSync(SPEC_FIXTURES)
    .filter((f) => f.endsWith('.yaml'))
    .map((f) => join(SPEC_FIXTURES, f));
  return [...examples, ...fixtures];
}
