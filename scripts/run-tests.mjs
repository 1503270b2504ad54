// Runs every compiled test file (dist/test/**/*.test.js), or those named on the command line.
// Files run one at a time: lab tests need the machine's namespaces and both cores.
import { readdirSync, statSync } from 'node:fs';
import { join } from 'node:path';
import { spawnSync } from 'node:child_process';

function find(dir) {
  let out = [];
  for (const e of readdirSync(dir)) {
    const p = join(dir, e);
    if (statSync(p).isDirectory()) out = out.concat(find(p));
    else if (p.endsWith('.test.js')) out.push(p);
  }
  return out;
}

const args = process.argv.slice(2);
const files = (args.length ? args : find('dist/test')).sort();
const r = spawnSync(process.execPath, ['--test', '--test-concurrency=1', '--test-reporter=spec', ...files], {
  stdio: 'inherit',
});
process.exit(r.status ?? 1);
