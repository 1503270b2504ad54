// Running one node's step: its activities (Temporal retries them; a network failure is waited out within the
// policy's time budget), then compensation where the phase has one, then the operator's decision. Workflow code.
import {
  ActivityCancellationType,
  ActivityFailure,
  ApplicationFailure,
  CancellationScope,
  condition,
  isCancellation,
  log,
  proxyActivities,
  sleep,
  TimeoutFailure,
} from '@temporalio/workflow';
import { RetryState, type ActivityOptions, type RetryPolicy } from '@temporalio/common';
import type * as activities from '../../activities';
import { NON_RETRYABLE_ERRORS } from '../../activities/types';
import type { ClusterSpec, NodeSpec } from '../../spec/types';
import type { DecisionAction, NodeStepStatus } from '../definitions';
import type { Decisions } from './decisions';
import type { StatusBoard } from './status';

export type Acts = typeof activities;
const now = () => new Date().toISOString();

/** The operator's message of a failure: the innermost cause, with its type. */
export function failureText(e: unknown): string {
  let cur: unknown = e;
  // The ActivityFailure wraps the activity's own ApplicationFailure; its message is what operators need.
  while (cur && typeof cur === 'object' && 'cause' in cur && (cur as { cause?: unknown }).cause) cur = (cur as { cause: unknown }).cause;
  const msg = cur instanceof Error ? cur.message : String(cur);
  const type = cur instanceof ApplicationFailure && cur.type ? `${cur.type}: ` : '';
  return `${type}${msg}`.slice(0, 2000);
}

/** The type of the innermost application failure ("JoinedStepFailed", ...). */
function failureType(e: unknown): string {
  let cur: unknown = e;
  let type = '';
  while (cur && typeof cur === 'object') {
    if (cur instanceof ApplicationFailure && cur.type) type = cur.type;
    cur = (cur as { cause?: unknown }).cause;
  }
  return type;
}

export interface StepOptions {
  /** Heartbeat timeout of activities in seconds (default 20). */
  heartbeatTimeoutSeconds?: number;
  /** Start-to-close timeout of an activity in ms (default from the SSH timeouts). */
  startToCloseMs?: number;
}

export type StepOutcome = 'done' | 'skipped';

export class StepRunner {
  readonly retry: RetryPolicy;
  private readonly base: ActivityOptions;
  private readonly acts: Acts;
  private readonly budgetMs: number;
  /** Attempts of a row before its current run: a run after a compensation or a retry adds to them. */
  private readonly runBase = new Map<NodeStepStatus, number>();
  /** Activities scheduled and not yet ended (a cancelled one ends once its remote command was stopped). */
  private running = 0;
  /** Nodes of the cluster before this run: never compensated (reset). */
  readonly membersBefore = new Set<string>();

  constructor(
    private readonly cluster: ClusterSpec,
    private readonly board: StatusBoard,
    private readonly decisions: Decisions,
    o: StepOptions = {},
  ) {
    const spec = cluster.spec;
    const r = spec.policy.retry;
    this.retry = {
      maximumAttempts: r.maximumAttempts,
      initialInterval: r.initialIntervalSeconds * 1000,
      backoffCoefficient: r.backoffCoefficient,
      maximumInterval: r.maximumIntervalSeconds * 1000,
      nonRetryableErrorTypes: [...NON_RETRYABLE_ERRORS],
    };
    this.base = {
      startToCloseTimeout: o.startToCloseMs ?? (spec.ssh.commandTimeoutSeconds + spec.ssh.connectTimeoutSeconds * 2 + 60) * 1000,
      // Activities beat at least every 5 s; 20 s lets a new worker take over a killed one's activity quickly.
      heartbeatTimeout: (o.heartbeatTimeoutSeconds ?? 20) * 1000,
      retry: this.retry,
      cancellationType: ActivityCancellationType.WAIT_CANCELLATION_COMPLETED,
    };
    this.acts = proxyActivities<Acts>(this.base);
    this.budgetMs = (r.transientBudgetSeconds ?? 0) * 1000;
  }

  /** Until no activity runs: after an abort, a rollback must not reset a host whose step is still ending. */
  async quiet(): Promise<void> {
    await condition(() => this.running === 0);
  }

  /** The cluster as one activity sees it: the control-plane nodes and its own node (small history on large clusters). */
  forNode(node: string): ClusterSpec {
    return { ...this.cluster, spec: { ...this.cluster.spec, nodes: this.cluster.spec.nodes.filter((n) => n.role === 'control-plane' || n.name === node) } };
  }
  /**
   * The cluster as a step that runs only on its own node sees it (preflight, host prep, runtime, packages): that
   * node and the first control plane, which the phase order needs. Their scripts read no other node.
   */
  forOwnNode(node: string): ClusterSpec {
    const first = this.cluster.spec.nodes.find((n) => n.role === 'control-plane');
    return { ...this.cluster, spec: { ...this.cluster.spec, nodes: this.cluster.spec.nodes.filter((n) => n === first || n.name === node) } };
  }

  /** The attempt an activity failure ended: the last of the policy, or the one the activity reported. */
  private attemptOf(e: unknown): number {
    if (!(e instanceof ActivityFailure)) return 1;
    if (e.retryState === RetryState.MAXIMUM_ATTEMPTS_REACHED) return this.retry.maximumAttempts ?? 1;
    const d = e.cause instanceof ApplicationFailure ? (e.cause.details?.[0] as { attempt?: unknown } | undefined) : undefined;
    return typeof d?.attempt === 'number' ? d.attempt : 1;
  }

  /**
   * Runs one activity with a summary naming phase and node, again after a network failure (unreachable,
   * connection lost, timed out) while the policy's time budget lasts. Its attempts count in the row `track`.
   */
  async call<K extends keyof Acts>(
    name: K,
    phase: string,
    node: string,
    args: Parameters<Acts[K]>,
    extra?: Partial<ActivityOptions>,
    track: { phase: string; node: string } = { phase, node },
  ): Promise<Awaited<ReturnType<Acts[K]>>> {
    const fn = this.acts[name] as unknown as { executeWithOptions(o: ActivityOptions, a: unknown[]): Promise<unknown> };
    const row = this.board.has(track.phase) ? this.board.row(track.phase, track.node) : undefined;
    const started = Date.now();
    let used = 0;
    const count = (n: number) => {
      used += n;
      if (row) row.attempts = Math.max(row.attempts, (this.runBase.get(row) ?? 0) + used);
    };
    for (;;) {
      try {
        this.running++;
        let res: Awaited<ReturnType<Acts[K]>>;
        try {
          res = (await fn.executeWithOptions({ ...this.base, ...extra, summary: `${phase} · ${node} · ${String(name)}` }, args)) as Awaited<ReturnType<Acts[K]>>;
        } finally {
          this.running--;
        }
        count((res as { attempt?: number } | undefined)?.attempt ?? 1);
        return res;
      } catch (e) {
        count(this.attemptOf(e));
        const left = this.budgetMs - (Date.now() - started);
        if (!networkFailure(e) || left <= 0) throw e;
        log.info('network failure: retrying within the time budget', { phase, node, activity: String(name), leftMs: left });
        if (row) {
          row.lastError = `${failureText(e)} (retrying for up to ${Math.ceil(left / 1000)} s more)`;
          this.board.publish();
        }
        await sleep(Math.min(this.retry.maximumInterval as number, left));
      }
    }
  }

  /**
   * Runs one node's step; on failure after retries (and compensation, where given) waits for an operator.
   * Compensation (a reset) never touches a node that was a member before this run, nor one whose failure came
   * after it joined: that step is retried instead. A compensation that fails waits for the operator too.
   */
  async step(
    phase: string,
    node: NodeSpec,
    run: () => Promise<string | void>,
    compensate?: () => Promise<void>,
    /** The operator's choices when the step waits (default: by role, skip for workers after preflight). */
    choices?: DecisionAction[],
  ): Promise<StepOutcome> {
    const policy = this.cluster.spec.policy.compensation;
    const s = this.board.row(phase, node.name);
    s.startedAt ??= now();
    let rounds = 0;
    for (;;) {
      s.state = 'running';
      this.runBase.set(s, s.attempts);
      this.board.publish();
      try {
        const note = await run();
        s.state = 'done';
        s.note = note ?? s.note;
        s.lastError = undefined;
        s.endedAt = now();
        this.board.publish();
        return 'done';
      } catch (e) {
        if (isCancellation(e)) throw e;
        s.lastError = failureText(e);
        const mayReset = !this.membersBefore.has(node.name) && failureType(e) !== 'JoinedStepFailed';
        if (compensate && mayReset && policy.enabled && rounds < policy.rounds) {
          rounds++;
          s.state = 'compensating';
          s.compensations++;
          this.board.publish();
          try {
            await CancellationScope.nonCancellable(compensate);
            continue;
          } catch (ce) {
            if (isCancellation(ce)) throw ce;
            // This node waits for the operator; the other nodes' steps go on.
            s.lastError = `compensation failed: ${failureText(ce)}; the step had failed with: ${s.lastError}`;
          }
        }
        s.state = 'waiting';
        const allowed: DecisionAction[] =
          choices ??
          (node.role === 'worker' && phase !== 'preflight' ? ['retry', 'skip', 'abort-rollback', 'abort-leave'] : ['retry', 'abort-rollback', 'abort-leave']);
        const d = await this.decisions.waitFor(node.name, { phase, role: node.role, error: s.lastError, allowed });
        if (d.action === 'skip') {
          s.state = 'skipped';
          s.note = `skipped by operator after: ${s.lastError}`;
          s.endedAt = now();
          this.board.publish();
          return 'skipped';
        }
        rounds = 0; // a retry after the operator fixed the host gets fresh compensation rounds
      }
    }
  }
}

function networkFailure(e: unknown): boolean {
  if (!(e instanceof ActivityFailure) || e.retryState !== RetryState.MAXIMUM_ATTEMPTS_REACHED) return false;
  const c = e.cause;
  return c instanceof TimeoutFailure || (c instanceof ApplicationFailure && ['Unreachable', 'Timeout', 'ConnectionLost'].includes(c.type ?? ''));
}
