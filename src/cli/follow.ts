// Follows an operation's workflow (any row of the CLI table, operations.ts) until it finishes or stops for the
// operator, printing its progress as a live table (TTY), one line per change (plain) or JSON lines, and returns
// the command's exit code.
import { ServiceError, WorkflowFailedError, WorkflowUpdateFailedError, WorkflowNotFoundError, type WorkflowHandle } from '@temporalio/client';
import { sleep } from '../util/sleep';
import { approveWorkersUpdate, statusQuery, type DeploymentStatus, type StatusRequest } from '../workflows/definitions';
import { noWorkerMessage, pollers, type Target } from './client';
import { operation, type OperationKind } from './operations';
import { activeSteps, decisionText, Live, newFacts, statusTable, type OutputMode } from './output';

export const EXIT = {
  ok: 0,
  failed: 1,
  usage: 2,
  waitingApproval: 10,
  waitingDecision: 11,
  interrupted: 130,
} as const;

/** Writes messages in the chosen form: JSON lines go to stdout, human text to stdout/stderr. */
export class Printer {
  constructor(
    readonly mode: OutputMode,
    private readonly out: NodeJS.WritableStream = process.stdout,
    private readonly err: NodeJS.WritableStream = process.stderr,
  ) {}
  event(type: string, fields: Record<string, unknown>): void {
    if (this.mode === 'json') this.out.write(`${JSON.stringify({ type, time: new Date().toISOString(), ...fields })}\n`);
  }
  /** A human line, or in JSON mode the event given (or a message event). */
  info(text: string, type = 'message', fields: Record<string, unknown> = {}): void {
    if (this.mode === 'json') this.event(type, { message: text, ...fields });
    else this.out.write(`${text}\n`);
  }
  error(text: string, fields: Record<string, unknown> = {}): void {
    if (this.mode === 'json') this.event('error', { message: text, ...fields });
    else this.err.write(`${text}\n`);
  }
  raw(text: string): void {
    if (this.mode !== 'json') this.out.write(text);
  }
}

export function outputMode(json: boolean, stream: NodeJS.WriteStream = process.stdout): OutputMode {
  if (json) return 'json';
  return stream.isTTY && process.env.TERM !== 'dumb' ? 'tty' : 'plain';
}

export interface FollowOptions {
  target: Target;
  handle: WorkflowHandle;
  kind: OperationKind;
  cluster: string;
  printer: Printer;
  /** Send the approval when the gate is reached instead of stopping there. */
  autoApprove?: boolean;
  pollMs?: number;
  /** Stop following (e.g. on Ctrl-C): resolves with EXIT.interrupted. */
  signal?: AbortSignal;
}

/** The status query, or undefined when no worker answers within the deadline. */
export async function queryStatus(t: Target, handle: WorkflowHandle, timeoutMs = 5000, req?: StatusRequest): Promise<DeploymentStatus | undefined> {
  try {
    return await t.client.withDeadline(Date.now() + timeoutMs, () => (req ? handle.query(statusQuery, req) : handle.query(statusQuery)));
  } catch {
    return undefined;
  }
}

/** The innermost cause's message: an activity or application failure says more than its wrappers. */
export function rootMessage(e: unknown): string {
  let cur: unknown = e;
  while (cur && typeof cur === 'object' && 'cause' in cur && (cur as { cause?: unknown }).cause) cur = (cur as { cause: unknown }).cause;
  return cur instanceof Error ? cur.message : String(cur);
}

/** Where a failed deployment stopped: the phase and nodes that failed or were running, from the last status. */
export function whereStopped(s: DeploymentStatus | undefined): string {
  if (!s) return '';
  const bad = s.phases.flatMap((p) => p.nodes.filter((n) => n.state === 'failed' || n.state === 'waiting' || n.state === 'running').map((n) => `${n.node} in ${p.phase}`));
  if (bad.length) return ` (${bad.join(', ')})`;
  return s.currentPhase ? ` (phase ${s.currentPhase})` : '';
}

export async function follow(o: FollowOptions): Promise<number> {
  const { target, handle, printer, cluster } = o;
  const pollMs = o.pollMs ?? 1000;
  const live = printer.mode === 'tty' ? new Live() : undefined;
  const seen = new Set<string>();
  let last: DeploymentStatus | undefined;
  let frame = 0;
  let approvalSent = false;
  let shownDecision = '';
  let workerWarned = false;
  const draw = () => {
    if (live && last) live.draw(statusTable(last, { color: true, frame }));
  };
  const say = (text: string, type?: string, fields?: Record<string, unknown>) => {
    live?.commit();
    printer.info(text, type, fields);
    if (live) draw();
  };
  const stopDrawing = () => {
    if (live && last) live.draw(statusTable(last, { color: true }));
    live?.commit();
  };

  for (;;) {
    if (o.signal?.aborted) {
      stopDrawing();
      printer.info(`stopped following ${handle.workflowId}; it goes on where a worker runs. Follow it again with: kha status ${cluster}`, 'detached');
      return EXIT.interrupted;
    }
    const desc = await describeSoon(handle);
    if (desc.status.name !== 'RUNNING') {
      // One last status, for the final table (answered while a worker still runs).
      last = (await queryStatus(target, handle, 3000)) ?? last;
      if (last) {
        for (const f of newFacts(last, seen)) if (!live) printer.info(f.line, f.event.type as string, f.event);
      }
      stopDrawing();
      return finish(o, desc.status.name, last);
    }
    const s = await queryStatus(target, handle);
    if (!s) {
      const p = await pollers(target).catch(() => ({ workflow: 0, activity: 0 }));
      if (p.workflow === 0 && !workerWarned) {
        workerWarned = true;
        say(`waiting: ${noWorkerMessage(target)}`, 'no-worker');
      }
    } else {
      workerWarned = false;
      last = s;
      if (!live) for (const f of newFacts(s, seen)) printer.info(f.line, f.event.type as string, f.event);
      const active = activeSteps(s).length;
      if (s.state === 'waiting-approval') {
        if (o.autoApprove && !approvalSent) {
          approvalSent = true;
          try {
            const res = await handle.executeUpdate<string, [string]>(approveWorkersUpdate.name, { args: [`kha deploy --auto-approve (${process.env.USER ?? 'operator'})`] });
            say(`auto-approved: ${res}`, 'approved', { result: res });
          } catch (e) {
            say(`auto-approval rejected: ${rootMessage(e)}`, 'approval-rejected');
          }
        } else if (!o.autoApprove) {
          stopDrawing();
          const line = operation(o.kind).approvalLine?.(cluster) ?? `⏸ ${cluster} waits for approval before joining the workers. Check the control plane, then run: kha approve ${cluster}`;
          printer.info(line, 'waiting-approval', { next: `kha approve ${cluster}` });
          return EXIT.waitingApproval;
        }
      }
      if (s.state === 'waiting-decision' && s.pendingDecision) {
        const key = `${s.pendingDecision.node}|${s.pendingDecision.phase}|${s.pendingDecision.error}`;
        if (active === 0) {
          stopDrawing();
          printer.error(decisionText(s).join('\n'), { pendingDecision: s.pendingDecision });
          printer.event('waiting-decision', { pendingDecision: s.pendingDecision });
          return EXIT.waitingDecision;
        }
        if (key !== shownDecision && !live) {
          shownDecision = key;
          printer.error(`${decisionText(s)[0]} (other steps still running)`, { pendingDecision: s.pendingDecision });
        }
      }
    }
    // Animate the spinner between polls.
    const until = Date.now() + pollMs;
    while (Date.now() < until && !o.signal?.aborted) {
      draw();
      frame++;
      await sleep(live ? 120 : until - Date.now(), o.signal);
    }
  }
}

async function finish(o: FollowOptions, statusName: string, last: DeploymentStatus | undefined): Promise<number> {
  const { printer, cluster, handle } = o;
  const op = operation(o.kind);
  const what = op.title;
  if (statusName === 'COMPLETED') {
    return op.printResult(await handle.result(), { printer, cluster, last }) ? EXIT.ok : EXIT.failed;
  }
  if (statusName === 'FAILED') {
    let msg = '';
    let type = '';
    try {
      await handle.result();
    } catch (e) {
      msg = rootMessage(e);
      const cause = e instanceof WorkflowFailedError ? e.cause : undefined;
      type = cause && 'type' in cause ? String((cause as { type?: string }).type ?? '') : '';
    }
    // Refused before touching a host: the message names what to do instead.
    if (type === 'ClusterBusy' || type === 'ApplyRefused' || type === 'RemovalRefused') {
      printer.error(`✖ ${msg}`, { status: statusName, failureType: type });
      return EXIT.failed;
    }
    if (type === 'DeploymentAborted') {
      printer.error(`✖ ${msg}`, { status: statusName, failureType: type });
      printer.error(`next step: kha status ${cluster} shows the nodes; deploy again with kha deploy FILE, or clean up with kha reset FILE`);
    } else {
      printer.error(`✖ ${what} of ${cluster} failed${whereStopped(last)}: ${msg}`, { status: statusName, failureType: type });
      printer.error(`next step: check ${op.checkOnFailure} (kha status ${cluster}), then run kha ${o.kind} FILE again: finished steps are skipped`);
    }
    return EXIT.failed;
  }
  printer.error(`✖ ${what} of ${cluster} ${statusName.toLowerCase().replace('_', ' ')}${whereStopped(last)}`, { status: statusName });
  printer.error(`next step: kha status ${cluster} shows where it stopped; run kha ${o.kind} FILE again to start over (finished steps are skipped)`);
  return EXIT.failed;
}

/**
 * describe(), asked again for a while when the server fails to answer (a busy dev server misses a deadline):
 * the worker of an embedded run lives in this process, so giving up would stop the run too.
 */
async function describeSoon(handle: WorkflowHandle): Promise<Awaited<ReturnType<WorkflowHandle['describe']>>> {
  for (let i = 1; ; i++) {
    try {
      return await handle.describe();
    } catch (e) {
      if (!(e instanceof ServiceError) || e instanceof WorkflowNotFoundError || i >= 10) throw e;
      await sleep(Math.min(5000, 500 * i));
    }
  }
}

/** Sends an Update and turns a rejection into the validator's reason. */
export async function sendUpdate<R>(run: () => Promise<R>): Promise<{ ok: true; result: R } | { ok: false; reason: string }> {
  try {
    return { ok: true, result: await run() };
  } catch (e) {
    if (e instanceof WorkflowUpdateFailedError) return { ok: false, reason: rootMessage(e) };
    throw e;
  }
}
