// The status of one operation run: a row per phase and node, phase states derived from their rows (nodes run
// their own pipelines), the search attributes upserted only when a value changes, and the Web UI table.
// Workflow code.
import { setCurrentDetails, setHandler, upsertSearchAttributes } from '@temporalio/workflow';
import type { ClusterSpec, NodeSpec } from '../../spec/types';
import { nodesOf } from '../../phases/select';
import type { Operation } from '../../phases/types';
import { SA_CLUSTER, SA_PHASE, SA_STATE, statusQuery, type DeploymentStatus, type NodeStepStatus, type PhaseStatus, type StepState } from '../definitions';
import { renderProgress } from '../progress';
import { statusView } from '../status-view';

const now = () => new Date().toISOString();
const SETTLED: readonly StepState[] = ['done', 'skipped', 'failed'];
const ACTIVE: readonly StepState[] = ['running', 'compensating', 'waiting'];

export interface BoardOptions {
  /** The nodes this run has rows for (a batch of workers: its own); default every node of its phases. */
  rows?: (n: NodeSpec) => boolean;
  /** False in a child workflow: the cluster's search attributes belong to the operation the operator sees. */
  searchAttributes?: boolean;
}

/** A node's row of one phase as a batch of workers sends it to its parent. */
export type ReportedRow = NodeStepStatus & { phase: string };

export class StatusBoard {
  readonly status: DeploymentStatus;
  /** The gate a run waits at, while it waits (approval before workers). */
  gate?: { phase: string; waitingFor: string };
  /** Nodes waiting for an operator, with what they wait for: the state and waitingFor line follow from it. */
  decisionsWaiting: () => { text: string; first?: DeploymentStatus['pendingDecision'] } = () => ({ text: '' });
  /** Counts publishes: a batch of workers reports to its parent when it moved. */
  version = 0;
  private lastAttributes = '';
  private lastDetails = '';
  private queued = false;

  constructor(
    op: Operation,
    cluster: ClusterSpec,
    /** Extra things to compute before each publish (rollback candidates). */
    private readonly before: (s: DeploymentStatus) => void = () => {},
    private readonly o: BoardOptions = {},
  ) {
    const mine = o.rows ?? (() => true);
    this.status = {
      cluster: cluster.name,
      state: 'running',
      startedAt: now(),
      phases: op.phases.map((p) => ({
        phase: p.id,
        title: p.title,
        mode: p.mode,
        state: 'pending' as StepState,
        // A cluster-wide phase has one row, "cluster"; a gate has none.
        nodes: (p.mode === 'cluster' ? ['cluster'] : nodesOf(p.nodes, cluster).filter(mine).map((n) => n.name)).map((node) => newRow(node)),
      })),
    };
    setHandler(statusQuery, (req) => statusView(this.derive(), req));
  }

  phase(id: string): PhaseStatus {
    const p = this.status.phases.find((x) => x.phase === id);
    if (!p) throw new Error(`no phase ${id}`);
    return p;
  }
  has(id: string): boolean {
    return this.status.phases.some((x) => x.phase === id);
  }
  /** The row of a node in a phase, added when the phase did not list it (the cross-node preflight check). */
  row(phase: string, node: string): NodeStepStatus {
    const p = this.phase(phase);
    let r = p.nodes.find((n) => n.node === node);
    if (!r) {
      r = newRow(node);
      p.nodes.push(r);
    }
    return r;
  }

  /** Rows a batch of workers reported (child workflow): they replace this run's copies. */
  applyRows(rows: readonly ReportedRow[]): void {
    for (const { phase, ...r } of rows) {
      if (!this.has(phase)) continue;
      const row = this.row(phase, r.node);
      for (const k of Object.keys(row) as Array<keyof NodeStepStatus>) if (!(k in r)) delete row[k];
      Object.assign(row, r);
    }
    this.publish();
  }

  /** A phase without rows (a gate, a phase with no nodes) ends as `state`. */
  endPhase(id: string, state: 'done' | 'skipped' = 'done'): void {
    const p = this.phase(id);
    p.state = state;
    p.startedAt ??= now();
    p.endedAt = now();
    this.publish();
  }
  /** A phase is settled when every row is done, skipped or failed (or it was ended as a whole). */
  settled(id: string): boolean {
    const p = this.phase(id);
    if (p.nodes.length === 0) return p.state === 'done' || p.state === 'skipped';
    return p.nodes.every((n) => SETTLED.includes(n.state));
  }

  /** Everything still in flight ends as failed with `note` (an abort). */
  failInFlight(note: string): void {
    for (const p of this.status.phases) {
      if (p.state === 'running') p.state = 'failed';
      for (const n of p.nodes) {
        if (ACTIVE.includes(n.state)) {
          n.state = 'failed';
          n.note = note;
        }
      }
    }
  }

  setState(state: DeploymentStatus['state']): void {
    this.status.state = state;
    if (state === 'done' || state === 'aborted') {
      this.status.endedAt = now();
      this.status.currentPhase = state === 'done' ? undefined : this.status.currentPhase;
    }
    this.publish();
  }

  /**
   * Marks the status changed. The search attributes and the Web UI table follow once the steps that run now
   * have all moved (one microtask later), not once per change: on a large cluster that is the difference
   * between one table and a thousand per workflow task.
   */
  publish(): void {
    this.version++;
    if (this.queued) return;
    this.queued = true;
    void Promise.resolve().then(() => {
      this.queued = false;
      this.flush();
    });
  }

  private flush(): void {
    const s = this.derive();
    const attrs = [s.cluster, s.currentPhase ?? 'none', s.state];
    const key = attrs.join('\u0000');
    // Each upsert is a history event: only a change is worth one.
    if (key !== this.lastAttributes && this.o.searchAttributes !== false) {
      this.lastAttributes = key;
      upsertSearchAttributes([
        { key: SA_CLUSTER, value: attrs[0]! },
        { key: SA_PHASE, value: attrs[1]! },
        { key: SA_STATE, value: attrs[2]! },
      ]);
    }
    // The Web UI's table is summarised like the query: a row per node of 1,000 is no table to read.
    const details = renderProgress(statusView(s));
    if (details !== this.lastDetails) {
      this.lastDetails = details;
      setCurrentDetails(details);
    }
  }

  /** Phase states, how far the run got, and what it waits for, from the rows. */
  private derive(): DeploymentStatus {
    const s = this.status;
    for (const p of s.phases) derivePhase(p);
    // How far the run got: the last phase that started.
    const started = s.phases.filter((p) => p.state !== 'pending' && p.state !== 'skipped');
    if (s.state !== 'done') s.currentPhase = started.length ? started[started.length - 1]!.phase : s.currentPhase;
    if (this.gate && s.currentPhase !== undefined) s.currentPhase = this.gate.phase;
    const waiting = this.decisionsWaiting();
    s.pendingDecision = waiting.first;
    if (s.state === 'running' || s.state === 'waiting-decision' || s.state === 'waiting-approval') {
      // A decision comes first: the gate waits for the control plane, the operator for a node.
      s.state = waiting.first ? 'waiting-decision' : this.gate ? 'waiting-approval' : 'running';
      s.waitingFor = waiting.first ? waiting.text : this.gate?.waitingFor;
    }
    this.before(s);
    return s;
  }
}

function newRow(node: string): NodeStepStatus {
  return { node, state: 'pending', attempts: 0, compensations: 0 };
}

/** A phase with rows: pending until one starts, done when all are done or skipped, running otherwise. */
function derivePhase(p: PhaseStatus): void {
  if (p.nodes.length === 0) return;
  const states = p.nodes.map((n) => n.state);
  const before = p.state;
  if (states.every((x) => x === 'pending')) p.state = before === 'failed' ? 'failed' : 'pending';
  else if (states.every((x) => x === 'skipped')) p.state = 'skipped';
  else if (states.every((x) => x === 'done' || x === 'skipped')) p.state = 'done';
  else if (states.some((x) => x === 'failed') && states.every((x) => SETTLED.includes(x))) p.state = 'failed';
  else p.state = 'running';
  if (p.state !== 'pending') p.startedAt ??= p.nodes.map((n) => n.startedAt).filter((x): x is string => !!x).sort()[0] ?? now();
  if (p.state === 'done' || p.state === 'skipped' || p.state === 'failed') p.endedAt ??= now();
  else p.endedAt = undefined;
}
