// Watching a deployment from a test: wait for a state, get the result or fail fast at a decision, read history.
import assert from 'node:assert/strict';
import { WorkflowFailedError, type WorkflowHandle } from '@temporalio/client';
import { ApplicationFailure } from '@temporalio/common';
import type { temporal } from '@temporalio/proto';
import { statusQuery, type DeploymentStatus } from '../../src/workflows/definitions';

type Handle = Pick<WorkflowHandle, 'query' | 'result' | 'fetchHistory'>;

export async function waitForState(handle: Handle, want: DeploymentStatus['state'], ms = 180_000): Promise<DeploymentStatus> {
  const end = Date.now() + ms;
  let last: DeploymentStatus | undefined;
  while (Date.now() < end) {
    last = await handle.query(statusQuery);
    if (last.state === want) return last;
    await new Promise((r) => setTimeout(r, 300));
  }
  throw new Error(`state ${want} not reached in ${ms} ms; last: ${last?.state} ${last?.waitingFor ?? ''} ${JSON.stringify(last?.pendingDecision ?? '')}`);
}

/** The result, or a failure as soon as the deployment waits for an operator (instead of hanging). */
export async function resultOrFail<T>(handle: Handle): Promise<T> {
  let done = false;
  const watch = (async () => {
    while (!done) {
      const s = await handle.query(statusQuery).catch(() => undefined);
      if (s?.state === 'waiting-decision') throw new Error(`waiting for a decision: ${JSON.stringify(s.pendingDecision)}`);
      await new Promise((r) => setTimeout(r, 500));
    }
  })();
  try {
    return (await Promise.race([handle.result(), watch])) as T;
  } finally {
    done = true;
    // No query may still be in flight when the test tears the connection down.
    await watch.catch(() => undefined);
  }
}

export type HistoryEvent = temporal.api.history.v1.IHistoryEvent;

/** Activity type names scheduled in a history, in order, with the node named by their summary input. */
export function scheduledActivities(events: HistoryEvent[]): Array<{ type: string; input: string }> {
  return events
    .filter((e) => e.activityTaskScheduledEventAttributes)
    .map((e) => {
      const a = e.activityTaskScheduledEventAttributes!;
      const payload = a.input?.payloads?.[0]?.data;
      return { type: a.activityType?.name ?? '', input: payload ? Buffer.from(payload).toString('utf8') : '' };
    });
}

/** The node an activity input names ("node":"x"). */
export function nodeOf(input: string): string {
  return /"node":"([^"]+)"/.exec(input)?.[1] ?? '';
}

/** The application failure a run ended with; fails the test when the run completed. */
export async function failure(h: Pick<WorkflowHandle, 'result'>): Promise<ApplicationFailure> {
  const e = await h.result().then(
    () => assert.fail('the workflow completed'),
    (err: unknown) => err,
  );
  assert.ok(e instanceof WorkflowFailedError && e.cause instanceof ApplicationFailure, String(e));
  return e.cause;
}
