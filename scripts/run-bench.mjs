// Runs every benchmark (dist/bench/*.js, helpers in dist/bench/lib excluded), or those named on the command
// line (`npm run bench -- deploy step-overhead`), one at a time: they need the whole machine. Each prints its
// table and writes bench/results/<name>.json. Arguments after `--` go to every benchmark.
import { existsSync, readdirSync } from 'node:fs';
import { basename, join } from 'node:path';
import { spawnSync } from 'node:child_process';

const dir = 'dist/bench';
const argv = process.argv.slice(2);
const sep = argv.indexOf('--');
const names = sep >= 0 ? argv.slice(0, sep) : argv;
const extra = sep >= 0 ? argv.slice(sep + 1) : [];
const all = readdirSync(dir).filter((f) => f.endsWith('.js')).map((f) => basename(f, '.js')).sort();
const chosen = names.length ? names.map((n) => basename(n, '.js')) : all;
const unknown = chosen.filter((n) => !existsSync(join(dir, `${n}.js`)));
if (unknown.length) {
  process.stderr.write(`unknown benchmark(s): ${unknown.join(', ')}; available: ${all.join(', ')}\n`);
  process.exit(2);
}
const failed = [];
const t0 = Date.now();
for (const name of chosen) {
  const t = Date.now();
  process.stdout.write(`\n=== bench ${name} ===\n`);
  const r = spawnSync(process.execPath, [join(dir, `${name}.js`), ...extra], { stdio: 'inherit' });
  const s = Math.round((Date.now() - t) / 1000);
  process.stdout.write(`=== ${name}: ${r.status === 0 ? 'done' : `FAILED (${r.status ?? r.signal})`} in ${s} s ===\n`);
  if (r.status !== 0) failed.push(name);
}
process.stdout.write(`\n${chosen.length - failed.length}/${chosen.length} benchmarks done in ${Math.round((Date.now() - t0) / 1000)} s${failed.length ? `; failed: ${failed.join(', ')}` : ''}\n`);
process.exit(failed.length ? 1 : 0);
