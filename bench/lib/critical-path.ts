// The unavoidable sequential time of a deployment on lab hosts whose simulated commands each take a fixed
// latency: every simulated command (call logs) is attributed to the activity that ran it (history), an
// activity costs the latency of its commands, a node's step the sum of its activities, a parallel stage
// its slowest node (list-scheduled when its concurrency is below the node count), every other stage the
// sum of its steps; the deployment the sum of its stages in the workflow's order.
import { readFileSync, readdirSync } from 'node:fs';
import { join } from 'node:path';
import { commandLatencyMs, type HostFaultsFile } from '../../src/lab/faults';
import type { ActivityTiming } from './history';

export interface Call {
  host: string;
  /** When the command started its work (the sim logs after sleeping its latency). */
  ms: number;
  tool: string;
  words: string[];
  latencyMs: number;
}

export type LatencyConfig = Pick<HostFaultsFile, 'latencyMs' | 'latencyByCommand'>;

/** Every simulated command `ms`, kubeadm init and join `kubeadmMs` (`kubeadm init phase upload-certs` is not the long init). */
export function labLatency(ms = 200, kubeadmMs = 3000): LatencyConfig {
  return { latencyMs: ms, latencyByCommand: { 'kubeadm init': kubeadmMs, 'kubeadm join': kubeadmMs, 'kubeadm init phase': ms } };
}

/** Reads <shared>/calls/<host>.log ("<epoch ms> <tool> <words>") of every host. */
export function readCalls(sharedDir: string, cfg: LatencyConfig): Call[] {
  const dir = join(sharedDir, 'calls');
  const out: Call[] = [];
  let files: string[] = [];
  try {
    files = readdirSync(dir).filter((f) => f.endsWith('.log'));
  } catch {
    return out;
  }
  for (const f of files) {
    const host = f.slice(0, -'.log'.length);
    for (const line of readFileSync(join(dir, f), 'utf8').split('\n')) {
      const [ms, tool, ...words] = line.trim().split(' ');
      if (!ms || !tool) continue;
      out.push({ host, ms: Number(ms), tool, words, latencyMs: commandLatencyMs(cfg, tool, words) });
    }
  }
  return out.sort((a, b) => a.ms - b.ms);
}

/** Activities that run commands on a healthy control-plane node on behalf of their node (src/activities). */
const VIA_CONTROL_PLANE = new Set(['joinControlPlane', 'joinWorker', 'waitEtcdHealthy', 'verifyCluster', 'removeNodeFromCluster']);

export interface ActivityCost {
  activity: ActivityTiming;
  /** Commands attributed (fractional where several activities shared a control-plane host at that moment). */
  commands: number;
  latencyMs: number;
  /** Activity start to the first command's start (minus its latency): SSH connect, script and tool start-up. */
  leadMs: number;
}

export type StageMode = 'parallel' | 'sequential';

export interface PhasePlan {
  phase: string;
  mode: StageMode;
  /** For parallel stages: how many nodes at once (default: all). */
  concurrency?: number;
  /** Node order the workflow takes them in (list scheduling). */
  nodes?: string[];
}

export interface PhaseResult {
  phase: string;
  mode: StageMode;
  steps: number;
  /** Simulated commands of the phase on every host. */
  commandsAll: number;
  /** Critical path of the phase: the latency its slowest chain cannot avoid. */
  criticalMs: number;
  /** First activity scheduled to last activity ended. */
  wallMs: number;
  /** Previous phase's last activity end to this phase's first scheduling (workflow task time). */
  gapBeforeMs: number;
  /** Along the slowest step (parallel) or all steps (sequential): */
  chain: {
    node: string;
    activities: number;
    /** Scheduled to started, summed: Temporal handing activities to the worker. */
    queueMs: number;
    /** One activity's end to the next one's scheduling, summed: workflow tasks between them. */
    gapsMs: number;
    execMs: number;
    leadMs: number;
    latencyMs: number;
    commands: number;
  };
}

export interface CriticalPath {
  criticalMs: number;
  /** Workflow start to end. */
  wallMs: number;
  ratio: number;
  phases: PhaseResult[];
  /** Last activity's end to the workflow's end. */
  tailMs: number;
  commandsTotal: number;
  commandsUnattributed: number;
  /** Sum of every command's latency on every host: the work the hosts did, in parallel or not. */
  latencyTotalMs: number;
  activities: ActivityCost[];
}

export function attribute(activities: ActivityTiming[], calls: Call[], controlPlanes: Set<string>): { costs: ActivityCost[]; unattributed: number } {
  const costs = new Map<ActivityTiming, ActivityCost>(activities.map((a) => [a, { activity: a, commands: 0, latencyMs: 0, leadMs: NaN }]));
  const firstCall = new Map<ActivityTiming, number>();
  let unattributed = 0;
  for (const c of calls) {
    const owners = activities.filter(
      (a) => c.ms >= a.scheduledMs && c.ms <= (Number.isNaN(a.endedMs) ? Infinity : a.endedMs) && (a.node === c.host || (controlPlanes.has(c.host) && VIA_CONTROL_PLANE.has(a.type))),
    );
    // Activities sharing a control-plane host at that moment (worker joins minting credentials) split it.
    const takers = owners;
    if (!takers.length) {
      unattributed++;
      continue;
    }
    for (const a of takers) {
      const k = costs.get(a)!;
      k.commands += 1 / takers.length;
      k.latencyMs += c.latencyMs / takers.length;
      if (!firstCall.has(a)) firstCall.set(a, c.ms - c.latencyMs);
    }
  }
  for (const [a, t] of firstCall) costs.get(a)!.leadMs = Math.max(0, t - a.startedMs);
  return { costs: [...costs.values()], unattributed };
}

/** Makespan of jobs taken in order by `limit` runners (the workflow's bounded parallel loop). */
export function listSchedule(durations: number[], limit: number): number {
  const runners = new Array<number>(Math.max(1, Math.min(limit, durations.length))).fill(0);
  for (const d of durations) {
    const i = runners.indexOf(Math.min(...runners));
    runners[i]! += d;
  }
  return Math.max(0, ...runners);
}

export function criticalPath(input: {
  activities: ActivityTiming[];
  calls: Call[];
  controlPlanes: string[];
  plan: PhasePlan[];
  workflow: { startMs: number; endMs: number };
}): CriticalPath {
  const { costs, unattributed } = attribute(input.activities, input.calls, new Set(input.controlPlanes));
  const phases: PhaseResult[] = [];
  let prevEnd = input.workflow.startMs;
  const order = [...new Set([...costs].sort((a, b) => a.activity.scheduledMs - b.activity.scheduledMs).map((c) => c.activity.phase))];
  for (const phase of order) {
    const plan = input.plan.find((p) => p.phase === phase) ?? { phase, mode: 'sequential' as const };
    const inPhase = costs.filter((c) => c.activity.phase === phase);
    const steps = new Map<string, ActivityCost[]>();
    for (const c of inPhase) steps.set(c.activity.node, [...(steps.get(c.activity.node) ?? []), c]);
    const stepMs = (node: string) => (steps.get(node) ?? []).reduce((s, c) => s + c.latencyMs, 0);
    let criticalMs: number;
    let chainSteps: ActivityCost[];
    if (plan.mode === 'parallel') {
      const nodes = plan.nodes?.filter((n) => steps.has(n)) ?? [...steps.keys()];
      for (const n of steps.keys()) if (!nodes.includes(n)) nodes.push(n);
      criticalMs = listSchedule(nodes.map(stepMs), plan.concurrency ?? nodes.length);
      const slowest = nodes.reduce((a, b) => (stepMs(b) > stepMs(a) ? b : a), nodes[0]!);
      chainSteps = steps.get(slowest) ?? [];
    } else {
      criticalMs = inPhase.reduce((s, c) => s + c.latencyMs, 0);
      chainSteps = inPhase;
    }
    const first = Math.min(...inPhase.map((c) => c.activity.scheduledMs));
    const last = Math.max(...inPhase.map((c) => c.activity.endedMs));
    const sum = (f: (c: ActivityCost) => number) => chainSteps.reduce((s, c) => s + (Number.isNaN(f(c)) ? 0 : f(c)), 0);
    const byTime = [...chainSteps].sort((a, b) => a.activity.scheduledMs - b.activity.scheduledMs);
    const gapsMs = byTime.slice(1).reduce((g, c, i) => g + Math.max(0, c.activity.scheduledMs - byTime[i]!.activity.endedMs), 0);
    phases.push({
      phase,
      mode: plan.mode,
      steps: steps.size,
      commandsAll: Math.round(inPhase.reduce((n, c) => n + c.commands, 0)),
      criticalMs: Math.round(criticalMs),
      wallMs: Math.round(last - first),
      gapBeforeMs: Math.round(first - prevEnd),
      chain: {
        node: plan.mode === 'parallel' ? (chainSteps[0]?.activity.node ?? '') : `${steps.size} step(s)`,
        activities: chainSteps.length,
        queueMs: Math.round(sum((c) => c.activity.startedMs - c.activity.scheduledMs)),
        gapsMs: Math.round(gapsMs),
        execMs: Math.round(sum((c) => c.activity.endedMs - c.activity.startedMs)),
        leadMs: Math.round(sum((c) => c.leadMs)),
        latencyMs: Math.round(sum((c) => c.latencyMs)),
        commands: Math.round(sum((c) => c.commands) * 10) / 10,
      },
    });
    prevEnd = last;
  }
  const criticalMs = phases.reduce((s, p) => s + p.criticalMs, 0);
  const wallMs = Math.round(input.workflow.endMs - input.workflow.startMs);
  return {
    criticalMs,
    wallMs,
    ratio: Math.round((wallMs / criticalMs) * 1000) / 1000,
    phases,
    tailMs: Math.round(input.workflow.endMs - prevEnd),
    commandsTotal: input.calls.length,
    commandsUnattributed: unattributed,
    latencyTotalMs: input.calls.reduce((s, c) => s + c.latencyMs, 0),
    activities: costs,
  };
}

/**
 * The critical path of the procedure itself, from the latencies of the steps every node cannot skip: the first
 * control plane's host steps, then kubeadm init with its kube-vip and Calico steps; each further control plane
 * joins once its own host steps and the previous join are done (etcd grows one member at a time); each worker
 * joins once its own host steps and kubeadm init are done (a worker needs the API, not the other control
 * planes); verification after all of them. Unlike criticalPath() no phase waits for every node of the phase
 * before: a node's pipeline runs as far as its dependencies allow, so a step kha runs per node more often than
 * the procedure needs (verification per node, say) is not part of it either, only the steps the plan runs.
 */
export interface PlanPath {
  criticalMs: number;
  wallMs: number;
  ratio: number;
  /** When each part of the chain could end at the earliest (ms from the start). */
  initDoneMs: number;
  controlPlanesDoneMs: number;
  workersDoneMs: number;
  /** The worker whose pipeline ends last, its host steps and join (ms). */
  slowestWorker: { node: string; prepMs: number; joinMs: number } | null;
  /** What the end waits for: 'control-plane joins' or 'worker <name>'. */
  bound: string;
  finalMs: number;
}

const HOST_PHASES = new Set(['preflight', 'host-prep', 'container-runtime', 'packages']);
const INIT_PHASES = new Set(['kube-vip', 'kube-vip-before-init', 'kubeadm-init', 'kube-vip-switch', 'calico']);

export function planCriticalPath(input: {
  costs: ActivityCost[];
  controlPlanes: string[];
  workers: string[];
  /** Parallel worker joins at most (the spec's workerJoinConcurrency). */
  workerJoinConcurrency?: number;
  workflow: { startMs: number; endMs: number };
}): PlanPath {
  const first = input.controlPlanes[0] ?? '';
  const lat = (pred: (c: ActivityCost) => boolean) => input.costs.filter(pred).reduce((s, c) => s + c.latencyMs, 0);
  const prep = (n: string) => lat((c) => c.activity.node === n && HOST_PHASES.has(c.activity.phase));
  const init = lat((c) => c.activity.node === first && INIT_PHASES.has(c.activity.phase));
  const join = (n: string, phases: string[]) => lat((c) => c.activity.node === n && phases.includes(c.activity.phase));
  const initDoneMs = prep(first) + init;
  let cpDone = initDoneMs;
  for (const n of input.controlPlanes.slice(1)) cpDone = Math.max(cpDone, prep(n)) + join(n, ['control-plane-join', 'kube-vip']);
  const ws = input.workers.map((n) => ({ node: n, prepMs: prep(n), joinMs: join(n, ['worker-join']) }));
  const limit = input.workerJoinConcurrency ?? ws.length;
  let workersDoneMs = initDoneMs;
  let slowest: PlanPath['slowestWorker'] = null;
  if (limit >= ws.length) {
    for (const w of ws) {
      const end = Math.max(initDoneMs, w.prepMs) + w.joinMs;
      if (end >= workersDoneMs) {
        workersDoneMs = end;
        slowest = w;
      }
    }
  } else {
    // Bounded: joins start in the plan's order as runners free up, none before init.
    workersDoneMs = Math.max(initDoneMs, ...ws.map((w) => w.prepMs)) + listSchedule(ws.map((w) => w.joinMs), limit);
    slowest = ws.reduce<PlanPath['slowestWorker']>((a, b) => (!a || b.prepMs + b.joinMs > a.prepMs + a.joinMs ? b : a), null);
  }
  const finalMs = lat((c) => c.activity.phase === 'verify');
  const criticalMs = Math.round(Math.max(cpDone, workersDoneMs) + finalMs);
  const wallMs = Math.round(input.workflow.endMs - input.workflow.startMs);
  return {
    criticalMs,
    wallMs,
    ratio: Math.round((wallMs / criticalMs) * 1000) / 1000,
    initDoneMs: Math.round(initDoneMs),
    controlPlanesDoneMs: Math.round(cpDone),
    workersDoneMs: Math.round(workersDoneMs),
    slowestWorker: slowest && { node: slowest.node, prepMs: Math.round(slowest.prepMs), joinMs: Math.round(slowest.joinMs) },
    bound: cpDone >= workersDoneMs ? 'control-plane joins' : `worker ${slowest?.node ?? '?'}`,
    finalMs: Math.round(finalMs),
  };
}
