// What the day-2 commands (kha backup, kha certs) share: CLUSTER is a cluster file, or the name of a cluster
// kha deployed, whose spec then comes from its last deployment's input on the server (nothing else to keep).
import { existsSync } from 'node:fs';
import { defaultPayloadConverter } from '@temporalio/common';
import type { ClusterSpec } from '../spec/types';
import { deployWorkflowId } from '../workflows/definitions';
import { CliError, describeOrUndefined, type Target } from './client';
import type { Printer } from './follow';
import { loadOrReport } from './workflow-run';

/** The cluster named by `arg`, or undefined after printing why the file is invalid (exit 2). */
export async function day2Cluster(t: Target, arg: string, printer: Printer): Promise<ClusterSpec | undefined> {
  if (arg.includes('/') || /\.ya?ml$/.test(arg) || existsSync(arg)) return loadOrReport(arg, printer);
  const id = deployWorkflowId(arg);
  const d = await describeOrUndefined(t.client.workflow.getHandle(id));
  if (!d) throw new CliError(`no deployment of ${arg} on ${t.address} (workflow ${id}); name a cluster kha deployed, or give its cluster file`);
  const h = await t.connection.workflowService.getWorkflowExecutionHistory({ namespace: t.namespace, execution: { workflowId: d.workflowId, runId: d.runId }, maximumPageSize: 1 });
  const payload = h.history?.events?.[0]?.workflowExecutionStartedEventAttributes?.input?.payloads?.[0];
  const cluster = payload ? defaultPayloadConverter.fromPayload<{ cluster?: ClusterSpec }>(payload).cluster : undefined;
  if (!cluster?.spec) throw new CliError(`the deployment of ${arg} (${id}) has no cluster in its input; give the cluster file instead`);
  return cluster;
}
