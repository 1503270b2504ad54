// The engine every cluster operation runs on: status, decisions, steps, barriers, bounded parallelism, the
// approval gate, and abort with rollback. A workflow file lists its phases' work; this runs it. Workflow code.
import { ApplicationFailure, CancellationScope, condition, log, setHandler } from '@temporalio/workflow';
import type { ClusterSpec } from '../../spec/types';
import type { Operation } from '../../phases/types';
import { approveWorkersSignal, approveWorkersUpdate, type DecisionAction, type DeploymentStatus } from '../definitions';
import { Decisions } from './decisions';
import { StatusBoard, type BoardOptions } from './status';
import { StepRunner, type StepOptions } from './steps';

const now = () => new Date().toISOString();

/** At most `limit` of `fn` at once, started in the order of `items`. */
export async function bounded<T>(items: readonly T[], limit: number, fn: (item: T) => Promise<unknown>): Promise<void> {
  let next = 0;
  const runners = Array.from({ length: Math.max(0, Math.min(limit, items.length)) }, async () => {
    while (next < items.length) await fn(items[next++]!);
  });
  await Promise.all(runners);
}

/** A counting semaphore: bounds a phase across nodes whose pipelines reach it at different times. */
export class Slots {
  private used = 0;
  constructor(private readonly limit: number) {}
  async with<T>(fn: () => Promise<T>): Promise<T> {
    await condition(() => this.used < this.limit);
    this.used++;
    try {
      return await fn();
    } finally {
      this.used--;
    }
  }
}

export interface EngineOptions extends StepOptions, BoardOptions {
  /** Started with --auto-approve: an approval sent before the gate counts (otherwise it is ignored). */
  autoApprove?: boolean;
}

export class Engine {
  readonly board: StatusBoard;
  readonly decisions: Decisions;
  readonly steps: StepRunner;
  private readonly scope = new CancellationScope();
  private approved = false;
  /** Called when an abort is accepted, beside cancelling the body (batches of workers are told). */
  onAbort?: (a: DecisionAction) => void;
  /** Awaited after an abort, before rollback (or the end): batches of workers finish their own part. */
  drain?: () => Promise<void>;

  constructor(
    readonly op: Operation,
    readonly cluster: ClusterSpec,
    private readonly o: EngineOptions = {},
    /** What `kha abort --rollback` would reset now, shown in the status. */
    rollbackNodes: () => string[] = () => [],
  ) {
    this.board = new StatusBoard(op, cluster, (s) => {
      s.rollbackNodes = rollbackNodes();
    }, o);
    this.decisions = new Decisions(
      () => this.board.status.state,
      (a) => {
        this.scope.cancel();
        this.onAbort?.(a);
      },
      () => this.board.publish(),
    );
    this.board.decisionsWaiting = () => this.decisions.summary();
    this.steps = new StepRunner(cluster, this.board, this.decisions, o);
  }

  get status(): DeploymentStatus {
    return this.board.status;
  }

  /** Waits until every phase `phase` waits for (its barriers in the operation) is settled on all its nodes. */
  async barrier(phase: string): Promise<void> {
    const after = this.op.barriers.filter((b) => b.phase === phase).map((b) => b.after);
    await condition(() => after.every((a) => this.board.settled(a)));
  }

  /** Registers the approval Update (validated: only while the gate waits) and Signal. */
  acceptApprovals(what: () => string): void {
    const approve = (by?: string) => {
      this.approved = true;
      log.info('approved', { by: by ?? 'unknown' });
    };
    setHandler(approveWorkersUpdate, (by: string) => {
      approve(by);
      return what();
    }, {
      validator: (_by: string) => {
        if (!this.board.gate) {
          const s = this.status;
          throw new Error(`nothing waits for approval: the deployment is ${s.state}${s.currentPhase ? ` in phase ${s.currentPhase}` : ''}`);
        }
      },
    });
    setHandler(approveWorkersSignal, (by: string) => {
      // A run started with --auto-approve was approved in advance; any other approval sent before the gate
      // (during preflight, say) was given without seeing what it approves.
      if (this.board.gate || this.o.autoApprove) return approve(by);
      if (this.approved) return;
      const s = this.status;
      const where = s.currentPhase ? ` in phase ${s.currentPhase}` : '';
      const notice = `approval by ${by || 'unknown'} ignored at ${now()}: it came before the gate (deployment ${s.state}${where}); approve again when it waits for approval`;
      log.warn('early approval ignored', { by, state: s.state, phase: s.currentPhase });
      (s.notices ??= []).push(notice);
      this.board.publish();
    });
  }

  /** An approval given before this run started (an earlier run of the same operation, continued as new). */
  approveInAdvance(by: string): void {
    this.approved = true;
    log.info('approved in advance', { by });
  }

  /** A gate phase: waits for an approval unless one came in advance; `skip` ends it as skipped at once. */
  async gate(phase: string, waitingFor: string, skip: boolean): Promise<void> {
    if (skip) return this.board.endPhase(phase, 'skipped');
    if (!this.approved) {
      const p = this.board.phase(phase);
      p.state = 'running';
      p.startedAt = now();
      this.board.gate = { phase, waitingFor };
      this.board.publish();
      await condition(() => this.approved);
      this.board.gate = undefined;
    }
    this.board.endPhase(phase, 'done');
  }

  /**
   * Runs the operation's body. An accepted abort cancels it: what was in flight ends as failed, `rollback`
   * runs for abort --rollback (not cancellable), and the run fails with `aborted(rolledBack)`.
   */
  async run<R>(
    body: () => Promise<R>,
    rollback: () => Promise<number>,
    aborted: (action: 'rollback' | 'leave', rolledBack: number) => string,
    endState: (r: R) => 'done' | 'aborted' = () => 'done',
  ): Promise<R> {
    let result: R;
    try {
      result = await this.scope.run(body);
    } catch (e) {
      const action = this.decisions.abortAction;
      if (!action) throw e;
      this.board.failInFlight('aborted by operator');
      this.board.gate = undefined;
      this.decisions.clear();
      let rolledBack = 0;
      await CancellationScope.nonCancellable(async () => {
        if (action === 'abort-rollback') {
          this.status.waitingFor = undefined;
          this.board.setState('rolling-back');
        }
        // Promise.all failed fast: other nodes' cancelled steps may still be stopping their remote commands.
        await this.steps.quiet();
        await this.drain?.();
        if (action === 'abort-rollback') rolledBack = await rollback();
        this.board.setState('aborted');
      });
      throw ApplicationFailure.nonRetryable(aborted(action === 'abort-rollback' ? 'rollback' : 'leave', rolledBack), 'DeploymentAborted');
    }
    this.board.setState(endState(result));
    return result;
  }
}
