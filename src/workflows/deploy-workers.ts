// Batches of workers: a deployment with more workers than one history holds comfortably runs them in child
// workflows (deployWorkers), one per batch, so its own history grows per batch, not per node. A batch runs the
// same per-node pipelines (nodeSteps) with its own retries, compensation and decisions; it reports its rows
// to the deployment (what changed, at most every batchReportSeconds; at once when a node waits, when its
// facts are in and when it is settled), and the deployment forwards the operator's decisions, the go after
// the cross-node check, the join after the approval, and abort. Workflow code.
import {
  ApplicationFailure,
  CancellationScope,
  condition,
  getExternalWorkflowHandle,
  log,
  setHandler,
  sleep,
  startChild,
  workflowInfo,
  type ChildWorkflowHandle,
  type ExternalWorkflowHandle,
} from '@temporalio/workflow';
import type { ClusterSpec, NodeSpec } from '../spec/types';
import type { NodeFacts } from '../activities/types';
import type { RenderFacts } from '../render/types';
import { DEPLOY, HOST_PHASES, preflight, workerJoin } from '../phases/deploy';
import type { Operation } from '../phases/types';
import {
  batchDecisionSignal,
  batchFinishSignal,
  batchGoSignal,
  batchJoinSignal,
  batchReportSignal,
  decisionSignal,
  workerBatchWorkflowId,
  type BatchGo,
  type BatchReport,
  type BatchResult,
  type Decision,
  type DecisionAction,
  type NodeStepStatus,
} from './definitions';
import { Engine, Slots } from './engine/engine';
import { failureText } from './engine/steps';
import { checkedFacts, nodeSteps } from './deploy-nodes';
import type { DeployOptions } from './deploy-cluster';

/**
 * Workers per batch. A worker costs about 16 events and 13 KiB of history (five activities; test/engine-scale
 * measures it), so 100 make a child of ~1,700 events and ~1.4 MB: a sixth of the 10,240-event warning, with
 * room for retries, compensation and progress reports, and a child's workflow task stays small.
 */
export const WORKERS_PER_BATCH = 100;
const REPORT_SECONDS = 30;

export function batchSize(o: DeployOptions): number {
  return Math.max(1, o.workersPerBatch ?? WORKERS_PER_BATCH);
}

/** The phases a batch runs: the workers' part of the deployment; the barriers between them are the parent's signals. */
const WORKER_BATCH: Operation = {
  id: 'deploy-workers',
  title: 'Worker batch',
  phases: DEPLOY.phases.filter((p) => [preflight, ...HOST_PHASES, workerJoin].includes(p)),
  barriers: [],
};

export interface WorkerBatchInput {
  /** The control-plane nodes and this batch's workers. */
  cluster: ClusterSpec;
  batch: number;
  batches: number;
  options?: DeployOptions;
}

// ---- the deployment's side ------------------------------------------------------------------------------

/** The deployment's view of its batches: starts them, takes their reports, sends them what they wait for. */
export class Batches {
  private readonly groups: NodeSpec[][];
  private readonly names = new Set<string>();
  private handles: Array<ChildWorkflowHandle<typeof deployWorkers>> = [];
  private results: Array<Promise<BatchResult>> = [];
  private started?: Promise<void>;
  private failed?: Promise<never>;
  private readonly reports: Array<{ facts?: NodeFacts[]; settled: boolean }>;
  /** Nodes the batches reset in a rollback. */
  rolledBack = 0;

  constructor(
    private readonly e: Engine,
    private readonly cluster: ClusterSpec,
    workers: NodeSpec[],
    private readonly opts: DeployOptions,
  ) {
    const n = Math.ceil(workers.length / batchSize(opts));
    // Even batches in file order: 250 workers in batches of 100 are 84, 83, 83.
    this.groups = Array.from({ length: n }, (_, i) => workers.slice(Math.floor((i * workers.length) / n), Math.floor(((i + 1) * workers.length) / n)));
    for (const w of workers) this.names.add(w.name);
    this.reports = this.groups.map(() => ({ settled: false }));
    setHandler(batchReportSignal, (r: BatchReport) => this.report(r));
    e.decisions.forward = (b, d, nodes) => this.send(b, (h) => h.signal(batchDecisionSignal, d, nodes));
    e.onAbort = (a: DecisionAction) => void this.abort(a);
    e.drain = () => this.drain();
  }

  has(node: string): boolean {
    return this.names.has(node);
  }

  /** Starts every batch; they are not cancelled with the deployment's body: an abort reaches them as a decision. */
  start(): void {
    const cps = this.cluster.spec.nodes.filter((n) => n.role === 'control-plane');
    this.started = CancellationScope.nonCancellable(async () => {
      this.handles = await Promise.all(
        this.groups.map((g, i) =>
          startChild(deployWorkers, {
            workflowId: workerBatchWorkflowId(this.cluster.name, i),
            // A batch's task handles up to 100 nodes' results at once: room for a busy machine.
            workflowTaskTimeout: '30s',
            args: [{ cluster: { ...this.cluster, spec: { ...this.cluster.spec, nodes: [...cps, ...g] } }, batch: i, batches: this.groups.length, options: this.opts }],
          }),
        ),
      );
      this.results = this.handles.map((h) => h.result());
    });
    // A batch that fails (not an abort: a bug) fails the deployment.
    this.failed = this.started.then(() => Promise.all(this.results)).then(() => new Promise<never>(() => {}));
    this.failed.catch(() => {});
  }

  private report(r: BatchReport): void {
    this.e.board.applyRows(r.rows);
    this.e.decisions.remoteWaiting(r.batch, r.waiting);
    const mine = this.reports[r.batch];
    if (!mine) return;
    if (r.facts) mine.facts = r.facts;
    if (r.settled) mine.settled = true;
  }

  private send(b: number, fn: (h: ChildWorkflowHandle<typeof deployWorkers>) => Promise<void>): void {
    void (async () => {
      await this.started;
      const h = this.handles[b];
      if (h) await fn(h);
    })().catch((err) => log.warn('signal to a batch of workers failed', { batch: b, error: failureText(err) }));
  }
  private all(fn: (h: ChildWorkflowHandle<typeof deployWorkers>, b: number) => Promise<void>): void {
    this.groups.forEach((_, b) => this.send(b, (h) => fn(h, b)));
  }
  private async until(ready: () => boolean): Promise<void> {
    await Promise.race([condition(ready), this.failed!]);
  }

  /** The facts of every batch's workers, once each batch's preflight is done. */
  async facts(): Promise<NodeFacts[]> {
    await this.until(() => this.reports.every((r) => r.facts));
    return this.reports.flatMap((r) => r.facts!);
  }
  /** The cross-node check passed: host changes start in every batch. */
  go(facts: RenderFacts, membersBefore: ReadonlySet<string>): void {
    this.all((h, b) => h.signal(batchGoSignal, { facts, membersBefore: this.groups[b]!.filter((n) => membersBefore.has(n.name)).map((n) => n.name) }));
  }
  /** After the approval: every batch joins its workers; resolves when every batch is settled. */
  async join(healthy: () => string[]): Promise<void> {
    await this.e.barrier(workerJoin.id);
    const via = [...healthy()];
    this.all((h) => h.signal(batchJoinSignal, via));
    await this.until(() => this.reports.every((r) => r.settled));
  }
  /** The deployment is verified: the batches end. */
  async finish(): Promise<void> {
    this.all((h) => h.signal(batchFinishSignal));
    await Promise.all(this.results);
  }
  private async abort(a: DecisionAction): Promise<void> {
    const d: Decision = { action: a, by: 'deployment' };
    this.all((h) => h.signal(decisionSignal, d));
  }
  /** After an abort: every batch has stopped (and reset its workers, for a rollback). */
  private async drain(): Promise<void> {
    await this.started;
    const done = await Promise.all(this.results.map((r) => r.catch((err) => (log.warn('a batch of workers failed', { error: failureText(err) }), undefined))));
    this.rolledBack = done.reduce((sum, r) => sum + (r?.rolledBack ?? 0), 0);
  }
}

// ---- the batch ------------------------------------------------------------------------------------------

/** Sends the batch's rows to the deployment: changes at most every `intervalMs`, what someone waits for at once. */
class Reporter {
  facts?: NodeFacts[];
  settled = false;
  private sentFacts = false;
  private sentSettled = false;
  private sentVersion = -1;
  private sentWaiting = '';
  private due = true;
  private closed = false;
  private readonly sent = new Map<NodeStepStatus, string>();

  constructor(
    private readonly e: Engine,
    private readonly batch: number,
    private readonly parent: ExternalWorkflowHandle,
    private readonly intervalMs: number,
  ) {}

  private waitingKey(): string {
    return this.e.decisions
      .waiting()
      .map((w) => `${w.node}\u0000${w.phase}`)
      .join('\u0001');
  }
  private urgent(): boolean {
    return (!!this.facts && !this.sentFacts) || (this.settled && !this.sentSettled) || this.waitingKey() !== this.sentWaiting;
  }

  async run(): Promise<void> {
    for (;;) {
      await condition(() => this.closed || (this.e.board.version !== this.sentVersion && (this.due || this.urgent())));
      if (this.closed) return;
      await this.send();
    }
  }
  /** The last report: everything that changed since the one before. */
  async close(): Promise<void> {
    this.closed = true;
    await this.send();
  }

  private async send(): Promise<void> {
    this.sentVersion = this.e.board.version;
    const rows: BatchReport['rows'] = [];
    for (const p of this.e.status.phases) {
      for (const r of p.nodes) {
        const json = JSON.stringify(r);
        if (this.sent.get(r) === json) continue;
        this.sent.set(r, json);
        rows.push({ phase: p.phase, ...r });
      }
    }
    const waitingKey = this.waitingKey();
    const report: BatchReport = { batch: this.batch, rows, waiting: this.e.decisions.waiting() };
    if (this.facts && !this.sentFacts) report.facts = this.facts;
    if (this.settled && !this.sentSettled) report.settled = true;
    if (!rows.length && !report.facts && !report.settled && waitingKey === this.sentWaiting) return;
    this.sentFacts = this.sentFacts || !!report.facts;
    this.sentSettled = this.sentSettled || !!report.settled;
    this.sentWaiting = waitingKey;
    if (!this.closed) {
      this.due = false;
      void sleep(this.intervalMs).then(() => (this.due = true));
    }
    await this.parent.signal(batchReportSignal, report);
  }
}

/** One batch of a deployment's workers (a child workflow of deployCluster): their pipelines up to the join. */
export async function deployWorkers(input: WorkerBatchInput): Promise<BatchResult> {
  const { cluster, batch } = input;
  const opts = input.options ?? {};
  const workers = cluster.spec.nodes.filter((n) => n.role === 'worker');
  const own = new Set(workers.map((n) => n.name));
  const touched = new Set<string>();
  const rollbackOrder = (): NodeSpec[] => workers.filter((n) => touched.has(n.name) && !e.steps.membersBefore.has(n.name));
  const e: Engine = new Engine(WORKER_BATCH, cluster, { ...opts, rows: (n) => own.has(n.name), searchAttributes: false }, () => rollbackOrder().map((n) => n.name));
  let go: BatchGo | undefined;
  let via: string[] | undefined;
  let finished = false;
  setHandler(batchGoSignal, (g: BatchGo) => void (go ??= g));
  setHandler(batchJoinSignal, (v: string[]) => void (via ??= v));
  setHandler(batchFinishSignal, () => void (finished = true));
  setHandler(batchDecisionSignal, (d: Decision, nodes: string[]) => e.decisions.applyForwarded(d, nodes));

  const skipped: string[] = [];
  const nodeFacts = new Map<string, NodeFacts>();
  // The deployment's bound on parallel joins, shared out among its batches.
  const joinSlots = new Slots(Math.max(1, Math.floor(cluster.spec.policy.workerJoinConcurrency / input.batches)));
  const { preflightNode, worker } = nodeSteps({
    e,
    facts: () => go!.facts,
    healthy: () => via ?? [],
    touched,
    skipped,
    nodeFacts,
    joinSlots,
    joinReady: () => condition(() => via !== undefined),
  });
  const parent = getExternalWorkflowHandle(workflowInfo().parent!.workflowId);
  const reporter = new Reporter(e, batch, parent, (opts.batchReportSeconds ?? REPORT_SECONDS) * 1000);
  const reporting = reporter.run();

  let rolledBack = 0;
  async function rollback(): Promise<number> {
    const order = rollbackOrder();
    await Promise.all(
      order.map(async (n) => {
        try {
          await e.steps.call('resetNode', 'rollback', n.name, [{ cluster: e.steps.forNode(n.name), node: n.name }]);
        } catch (err) {
          log.warn('rollback reset failed', { node: n.name, error: failureText(err) });
          e.board.row(workerJoin.id, n.name).lastError = `rollback failed: ${failureText(err)}`;
        }
      }),
    );
    rolledBack = order.length;
    return rolledBack;
  }
  try {
    await e.run(
      async () => {
        await Promise.all(workers.map((n) => preflightNode(n, false)));
        reporter.facts = workers.map((n) => checkedFacts(nodeFacts.get(n.name)!));
        await condition(() => go !== undefined);
        for (const m of go!.membersBefore) e.steps.membersBefore.add(m);
        e.status.membersBefore = [...e.steps.membersBefore];
        e.status.kubernetesVersion = go!.facts.kubernetesVersion;
        await Promise.all(workers.map(worker));
        reporter.settled = true;
        e.board.publish();
        // Until the deployment is verified an abort may still roll these workers back.
        await condition(() => finished);
      },
      rollback,
      (action, n) => `batch ${batch + 1} of ${cluster.name} aborted${action === 'rollback' ? `; rolled back ${n} worker(s)` : ''}`,
    );
  } catch (err) {
    if (!(err instanceof ApplicationFailure && err.type === 'DeploymentAborted')) throw err;
  } finally {
    await reporter.close();
    await reporting;
  }
  return { skipped, rolledBack };
}
