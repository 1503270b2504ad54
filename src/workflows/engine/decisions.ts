// Operator decisions: a node whose step failed waits here for retry, skip or abort. The Update validates
// before anything is recorded (a wrong decision is refused to the sender); the Signal is the fire-and-forget
// form and logs what it refuses. Workflow code.
import { condition, log, setHandler } from '@temporalio/workflow';
import { decisionSignal, decisionUpdate, type Decision, type DecisionAction, type DeploymentStatus } from '../definitions';

export interface Waiting {
  phase: string;
  role: 'control-plane' | 'worker';
  error: string;
  allowed: DecisionAction[];
  decision?: Decision;
}

export class Decisions {
  private readonly pending = new Map<string, Waiting>();
  /** Set once an abort was accepted. */
  abortAction?: DecisionAction;

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
    const all = [...this.pending.entries()];
    if (!all.length) return { text: '' };
    const [node, w] = all[0]!;
    return {
      text: `operator decision for ${all.map(([n, x]) => `${n} (${x.phase})`).join(', ')}: kha retry | kha skip NODE | kha abort [--rollback]`,
      first: { node, phase: w.phase, role: w.role, error: w.error, allowed: w.allowed },
    };
  }
  clear(): void {
    this.pending.clear();
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
    if (this.pending.size === 0) throw new Error(`no decision is pending: the deployment is ${this.state()}`);
    const nodes = [...this.pending.entries()].filter(([, w]) => w.allowed.includes(d.action)).map(([n]) => n);
    if (!nodes.length) {
      throw new Error(`${d.action} is not allowed for any waiting node (${[...this.pending.entries()].map(([n, w]) => `${n}: ${w.role}, phase ${w.phase}`).join('; ')})`);
    }
    return nodes;
  }
  private pick(d: Decision): string {
    if (d.node) {
      if (!this.pending.has(d.node)) throw new Error(`no decision is pending for ${d.node}; pending: ${[...this.pending.keys()].join(', ') || 'none'}`);
      return d.node;
    }
    if (this.pending.size === 0) throw new Error(`no decision is pending: the deployment is ${this.state()}`);
    // Retry and skip without a node are only unambiguous when one node waits.
    if (this.pending.size > 1) throw new Error(`decisions are pending for ${[...this.pending.keys()].join(', ')}: name the node`);
    return [...this.pending.keys()][0]!;
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
    const w = this.pending.get(node)!;
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
      for (const n of nodes) this.pending.get(n)!.decision = d;
      const left = [...this.pending.keys()].filter((n) => !nodes.includes(n));
      return `${d.action} ${nodes.length} node${nodes.length === 1 ? '' : 's'}: ${nodes.join(', ')}${left.length ? `; still waiting: ${left.join(', ')}` : ''}`;
    }
    const node = this.pick(d);
    this.pending.get(node)!.decision = d;
    return `${d.action} ${node}`;
  }
}
