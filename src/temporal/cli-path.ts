// Finds the Temporal CLI (the dev server) through scripts/temporal-cli.sh, which may build it with `go install`.
import { spawnSync } from 'node:child_process';
import { join } from 'node:path';

export const PROJECT_ROOT = join(__dirname, '..', '..', '..');

/** The CLI at the pinned release: found, or built when Go is there; `findOnly` never builds. */
export function temporalCliLookup(o: { findOnly?: boolean } = {}): { path?: string; buildable?: boolean; message: string } {
  const args = [join(PROJECT_ROOT, 'scripts', 'temporal-cli.sh'), ...(o.findOnly ? ['--find-only'] : [])];
  // Build progress goes to the terminal; only the last line of stderr says why nothing was found.
  const r = spawnSync('bash', args, { encoding: 'utf8', stdio: ['ignore', 'pipe', o.findOnly ? 'pipe' : 'inherit'] });
  const path = r.stdout?.trim();
  if (r.status === 0 && path) return { path, message: path };
  const why = (r.stderr ?? '').trim().split('\n').pop() ?? '';
  return { buildable: r.status === 4, message: why.replace(/^temporal-cli: /, '') || `scripts/temporal-cli.sh exit ${r.status}` };
}

/** The CLI's path, or undefined when none is available (then the SDK may download one, with internet). */
export function findTemporalCli(): string | undefined {
  return temporalCliLookup().path;
}
