// What kha adds to one remote command, against Ansible running the same command on the same lab hosts.
// kha: rounds of activities on a real Temporal dev server, each opening an SSH session and running `true`
// through kha's executor (the path every deployment step takes); a round runs one step on every host at once,
// rounds one after another - the shape of an Ansible task over its hosts. Ansible: ansible-playbook with N
// `command: /bin/true` tasks (and N `raw` tasks, its cheapest) over an inventory of the same hosts, timed per
// task by the json callback. Sizes: 1, 6, 53 and 103 hosts. Zero lab latency.
//   node dist/bench/step-overhead.js [--sizes 1,6,53,103] [--quick]
import { spawn } from 'node:child_process';
import { mkdirSync, mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { Worker } from '@temporalio/worker';
import type { TestWorkflowEnvironment } from '@temporalio/testing';
import { Lab } from '../src/lab/lab';
import { loadClusterOrThrow } from '../src/spec/load';
import type { ClusterSpec } from '../src/spec/types';
import { startTemporal } from '../test/helpers/temporal';
import * as stepActivities from './lib/step-activities';
import { activityTimings } from './lib/history';
import { log, machine, machineLine, round1, stats, table, writeResult, type Stats } from './lib/report';
import { sshCost } from './lib/ssh-cost';
import { benchSubnet } from './lib/subnets';

const SUBNET = benchSubnet('step-overhead');

interface KhaRun {
  hosts: number;
  kind: 'ssh' | 'noop';
  rounds: number;
  steps: number;
  /** One round: every host's step, from the previous round's end (workflow task included). */
  perRound: Stats;
  /** One activity, scheduled to completed. */
  perStep: Stats;
  wallMs: number;
}

async function khaRounds(env: TestWorkflowEnvironment, cluster: ClusterSpec, nodes: string[], rounds: number, kind: 'ssh' | 'noop', queue: string): Promise<KhaRun> {
  const handle = await env.client.workflow.start('stepRounds', { taskQueue: queue, workflowId: `bench-steps-${kind}-${nodes.length}-${Date.now()}`, args: [{ cluster, nodes, rounds, kind }] });
  const t0 = Date.now();
  const steps = (await handle.result()) as number;
  const wallMs = Date.now() - t0;
  const acts = activityTimings((await handle.fetchHistory()).events ?? []).sort((a, b) => a.id - b.id);
  if (acts.some((a) => a.outcome !== 'completed')) throw new Error(`bench ${kind} step failed: ${JSON.stringify(acts.find((a) => a.outcome !== 'completed'))}`);
  const ends: number[] = [];
  for (let r = 0; r < rounds; r++) ends.push(Math.max(...acts.slice(r * nodes.length, (r + 1) * nodes.length).map((a) => a.endedMs)));
  // Round 0 opens connections to the server and warms the JIT: measured from round 1 on.
  const perRound = ends.slice(1).map((e, i) => e - ends[i]!);
  const perStep = acts.slice(nodes.length).map((a) => a.endedMs - a.scheduledMs);
  return { hosts: nodes.length, kind, rounds, steps, perRound: stats(perRound), perStep: stats(perStep), wallMs };
}

interface AnsibleRun {
  hosts: number;
  module: 'command' | 'raw';
  tasks: number;
  /** One task over every host (json callback's task start to end), tasks 2..N. */
  perTask: Stats;
  /** ansible-playbook from start to exit, divided by the task count. */
  totalPerTaskMs: number;
  wallMs: number;
}

function runProcess(cmd: string, args: string[], env: NodeJS.ProcessEnv): Promise<{ code: number; stdout: string; stderr: string; ms: number }> {
  return new Promise((res, rej) => {
    const t = performance.now();
    const c = spawn(cmd, args, { env, stdio: ['ignore', 'pipe', 'pipe'] });
    let stdout = '';
    let stderr = '';
    c.stdout.setEncoding('utf8').on('data', (d: string) => (stdout += d));
    c.stderr.setEncoding('utf8').on('data', (d: string) => (stderr += d));
    c.on('error', rej);
    c.on('close', (code) => res({ code: code ?? 1, stdout, stderr, ms: performance.now() - t }));
  });
}

/** The inventory and configuration a Kubespray user would have: pipelining, SSH multiplexing, one fork per host. */
function writeAnsibleFiles(dir: string, lab: Lab, hosts: string[]): { cfg: string; inventory: string } {
  mkdirSync(join(dir, 'cp'), { recursive: true });
  mkdirSync(join(dir, 'tmp'), { recursive: true });
  const inventory = join(dir, `inventory-${hosts.length}.ini`);
  writeFileSync(
    inventory,
    ['[nodes]', ...hosts.map((h) => `${h} ansible_host=${lab.host(h).address}`), '', '[nodes:vars]', 'ansible_user=root', `ansible_ssh_private_key_file=${lab.rootKeyPath}`, 'ansible_python_interpreter=/usr/bin/python3', ''].join('\n'),
  );
  const cfg = join(dir, `ansible-${hosts.length}.cfg`);
  writeFileSync(
    cfg,
    [
      '[defaults]',
      `inventory = ${inventory}`,
      `forks = ${hosts.length}`,
      'host_key_checking = True',
      'gathering = explicit',
      'stdout_callback = json',
      'retry_files_enabled = False',
      `local_tmp = ${join(dir, 'tmp')}`,
      '',
      '[ssh_connection]',
      'pipelining = True',
      `ssh_args = -F /dev/null -o ControlMaster=auto -o ControlPersist=120s -o UserKnownHostsFile=${lab.knownHostsPath} -o StrictHostKeyChecking=yes -o BatchMode=yes`,
      `control_path_dir = ${join(dir, 'cp')}`,
      '',
    ].join('\n'),
  );
  return { cfg, inventory };
}

interface JsonCallbackOutput {
  plays: Array<{ tasks: Array<{ task: { name: string; duration: { start: string; end: string } }; hosts: Record<string, { failed?: boolean; unreachable?: boolean; rc?: number }> }> }>;
}

async function ansibleTasks(dir: string, lab: Lab, hosts: string[], tasks: number, module: 'command' | 'raw'): Promise<AnsibleRun> {
  const { cfg } = writeAnsibleFiles(dir, lab, hosts);
  const playbook = join(dir, `play-${module}-${tasks}.yml`);
  const body = Array.from({ length: tasks }, (_, i) => [`    - name: t${i + 1}`, `      ansible.builtin.${module}: /bin/true`, '      changed_when: false'].join('\n'));
  writeFileSync(playbook, ['- hosts: nodes', '  gather_facts: false', '  tasks:', ...body, ''].join('\n'));
  const env = { ...process.env, ANSIBLE_CONFIG: cfg, ANSIBLE_NOCOLOR: '1', ANSIBLE_HOME: join(dir, 'home') };
  const r = await runProcess('ansible-playbook', [playbook], env);
  if (r.code !== 0) throw new Error(`ansible-playbook (${hosts.length} hosts, ${module}) exited ${r.code}: ${(r.stderr + r.stdout).slice(-3000)}`);
  const out = JSON.parse(r.stdout.slice(r.stdout.indexOf('{'))) as JsonCallbackOutput;
  const ts = out.plays[0]!.tasks;
  for (const t of ts) {
    const bad = Object.entries(t.hosts).filter(([, v]) => v.failed || v.unreachable);
    if (bad.length || Object.keys(t.hosts).length !== hosts.length) throw new Error(`ansible task ${t.task.name}: ${Object.keys(t.hosts).length}/${hosts.length} hosts answered, failed: ${bad.map(([h]) => h).join(', ')}`);
  }
  // Microseconds in the timestamps: keep milliseconds for Date.parse.
  const ms = (s: string) => Date.parse(s.replace(/(\.\d{3})\d*/, '$1'));
  const durations = ts.map((t) => ms(t.task.duration.end) - ms(t.task.duration.start));
  return { hosts: hosts.length, module, tasks, perTask: stats(durations.slice(1)), totalPerTaskMs: round1(r.ms / tasks), wallMs: Math.round(r.ms) };
}

async function main(): Promise<void> {
  const quick = process.argv.includes('--quick');
  const sizesArg = process.argv.indexOf('--sizes');
  const sizes = sizesArg > 0 ? process.argv[sizesArg + 1]!.split(',').map(Number) : [1, 6, 53, 103];
  const m = machine();
  log(machineLine(m));
  const base = mkdtempSync('/var/tmp/kha-bench-steps-');
  const labDir = join(base, 'lab');
  await Lab.downDir(labDir);
  const workers = Math.max(0, Math.max(...sizes) - 3);
  const lab = await Lab.up({ dir: labDir, controlPlanes: Math.min(3, Math.max(...sizes)), workers, subnetIndex: SUBNET });
  let env: TestWorkflowEnvironment | undefined;
  const kha: KhaRun[] = [];
  const ansible: AnsibleRun[] = [];
  let ssh: { newSession: Stats; openSession: Stats } | undefined;
  try {
    const specFile = join(base, 'bench.yaml');
    writeFileSync(specFile, lab.specYaml({ name: 'bench' }));
    const cluster = loadClusterOrThrow(specFile);
    const names = lab.nodes.map((h) => h.name);
    env = await startTemporal();
    const queue = 'bench-steps';
    const worker = await Worker.create({
      connection: env.nativeConnection,
      namespace: env.namespace ?? 'default',
      taskQueue: queue,
      workflowsPath: require.resolve('./lib/step-workflow'),
      activities: stepActivities,
      // Enough slots for a round on every host at once.
      maxConcurrentActivityTaskExecutions: 200,
    });
    await worker.runUntil(async () => {
      log('kha: empty activities on 1 host (Temporal alone)');
      kha.push(await khaRounds(env!, cluster, names.slice(0, 1), quick ? 30 : 201, 'noop', queue));
      log('SSH alone: connect + true + close on 1 host');
      ssh = await sshCost(cluster, names[0]!, quick ? 30 : 100);
      for (const n of sizes) {
        // At least 200 measured steps per size (round 0 is warm-up).
        const rounds = quick ? 6 : Math.max(11, Math.ceil(200 / n) + 1);
        log(`kha: ${rounds} rounds of \`true\` on ${n} host(s)`);
        kha.push(await khaRounds(env!, cluster, names.slice(0, n), rounds, 'ssh', queue));
      }
    });
    const adir = join(base, 'ansible');
    mkdirSync(adir, { recursive: true });
    for (const n of sizes) {
      // Fewer tasks on many hosts: Ansible runs a Python module per host and task.
      const tasks = quick ? 4 : n >= 50 ? 8 : n >= 6 ? 16 : 31;
      for (const module of ['command', 'raw'] as const) {
        log(`ansible: ${tasks} ${module} tasks on ${n} host(s)`);
        ansible.push(await ansibleTasks(adir, lab, names.slice(0, n), tasks, module));
      }
    }
  } finally {
    await env?.teardown().catch(() => undefined);
    await lab.down();
    rmSync(base, { recursive: true, force: true });
  }

  const rows = sizes.map((n) => {
    const k = kha.find((x) => x.kind === 'ssh' && x.hosts === n)!;
    const a = ansible.find((x) => x.module === 'command' && x.hosts === n)!;
    const raw = ansible.find((x) => x.module === 'raw' && x.hosts === n)!;
    return { hosts: n, kha: k, ansibleCommand: a, ansibleRaw: raw, khaBelowAnsible: k.perRound.medianMs < a.perTask.medianMs && k.perRound.p95Ms < a.perTask.p95Ms };
  });
  const noop = kha.find((x) => x.kind === 'noop')!;
  process.stdout.write(`\n${machineLine(m)}\nPer-step cost: one remote \`true\` on every host of the size (ms; kha round vs Ansible task)\n`);
  process.stdout.write(
    table(
      ['hosts', 'kha steps', 'kha round med', 'kha round p95', 'kha step med', 'kha step p95', 'ansible cmd med', 'ansible cmd p95', 'ansible raw med', 'ansible raw p95', 'kha < ansible'],
      rows.map((r) => [r.hosts, r.kha.steps - r.hosts, r.kha.perRound.medianMs, r.kha.perRound.p95Ms, r.kha.perStep.medianMs, r.kha.perStep.p95Ms, r.ansibleCommand.perTask.medianMs, r.ansibleCommand.perTask.p95Ms, r.ansibleRaw.perTask.medianMs, r.ansibleRaw.perTask.p95Ms, r.khaBelowAnsible ? 'yes' : 'NO']),
    ),
  );
  process.stdout.write(
    `kha parts on 1 host: empty activity round median ${noop.perRound.medianMs} ms (p95 ${noop.perRound.p95Ms}); SSH alone: new session + true + close median ${ssh!.newSession.medianMs} ms (p95 ${ssh!.newSession.p95Ms}), true on an open session median ${ssh!.openSession.medianMs} ms (p95 ${ssh!.openSession.p95Ms})\n`,
  );
  const file = writeResult('step-overhead', m, {
    what: 'per-step cost of one remote `true`: kha (Temporal activity + SSH session + executor) vs ansible-playbook (pipelining, ControlPersist, forks = hosts)',
    target: "kha's per-round median and p95 below Ansible's per-task (command module) median and p95 on every size",
    ansibleVersion: (await runProcess('ansible', ['--version'], process.env)).stdout.split('\n')[0],
    summary: rows.map((r) => ({ hosts: r.hosts, khaRoundMedianMs: r.kha.perRound.medianMs, khaRoundP95Ms: r.kha.perRound.p95Ms, ansibleCommandMedianMs: r.ansibleCommand.perTask.medianMs, ansibleCommandP95Ms: r.ansibleCommand.perTask.p95Ms, ansibleRawMedianMs: r.ansibleRaw.perTask.medianMs, khaBelowAnsible: r.khaBelowAnsible })),
    parts: { emptyActivity: noop, sshOnly: ssh },
    kha,
    ansible,
  });
  process.stdout.write(`written to ${file}\n`);
}

main().catch((e: unknown) => {
  process.stderr.write(`bench step-overhead: ${e instanceof Error ? (e.stack ?? e.message) : String(e)}\n`);
  process.exitCode = 1;
});
