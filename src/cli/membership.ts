// The nodes a cluster kha runs has now, as kha recorded them on the server: the input of the newest completed
// deployment, apply or upgrade of it (each checked that its file's nodes are the ones that run), or of a
// removal, minus the node it removed. A removal by name starts from this record itself, so the newest
// completed run is the whole story: a failed or refused run changes nothing here, and kha deploy --again
// with a file makes that file the record again.
import { defaultPayloadConverter } from '@temporalio/common';
import type { ClusterSpec } from '../spec/types';
import { patterns } from '../spec/schema';
import { applyWorkflowId, deployWorkflowId, removeWorkflowId, upgradeWorkflowId } from '../workflows/definitions';
import { CliError, describeOrUndefined, type Target } from './client';

/** The runs whose input records the nodes, and how each names what it did. */
const SOURCES: Array<{ id: (cluster: string) => string; what: (input: RunInput) => string }> = [
  { id: deployWorkflowId, what: () => 'the deployment' },
  { id: applyWorkflowId, what: () => 'kha apply' },
  { id: upgradeWorkflowId, what: () => 'kha upgrade' },
  { id: removeWorkflowId, what: (i) => `the removal of ${i.node}` },
];

interface RunInput {
  cluster?: ClusterSpec;
  /** kha remove's node. */
  node?: string;
}

interface RunRef {
  workflowId: string;
  runId: string;
  closeTime?: Date;
}

export interface RecordedCluster {
  cluster: ClusterSpec;
  /** "the removal of k8scp-01 (kha-remove-x, completed T)"; undefined when only a deployment that never completed exists. */
  from?: string;
}

/** The most runs listed: the server lists closed runs newest first, and only the newest is wanted. */
const PAGE = 20;

async function inputOf(t: Target, r: RunRef): Promise<RunInput | undefined> {
  const h = await t.connection.workflowService.getWorkflowExecutionHistory({ namespace: t.namespace, execution: { workflowId: r.workflowId, runId: r.runId }, maximumPageSize: 1 });
  const payload = h.history?.events?.[0]?.workflowExecutionStartedEventAttributes?.input?.payloads?.[0];
  return payload ? defaultPayloadConverter.fromPayload<RunInput>(payload) : undefined;
}

/** The input's cluster with the removed node taken out (a removal), or as given. */
function after(source: (typeof SOURCES)[number], input: RunInput): ClusterSpec | undefined {
  const c = input.cluster;
  if (!c?.spec || source.id !== removeWorkflowId) return c?.spec ? c : undefined;
  return { ...c, spec: { ...c.spec, nodes: c.spec.nodes.filter((n) => n.name !== input.node) } };
}

/** The cluster named `name` as kha recorded it; CliError when kha never deployed it on this server. */
export async function recordedCluster(t: Target, name: string): Promise<RecordedCluster> {
  const ids = SOURCES.map((s) => s.id(name));
  const done = new Map<string, RunRef>();
  // The newest run of each id, described directly: one that just completed may not be listed yet.
  const latest = await Promise.all(ids.map((id) => describeOrUndefined(t.client.workflow.getHandle(id))));
  for (const d of latest) if (d?.status.name === 'COMPLETED') done.set(d.runId, d);
  // Completed runs behind a newer failed one are only in the list. A name that is no DNS label is never queried.
  if (patterns.dnsLabel.test(name)) {
    const query = `WorkflowId IN (${ids.map((id) => `'${id}'`).join(', ')}) AND ExecutionStatus = 'Completed'`;
    let n = 0;
    for await (const w of t.client.workflow.list({ query, pageSize: PAGE })) {
      done.set(w.runId, w);
      if (++n >= PAGE) break;
    }
  }
  const newest = [...done.values()].sort((a, b) => (b.closeTime?.getTime() ?? 0) - (a.closeTime?.getTime() ?? 0))[0];
  if (newest) {
    const source = SOURCES[ids.indexOf(newest.workflowId)]!;
    const input = await inputOf(t, newest);
    const cluster = input && after(source, input);
    if (!cluster) throw new CliError(`${newest.workflowId} (run ${newest.runId}) has no cluster in its input; give the cluster file instead`);
    return { cluster, from: `${source.what(input!)} (${newest.workflowId}, completed ${newest.closeTime?.toISOString() ?? '?'})` };
  }
  // No run completed yet: the deployment's input, as it was started (a deployment still running or failed).
  const deploy = latest[0];
  if (!deploy) throw new CliError(`no deployment of ${name} on ${t.address} (workflow ${ids[0]}); name a cluster kha deployed, or give its cluster file`);
  const cluster = (await inputOf(t, deploy))?.cluster;
  if (!cluster?.spec) throw new CliError(`the deployment of ${name} (${ids[0]}) has no cluster in its input; give the cluster file instead`);
  return { cluster };
}
