// Activity timings from a workflow history: when each activity was scheduled, picked up and finished.
import type { temporal } from '@temporalio/proto';

type Event = temporal.api.history.v1.IHistoryEvent;

export interface ActivityTiming {
  id: number;
  type: string;
  /** From the summary the workflow gives every activity ("phase · node · name"); '' without one. */
  phase: string;
  node: string;
  scheduledMs: number;
  /** Start of the attempt that ended it (Temporal writes only the last attempt's start). */
  startedMs: number;
  endedMs: number;
  attempt: number;
  outcome: 'completed' | 'failed' | 'timed-out' | 'canceled' | 'open';
}

export function eventMs(e: Event): number {
  const t = e.eventTime;
  if (!t) return NaN;
  return Number(t.seconds?.toString() ?? 0) * 1000 + (t.nanos ?? 0) / 1e6;
}

function payloadText(p: { data?: Uint8Array | null } | null | undefined): string {
  if (!p?.data) return '';
  try {
    const v = JSON.parse(Buffer.from(p.data).toString('utf8')) as unknown;
    return typeof v === 'string' ? v : '';
  } catch {
    return '';
  }
}

export function activityTimings(events: Event[]): ActivityTiming[] {
  const byId = new Map<string, ActivityTiming>();
  for (const e of events) {
    const id = String(e.eventId);
    const s = e.activityTaskScheduledEventAttributes;
    if (s) {
      const [phase = '', node = ''] = payloadText(e.userMetadata?.summary).split(' · ');
      byId.set(id, { id: Number(id), type: s.activityType?.name ?? '', phase, node, scheduledMs: eventMs(e), startedMs: NaN, endedMs: NaN, attempt: 0, outcome: 'open' });
      continue;
    }
    const st = e.activityTaskStartedEventAttributes;
    if (st) {
      const a = byId.get(String(st.scheduledEventId));
      if (a) {
        a.startedMs = eventMs(e);
        a.attempt = st.attempt ?? 1;
      }
      continue;
    }
    const end =
      (e.activityTaskCompletedEventAttributes && (['completed', e.activityTaskCompletedEventAttributes] as const)) ||
      (e.activityTaskFailedEventAttributes && (['failed', e.activityTaskFailedEventAttributes] as const)) ||
      (e.activityTaskTimedOutEventAttributes && (['timed-out', e.activityTaskTimedOutEventAttributes] as const)) ||
      (e.activityTaskCanceledEventAttributes && (['canceled', e.activityTaskCanceledEventAttributes] as const));
    if (end) {
      const a = byId.get(String(end[1].scheduledEventId));
      if (a) {
        a.endedMs = eventMs(e);
        a.outcome = end[0];
      }
    }
  }
  return [...byId.values()];
}

/** Start and end of the workflow execution. */
export function workflowSpan(events: Event[]): { startMs: number; endMs: number } {
  const start = events.find((e) => e.workflowExecutionStartedEventAttributes);
  const end = [...events].reverse().find((e) => e.workflowExecutionCompletedEventAttributes || e.workflowExecutionFailedEventAttributes);
  return { startMs: start ? eventMs(start) : NaN, endMs: end ? eventMs(end) : NaN };
}

export interface WorkflowTaskStats {
  count: number;
  /** Scheduled to picked up by a worker. */
  queueMedianMs: number;
  queueMaxMs: number;
  /** Picked up to completed (the worker replaying/advancing the workflow). */
  runMedianMs: number;
  runMaxMs: number;
  timedOut: number;
  failed: number;
}

export function workflowTaskStats(events: Event[]): WorkflowTaskStats {
  const sched = new Map<string, number>();
  const started = new Map<string, { at: number; sched: string }>();
  const queue: number[] = [];
  const run: number[] = [];
  let timedOut = 0;
  let failed = 0;
  for (const e of events) {
    if (e.workflowTaskScheduledEventAttributes) sched.set(String(e.eventId), eventMs(e));
    const st = e.workflowTaskStartedEventAttributes;
    if (st) {
      const s = String(st.scheduledEventId);
      started.set(String(e.eventId), { at: eventMs(e), sched: s });
      queue.push(eventMs(e) - (sched.get(s) ?? eventMs(e)));
    }
    const c = e.workflowTaskCompletedEventAttributes;
    if (c) run.push(eventMs(e) - (started.get(String(c.startedEventId))?.at ?? eventMs(e)));
    if (e.workflowTaskTimedOutEventAttributes) timedOut++;
    if (e.workflowTaskFailedEventAttributes) failed++;
  }
  const sorted = (xs: number[]) => [...xs].sort((a, b) => a - b);
  const med = (xs: number[]) => Math.round(sorted(xs)[Math.floor(xs.length / 2)] ?? NaN);
  return { count: run.length, queueMedianMs: med(queue), queueMaxMs: Math.round(Math.max(0, ...queue)), runMedianMs: med(run), runMaxMs: Math.round(Math.max(0, ...run)), timedOut, failed };
}

export interface HistorySize {
  /** Workflow executions counted: the deployment and every child workflow it started (recursively). */
  executions: number;
  events: number;
  bytes: number;
  /** Events of activities kha ran for worker nodes (scheduled, started, ended) and child workflows named after one, per worker. */
  eventsPerWorker: number;
  eventsPerNode: number;
}

/**
 * How big a deployment's history is: its events and encoded bytes, with its child workflows'. `fetch` returns the
 * events and the encoded size of one execution.
 */
export async function historySize(
  root: { events: Event[]; bytes: number },
  fetch: (workflowId: string, runId: string) => Promise<{ events: Event[]; bytes: number }>,
  nodes: { workers: string[]; all: string[] },
): Promise<HistorySize> {
  let executions = 0;
  let events = 0;
  let bytes = 0;
  let workerEvents = 0;
  const queue: Array<{ h: { events: Event[]; bytes: number }; worker: boolean }> = [{ h: root, worker: false }];
  for (let item = queue.shift(); item; item = queue.shift()) {
    const { h, worker } = item;
    executions++;
    events += h.events.length;
    bytes += h.bytes;
    if (worker) workerEvents += h.events.length;
    else {
      const workerActs = new Set(activityTimings(h.events).filter((a) => nodes.workers.includes(a.node)).map((a) => String(a.id)));
      for (const e of h.events) {
        const ref =
          e.activityTaskStartedEventAttributes?.scheduledEventId ??
          e.activityTaskCompletedEventAttributes?.scheduledEventId ??
          e.activityTaskFailedEventAttributes?.scheduledEventId ??
          e.activityTaskTimedOutEventAttributes?.scheduledEventId ??
          e.activityTaskCanceledEventAttributes?.scheduledEventId;
        if (workerActs.has(String(ref ?? e.eventId))) workerEvents++;
      }
    }
    for (const e of h.events) {
      const c = e.childWorkflowExecutionStartedEventAttributes?.workflowExecution;
      if (!c?.workflowId || !c.runId) continue;
      const isWorker = nodes.workers.some((w) => c.workflowId!.endsWith(w) || c.workflowId!.includes(`${w}-`) || c.workflowId!.includes(`/${w}`));
      queue.push({ h: await fetch(c.workflowId, c.runId), worker: isWorker });
    }
  }
  return {
    executions,
    events,
    bytes,
    eventsPerWorker: nodes.workers.length ? Math.round((workerEvents / nodes.workers.length) * 10) / 10 : 0,
    eventsPerNode: Math.round((events / Math.max(1, nodes.all.length)) * 10) / 10,
  };
}
