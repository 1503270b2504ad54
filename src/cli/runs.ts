// The newest run of an operation of a cluster. A run started by hand has the operation's one workflow id; a run
// a schedule started has an id Temporal derives from the schedule's (it appends the time), so for operations
// that can be scheduled the server's list by the KhaCluster search attribute and the workflow type is asked too.
import type { WorkflowHandle } from '@temporalio/client';
import { patterns } from '../spec/schema';
import { describeOrUndefined, type Target } from './client';
import { operation, type OperationKind } from './operations';

export type Description = NonNullable<Awaited<ReturnType<typeof describeOrUndefined>>>;

export interface Run {
  handle: WorkflowHandle;
  d: Description;
}

/** Execution status filter: any run, or only running or only completed ones. */
export type RunFilter = 'any' | 'running' | 'completed';

const STATUS: Record<RunFilter, string | undefined> = { any: undefined, running: 'RUNNING', completed: 'COMPLETED' };
const QUERY_STATUS: Record<RunFilter, string> = { any: '', running: ` AND ExecutionStatus = 'Running'`, completed: ` AND ExecutionStatus = 'Completed'` };
/** Enough to find the newest: the server lists running runs first, then by close time, newest first. */
const PAGE = 20;

/** The most recently started run of `kind` for `cluster` that passes `only`, by hand or by a schedule. */
export async function latestRun(t: Target, kind: OperationKind, cluster: string, only: RunFilter = 'any'): Promise<Run | undefined> {
  const op = operation(kind);
  const want = STATUS[only];
  const candidates: Array<{ workflowId: string; runId: string; startTime: Date }> = [];
  // The one id of runs by hand, described directly: a run that just started may not be listed yet.
  const fixed = await describeOrUndefined(t.client.workflow.getHandle(op.workflowId(cluster)));
  if (fixed && (!want || fixed.status.name === want)) candidates.push(fixed);
  // A cluster name is a DNS label: anything else cannot have runs, and is never put into a query.
  if (op.scheduleAction && patterns.dnsLabel.test(cluster)) {
    const query = `KhaCluster = '${cluster}' AND WorkflowType = '${op.workflowType}'${QUERY_STATUS[only]}`;
    let n = 0;
    for await (const w of t.client.workflow.list({ query, pageSize: PAGE })) {
      if (!want || w.status.name === want) candidates.push(w);
      if (++n >= PAGE) break;
    }
  }
  const newest = candidates.sort((a, b) => b.startTime.getTime() - a.startTime.getTime())[0];
  if (!newest) return undefined;
  if (newest === fixed) return { handle: t.client.workflow.getHandle(fixed.workflowId, fixed.runId), d: fixed };
  const handle = t.client.workflow.getHandle(newest.workflowId, newest.runId);
  const d = await describeOrUndefined(handle);
  return d ? { handle, d } : undefined;
}
