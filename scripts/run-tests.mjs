// Runs every compiled test file (dist/test/**/*.test.js), or those named on the command line.
// Files run one at a time: lab tests need the machine's namespaces and both cores.
// The real tier's files (real-*.test.js) run last. When any is selected, scripts/kube-build.sh starts in the
// background at the lowest CPU priority before the other files run, so a cold machine builds Kubernetes while
// the simulated tier is tested (the build takes seconds once its cache is complete).
import { closeSync, openSync, readFileSync, readdirSync, statSync } from 'node:fs';
import { basename, join } from 'node:path';
import { spawn, spawnSync } from 'node:child_process';
import { tmpdir } from 'node:os';

function find(dir) {
  let out = [];
  for (const e of readdirSync(dir)) {
    const p = join(dir, e);
    if (statSync(p).isDirectory()) out = out.concat(find(p));
    else if (p.endsWith('.test.js')) out.push(p);
  }
  return out;
}

function runFiles(files) {
  if (files.length === 0) return 0;
  const r = spawnSync(process.execPath, ['--test', '--test-concurrency=1', '--test-reporter=spec', ...files], {
    stdio: 'inherit',
  });
  return r.status ?? 1;
}

const args = process.argv.slice(2);
const files = (args.length ? args : find('dist/test')).sort();
const isReal = (f) => basename(f).startsWith('real-');
const real = files.filter(isReal);
const rest = files.filter((f) => !isReal(f));

let build;
if (real.length > 0) {
  const log = join(tmpdir(), `kha-kube-build-${process.pid}.log`);
  const fd = openSync(log, 'w');
  const child = spawn('nice', ['-n', '19', 'bash', 'scripts/kube-build.sh'], { stdio: ['ignore', 'ignore', fd] });
  closeSync(fd);
  const started = Date.now();
  build = {
    log,
    done: new Promise((resolve) => {
      child.on('error', (e) => resolve({ code: 127, error: e.message }));
      child.on('exit', (code, signal) => resolve({ code: code ?? 128, signal }));
    }),
    started,
  };
}

let status = runFiles(rest);
if (build) {
  const r = await build.done;
  const secs = Math.round((Date.now() - build.started) / 1000);
  if (r.code !== 0) {
    const tail = readFileSync(build.log, 'utf8').split('\n').slice(-30).join('\n');
    console.error(`run-tests: scripts/kube-build.sh failed (exit ${r.code}${r.signal ? `, ${r.signal}` : ''}${r.error ? `, ${r.error}` : ''}) after ${secs} s; the real tier's files cannot run. Last lines of ${build.log}:\n${tail}`);
    status = status || 1;
  } else {
    console.log(`run-tests: real Kubernetes binaries ready (scripts/kube-build.sh, ${secs} s, beside the other files); running ${real.length} real-tier files`);
    status = runFiles(real) || status;
  }
}
process.exit(status);
