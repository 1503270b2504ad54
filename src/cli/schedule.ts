// `kha schedule backup|certs-check CLUSTER --every D`: a Temporal Schedule (nothing on any host: no cron) whose
// action starts the operation's workflow for the cluster; `kha schedule list [CLUSTER]`, `kha schedule delete`.
// The actions come from the CLI table (operations with a scheduleAction); the spec is taken like kha backup's.
import { ScheduleAlreadyRunning, ScheduleNotFoundError, ScheduleOverlapPolicy, type ScheduleDescription, type ScheduleHandle } from '@temporalio/client';
import type { ClusterSpec } from '../spec/types';
import { SA_CLUSTER, SA_PHASE, SA_STATE } from '../workflows/definitions';
import { DEFAULT_BACKUP_RETAIN } from '../activities/day2';
import { guarded, parseArgs } from './args';
import { retainOption } from './backup';
import { CliError, connectTarget, describeOrUndefined, noWorkerMessage, pollers, workerFor, type Target } from './client';
import { day2Cluster } from './day2-target';
import { recordedCluster } from './membership';
import { EXIT, outputMode, Printer, rootMessage } from './follow';
import { OPERATION_KINDS, operation, type OperationKind } from './operations';
import { didYouMean } from './suggest';
import { announceServer, clusterDetails, clusterSummary } from './workflow-run';

/** The schedulable operations by action name: backup -> backup, certs-check -> certs. */
const ACTIONS = new Map<string, OperationKind>(OPERATION_KINDS.flatMap((k) => (operation(k).scheduleAction ? [[operation(k).scheduleAction!, k] as const] : [])));
const ACTION_LIST = [...ACTIONS.keys()].join('|');
/** Shorter intervals are refused: a snapshot or a check on every control plane is not a heartbeat. */
export const MIN_EVERY_MS = 5 * 60_000;
const MAX_EVERY_MS = 366 * 86_400_000;
const PREFIX = 'kha-schedule-';

const USAGE = `usage: kha schedule ${ACTION_LIST} CLUSTER --every D [--retain N] [--json]
       kha schedule list [CLUSTER] [--json]
       kha schedule delete CLUSTER ${ACTION_LIST} [--json]

Creates a Temporal Schedule that starts kha's backup (workflow backupCluster) or certificate check
(certsCluster) of CLUSTER every D; nothing is installed on any host. D is a duration of days, hours and
minutes: 30m, 6h, 1d, 1d12h (at least 5m, at most 366d); runs fall on multiples of D since the Unix epoch (UTC).
CLUSTER is the name of a cluster kha deployed (its nodes as kha recorded them, as for kha backup) or a
cluster file; the spec is kept in the schedule (kha apply and kha remove update it when the run they
follow ends well; otherwise run this command again after the cluster changed). Running it again for an existing schedule updates its interval and options. A run never starts
while the last one of the schedule still runs (it is skipped), and a scheduled backup refuses beside a
deployment, a reset or a backup by hand, like kha backup. kha status CLUSTER --backup / --certs shows the
newest run, by hand or scheduled; kha retry / kha abort answer a scheduled run that waits.
  --every D    the interval (required to create or update)
  --retain N   backup: keep the newest N snapshots (1-1000, default ${DEFAULT_BACKUP_RETAIN})
  list         every kha schedule (of CLUSTER): action, interval, next run, last run and its result
  delete       removes the schedule; a run it started that still runs goes on
Exit status: 0 done, 1 no server or no such schedule, 2 bad usage or invalid file.
`;

export function scheduleId(action: string, cluster: string): string {
  return `${PREFIX}${action}-${cluster}`;
}

/** Milliseconds of a duration like 30m, 6h, 1d, 1d12h; a usage error (exit 2) otherwise. */
export function parseEvery(v: string | undefined, usage = USAGE): number {
  if (v === undefined) throw new CliError(`--every D is required (a duration such as 6h or 1d)\n${usage}`, EXIT.usage);
  const m = /^(?:(\d{1,4})d)?(?:(\d{1,5})h)?(?:(\d{1,6})m)?$/.exec(v);
  if (!m || v === '') throw new CliError(`--every ${v}: not a duration of days, hours and minutes such as 30m, 6h, 1d or 1d12h\n${usage}`, EXIT.usage);
  const ms = (Number(m[1] ?? 0) * 1440 + Number(m[2] ?? 0) * 60 + Number(m[3] ?? 0)) * 60_000;
  if (ms < MIN_EVERY_MS) throw new CliError(`--every ${v}: at least ${formatEvery(MIN_EVERY_MS)} between runs`, EXIT.usage);
  if (ms > MAX_EVERY_MS) throw new CliError(`--every ${v}: at most ${formatEvery(MAX_EVERY_MS)} between runs`, EXIT.usage);
  return ms;
}

/** 1d12h, 6h, 30m: the form --every takes. */
export function formatEvery(ms: number): string {
  const min = Math.round(ms / 60_000);
  const d = Math.floor(min / 1440);
  const h = Math.floor((min % 1440) / 60);
  const m = min % 60;
  const s = `${d ? `${d}d` : ''}${h ? `${h}h` : ''}${m ? `${m}m` : ''}`;
  return s || `${Math.round(ms / 1000)}s`;
}

function everyOf(d: Pick<ScheduleDescription, 'spec'>): number | undefined {
  return d.spec.intervals?.[0]?.every;
}

/** What the Web UI shows of a scheduled run: the operation, interval and nodes. */
function actionTexts(kind: OperationKind, cluster: ClusterSpec, every: number | undefined): { staticSummary: string; staticDetails: string } {
  return {
    staticSummary: `scheduled ${kind} ${cluster.name}${every ? ` every ${formatEvery(every)}` : ''}: ${clusterSummary(cluster)}`,
    staticDetails: clusterDetails(cluster, `scheduled ${kind}`),
  };
}

async function describeSchedule(h: ScheduleHandle): Promise<ScheduleDescription | undefined> {
  try {
    return await h.describe();
  } catch (e) {
    if (e instanceof ScheduleNotFoundError) return undefined;
    throw e;
  }
}

function scheduleUrl(t: Target, id: string): string | undefined {
  return t.uiUrl ? `${t.uiUrl}/namespaces/${encodeURIComponent(t.namespace)}/schedules/${encodeURIComponent(id)}` : undefined;
}

async function create(t: Target, printer: Printer, action: string, kind: OperationKind, cluster: ClusterSpec, every: number, input: unknown): Promise<void> {
  const op = operation(kind);
  const id = scheduleId(action, cluster.name);
  const note = `kha schedule ${action} ${cluster.name} --every ${formatEvery(every)}`;
  const body = {
    spec: { intervals: [{ every }] },
    action: {
      type: 'startWorkflow' as const,
      workflowType: op.workflowType,
      // Temporal appends the time of each run to this id; kha finds the runs by KhaCluster and type.
      workflowId: id,
      taskQueue: t.taskQueue,
      args: [input],
      typedSearchAttributes: [
        { key: SA_CLUSTER, value: cluster.name },
        { key: SA_PHASE, value: 'none' },
        { key: SA_STATE, value: 'running' },
      ],
      ...actionTexts(kind, cluster, every),
    },
    // Never two runs of a schedule at once; a run missed while the server was down is made up within one interval.
    policies: { overlap: ScheduleOverlapPolicy.SKIP, catchupWindow: every, pauseOnFailure: false },
    state: { note, paused: false },
  };
  const handle = t.client.schedule.getHandle(id);
  let was: number | undefined;
  try {
    await t.client.schedule.create({ scheduleId: id, ...body, memo: { cluster: cluster.name, action }, typedSearchAttributes: [{ key: SA_CLUSTER, value: cluster.name }] });
  } catch (e) {
    if (!(e instanceof ScheduleAlreadyRunning)) throw e;
    await handle.update((prev) => {
      was = everyOf(prev);
      return { ...body, typedSearchAttributes: prev.typedSearchAttributes };
    });
  }
  const d = await handle.describe();
  const next = d.info.nextActionTimes[0]?.toISOString();
  const fields = { scheduleId: id, cluster: cluster.name, action, every: formatEvery(every), nextRun: next, workflowType: op.workflowType };
  if (was === undefined) printer.info(`created schedule ${id}: ${action} of ${cluster.name} every ${formatEvery(every)}, next run ${next ?? '-'}`, 'schedule-created', fields);
  else
    printer.info(
      `updated schedule ${id}: ${action} of ${cluster.name} every ${formatEvery(every)} (${was === every ? 'unchanged' : `was every ${formatEvery(was)}`}), next run ${next ?? '-'}`,
      'schedule-updated',
      { ...fields, was: formatEvery(was) },
    );
  const url = scheduleUrl(t, id);
  if (url) printer.info(`Web UI: ${url}`, 'web-ui', { url });
  // Scheduled runs need a worker: on the embedded server the background one (it runs until kha server --stop).
  if (t.embedded) {
    await workerFor(t, 'detach');
    printer.info('the background worker of the embedded server runs the scheduled runs while it runs (kha server --status)');
  } else if ((await pollers(t).catch(() => ({ workflow: 0 }))).workflow === 0) {
    printer.error(`warning: ${noWorkerMessage(t)}; scheduled runs wait for one`);
  }
}

/**
 * After kha apply or kha remove changed the nodes of `cluster`: each of its schedules gets the nodes kha recorded
 * now, so a scheduled check never goes to a removed node nor misses an added one. Returns the schedules updated.
 */
export async function refreshSchedules(t: Target, printer: Printer, cluster: string): Promise<string[]> {
  const updated: string[] = [];
  let now: ClusterSpec | undefined;
  for (const [action, kind] of ACTIONS) {
    const id = scheduleId(action, cluster);
    const h = t.client.schedule.getHandle(id);
    if (!(await describeSchedule(h))) continue;
    now ??= (await recordedCluster(t, cluster)).cluster;
    const spec = now;
    await h.update((prev) => {
      const input = { ...(prev.action.args?.[0] as object), cluster: spec };
      return { ...prev, action: { ...prev.action, args: [input], ...actionTexts(kind, spec, everyOf(prev)) } };
    });
    printer.info(`updated schedule ${id}: its runs use the nodes kha recorded now (${spec.spec.nodes.map((n) => n.name).join(', ')})`, 'schedule-nodes', { scheduleId: id, nodes: spec.spec.nodes.map((n) => n.name) });
    updated.push(id);
  }
  return updated;
}

export interface ScheduleRow {
  scheduleId: string;
  cluster: string;
  action: string;
  every?: string;
  nextRun?: string;
  lastRun?: string;
  lastWorkflowId?: string;
  /** running, completed, failed (with the reason), terminated... of the last run; none before the first. */
  result: string;
  paused: boolean;
}

async function row(t: Target, id: string, d: ScheduleDescription): Promise<ScheduleRow> {
  const memo = (d.memo ?? {}) as { cluster?: string; action?: string };
  const last = d.info.recentActions.at(-1);
  let result = 'none yet';
  if (last) {
    const h = t.client.workflow.getHandle(last.action.workflow.workflowId, last.action.workflow.firstExecutionRunId);
    const w = await describeOrUndefined(h);
    result = w ? w.status.name.toLowerCase() : 'unknown';
    if (w?.status.name === 'FAILED') result = `failed: ${await h.result().then(() => '', (e) => rootMessage(e))}`;
  }
  const every = everyOf(d);
  return {
    scheduleId: id,
    cluster: memo.cluster ?? '?',
    action: memo.action ?? '?',
    every: every === undefined ? undefined : formatEvery(every),
    nextRun: d.info.nextActionTimes[0]?.toISOString(),
    lastRun: last?.takenAt.toISOString(),
    lastWorkflowId: last?.action.workflow.workflowId,
    result,
    paused: d.state.paused,
  };
}

export function scheduleTable(rows: ScheduleRow[]): string[] {
  const cut = (s: string) => (s.length > 100 ? `${s.slice(0, 99)}…` : s);
  const all = [
    ['SCHEDULE', 'ACTION', 'EVERY', 'NEXT RUN', 'LAST RUN', 'RESULT'],
    ...rows.map((r) => [r.scheduleId, r.action, r.every ?? '-', r.paused ? 'paused' : (r.nextRun ?? '-'), r.lastRun ?? '-', cut(r.result)]),
  ];
  const width = all[0]!.map((_, i) => Math.max(...all.map((x) => x[i]!.length)));
  return all.map((x) => x.map((v, i) => v.padEnd(width[i]!)).join('  ').trimEnd());
}

async function list(t: Target, printer: Printer, cluster: string | undefined, json: boolean): Promise<number> {
  const found: Array<[string, ScheduleDescription]> = [];
  if (cluster) {
    // The ids are known: described directly (the list of schedules follows a change only after a moment).
    for (const action of ACTIONS.keys()) {
      const id = scheduleId(action, cluster);
      const d = await describeSchedule(t.client.schedule.getHandle(id));
      if (d) found.push([id, d]);
    }
  } else {
    for await (const s of t.client.schedule.list()) {
      if (!s.scheduleId.startsWith(PREFIX)) continue;
      const d = await describeSchedule(t.client.schedule.getHandle(s.scheduleId));
      if (d) found.push([s.scheduleId, d]);
    }
    found.sort((a, b) => a[0].localeCompare(b[0]));
  }
  const rows = await Promise.all(found.map(([id, d]) => row(t, id, d)));
  if (json) {
    printer.event('schedules', { schedules: rows });
    return EXIT.ok;
  }
  if (!rows.length) {
    printer.info(`no kha schedules${cluster ? ` of ${cluster}` : ''} on ${t.address} (namespace ${t.namespace}); create one with: kha schedule backup CLUSTER --every 1d`);
    return EXIT.ok;
  }
  for (const line of scheduleTable(rows)) printer.raw(`${line}\n`);
  return EXIT.ok;
}

async function remove(t: Target, printer: Printer, cluster: string, action: string): Promise<number> {
  const id = scheduleId(action, cluster);
  try {
    await t.client.schedule.getHandle(id).delete();
  } catch (e) {
    if (e instanceof ScheduleNotFoundError || (e as { code?: number }).code === 5) throw new CliError(`no schedule ${id} on ${t.address} (namespace ${t.namespace}); see kha schedule list`);
    throw e;
  }
  printer.info(`deleted schedule ${id}; a run it started that still runs goes on (kha status ${cluster} --${ACTIONS.get(action)})`, 'schedule-deleted', { scheduleId: id, cluster, action });
  return EXIT.ok;
}

function actionOf(v: string | undefined): string {
  if (v && ACTIONS.has(v)) return v;
  throw new CliError(`${v ? `unknown action "${v}"${didYouMean(v, [...ACTIONS.keys()])}` : 'which action?'}: one of ${[...ACTIONS.keys()].join(', ')}\n${USAGE}`, EXIT.usage);
}

export async function run(argv: string[]): Promise<number> {
  return guarded('schedule', async () => {
    if (argv.includes('-h') || argv.includes('--help')) {
      process.stdout.write(USAGE);
      return EXIT.ok;
    }
    const [sub, ...rest] = argv;
    const subs = [...ACTIONS.keys(), 'list', 'delete'];
    if (!sub || !subs.includes(sub)) {
      throw new CliError(`${sub ? `unknown subcommand "${sub}"${didYouMean(sub, subs)}` : 'what to do?'}: one of ${subs.join(', ')}\n${USAGE}`, EXIT.usage);
    }
    const isBackup = ACTIONS.get(sub) === 'backup';
    const a = parseArgs(rest, ['--json'], ACTIONS.has(sub) ? ['--every', ...(isBackup ? ['--retain'] : [])] : [], USAGE);
    const printer = new Printer(outputMode(a.flags.has('--json')));
    // Everything the command line can get wrong is refused here, before any server is contacted.
    if (sub === 'list') {
      if (a.positionals.length > 1) throw new CliError(`expected at most one cluster name, got ${a.positionals.length}\n${USAGE}`, EXIT.usage);
      const t = await connectTarget({ startEmbedded: false });
      try {
        return await list(t, printer, a.positionals[0], a.flags.has('--json'));
      } finally {
        await t.close();
      }
    }
    if (sub === 'delete') {
      if (a.positionals.length !== 2) throw new CliError(`expected CLUSTER and ${ACTION_LIST}\n${USAGE}`, EXIT.usage);
      const action = actionOf(a.positionals[1]);
      const t = await connectTarget({ startEmbedded: false });
      try {
        return await remove(t, printer, a.positionals[0]!, action);
      } finally {
        await t.close();
      }
    }
    if (a.positionals.length !== 1) throw new CliError(`expected one cluster name or file, got ${a.positionals.length}\n${USAGE}`, EXIT.usage);
    const every = parseEvery(a.values.get('--every'));
    const retain = isBackup ? retainOption(a.values.get('--retain'), USAGE) : undefined;
    const kind = ACTIONS.get(sub)!;
    const t = await connectTarget({ startEmbedded: true });
    try {
      announceServer(t, printer);
      const cluster = await day2Cluster(t, a.positionals[0]!, printer);
      if (!cluster) return EXIT.usage;
      await create(t, printer, sub, kind, cluster, every, isBackup ? { cluster, retain } : { cluster });
      return EXIT.ok;
    } finally {
      await t.close();
    }
  });
}
