// Operator decisions: a node whose step failed waits here for retry, skip or abort. The Update validates
// before anything is recorded (a wrong decision is refused to the sender); the Signal is the fire-and-forget
// form and logs what it refuses. Workflow code.
import { condition, log, setHandler } from '@temporalio/workflow';
import { decisionSignal, decisionUpdate, type Decision, type DecisionAction, type DeploymentStatus, type PendingDecision } from '../definitions';

export interface Waiting {
  phase: string;
  role: 'control-plane' | 'worker';
  error: string;
  allowed: DecisionAction[];
  decision?: Decision;
}

/** Sends a decision about `nodes` to the batch of workers (a child workflow) where they wait. */
export type Forward = (batch: number, d: Decision, nodes: string[]) => void;

export class Decisions {
  private readonly pending = new Map<string, Waiting>();
  /** Nodes that wait in a batch of workers (a child workflow), as it last reported them. */
  private readonly remote = new Map<string, Waiting & { batch: number }>();
  /** Set once an abort was accepted. */
  abortAction?: DecisionAction;
  forward?: Forward;

  constructor(
    private readonly state: () => DeploymentStatus['state'],
    /** Called when an abort is accepted: cancels the run. */
    private readonly onAbort: (a: DecisionAction) => void,
    private readonly changed: () => void,
  ) {
    setHandler(decisionUpdate, (d: Decision) => this.apply(d), { validator: (d: Decision) => this.validate(d) });
    setHandler(decisionSignal, (d: Decision) => {
      try {
        this.validate(d);
        this.apply(d);
      } catch (e) {
        log.warn('operator decision ignored', { error: String(e) });
      }
    });
  }

  /** The waitingFor line and the first waiting node, for the status. */
  summary(): { text: string; first?: DeploymentStatus['pendingDecision'] } {
    const all = [...this.all().entries()];
    if (!all.length) return { text: '' };
    const [node, w] = all[0]!;
    return {
      text: `operator decision for ${all.map(([n, x]) => `${n} (${x.phase})`).join(', ')}: kha retry | kha skip NODE | kha abort [--rollback]`,
      first: { node, phase: w.phase, role: w.role, error: w.error, allowed: w.allowed },
    };
  }
  clear(): void {
    this.pending.clear();
    this.remote.clear();
  }

  /** What a batch of workers reports waiting now (replaces its earlier report). */
  remoteWaiting(batch: number, waiting: readonly PendingDecision[]): void {
    for (const [n, w] of this.remote) if (w.batch === batch) this.remote.delete(n);
    for (const w of waiting) this.remote.set(w.node, { phase: w.phase, role: w.role, error: w.error, allowed: w.allowed, batch });
    this.changed();
  }
  /** Every waiting node of this run, its own and its batches' (in that order). */
  private all(): Map<string, Waiting> {
    if (!this.remote.size) return this.pending;
    return new Map<string, Waiting>([...this.pending, ...this.remote]);
  }
  /** This run's own waiting nodes, as a batch of workers reports them to its parent. */
  waiting(): PendingDecision[] {
    return [...this.pending.entries()].filter(([, w]) => w.decision === undefined).map(([node, w]) => ({ node, phase: w.phase, role: w.role, error: w.error, allowed: w.allowed }));
  }
  /** A decision the parent forwarded: applied to those of `nodes` that still wait here and allow it. */
  applyForwarded(d: Decision, nodes: readonly string[]): void {
    for (const n of nodes) {
      const w = this.pending.get(n);
      if (w && w.decision === undefined && w.allowed.includes(d.action)) w.decision = { ...d, node: n, all: undefined };
      else log.warn('forwarded decision ignored: the node no longer waits for it', { node: n, action: d.action });
    }
  }
  /** Records `d` for `nodes`: here, or forwarded to the batch where a node waits. */
  private decide(d: Decision, nodes: readonly string[]): void {
    const out = new Map<number, string[]>();
    for (const n of nodes) {
      const r = this.remote.get(n);
      if (r) {
        // Gone from here until the batch reports again: a second decision is refused, not sent twice.
        this.remote.delete(n);
        out.set(r.batch, [...(out.get(r.batch) ?? []), n]);
      } else this.pending.get(n)!.decision = d;
    }
    for (const [batch, ns] of out) this.forward?.(batch, d, ns);
    if (out.size) this.changed();
  }

  /** Waits until the operator decides about `node`; resolves with the decision (or throws when cancelled). */
  async waitFor(node: string, w: Omit<Waiting, 'decision'>): Promise<Decision> {
    this.pending.set(node, { ...w });
    this.changed();
    try {
      await condition(() => this.pending.get(node)?.decision !== undefined);
      return this.pending.get(node)!.decision!;
    } finally {
      this.pending.delete(node);
      this.changed();
    }
  }

  /** The nodes a batch decision (--all) applies to: every waiting node, for skip the waiting workers. */
  private batch(d: Decision): string[] {
    const all = this.all();
    if (all.size === 0) throw new Error(`no decision is pending: the deployment is ${this.state()}`);
    const nodes = [...all.entries()].filter(([, w]) => w.allowed.includes(d.action)).map(([n]) => n);
    if (!nodes.length) {
      throw new Error(`${d.action} is not allowed for any waiting node (${[...all.entries()].map(([n, w]) => `${n}: ${w.role}, phase ${w.phase}`).join('; ')})`);
    }
    return nodes;
  }
  private pick(d: Decision): string {
    const all = this.all();
    if (d.node) {
      if (!all.has(d.node)) throw new Error(`no decision is pending for ${d.node}; pending: ${[...all.keys()].join(', ') || 'none'}`);
      return d.node;
    }
    if (all.size === 0) throw new Error(`no decision is pending: the deployment is ${this.state()}`);
    // Retry and skip without a node are only unambiguous when one node waits.
    if (all.size > 1) throw new Error(`decisions are pending for ${[...all.keys()].join(', ')}: name the node`);
    return [...all.keys()][0]!;
  }

  validate(d: Decision): void {
    if (d.action === 'abort-rollback' || d.action === 'abort-leave') {
      // An abort stops a run at any point before it ends, not only at a decision.
      const s = this.state();
      if (this.abortAction || s === 'done' || s === 'aborted' || s === 'rolling-back') {
        throw new Error(`cannot abort: the deployment is ${this.abortAction ? 'already aborting' : s}`);
      }
      return;
    }
    if (d.all) {
      if (d.node) throw new Error('name a node or ask for all of them, not both');
      this.batch(d);
      return;
    }
    const node = this.pick(d);
    const w = this.all().get(node)!;
    if (!w.allowed.includes(d.action)) {
      throw new Error(`${d.action} is not allowed for ${node} (${w.role}, phase ${w.phase}); allowed: ${w.allowed.join(', ')}`);
    }
  }

  apply(d: Decision): string {
    if (d.action === 'abort-rollback' || d.action === 'abort-leave') {
      this.abortAction = d.action;
      this.onAbort(d.action);
      return `aborting (${d.action === 'abort-rollback' ? 'rolling back touched nodes' : 'leaving nodes as they are'})`;
    }
    if (d.all) {
      const nodes = this.batch(d);
      const left = [...this.all().keys()].filter((n) => !nodes.includes(n));
      this.decide(d, nodes);
      return `${d.action} ${nodes.length} node${nodes.length === 1 ? '' : 's'}: ${nodes.join(', ')}${left.length ? `; still waiting: ${left.join(', ')}` : ''}`;
    }
    const node = this.pick(d);
    this.decide(d, [node]);
    return `${d.action} ${node}`;
  }
}
