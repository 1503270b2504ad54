// How long `lab up` takes until every sshd answers, and what the lab's hosts cost in memory, for 3+3, 3+50 and
// 3+100 hosts. Memory is read after every host answered one SSH login and ran one simulated tool (its sim
// server has served a call): summed RSS as before, and PSS / private pages (bench/lib/lab-memory.ts), which
// count the Node binary all sim servers share once instead of once per host.
// Run as root: node dist/bench/lab-up.js [--runs N] [--sizes 3+3,3+50,3+100]
// Prints a table and writes bench/results/lab-up.json. Labs use bench/lib/subnets.ts (one per size).
import { spawn } from 'node:child_process';
import { mkdtempSync, rmSync } from 'node:fs';
import { join } from 'node:path';
import { Lab } from '../src/lab/lab';
import { rssKiB } from '../src/lab/proc';
import { liveSupervisor } from '../src/lab/cleanup';
import { labMemory, type LabMemory } from './lib/lab-memory';
import { benchSubnet } from './lib/subnets';
import { machine, machineLine, median, round1, table, writeResult } from './lib/report';


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
  memory: LabMemory;
  supervisorRssMiB: number;
  /** Milliseconds per phase of Lab.up (clear, subnet, keysAndNetwork, hostLayers, hostKeys, bootUntilSshAnswers). */
  phases: Record<string, number>;
}

function ssh(lab: Lab, address: string, command: string): Promise<number> {
  return new Promise((res) => {
    const c = spawn('ssh', ['-F', '/dev/null', '-o', 'BatchMode=yes', '-o', `UserKnownHostsFile=${lab.knownHostsPath}`, '-o', 'StrictHostKeyChecking=yes', '-i', lab.rootKeyPath, `root@${address}`, command], { stdio: 'ignore' });
    c.on('close', (code) => res(code ?? -1));
  });
}

async function measure(base: string, cp: number, workers: number, run: number, subnetIndex: number): Promise<Row> {
  const dir = join(base, `lab-${cp}-${workers}-${run}`);
  const t0 = performance.now();
  const lab = await Lab.up({ dir, controlPlanes: cp, workers, subnetIndex });
  const upMs = performance.now() - t0;
  try {
    // A real client logging in on every host at once.
    const t1 = performance.now();
    const codes = await Promise.all(lab.hosts.map((h) => ssh(lab, h.address, 'hostname')));
    const firstSshAllMs = performance.now() - t1;
    if (codes.some((c) => c !== 0)) throw new Error(`ssh failed on some host: ${codes.join(',')}`);
    // One simulated tool per host, so every sim server has served a call (as in use), not just started.
    const tools = await Promise.all(lab.hosts.map((h) => ssh(lab, h.address, 'sysctl -n net.ipv4.ip_forward >/dev/null')));
    if (tools.some((c) => c !== 0)) throw new Error(`a simulated tool failed on some host: ${tools.join(',')}`);
    const memory = labMemory(lab);
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
      hostProcesses: memory.processes,
      hostRssMiB: round1((memory.rssPerHostKiB * memory.hosts) / 1024),
      rssPerHostKiB: memory.rssPerHostKiB,
      memory,
      supervisorRssMiB: round1(supKiB / 1024),
      phases: lab.upTimings,
    };
  } catch (e) {
    await lab.down();
    throw e;
  }
}

function arg(name: string, dflt: string): string {
  const i = process.argv.indexOf(name);
  return i > 0 ? process.argv[i + 1]! : dflt;
}

async function main(): Promise<void> {
  const runs = Number(arg('--runs', '3'));
  const sizes = arg('--sizes', '3+3,3+50,3+100').split(',').map((s) => {
    const m = /^(\d+)\+(\d+)$/.exec(s.trim());
    if (!m) throw new Error(`--sizes: "${s}" is not CP+WORKERS`);
    return [Number(m[1]), Number(m[2])] as const;
  });
  const m = machine();
  process.stdout.write(machineLine(m) + '\n');
  const base = mkdtempSync('/var/tmp/kha-bench-lab-');
  const rows: Row[] = [];
  try {
    for (const [i, [cp, w]] of sizes.entries()) {
      for (let r = 1; r <= runs; r++) rows.push(await measure(base, cp, w, r, benchSubnet('lab-up', i)));
    }
  } finally {
    rmSync(base, { recursive: true, force: true });
  }
  const mib = (kib: number) => round1(kib / 1024);
  process.stdout.write(
    table(
      ['hosts', 'run', 'up ms', 'ssh all ms', 'down ms', 'procs', 'RSS/host MiB', 'PSS/host MiB', 'private/host MiB', 'sim server PSS/host', 'supervisor MiB'],
      rows.map((r) => [r.hosts, r.run, r.upMs, r.firstSshAllMs, r.downMs, r.hostProcesses, mib(r.rssPerHostKiB), mib(r.memory.pssPerHostKiB), mib(r.memory.privatePerHostKiB), mib(r.memory.pssByKindKiB['sim-server'] ?? 0), r.supervisorRssMiB]),
    ),
  );
  const summary = Object.fromEntries(
    [...new Set(rows.map((r) => r.hosts))].map((k) => {
      const rs = rows.filter((r) => r.hosts === k);
      return [
        k,
        {
          upMsMedian: median(rs.map((r) => r.upMs)),
          firstSshAllMsMedian: median(rs.map((r) => r.firstSshAllMs)),
          hostRssMiBMedian: median(rs.map((r) => r.hostRssMiB)),
          rssPerHostMiBMedian: mib(median(rs.map((r) => r.rssPerHostKiB))),
          pssPerHostMiBMedian: mib(median(rs.map((r) => r.memory.pssPerHostKiB))),
          privatePerHostMiBMedian: mib(median(rs.map((r) => r.memory.privatePerHostKiB))),
          supervisorRssMiBMedian: median(rs.map((r) => r.supervisorRssMiB)),
        },
      ];
    }),
  );
  const file = writeResult('lab-up', m, {
    target: '3+3 ready (sshd answering) in < 10000 ms; lab memory per host (PSS) at most 37 MiB (half the 74 MiB summed RSS of 2026-11-25)',
    summary,
    runs: rows,
  });
  for (const [k, s] of Object.entries(summary)) process.stdout.write(`${k}: median up ${s.upMsMedian} ms; per host ${s.pssPerHostMiBMedian} MiB PSS (${s.privatePerHostMiBMedian} MiB private, ${s.rssPerHostMiBMedian} MiB summed RSS)\n`);
  process.stdout.write(`written to ${file}\n`);
}

main().catch((e: unknown) => {
  process.stderr.write(`bench lab-up: ${e instanceof Error ? e.message : String(e)}\n`);
  process.exitCode = 1;
});
