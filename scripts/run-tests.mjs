// Runs every compiled test file (dist/test/**/*.test.js), or those named on the command line.
// The simulated and fast files run one at a time, in one stream: lab tests of the simulated tier share the
// machine's cores for their timing. The real tier's files (real-*.test.js) mostly wait on real components
// (kubelets restarting, kubeadm polling), so they run beside that stream, KHA_TEST_REAL_STREAMS (default 2) at a
// time, longest first. scripts/kube-build.sh starts first, at a low CPU priority: on a cold machine Kubernetes
// builds while the simulated tier is tested (seconds once its cache is complete); the real files start when it is.
// Each file's own output is printed whole when it ends; the simulated stream's lines as they come.
import { closeSync, openSync, readFileSync, readdirSync, statSync } from 'node:fs';
import { basename, join } from 'node:path';
import { spawn } from 'node:child_process';
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

const totals = { tests: 0, pass: 0, fail: 0, cancelled: 0, skipped: 0, todo: 0 };
const perFile = [];
const t0 = Date.now();
const secs = (ms) => Math.round(ms / 1000);

/** One file in its own `node --test`; `live` gets each line as it comes, else the lines are printed at the end. */
function runFile(file, live) {
  return new Promise((resolve) => {
    const started = Date.now();
    const child = spawn(process.execPath, ['--test', '--test-reporter=spec', file], { stdio: ['ignore', 'pipe', 'pipe'] });
    const lines = [];
    const counts = {};
    const handle = (l) => {
      const m = /^ℹ (tests|pass|fail|cancelled|skipped|todo) (\d+)$/.exec(l);
      if (m) counts[m[1]] = Number(m[2]);
      if (live) live(l);
      else lines.push(l);
    };
    for (const s of [child.stdout, child.stderr]) {
      let rest = '';
      s.on('data', (d) => {
        const parts = (rest + d.toString()).split('\n');
        rest = parts.pop();
        parts.forEach(handle);
      });
      s.on('end', () => rest && handle(rest));
    }
    child.on('close', (code, signal) => {
      if (!live) process.stdout.write(`${lines.join('\n')}\n`);
      for (const k of Object.keys(totals)) totals[k] += counts[k] ?? 0;
      const ok = code === 0;
      const ms = Date.now() - started;
      perFile.push({ file: basename(file), ms, ok });
      console.log(`run-tests: ${basename(file)} ${ok ? 'passed' : `FAILED (exit ${code ?? signal})`}: ${counts.pass ?? 0}/${counts.tests ?? 0} tests in ${secs(ms)} s`);
      resolve(ok ? 0 : 1);
    });
  });
}

async function stream(queue, live) {
  let status = 0;
  while (queue.length) status = (await runFile(queue.shift(), live ? (l) => console.log(l) : undefined)) || status;
  return status;
}

const args = process.argv.slice(2);
const files = (args.length ? args : find('dist/test')).sort();
const isReal = (f) => basename(f).startsWith('real-');
// Longest first (their times on this machine), so the real streams end together.
const REAL_ORDER = ['real-upgrade', 'real-tier', 'real-remove', 'real-restore', 'real-apply'];
const rank = (f) => {
  const i = REAL_ORDER.indexOf(basename(f).replace(/\.test\.js$/, ''));
  return i < 0 ? REAL_ORDER.length : i;
};
const real = files.filter(isReal).sort((a, b) => rank(a) - rank(b) || a.localeCompare(b));
const rest = files.filter((f) => !isReal(f));
const realStreams = Math.max(1, Number(process.env.KHA_TEST_REAL_STREAMS ?? 2) || 2);

async function realTier() {
  if (real.length === 0) return 0;
  const log = join(tmpdir(), `kha-kube-build-${process.pid}.log`);
  const fd = openSync(log, 'w');
  const child = spawn('nice', ['-n', '10', 'bash', 'scripts/kube-build.sh'], { stdio: ['ignore', 'ignore', fd] });
  closeSync(fd);
  const started = Date.now();
  const r = await new Promise((resolve) => {
    child.on('error', (e) => resolve({ code: 127, error: e.message }));
    child.on('exit', (code, signal) => resolve({ code: code ?? 128, signal }));
  });
  const s = secs(Date.now() - started);
  if (r.code !== 0) {
    const tail = readFileSync(log, 'utf8').split('\n').slice(-30).join('\n');
    console.error(`run-tests: scripts/kube-build.sh failed (exit ${r.code}${r.signal ? `, ${r.signal}` : ''}${r.error ? `, ${r.error}` : ''}) after ${s} s; the real tier's files cannot run. Last lines of ${log}:\n${tail}`);
    return 1;
  }
  console.log(`run-tests: real Kubernetes binaries ready (scripts/kube-build.sh, ${s} s); ${real.length} real-tier file(s), ${realStreams} at a time, beside the others`);
  const queue = [...real];
  const statuses = await Promise.all(Array.from({ length: Math.min(realStreams, queue.length) }, () => stream(queue, false)));
  return statuses.some(Boolean) ? 1 : 0;
}

const [a, b] = await Promise.all([stream([...rest], true), realTier()]);
const failed = perFile.filter((f) => !f.ok).map((f) => f.file);
console.log(
  `run-tests: ${totals.pass}/${totals.tests} tests passed (${totals.fail} failed, ${totals.cancelled} cancelled, ${totals.skipped} skipped, ${totals.todo} todo) in ${perFile.length} file(s), ${secs(Date.now() - t0)} s` +
    (failed.length ? `; failed: ${failed.join(', ')}` : ''),
);
process.exit(a || b ? 1 : 0);
