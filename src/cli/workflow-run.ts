// What deploy and reset share: load the file (nothing contacted on error), start the workflow or attach to the
// running one, print its Web UI link, then follow it with a worker in place.
import { resolve } from 'node:path';
import { WorkflowExecutionAlreadyStartedError, WorkflowIdConflictPolicy, WorkflowIdReusePolicy, type WorkflowHandle } from '@temporalio/client';
import { formatIssue, formatWarning, loadClusterFile } from '../spec/load';
import { controlPlaneNodes, workerNodes, type ClusterSpec } from '../spec/types';
import { SA_CLUSTER, SA_PHASE, SA_STATE } from '../workflows/definitions';
import { describeOrUndefined, pollers, noWorkerMessage, workerFor, workflowUrl, type RunningWorker, type Target } from './client';
import { EXIT, follow, Printer } from './follow';
import { operation, type OperationKind } from './operations';
import { latestRun } from './runs';

/** Loads and validates a cluster file; errors are printed as file:line:col: field: message. */
export function loadOrReport(file: string, printer: Printer): ClusterSpec | undefined {
  const r = loadClusterFile(file);
  for (const w of r.warnings) printer.error(formatWarning(w), { severity: 'warning', issue: w });
  if (!r.cluster) {
    for (const e of r.errors) printer.error(formatIssue(e), { severity: 'error', issue: e });
    printer.error(`${file}: invalid (${r.errors.length} error${r.errors.length === 1 ? '' : 's'}); nothing was contacted. Fix the file (kha validate ${file}) and run again.`);
    return undefined;
  }
  return { ...r.cluster, source: resolve(file) };
}

export function clusterSummary(c: ClusterSpec): string {
  const cp = controlPlaneNodes(c).length;
  const w = workerNodes(c).length;
  return `Kubernetes ${c.spec.kubernetes.version}, ${cp} control-plane + ${w} worker node${w === 1 ? '' : 's'}, endpoint ${c.spec.controlPlaneEndpoint.vip}:${c.spec.controlPlaneEndpoint.port}`;
}

/** Markdown shown as the workflow's static details in the Web UI. */
export function clusterDetails(c: ClusterSpec, what: string): string {
  const rows = c.spec.nodes.map((n) => `| ${n.name} | ${n.role} | ${n.address} |`);
  return [
    `**${what}** of cluster **${c.name}** from \`${c.source}\``,
    '',
    `Kubernetes ${c.spec.kubernetes.version} · endpoint ${c.spec.controlPlaneEndpoint.vip}:${c.spec.controlPlaneEndpoint.port}`,
    '',
    '| node | role | address |',
    '|---|---|---|',
    ...rows,
  ].join('\n');
}

export interface StartPlan {
  /** The operation's row in the CLI table: workflow type, id and title come from there. */
  kind: OperationKind;
  cluster: ClusterSpec;
  args: unknown[];
  /** Start a new run even when the last one completed. */
  again: boolean;
}

export type Started = { handle: WorkflowHandle; attached: boolean } | { code: number };

export async function startOrAttach(t: Target, printer: Printer, plan: StartPlan): Promise<Started> {
  const { cluster } = plan;
  const op = operation(plan.kind);
  const workflowId = op.workflowId(cluster.name);
  const what = op.title;
  // A run of the cluster already going, by hand or by its schedule, is attached to: never two at once.
  const running = await latestRun(t, plan.kind, cluster.name, 'running');
  if (running) {
    const { d } = running;
    const by = d.workflowId === workflowId ? '' : ', by its schedule';
    printer.info(`already running: attaching to ${what} ${d.workflowId} (started ${d.startTime.toISOString()}${by})`, 'attached', { workflowId: d.workflowId, runId: d.runId });
    printUrl(t, printer, d.workflowId, d.runId);
    return { handle: running.handle, attached: true };
  }
  const existing = t.client.workflow.getHandle(workflowId);
  const prev = await describeOrUndefined(existing);
  if (prev?.status.name === 'COMPLETED' && !plan.again) {
    const result = await existing.result().catch(() => undefined);
    printer.info(
      `${what} of ${cluster.name} already finished (completed ${prev.closeTime?.toISOString() ?? ''}): ${JSON.stringify(result)}`,
      'finished',
      { workflowId, runId: prev.runId, result },
    );
    printer.info(`to run it again (finished steps are skipped on the hosts): kha ${plan.kind} ${cluster.source} --again`);
    printUrl(t, printer, workflowId, prev.runId);
    return { code: EXIT.ok };
  }
  if (prev) {
    printer.info(`the last ${what} of ${cluster.name} ended ${prev.status.name.toLowerCase()} at ${prev.closeTime?.toISOString() ?? '?'}; starting a new one`, 'previous', {
      workflowId,
      runId: prev.runId,
      status: prev.status.name,
    });
  }
  try {
    const handle = await t.client.workflow.start(op.workflowType, {
      workflowId,
      taskQueue: t.taskQueue,
      args: plan.args,
      workflowIdReusePolicy: WorkflowIdReusePolicy.ALLOW_DUPLICATE,
      workflowIdConflictPolicy: WorkflowIdConflictPolicy.FAIL,
      typedSearchAttributes: [
        { key: SA_CLUSTER, value: cluster.name },
        { key: SA_PHASE, value: 'none' },
        { key: SA_STATE, value: 'running' },
      ],
      staticSummary: `${plan.kind} ${cluster.name}: ${clusterSummary(cluster)}`,
      staticDetails: clusterDetails(cluster, plan.kind),
    });
    printer.info(`started ${what} ${workflowId}: ${cluster.name}, ${clusterSummary(cluster)}`, 'started', {
      workflowId,
      runId: handle.firstExecutionRunId,
      cluster: cluster.name,
    });
    printUrl(t, printer, workflowId, handle.firstExecutionRunId);
    return { handle, attached: false };
  } catch (e) {
    if (!(e instanceof WorkflowExecutionAlreadyStartedError)) throw e;
    // Started by someone else between our describe and our start.
    printer.info(`already running: attaching to ${what} ${workflowId}`, 'attached', { workflowId });
    printUrl(t, printer, workflowId);
    return { handle: t.client.workflow.getHandle(workflowId), attached: true };
  }
}

export function printUrl(t: Target, printer: Printer, workflowId: string, runId?: string): void {
  const url = workflowUrl(t, workflowId, runId);
  if (url) printer.info(`Web UI: ${url}`, 'web-ui', { url });
  else printer.info(`Web UI: unknown for ${t.address}; set TEMPORAL_UI_URL to print links`, 'web-ui', {});
}

export function announceServer(t: Target, printer: Printer): void {
  const e = t.embedded;
  if (!e) {
    printer.info(`Temporal: ${t.address} (namespace ${t.namespace}, task queue ${t.taskQueue}); workers: kha worker`, 'server', { address: t.address, namespace: t.namespace });
    return;
  }
  printer.info(
    `${e.started ? 'started' : 'using'} the embedded Temporal server at ${e.address} (Web UI ${e.uiUrl}, database ${e.dbFile})`,
    'server',
    { address: e.address, uiUrl: e.uiUrl, started: e.started, embedded: true },
  );
}

/**
 * Follows the workflow with a worker in place (in-process on the embedded server), or returns at once when
 * detached (then the background worker runs it on the embedded server). Ctrl-C stops following, not the work.
 * A worker the caller already started is used, and stopped at the end.
 */
export async function followOrDetach(
  t: Target,
  printer: Printer,
  handle: WorkflowHandle,
  o: { kind: OperationKind; cluster: string; detach: boolean; autoApprove?: boolean; worker?: RunningWorker },
): Promise<number> {
  if (o.detach) {
    await workerFor(t, 'detach');
    if (!t.embedded && (await pollers(t)).workflow === 0) printer.error(`warning: ${noWorkerMessage(t)}`);
    printer.info(`detached; follow it with: kha status ${o.cluster}`, 'detached', { workflowId: handle.workflowId });
    return EXIT.ok;
  }
  const worker = o.worker ?? (await workerFor(t, 'follow'));
  const ac = new AbortController();
  const onSig = () => ac.abort();
  process.once('SIGINT', onSig);
  process.once('SIGTERM', onSig);
  try {
    return await follow({ target: t, handle, kind: o.kind, cluster: o.cluster, printer, autoApprove: o.autoApprove, signal: ac.signal });
  } finally {
    process.off('SIGINT', onSig);
    process.off('SIGTERM', onSig);
    await worker?.stop();
  }
}
