// `kha status CLUSTER`: the deployment's status query as a table; when no worker answers, what the server
// itself knows (execution status, search attributes, pending activities with their last failure).
import { defaultPayloadConverter, type WorkflowHandle } from '@temporalio/client';
import { SA_CLUSTER, SA_PHASE, SA_STATE, type DeploymentStatus, type StatusRequest } from '../workflows/definitions';
import { SUMMARY_ABOVE } from '../workflows/status-view';
import { guarded, parseArgs } from './args';
import type { CertsResult } from '../workflows/certs-cluster';
import { connectTarget, noWorkerMessage, pollers, workflowUrl, type Target } from './client';
import { EXIT, queryStatus, rootMessage } from './follow';
import { decisionText, statusTable } from './output';
import { OPERATION_KINDS, operation, type OperationKind } from './operations';
import { latestRun, type Description } from './runs';

// The first operation of the table is shown by default; every other one has a flag named after it.
const [DEFAULT_KIND, ...OTHER_KINDS] = OPERATION_KINDS as [OperationKind, ...OperationKind[]];
const FLAGS = OTHER_KINDS.map((k) => `--${k}`);

const USAGE = `usage: kha status CLUSTER [--json] [--node NAME] [${FLAGS.join(' | ')}]

Shows the ${operation(DEFAULT_KIND).title} of CLUSTER (${OTHER_KINDS.map((k) => `its ${operation(k).title}, with --${k}`).join('; ')}): every phase
and node with state, times, attempts and last error, and what it waits for. A phase of more than ${SUMMARY_ABOVE} nodes
shows a count per state and only the nodes worth a line (waiting, failed, the longest running, retried);
--node NAME adds that node's row in every phase. Exit status: 0 shown, 1 no such
${operation(DEFAULT_KIND).title} or no server.
`;

export interface CertWarnings {
  /** The certificate check they come from, and when kubeadm looked. */
  workflowId: string;
  checkedAt: string;
  warnings: string[];
}

/** The warnings of the cluster's latest completed certificate check, when it had any. */
async function certWarnings(t: Target, cluster: string): Promise<CertWarnings | undefined> {
  const run = await latestRun(t, 'certs', cluster, 'completed');
  if (!run) return undefined;
  const r = (await run.handle.result().catch(() => undefined)) as CertsResult | undefined;
  if (!r?.warnings?.length) return undefined;
  return { workflowId: run.d.workflowId, checkedAt: r.checkedAt, warnings: r.warnings };
}

export function certWarningLines(cluster: string, c: CertWarnings): string[] {
  return [
    ...c.warnings.map((w) => `warning: certificate expires soon: ${w}`),
    `  (certificate check of ${cluster} at ${c.checkedAt}, ${c.workflowId}; kha certs ${cluster} checks again)`,
  ];
}

export interface PendingActivity {
  activity: string;
  /** The activity's summary ("phase · node"), from the history. */
  summary?: string;
  state: string;
  attempt: number;
  maximumAttempts?: number;
  lastFailure?: string;
  lastHeartbeat?: string;
  heartbeat?: unknown;
  nextAttempt?: string;
}

export interface ServerView {
  workflowId: string;
  runId: string;
  status: string;
  startTime: string;
  closeTime?: string;
  searchAttributes: { cluster?: string; phase?: string; state?: string };
  pendingActivities: PendingActivity[];
  historyLength: number;
  result?: unknown;
  failure?: string;
}

function ts(t: { seconds?: unknown; nanos?: number | null } | null | undefined): string | undefined {
  if (!t || t.seconds === undefined || t.seconds === null) return undefined;
  return new Date(Number(t.seconds) * 1000 + Math.floor((t.nanos ?? 0) / 1e6)).toISOString();
}

/** Activity summaries by activity id, from the scheduled events of the history. */
async function activitySummaries(handle: WorkflowHandle): Promise<Map<string, string>> {
  const out = new Map<string, string>();
  try {
    const h = await handle.fetchHistory();
    for (const e of h.events ?? []) {
      const id = e.activityTaskScheduledEventAttributes?.activityId;
      const p = e.userMetadata?.summary;
      if (id && p) out.set(id, String(defaultPayloadConverter.fromPayload(p)));
    }
  } catch {
    /* summaries are a nicety */
  }
  return out;
}

/** What the server knows without a worker. */
export async function serverView(handle: WorkflowHandle, d: Description): Promise<ServerView> {
  const summaries = await activitySummaries(handle);
  const pending: PendingActivity[] = (d.raw.pendingActivities ?? []).map((a) => {
    let heartbeat: unknown;
    const hp = a.heartbeatDetails?.payloads?.[0];
    if (hp) {
      try {
        heartbeat = defaultPayloadConverter.fromPayload(hp);
      } catch {
        heartbeat = undefined;
      }
    }
    const stateNames = ['unspecified', 'scheduled', 'started', 'cancel-requested', 'paused', 'pause-requested'];
    return {
      activity: a.activityType?.name ?? '?',
      summary: a.activityId ? summaries.get(a.activityId) : undefined,
      state: stateNames[Number(a.state ?? 0)] ?? String(a.state),
      attempt: a.attempt ?? 0,
      maximumAttempts: a.maximumAttempts || undefined,
      lastFailure: a.lastFailure ? rootFailure(a.lastFailure) : undefined,
      lastHeartbeat: ts(a.lastHeartbeatTime),
      heartbeat,
      nextAttempt: ts(a.nextAttemptScheduleTime),
    };
  });
  const view: ServerView = {
    workflowId: d.workflowId,
    runId: d.runId,
    status: d.status.name,
    startTime: d.startTime.toISOString(),
    closeTime: d.closeTime?.toISOString(),
    searchAttributes: {
      cluster: d.typedSearchAttributes.get(SA_CLUSTER),
      phase: d.typedSearchAttributes.get(SA_PHASE),
      state: d.typedSearchAttributes.get(SA_STATE),
    },
    pendingActivities: pending,
    historyLength: d.historyLength,
  };
  if (d.status.name === 'COMPLETED') view.result = await handle.result().catch(() => undefined);
  else if (d.status.name === 'FAILED') await handle.result().catch((e) => (view.failure = rootMessage(e)));
  return view;
}

function rootFailure(f: { message?: string | null; cause?: unknown }): string {
  let cur = f;
  while (cur.cause) cur = cur.cause as typeof f;
  return cur.message ?? f.message ?? '';
}

export function serverViewLines(v: ServerView): string[] {
  const sa = v.searchAttributes;
  const lines = [
    `${v.workflowId}: ${v.status} (started ${v.startTime}${v.closeTime ? `, closed ${v.closeTime}` : ''}, ${v.historyLength} history events)`,
    `search attributes: KhaCluster=${sa.cluster ?? '-'} KhaPhase=${sa.phase ?? '-'} KhaState=${sa.state ?? '-'}`,
  ];
  if (v.pendingActivities.length) {
    lines.push('pending activities:');
    for (const a of v.pendingActivities) {
      lines.push(`  ${a.summary ?? a.activity} (${a.activity}): ${a.state}, attempt ${a.attempt}${a.maximumAttempts ? `/${a.maximumAttempts}` : ''}${a.nextAttempt ? `, next attempt ${a.nextAttempt}` : ''}`);
      if (a.lastFailure) lines.push(`      last failure: ${a.lastFailure}`);
      if (a.lastHeartbeat) lines.push(`      last heartbeat ${a.lastHeartbeat}${a.heartbeat !== undefined ? `: ${JSON.stringify(a.heartbeat).slice(0, 300)}` : ''}`);
    }
  } else if (v.status === 'RUNNING') {
    lines.push('pending activities: none');
  }
  if (v.result !== undefined) lines.push(`result: ${JSON.stringify(v.result)}`);
  if (v.failure) lines.push(`failure: ${v.failure}`);
  return lines;
}

export async function showStatus(
  t: Target,
  handle: WorkflowHandle,
  d: Description,
  json: boolean,
  extra: Record<string, unknown> = {},
  req?: StatusRequest,
): Promise<{ status?: DeploymentStatus; view?: ServerView; worker: boolean }> {
  const p = await pollers(t).catch(() => ({ workflow: 0, activity: 0 }));
  const status = p.workflow > 0 ? await queryStatus(t, handle, 5000, req) : undefined;
  const url = workflowUrl(t, d.workflowId, d.runId);
  if (status) {
    if (json) process.stdout.write(`${JSON.stringify({ workflowId: d.workflowId, runId: d.runId, execution: d.status.name, url, status, ...extra })}\n`);
    else {
      const lines = statusTable(status, { allNodes: true, color: process.stdout.isTTY === true, moreHint: ` (kha status ${status.cluster} --node NAME shows one)` });
      process.stdout.write(`${lines.join('\n')}\n`);
      const dec = decisionText(status);
      if (dec.length && d.status.name === 'RUNNING') process.stdout.write(`${dec.join('\n')}\n`);
      if (url) process.stdout.write(`Web UI: ${url}\n`);
    }
    return { status, worker: true };
  }
  const view = await serverView(handle, d);
  const why = p.workflow === 0 ? `no worker is running: ${noWorkerMessage(t)}` : `no worker answered the status query within 5 s (${noWorkerMessage(t)})`;
  if (json) {
    process.stdout.write(`${JSON.stringify({ workflowId: d.workflowId, runId: d.runId, execution: d.status.name, url, worker: false, reason: why, server: view, ...extra })}\n`);
  } else {
    process.stdout.write(`${why}\nwhat the server knows:\n${serverViewLines(view).join('\n')}\n`);
    if (url) process.stdout.write(`Web UI: ${url}\n`);
  }
  return { view, worker: false };
}

export async function run(argv: string[]): Promise<number> {
  return guarded('status', async () => {
    if (argv.includes('-h') || argv.includes('--help')) {
      process.stdout.write(USAGE);
      return EXIT.ok;
    }
    const a = parseArgs(argv, ['--json', ...FLAGS], ['--node'], USAGE);
    if (a.positionals.length !== 1) {
      process.stderr.write(`kha status: expected one cluster name\n${USAGE}`);
      return EXIT.usage;
    }
    const cluster = a.positionals[0]!;
    const chosen = OTHER_KINDS.filter((k) => a.flags.has(`--${k}`));
    if (chosen.length > 1) {
      process.stderr.write(`kha status: ${chosen.map((k) => `--${k}`).join(' and ')} exclude each other\n${USAGE}`);
      return EXIT.usage;
    }
    const kind = chosen[0] ?? DEFAULT_KIND;
    const op = operation(kind);
    const json = a.flags.has('--json');
    const t = await connectTarget({ startEmbedded: false });
    try {
      // The newest run, whether started by hand or by a schedule (kha schedule).
      const found = await latestRun(t, kind, cluster);
      if (!found) {
        process.stderr.write(`kha status: no ${op.title} of ${cluster} on ${t.address} (namespace ${t.namespace}); start one with: kha ${kind === DEFAULT_KIND ? 'deploy FILE' : `${kind} ${cluster}`}\n`);
        return EXIT.failed;
      }
      // The deployment view also carries the warnings of the cluster's latest certificate check.
      // A lookup that fails (say, a server without kha's search attributes) must not hide the deployment.
      const certs = kind === DEFAULT_KIND ? await certWarnings(t, cluster).catch(() => undefined) : undefined;
      const node = a.values.get('--node');
      await showStatus(t, found.handle, found.d, json, certs && { certificateWarnings: certs }, node ? { nodes: [node] } : undefined);
      if (certs && !json) for (const line of certWarningLines(cluster, certs)) process.stdout.write(`${line}\n`);
      return EXIT.ok;
    } finally {
      await t.close();
    }
  });
}
