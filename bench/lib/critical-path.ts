// The unavoidable sequential time of a deployment on lab hosts whose simulated commands each take a fixed
// latency: every simulated command (call logs) is attributed to the activity that ran it (history), an
// activity costs the latency of its commands, a node's step the sum of its activities, a parallel stage
// its slowest node (list-scheduled when its concurrency is below the node count), every other stage the
// sum of its steps; the deployment the sum of its stages in the workflow's order.
import { readFileSync, readdirSync } from 'node:fs';
import { join } from 'node:path';
import { commandLatencyMs, type HostFaultsFile } from '../../src/lab/faults';
import type { ActivityTiming } from './history';
import { activePhases, concurrencyOf, nodesOf } from '../../src/phases/select';
import type { Operation, PhaseDef } from '../../src/phases/types';
import type { ClusterSpec } from '../../src/spec/types';

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
 * The critical path of the procedure itself, from the operation's own phase list (src/phases: modes, node sets,
 * bounds, barriers; the list deployCluster runs and `kha plan` prints) and each step's simulated latency: a
 * node's phase starts once that node's previous phase is done and every barrier of the phase is settled on all
 * its nodes; a sequential phase takes its nodes one at a time in order; a bounded parallel phase hands nodes to
 * free runners in order. Wall time on these hosts cannot beat the latest end, whatever kha does; a step kha
 * adds (a command per node, say) raises it only by its own latency, and only where it lies on that chain.
 */
export interface PlanStep {
  phase: string;
  node: string;
  startMs: number;
  endMs: number;
  /** What its start waited for: the run's start, the node's previous phase, a barrier, the previous node's turn or a free runner. */
  after: string;
  /** What the run did for this step: the activities' times (ms from the workflow's start) and the commands' latency. */
  actual: { startMs: number; endMs: number; queueMs: number; leadMs: number; commands: number };
}

export interface PlanPath {
  criticalMs: number;
  wallMs: number;
  ratio: number;
  /** The steps whose waits make up the critical path, first to last. */
  chain: PlanStep[];
  /** Earliest end of each phase (ms from the start), in the operation's order. */
  phaseEndMs: Record<string, number>;
  /** Latency of activities whose phase or node the operation does not have (shown, never dropped silently). */
  unplacedMs: number;
}

export function planCriticalPath(input: {
  op: Operation;
  cluster: ClusterSpec;
  costs: ActivityCost[];
  workflow: { startMs: number; endMs: number };
}): PlanPath {
  const { op, cluster } = input;
  const names = new Set(cluster.spec.nodes.map((n) => n.name));
  const active = new Set(activePhases(op, cluster).map((p) => p.id));
  const nodesIn = (p: PhaseDef) => (active.has(p.id) ? nodesOf(p.nodes, cluster).map((n) => n.name) : []);
  const cost = new Map<string, number>();
  const placed = new Map<string, ActivityCost[]>();
  let unplacedMs = 0;
  for (const c of input.costs) {
    const p = op.phases.find((x) => x.id === c.activity.phase);
    const nodes = p ? nodesIn(p) : [];
    // A phase run once for the cluster is labelled 'cluster'; its one node ran it.
    const node = names.has(c.activity.node) ? c.activity.node : nodes.length === 1 ? nodes[0]! : '';
    if (!p || !nodes.includes(node)) {
      unplacedMs += c.latencyMs;
      continue;
    }
    cost.set(`${p.id}\0${node}`, (cost.get(`${p.id}\0${node}`) ?? 0) + c.latencyMs);
    placed.set(`${p.id}\0${node}`, [...(placed.get(`${p.id}\0${node}`) ?? []), c]);
  }
  const nodeLast = new Map<string, PlanStep>();
  const phaseEnd = new Map<string, { ms: number; by?: PlanStep }>();
  for (const p of op.phases) {
    // Barriers settle when their phase is done on all its nodes; a phase without nodes (a gate turned off)
    // settles when its own barriers do.
    let barrier: { ms: number; by?: PlanStep; after: string } = { ms: 0, after: 'start' };
    for (const b of op.barriers.filter((x) => x.phase === p.id)) {
      const e = phaseEnd.get(b.after) ?? { ms: 0 };
      if (e.ms > barrier.ms || (e.ms === barrier.ms && e.by && !barrier.by)) barrier = { ...e, after: `barrier: ${b.after} on every node` };
    }
    const limit = p.mode === 'parallel' ? (concurrencyOf(p, cluster) ?? Infinity) : p.mode === 'sequential' ? 1 : Infinity;
    const runners: PlanStep[] = [];
    let end: { ms: number; by?: PlanStep } = barrier;
    for (const node of nodesIn(p)) {
      const own = nodeLast.get(node);
      let start = { ms: barrier.ms, by: barrier.by, after: barrier.after };
      if (own && own.endMs > start.ms) start = { ms: own.endMs, by: own, after: `${node}'s ${own.phase}` };
      if (runners.length >= limit) {
        // The runner that frees first takes the next node (the workflow's bounded loop, in node order).
        const i = runners.reduce((best, r, k) => (r.endMs < runners[best]!.endMs ? k : best), 0);
        const r = runners.splice(i, 1)[0]!;
        if (r.endMs > start.ms) start = { ms: r.endMs, by: r, after: limit === 1 ? `${r.node}'s turn` : `a free runner (${r.node})` };
      }
      const step: PlanStep & { prev?: PlanStep } = {
        phase: p.id,
        node,
        startMs: start.ms,
        endMs: start.ms + (cost.get(`${p.id}\0${node}`) ?? 0),
        after: start.after,
        actual: actualOf(placed.get(`${p.id}\0${node}`) ?? [], input.workflow.startMs),
        prev: start.by,
      };
      nodeLast.set(node, step);
      runners.push(step);
      if (step.endMs >= end.ms) end = { ms: step.endMs, by: step };
    }
    phaseEnd.set(p.id, end);
  }
  const last = [...phaseEnd.values()].reduce<{ ms: number; by?: PlanStep }>((a, b) => (b.ms >= a.ms ? b : a), { ms: 0 });
  const chain: PlanStep[] = [];
  for (let s = last.by as (PlanStep & { prev?: PlanStep }) | undefined; s; s = s.prev) chain.unshift({ phase: s.phase, node: s.node, startMs: Math.round(s.startMs), endMs: Math.round(s.endMs), after: s.after, actual: s.actual });
  const criticalMs = Math.round(last.ms);
  const wallMs = Math.round(input.workflow.endMs - input.workflow.startMs);
  return {
    criticalMs,
    wallMs,
    ratio: Math.round((wallMs / criticalMs) * 1000) / 1000,
    chain,
    phaseEndMs: Object.fromEntries([...phaseEnd].map(([k, v]) => [k, Math.round(v.ms)])),
    unplacedMs: Math.round(unplacedMs),
  };
}

/** A step's activities as they ran: first scheduled to last ended, time queued for a worker, and lead to the first command. */
function actualOf(acts: ActivityCost[], t0: number): PlanStep['actual'] {
  const fin = (xs: number[]) => xs.filter(Number.isFinite);
  const r = (ms: number) => Math.round(ms);
  return {
    startMs: acts.length ? r(Math.min(...fin(acts.map((a) => a.activity.scheduledMs))) - t0) : NaN,
    endMs: acts.length ? r(Math.max(...fin(acts.map((a) => a.activity.endedMs))) - t0) : NaN,
    queueMs: r(fin(acts.map((a) => a.activity.startedMs - a.activity.scheduledMs)).reduce((x, y) => x + y, 0)),
    leadMs: r(fin(acts.map((a) => a.leadMs)).reduce((x, y) => x + y, 0)),
    commands: Math.round(acts.reduce((n, a) => n + a.commands, 0) * 10) / 10,
  };
}
