// How long `lab up` takes until every sshd answers, and how much memory the lab's processes use,
// for 3+3 and 3+50 hosts. Run as root: node dist/bench/lab-up.js [--runs N]
// Prints a table and writes bench/results/lab-up.json.
import { spawn } from 'node:child_process';
import { mkdirSync, mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import { cpus, freemem, release, totalmem } from 'node:os';
import { join, resolve } from 'node:path';
import { Lab } from '../src/lab/lab';
import { netnsInode } from '../src/lab/net';
import { pidsInNetns, rssKiB } from '../src/lab/proc';
import { liveSupervisor } from '../src/lab/cleanup';

interface Row {
  hosts: string;
  count: number;
  run: number;
  upMs: number;
  firstSshAllMs: number;
  downMs: number;
  hostProcesses: number;
  hostRssMiB: number;
  rssPerHostKiB: number;
  supervisorRssMiB: number;
  /** Milliseconds per phase of Lab.up (clear, subnet, keysAndNetwork, hostLayers, hostKeys, bootUntilSshAnswers). */
  phases: Record<string, number>;
}

function sshHostname(lab: Lab, address: string): Promise<number> {
  return new Promise((res) => {
    const c = spawn('ssh', ['-F', '/dev/null', '-o', 'BatchMode=yes', '-o', `UserKnownHostsFile=${lab.knownHostsPath}`, '-o', 'StrictHostKeyChecking=yes', '-i', lab.rootKeyPath, `root@${address}`, 'hostname'], { stdio: 'ignore' });
    c.on('close', (code) => res(code ?? -1));
  });
}

async function measure(base: string, cp: number, workers: number, run: number): Promise<Row> {
  const dir = join(base, `lab-${cp}-${workers}-${run}`);
  const t0 = performance.now();
  const lab = await Lab.up({ dir, controlPlanes: cp, workers });
  const upMs = performance.now() - t0;
  try {
    // A real client logging in on every host at once.
    const t1 = performance.now();
    const codes = await Promise.all(lab.hosts.map((h) => sshHostname(lab, h.address)));
    const firstSshAllMs = performance.now() - t1;
    if (codes.some((c) => c !== 0)) throw new Error(`ssh failed on some host: ${codes.join(',')}`);
    const pids = lab.hosts.flatMap((h) => pidsInNetns(netnsInode(`kha${lab.subnetIndex}-${h.name}`) ?? -1));
    const hostKiB = pids.reduce((s, p) => s + rssKiB(p), 0);
    const sup = liveSupervisor(lab.dir);
    const supKiB = sup ? rssKiB(sup) : 0;
    const t2 = performance.now();
    await lab.down();
    const downMs = performance.now() - t2;
    return {
      hosts: `${cp}+${workers}`,
      count: lab.hosts.length,
      run,
      upMs: Math.round(upMs),
      firstSshAllMs: Math.round(firstSshAllMs),
      downMs: Math.round(downMs),
      hostProcesses: pids.length,
      hostRssMiB: Math.round((hostKiB / 1024) * 10) / 10,
      rssPerHostKiB: Math.round(hostKiB / lab.hosts.length),
      supervisorRssMiB: Math.round((supKiB / 1024) * 10) / 10,
      phases: lab.upTimings,
    };
  } catch (e) {
    await lab.down();
    throw e;
  }
}

const median = (xs: number[]) => [...xs].sort((a, b) => a - b)[Math.floor(xs.length / 2)]!;

async function main(): Promise<void> {
  const runsArg = process.argv.indexOf('--runs');
  const runs = runsArg > 0 ? Number(process.argv[runsArg + 1]) : 3;
  const base = mkdtempSync('/var/tmp/kha-bench-lab-');
  const rows: Row[] = [];
  try {
    for (const [cp, w] of [[3, 3], [3, 50]] as const) {
      for (let r = 1; r <= runs; r++) rows.push(await measure(base, cp, w, r));
    }
  } finally {
    rmSync(base, { recursive: true, force: true });
  }
  const head = ['hosts', 'run', 'up ms', 'ssh all ms', 'down ms', 'procs', 'host RSS MiB', 'RSS/host KiB', 'supervisor MiB'];
  const lines = rows.map((r) => [r.hosts, r.run, r.upMs, r.firstSshAllMs, r.downMs, r.hostProcesses, r.hostRssMiB, r.rssPerHostKiB, r.supervisorRssMiB].map(String));
  const widths = head.map((h, i) => Math.max(h.length, ...lines.map((l) => l[i]!.length)));
  const fmt = (cells: string[]) => cells.map((c, i) => c.padStart(widths[i]!)).join('  ');
  process.stdout.write([fmt(head), ...lines.map(fmt)].join('\n') + '\n');
  const summary = Object.fromEntries(
    ['3+3', '3+50'].map((k) => {
      const rs = rows.filter((r) => r.hosts === k);
      return [k, { upMsMedian: median(rs.map((r) => r.upMs)), firstSshAllMsMedian: median(rs.map((r) => r.firstSshAllMs)), hostRssMiBMedian: median(rs.map((r) => r.hostRssMiB)), supervisorRssMiBMedian: median(rs.map((r) => r.supervisorRssMiB)) }];
    }),
  );
  const out = resolve(__dirname, '../../bench/results');
  mkdirSync(out, { recursive: true });
  const machine = { cores: cpus().length, cpuModel: cpus()[0]?.model ?? 'unknown', memoryMiB: Math.round(totalmem() / 2 ** 20), freeMemoryMiB: Math.round(freemem() / 2 ** 20), kernel: release(), node: process.version };
  writeFileSync(join(out, 'lab-up.json'), JSON.stringify({ date: new Date().toISOString(), machine, target: '3+3 ready (sshd answering) in < 10000 ms', summary, runs: rows }, null, 2) + '\n');
  process.stdout.write(`3+3 median up ${summary['3+3']!.upMsMedian} ms (target < 10000 ms); 3+50 median up ${summary['3+50']!.upMsMedian} ms\nwritten to ${join(out, 'lab-up.json')}\n`);
}

main().catch((e: unknown) => {
  process.stderr.write(`bench lab-up: ${e instanceof Error ? e.message : String(e)}\n`);
  process.exitCode = 1;
});
