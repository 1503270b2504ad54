// Finds the Temporal CLI (the dev server) through scripts/temporal-cli.sh, which may build it with `go install`.
import { spawnSync } from 'node:child_process';
import { join } from 'node:path';

export const PROJECT_ROOT = join(__dirname, '..', '..', '..');

/** The CLI's path, or undefined when none is available (then the SDK may download one, with internet). */
export function findTemporalCli(): string | undefined {
  const r = spawnSync('bash', [join(PROJECT_ROOT, 'scripts', 'temporal-cli.sh')], { encoding: 'utf8', stdio: ['ignore', 'pipe', 'inherit'] });
  const path = r.stdout.trim();
  return r.status === 0 && path ? path : undefined;
}
