// `kha --version`: kha's version, the Temporal SDK's, and the Temporal CLI's when one is found (never built here).
import { spawnSync } from 'node:child_process';
import { readFileSync } from 'node:fs';
import { dirname, join } from 'node:path';
import { PROJECT_ROOT, temporalCliLookup } from '../temporal/cli-path';

function packageVersion(file: string): string {
  return (JSON.parse(readFileSync(file, 'utf8')) as { version: string }).version;
}

/** The SDK's version from its package.json (its exports do not include package.json). */
export function sdkVersion(): string {
  let dir = dirname(require.resolve('@temporalio/client'));
  while (!dir.endsWith(join('@temporalio', 'client')) && dirname(dir) !== dir) dir = dirname(dir);
  return packageVersion(join(dir, 'package.json'));
}

export function khaVersion(): string {
  return packageVersion(join(PROJECT_ROOT, 'package.json'));
}

export async function run(): Promise<number> {
  const lines = [`kha ${khaVersion()}`, `Temporal TypeScript SDK ${sdkVersion()}`];
  const cli = temporalCliLookup({ findOnly: true });
  if (cli.path) {
    const v = spawnSync(cli.path, ['--version'], { encoding: 'utf8', timeout: 10_000 });
    lines.push(`Temporal CLI ${(v.stdout ?? '').trim().split('\n')[0] || '(no version output)'} at ${cli.path}`);
  } else {
    lines.push(`Temporal CLI: none found (${cli.message})`);
  }
  process.stdout.write(`${lines.join('\n')}\n`);
  return 0;
}
