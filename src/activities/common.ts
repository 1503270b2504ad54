// What every activity shares: one SSH session per call, heartbeats with the last output lines,
// cancellation, mapping of executor errors to retryable or not, and redaction of anything secret-shaped.
import { Context } from '@temporalio/activity';
import { ApplicationFailure } from '@temporalio/common';
import type { ClusterSpec, NodeSpec } from '../spec/types';
import { findNode, nodeSsh } from '../spec/types';
import type { SshSession } from '../ssh/executor';
import { IdleSessions } from '../ssh/reuse';
import { isTransient, SshError, TRANSIENT_KINDS } from '../ssh/errors';
import type { RenderedScript } from '../render/types';
import { readResult, requireResult, ResultError, type FailureKind, type ResultKind } from '../render/result';
import type { RunResult } from '../ssh/types';
import { LineRedactor, redact } from './redact';

export { redact } from './redact';

export function activityContext(): Context | undefined {
  try {
    return Context.current();
  } catch {
    return undefined; // called outside an activity (tests, CLI)
  }
}

/** Keeps the last lines of output and heartbeats them, throttled, so the Web UI shows progress. */
class Progress {
  private lines: string[] = [];
  private timer: NodeJS.Timeout | undefined;
  private readonly redactor: LineRedactor;
  constructor(
    private readonly ctx: Context | undefined,
    private readonly label: string,
    secrets: readonly string[] = [],
  ) {
    this.redactor = new LineRedactor(secrets);
    if (ctx) {
      // Beat well inside the heartbeat timeout, so a quiet but live command never looks dead.
      const timeout = ctx.info.heartbeatTimeoutMs ?? 0;
      const every = timeout > 0 ? Math.max(200, Math.min(5000, Math.floor(timeout / 3))) : 5000;
      this.timer = setInterval(() => this.beat(), every);
      this.timer.unref();
    }
  }
  add(line: string): void {
    this.lines.push(this.redactor.line(line).slice(0, 300));
    if (this.lines.length > 5) this.lines.shift();
    this.beat();
  }
  beat(): void {
    this.ctx?.heartbeat({ step: this.label, lastLines: this.lines });
  }
  stop(): void {
    if (this.timer) clearInterval(this.timer);
  }
}

/** Heartbeats every few seconds while fn runs (reboots, waits) so a live activity is not timed out. */
export async function heartbeating<T>(label: string, fn: () => Promise<T>): Promise<T> {
  const progress = new Progress(activityContext(), label);
  progress.beat();
  try {
    return await fn();
  } finally {
    progress.stop();
  }
}

export interface ScriptRun {
  result: RunResult;
  stdout: string;
}

export interface RunScriptOptions {
  env?: Record<string, string>;
  /** Every failure of this script is worth retrying (default: only the reported kinds in retryOn). */
  transient?: boolean;
  /** Failure kinds the script reports (KHA-FAILURE) that are worth retrying here. */
  retryOn?: readonly FailureKind[];
  /** A non-zero exit is returned instead of thrown. */
  allowFailure?: boolean;
  timeoutMs?: number;
}

/** Runs a rendered script; streams progress unless its output is sensitive; returns full stdout. */
export async function runScript(session: SshSession, node: string, phase: string, script: RenderedScript, o: RunScriptOptions = {}): Promise<ScriptRun> {
  const ctx = activityContext();
  const secrets = Object.values(o.env ?? {});
  const progress = new Progress(ctx, `${phase}/${script.name} on ${node}`, secrets);
  const out: string[] = [];
  try {
    const result = await session.runScript(script.content, {
      env: o.env,
      signal: ctx?.cancellationSignal,
      timeoutMs: o.timeoutMs,
      onLine: (stream, line) => {
        if (stream === 'stdout') out.push(line);
        if (!script.sensitiveOutput) progress.add(line);
        else progress.beat();
      },
    });
    if (result.exitCode !== 0 && !o.allowFailure) {
      const tail = script.sensitiveOutput ? '(output withheld: it carries credentials)' : redact(`${result.stderrTail || result.stdoutTail}`, secrets);
      const message = `${phase}/${script.name} on ${node} exited with ${result.exitCode}: ${tail.trim().split('\n').slice(-8).join(' | ')}`;
      const failure = reportedFailure(out.join('\n'));
      // kubeadm's own preflight refusing the host is not fixed by trying again; compensation or an operator is.
      const type =
        failure === 'kubeadm-preflight' ? 'JoinPreflightFailed' : o.transient || (failure && o.retryOn?.includes(failure)) ? 'TransientCommandFailed' : 'CommandFailed';
      throw ApplicationFailure.create({ message, type, nonRetryable: type !== 'TransientCommandFailed' });
    }
    return { result, stdout: out.join('\n') };
  } catch (e) {
    throw toFailure(e, node, secrets);
  } finally {
    progress.stop();
  }
}

/** The failure kind a failed script reported; a malformed report counts as none (the exit code still fails the step). */
function reportedFailure(stdout: string): FailureKind | undefined {
  try {
    return readResult(stdout, 'FAILURE')?.kind;
  } catch (e) {
    if (e instanceof ResultError) return undefined;
    throw e;
  }
}

/** A step's effect from the STEP line every script prints at its end, as the status shows it. */
export function stepSummary(run: ScriptRun, what: string): { changed: boolean; note: string; already: boolean } {
  const s = requireResult(run.stdout, 'STEP', what);
  return s.changes ? { changed: true, note: `${what}: ${s.changes} change(s)`, already: s.already } : { changed: false, note: `${what}: already in place`, already: s.already };
}

/** Maps executor errors to ApplicationFailures whose type the workflow's retry policy knows. */
export function toFailure(e: unknown, node: string, secrets: string[] = []): unknown {
  if (e instanceof ApplicationFailure) return e;
  if (e instanceof SshError) {
    return ApplicationFailure.create({ message: redact(e.message, secrets), type: e.kind, nonRetryable: !isTransient(e) });
  }
  if (e instanceof Error && e.name === 'AbortError') return e;
  const msg = e instanceof Error ? e.message : String(e);
  return ApplicationFailure.create({ message: `${node}: ${redact(msg, secrets)}`, type: 'CommandFailed', nonRetryable: true });
}

/** This worker's SSH connections between activities (see src/ssh/reuse.ts). */
const sessions = new IdleSessions();

/** Closes the SSH connections kept between activities; call when the worker stops. */
export function closeIdleSessions(): void {
  sessions.closeAll();
}

/** One SSH session to a node for the duration of fn: a connection kept from an earlier activity, or a new one. */
export async function withNode<T>(cluster: ClusterSpec, nodeName: string, fn: (s: SshSession, node: NodeSpec) => Promise<T>): Promise<T> {
  const node = findNode(cluster, nodeName);
  let session: SshSession;
  try {
    // Beat while connecting: a black-holed host takes the whole connect timeout to fail, longer than a beat may wait.
    session = await heartbeating(`connecting to ${nodeName}`, () => sessions.take(nodeSsh(cluster, node), { signal: activityContext()?.cancellationSignal }));
  } catch (e) {
    throw withAttempt(toFailure(e, nodeName));
  }
  let ok = false;
  try {
    const r = await fn(session, node);
    // Results carry the attempt that produced them, so the workflow's status can show retries.
    if (r && typeof r === 'object' && !Array.isArray(r)) (r as { attempt?: number }).attempt ??= activityContext()?.info.attempt;
    ok = true;
    return r;
  } catch (e) {
    throw withAttempt(toFailure(e, nodeName));
  } finally {
    sessions.give(session, ok);
  }
}

/** A failure that tells the workflow which attempt of the activity it ended (its status counts retries). */
function withAttempt(e: unknown): unknown {
  const attempt = activityContext()?.info.attempt;
  if (!(e instanceof ApplicationFailure) || attempt === undefined || e.details?.length) return e;
  return ApplicationFailure.create({ message: e.message, type: e.type ?? undefined, nonRetryable: e.nonRetryable ?? undefined, details: [{ attempt }] });
}

/** Tries the healthy control-plane nodes in order; the first that connects runs fn. */
export async function withHealthyControlPlane<T>(cluster: ClusterSpec, via: string[] | undefined, fn: (s: SshSession, node: NodeSpec) => Promise<T>): Promise<T> {
  const all = via && via.length ? via : cluster.spec.nodes.filter((n) => n.role === 'control-plane').map((n) => n.name);
  // A retry starts at the next node: the one that failed the last attempt is likely still down.
  const shift = ((activityContext()?.info.attempt ?? 1) - 1) % all.length;
  const candidates = [...all.slice(shift), ...all.slice(0, shift)];
  let last: unknown;
  for (const name of candidates) {
    try {
      return await withNode(cluster, name, fn);
    } catch (e) {
      last = e;
      if (e instanceof ApplicationFailure && !TRANSIENT_KINDS.includes(e.type ?? '')) throw e;
    }
  }
  throw last;
}

/** The JSON text of a script's `KHA-<KIND>` result line, read through src/render/result.ts (verify.ts reads its report so). */
export function marker(stdout: string, key: `KHA-${ResultKind}`): string | undefined {
  const value = readResult(stdout, key.slice('KHA-'.length) as ResultKind);
  return value === undefined ? undefined : JSON.stringify(value);
}
