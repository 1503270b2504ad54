// Deployment wall time against its critical path, and the worker's resources, on 3+3, 3+50 and 3+100 lab hosts.
// Every simulated command gets a fixed latency (kubeadm init/join a longer one); the critical path is what
// those latencies alone force (bench/lib/critical-path.ts): the plan's (planCriticalPath: src/phases/deploy.ts
// with its barriers and bounds, each step its simulated latency; its chain runs through kubeadm init, the
// control-plane joins one at a time and the slowest worker's join), against which the ratio is taken, and the
// stage-by-stage one of earlier runs. The worker runs as `kha worker` in a child process, sampled from
// /proc (peak RSS, CPU time); the lab's memory per host (PSS) is read at the end; the history's events and
// bytes are counted with its child workflows'. Approval off, worker joins all at once.
//   node dist/bench/deploy.js [--sizes 3+3,3+50,3+100] [--latency-ms 200] [--kubeadm-latency-ms 3000]
import { rmSync } from 'node:fs';
import { cpus, loadavg } from 'node:os';
import { join } from 'node:path';
import { writeHostFaults } from '../src/lab/faults';
import { deploymentStages } from '../src/render/order';
import { DEPLOY } from '../src/phases/deploy';
import type { ClusterSpec } from '../src/spec/types';
import { deployWorkflowId, statusQuery, type DeployResult } from '../src/workflows/definitions';
import { startDeployEnv } from '../test/helpers/deploy';
import { resultOrFail } from '../test/helpers/workflow';
import { criticalPath, labLatency, planCriticalPath, readCalls, type CriticalPath, type LatencyConfig, type PhasePlan, type PlanPath } from './lib/critical-path';
import { activityTimings, historySize, workflowSpan, workflowTaskStats, type HistorySize, type WorkflowTaskStats } from './lib/history';
import { labMemory, type LabMemory } from './lib/lab-memory';
import { temporal } from '@temporalio/proto';
import { LAB_CLOCK_SKEW_MS, log, machine, machineLine, round1, round2, table, writeResult } from './lib/report';
import { sshCost } from './lib/ssh-cost';
import { benchSubnet } from './lib/subnets';
import { machineCpu, sampleProcess, startWorkerProcess } from './lib/worker-process';
import { recordKubeconfigChoice } from '../src/activities/kubeconfig-target';

/** wall / the plan's critical path (issue 12). */
const TARGETS: Record<string, number> = { '3+3': 1.1, '3+50': 1.2, '3+100': 1.3 };
const WORKER_RSS_TARGET_MIB = 300;

function arg(name: string, dflt: string): string {
  const i = process.argv.indexOf(name);
  return i > 0 ? process.argv[i + 1]! : dflt;
}

/** Stage modes from the plan (`kha plan`'s order): parallel stages with their bound, everything else one at a time. */
export function phasePlan(cluster: ClusterSpec): PhasePlan[] {
  return deploymentStages(cluster).map((s) =>
    s.mode === 'parallel' ? { phase: s.id, mode: 'parallel' as const, concurrency: s.concurrency, nodes: s.nodes } : { phase: s.id, mode: 'sequential' as const },
  );
}

interface SizeResult {
  size: string;
  hosts: number;
  result: DeployResult;
  /** Stage by stage (every phase waits for all its nodes): the critical path of earlier runs, kept for comparison. */
  path: Omit<CriticalPath, 'activities'>;
  /** The procedure's critical path: the ratio is wall / plan.criticalMs. */
  plan: PlanPath;
  target: number;
  history: HistorySize;
  /** The lab's memory at the end of the deployment (every sim server has served its calls). */
  labMemory: LabMemory;
  /** Median wall time of one simulated command with no latency, on an idle host before the deployment. */
  simCommand: { wallMs: number; cpuMs: number };
  /** kha's executor on this lab: a new SSH session + `true` + close, and `true` on an open session (medians). */
  ssh: { newSessionMs: number; openSessionMs: number };
  /**
   * Wall time beyond the plan's critical path, along its chain as the run took it: waits between one chain step's
   * end and the next one's first scheduling (workflow tasks, or a barrier settled later by another node), time
   * the chain's activities sat queued for the worker, the rest inside the steps beyond their latency (SSH,
   * rendering, shell and simulated tools on a busy machine), and from the chain's last end to the workflow's.
   */
  excess: { gapsMs: number; queueMs: number; inStepsMs: number; tailMs: number; leadMs: number };
  /** Load average (1 min) when the size started and when its deployment ended. */
  load: { start1m: number; end1m: number };
  worker: { startupMs: number; peakRssMiB: number; rssAtStartMiB: number; cpuSeconds: number; cpuShareOfOneCore: number };
  /** Share of all cores busy during the deployment (this machine, everything included). */
  machineCpuBusy: number;
  /**
   * What these hosts on this machine cannot beat: per phase the larger of its critical path plus the simulated
   * tools' own run time along it (chain commands x wall per command), and the CPU its simulated commands need
   * (commands on every host x CPU per command / cores); summed over the phases.
   */
  machineFloorMs: number;
  workflowTasks: WorkflowTaskStats;
  steps: { phase: string; node: string; activity: string; execMs: number; latencyMs: number; commands: number; leadMs: number | null }[];
}

/**
 * Runs `n` simulated commands in a host with no latency and times them: wall per command, and CPU per command
 * counting the caller's side (client or Node process) and the host's sim server.
 */
async function simCommandCost(d: Awaited<ReturnType<typeof startDeployEnv>>, host: string, n = 50): Promise<{ wallMs: number; cpuMs: number }> {
  const script = [
    'srv="$(pgrep -f sim/server.js | head -n 1)"',
    'ticks() { if [ -n "$srv" ]; then awk \'{ print $14 + $15 }\' "/proc/$srv/stat"; else echo 0; fi; }',
    's0="$(ticks)"',
    'TIMEFORMAT="%R %U %S"',
    `{ time (for i in $(seq ${n}); do systemctl is-enabled ssh >/dev/null 2>&1 || true; done); } 2>&1`,
    'echo "$s0 $(ticks) $(getconf CLK_TCK)"',
  ].join('\n');
  const r = await d.lab.exec(host, 'bash -s', { input: script + '\n' });
  const [timeLine, tickLine] = r.stdout.trim().split('\n').slice(-2);
  const [real, u, s] = timeLine!.split(' ').map(Number);
  const [t0, t1, hz] = tickLine!.split(' ').map(Number);
  const serverMs = hz ? (((t1 ?? 0) - (t0 ?? 0)) * 1000) / hz : 0;
  return { wallMs: round1(((real ?? 0) * 1000) / n), cpuMs: round1((((u ?? 0) + (s ?? 0)) * 1000 + serverMs) / n) };
}

async function runSize(size: string, index: number, latency: LatencyConfig): Promise<SizeResult> {
  const [cp, w] = size.split('+').map(Number) as [number, number];
  const load0 = round2(loadavg()[0]!);
  const d = await startDeployEnv({ subnetIndex: benchSubnet('deploy', index), controlPlanes: cp, workers: w });
  try {
    const cluster = d.cluster('bench', (c) => {
      c.spec.policy.approveBeforeWorkers = false;
      c.spec.policy.workerJoinConcurrency = Math.max(50, w);
    });
    const simCommand = await simCommandCost(d, d.lab.nodes[0]!.name);
    const sc = await sshCost(cluster, d.lab.nodes[0]!.name, 10);
    const ssh = { newSessionMs: sc.newSession.medianMs, openSessionMs: sc.openSession.medianMs };
    // Calibration commands are not part of the deployment.
    rmSync(join(d.lab.sharedDir, 'calls'), { recursive: true, force: true });
    for (const h of d.lab.nodes) writeHostFaults(d.lab.sharedDir, h.name, latency);

    const queue = `bench-deploy-${w}`;
    const worker = startWorkerProcess(d.env.address, queue);
    const readyMs = await worker.ready;
    const sampler = sampleProcess(worker.child.pid!);
    const cpu0 = machineCpu();
    recordKubeconfigChoice(cluster.name, join(d.dir, 'admin.conf')); // outside the worker's state directory
    const handle = await d.env.client.workflow.start('deployCluster', {
      taskQueue: queue,
      workflowId: deployWorkflowId(cluster.name),
      args: [{ cluster, options: { kubeconfigPath: join(d.dir, 'admin.conf'), maxClockSkewMs: LAB_CLOCK_SKEW_MS } }],
    });
    log(`${size}: deploying (latency ${latency.latencyMs} ms, ${JSON.stringify(latency.latencyByCommand)})`);
    const outcome = await resultOrFail<DeployResult>(handle).then(
      (v) => ({ ok: true as const, v }),
      (e: unknown) => ({ ok: false as const, e }),
    );
    const proc = sampler.stop();
    const cpu1 = machineCpu();
    await worker.kill('SIGKILL');
    if (!outcome.ok) {
      const st = await handle.query(statusQuery).catch(() => undefined);
      await handle.terminate('bench failed').catch(() => undefined);
      // resultOrFail's watcher polls every 500 ms: let it stop before the connection closes.
      await new Promise((r) => setTimeout(r, 1000));
      throw new Error(`${size}: ${String(outcome.e)}; status ${st?.state} in ${st?.currentPhase}: ${JSON.stringify(st?.pendingDecision ?? '')}`);
    }
    const result = outcome.v;
    if (result.nodesReady !== cp + w || result.etcdMembers !== cp) throw new Error(`${size}: deployment ended with ${result.nodesReady} Ready nodes and ${result.etcdMembers} etcd members`);
    const lab = labMemory(d.lab);
    const hist = await handle.fetchHistory();
    const events = hist.events ?? [];
    const encoded = (h: temporal.api.history.v1.IHistory) => temporal.api.history.v1.History.encode(h).finish().length;
    const nodeNames = d.lab.nodes.map((h) => h.name);
    const history = await historySize(
      { events, bytes: encoded(hist) },
      async (id, runId) => {
        const h = await d.env.client.workflow.getHandle(id, runId).fetchHistory();
        return { events: h.events ?? [], bytes: encoded(h) };
      },
      { workers: d.lab.nodes.filter((h) => h.role === 'worker').map((h) => h.name), all: nodeNames },
    );
    const { activities: costs, ...path } = criticalPath({
      activities: activityTimings(events),
      calls: readCalls(d.lab.sharedDir, latency),
      controlPlanes: d.lab.nodes.filter((h) => h.role === 'control-plane').map((h) => h.name),
      plan: phasePlan(cluster),
      workflow: workflowSpan(events),
    });
    const plan = planCriticalPath({ op: DEPLOY, cluster, costs, workflow: workflowSpan(events) });
    const deployMs = path.wallMs;
    // Every activity of the one-at-a-time stages: where their time beyond the latency goes.
    const sequential = new Set(phasePlan(cluster).filter((p) => p.mode === 'sequential').map((p) => p.phase));
    const steps = costs
      .filter((c) => sequential.has(c.activity.phase))
      .map((c) => ({
        phase: c.activity.phase,
        node: c.activity.node,
        activity: c.activity.type,
        execMs: c.activity.endedMs - c.activity.startedMs,
        latencyMs: Math.round(c.latencyMs),
        commands: round1(c.commands),
        leadMs: Number.isFinite(c.leadMs) ? Math.round(c.leadMs) : null,
      }));
    let prevEnd = 0;
    const excess = { gapsMs: 0, queueMs: 0, inStepsMs: 0, tailMs: 0, leadMs: 0 };
    for (const c of plan.chain) {
      if (!Number.isFinite(c.actual.startMs)) continue;
      excess.gapsMs += Math.max(0, c.actual.startMs - prevEnd);
      excess.queueMs += c.actual.queueMs;
      excess.leadMs += c.actual.leadMs;
      excess.inStepsMs += c.actual.endMs - c.actual.startMs - c.actual.queueMs - (c.endMs - c.startMs);
      prevEnd = Math.max(prevEnd, c.actual.endMs);
    }
    excess.tailMs = Math.max(0, plan.wallMs - prevEnd);
    return {
      size,
      hosts: cp + w,
      result,
      path,
      plan,
      target: TARGETS[size] ?? NaN,
      history,
      labMemory: lab,
      simCommand,
      ssh,
      excess,
      load: { start1m: load0, end1m: round2(loadavg()[0]!) },
      worker: {
        startupMs: readyMs - worker.spawnedMs,
        peakRssMiB: round1(proc.peakRssKiB / 1024),
        rssAtStartMiB: round1((proc.samples[0]?.rssKiB ?? 0) / 1024),
        cpuSeconds: round2(proc.cpuMs / 1000),
        cpuShareOfOneCore: round2(proc.cpuMs / deployMs),
      },
      machineCpuBusy: round2((cpu1.busy - cpu0.busy) / (cpu1.total - cpu0.total)),
      machineFloorMs: Math.round(
        path.phases.reduce((f, p) => f + Math.max(p.criticalMs + p.chain.commands * simCommand.wallMs, (p.commandsAll * simCommand.cpuMs) / cpus().length), 0),
      ),
      workflowTasks: workflowTaskStats(events),
      steps,
    };
  } finally {
    await d.close();
    rmSync(d.dir, { recursive: true, force: true });
  }
}

/** The last node of the chain outside the cluster-wide steps: what the end waited for. */
function chainBound(p: PlanPath): string {
  const s = [...p.chain].reverse().find((c) => c.phase !== 'verify');
  return s ? `${s.node} ${s.phase}` : '-';
}

async function main(): Promise<void> {
  const sizes = arg('--sizes', '3+3,3+50,3+100').split(',');
  const L = Number(arg('--latency-ms', '200'));
  const K = Number(arg('--kubeadm-latency-ms', '3000'));
  const latency = labLatency(L, K);
  const m = machine();
  log(machineLine(m));
  const results: SizeResult[] = [];
  for (const [i, s] of sizes.entries()) results.push(await runSize(s, i, latency));

  const out: string[] = [`\n${machineLine(m)}`, `Deployment vs critical path (latency ${L} ms per simulated command, kubeadm init/join ${K} ms)`];
  out.push(
    table(
      ['hosts', 'wall s', 'plan critical s', 'ratio', 'target', 'bound by', 'stage critical s', 'stage ratio', 'machine floor s', 'wall/floor', 'excess s: gaps/queue/in steps', 'load start/end', 'commands', 'sim cmd ms (cpu)', 'worker peak MiB', 'worker CPU s', 'machine CPU busy', 'lab PSS/host MiB', 'history events', 'history KiB', 'events/worker'],
      results.map((r) => [
        r.size,
        round1(r.plan.wallMs / 1000),
        round1(r.plan.criticalMs / 1000),
        r.plan.ratio,
        `<= ${r.target}`,
        chainBound(r.plan),
        round1(r.path.criticalMs / 1000),
        r.path.ratio,
        round1(r.machineFloorMs / 1000),
        round2(r.path.wallMs / r.machineFloorMs),
        `${round1(r.excess.gapsMs / 1000)}/${round1(r.excess.queueMs / 1000)}/${round1(r.excess.inStepsMs / 1000)}`,
        `${r.load.start1m}/${r.load.end1m}`,
        r.path.commandsTotal,
        `${r.simCommand.wallMs} (${r.simCommand.cpuMs})`,
        r.worker.peakRssMiB,
        r.worker.cpuSeconds,
        `${Math.round(r.machineCpuBusy * 100)}%`,
        round1(r.labMemory.pssPerHostKiB / 1024),
        r.history.events,
        round1(r.history.bytes / 1024),
        r.history.eventsPerWorker,
      ]),
    ),
  );
  for (const r of results) {
    out.push(
      `${r.size}: plan critical path ${r.plan.criticalMs} ms (phases, barriers and bounds of src/phases/deploy.ts, each step its simulated latency${r.plan.unplacedMs ? `; ${r.plan.unplacedMs} ms of latency in no phase of the plan` : ''}); wall ${r.plan.wallMs} ms, ratio ${r.plan.ratio} (target <= ${r.target}). Its chain:`,
    );
    out.push(
      table(
        ['phase', 'node', 'start', 'end', 'latency', 'waited for', 'ran from', 'to', 'took - latency', 'queued', 'lead', 'cmds'],
        r.plan.chain.map((c) => [c.phase, c.node, c.startMs, c.endMs, c.endMs - c.startMs, c.after, c.actual.startMs, c.actual.endMs, c.actual.endMs - c.actual.startMs - (c.endMs - c.startMs), c.actual.queueMs, c.actual.leadMs, c.actual.commands]),
      ),
    );
    out.push(
      `${r.size}: the ${round1((r.plan.wallMs - r.plan.criticalMs) / 1000)} s beyond it along the chain: ${r.excess.gapsMs} ms between chain steps (workflow tasks, or a barrier another node settled later), ` +
        `${r.excess.queueMs} ms queued for the worker, ${r.excess.inStepsMs} ms inside the steps beyond their latency (of it ${r.excess.leadMs} ms before each activity's first command: SSH, rendering, script start), ${r.excess.tailMs} ms after the last step; load ${r.load.start1m} at the start, ${r.load.end1m} at the end\n`,
    );
    out.push(
      `${r.size}: history ${r.history.events} events, ${round1(r.history.bytes / 1024)} KiB over ${r.history.executions} execution(s); ${r.history.eventsPerWorker} events per worker node, ${r.history.eventsPerNode} per node; ` +
        `lab memory per host ${round1(r.labMemory.pssPerHostKiB / 1024)} MiB PSS (${round1(r.labMemory.privatePerHostKiB / 1024)} MiB private, ${round1(r.labMemory.rssPerHostKiB / 1024)} MiB summed RSS); worker peak RSS ${r.worker.peakRssMiB} MiB (target <= ${WORKER_RSS_TARGET_MIB})\n`,
    );
    out.push(`${r.size}: stage by stage (chain = slowest node of a parallel phase, every step of the others; phases overlap, so a gap can be negative; ms)`);
    out.push(
      table(
        ['phase', 'mode', 'steps', 'cmds', 'wall', 'critical', 'gap before', 'chain acts', 'chain gaps', 'chain queue', 'chain exec', 'chain lead', 'chain cmds', 'exec - latency'],
        r.path.phases.map((p) => [p.phase, p.mode, p.steps, p.commandsAll, p.wallMs, p.criticalMs, p.gapBeforeMs, p.chain.activities, p.chain.gapsMs, p.chain.queueMs, p.chain.execMs, p.chain.leadMs, p.chain.commands, p.chain.execMs - p.chain.latencyMs]),
      ),
    );
    out.push(`${r.size}: the one-at-a-time stages, activity by activity (ms)`);
    out.push(table(['phase', 'node', 'activity', 'exec', 'latency', 'exec - latency', 'cmds', 'lead'], r.steps.map((x) => [x.phase, x.node, x.activity, x.execMs, x.latencyMs, x.execMs - x.latencyMs, x.commands, x.leadMs ?? '-'])));
    out.push(
      `${r.size}: SSH on this lab: a new session and \`true\` ${r.ssh.newSessionMs} ms, \`true\` on an open one ${r.ssh.openSessionMs} ms (activities reuse sessions); one simulated command costs ${r.simCommand.wallMs} ms wall ` +
        `(${r.simCommand.cpuMs} ms CPU) on an idle host before latency; worker start-up ${r.worker.startupMs} ms, RSS ${r.worker.rssAtStartMiB} MiB at start; ` +
        `workflow tasks: ${r.workflowTasks.count}, queue median ${r.workflowTasks.queueMedianMs} ms (max ${r.workflowTasks.queueMaxMs}), run median ${r.workflowTasks.runMedianMs} ms (max ${r.workflowTasks.runMaxMs}), ${r.workflowTasks.timedOut} timed out\n`,
    );
  }
  process.stdout.write(out.join('\n') + '\n');
  const file = writeResult('deploy', m, {
    what: 'deployCluster wall time vs the plan\'s critical path of simulated command latencies (and the stage-by-stage one); worker (child process) memory and CPU; history size; lab memory per host',
    latency,
    targets: TARGETS,
    workerPeakRssTargetMiB: WORKER_RSS_TARGET_MIB,
    summary: results.map((r) => ({
      size: r.size,
      wallMs: r.plan.wallMs,
      criticalMs: r.plan.criticalMs,
      ratio: r.plan.ratio,
      target: r.target,
      met: r.plan.ratio <= r.target,
      boundBy: chainBound(r.plan),
      stageCriticalMs: r.path.criticalMs,
      stageRatio: r.path.ratio,
      labPssPerHostMiB: round1(r.labMemory.pssPerHostKiB / 1024),
      historyEvents: r.history.events,
      historyBytes: r.history.bytes,
      historyEventsPerWorker: r.history.eventsPerWorker,
      workerPeakRssMet: r.worker.peakRssMiB <= WORKER_RSS_TARGET_MIB,
      excessMs: r.excess,
      load: r.load,
      machineFloorMs: r.machineFloorMs,
      workerPeakRssMiB: r.worker.peakRssMiB,
      workerCpuSeconds: r.worker.cpuSeconds,
      machineCpuBusy: r.machineCpuBusy,
    })),
    runs: results,
  });
  process.stdout.write(`written to ${file}\n`);
}

if (require.main === module) {
  main().catch((e: unknown) => {
    process.stderr.write(`bench deploy: ${e instanceof Error ? (e.stack ?? e.message) : String(e)}\n`);
    process.exitCode = 1;
  });
}
