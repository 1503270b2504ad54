// The fast tier for `kha schedule`: the real CLI against the test dev server (TEMPORAL_ADDRESS), the real
// workflows with mock activities (no lab). A schedule created through the CLI, triggered with Temporal's
// schedule trigger (no waiting for its time): the backup it starts, kha status --backup and kha retry finding
// that run, ClusterBusy beside a deployment and beside a backup by hand, the interval updated in place, list
// and delete; bad intervals and actions refused with exit 2 before any server is contacted; the warnings of
// a scheduled certificate check in kha status CLUSTER and in the current details the Web UI shows (in chromium).
import { after, before, describe, test } from 'node:test';
import assert from 'node:assert/strict';
import { mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import type { TestWorkflowEnvironment } from '@temporalio/testing';
import { ScheduleNotFoundError, ScheduleOverlapPolicy, type WorkflowHandle } from '@temporalio/client';
import { mockCluster, startMockEnv, type MockHosts } from './helpers/mock-hosts';
import { scheduledActivities, waitForState, failure } from './helpers/workflow';
import { cliEnv, freePort, kha } from './cli-run';
import { launchBrowser, readFrameTable } from './helpers/browser';
import { backupWorkflowId, deployWorkflowId, statusQuery, type DeploymentStatus } from '../src/workflows/definitions';
import type { BackupResult } from '../src/workflows/backup-cluster';
import type { CertsResult } from '../src/workflows/certs-cluster';
import type { ClusterSpec } from '../src/spec/types';

const QUEUE = 'engine-schedule';
const HOUR = 3_600_000;
let mock: Awaited<ReturnType<typeof startMockEnv>> | undefined;
let env: TestWorkflowEnvironment;
let hosts: MockHosts;
let cli: NodeJS.ProcessEnv;
let uiPort = 0;
const dir = mkdtempSync(join(tmpdir(), 'kha-schedule-'));
const c: ClusterSpec = mockCluster('sched', 3, 1);

const esc = (s: string) => s.replace(/[.*+?^${}()|[\]\\/]/g, '\\$&');

/** Triggers the schedule now and returns the handle of the run it started (the newest of its recent actions). */
async function trigger(id: string): Promise<WorkflowHandle> {
  const h = env.client.schedule.getHandle(id);
  const before = (await h.describe()).info.numActionsTaken;
  await h.trigger();
  for (let i = 0; ; i++) {
    const d = await h.describe();
    if (d.info.numActionsTaken > before && d.info.recentActions.length) {
      const w = d.info.recentActions.at(-1)!.action.workflow;
      return env.client.workflow.getHandle(w.workflowId, w.firstExecutionRunId);
    }
    assert.ok(i < 300, `schedule ${id} took no action after its trigger`);
    await new Promise((r) => setTimeout(r, 100));
  }
}


/** Until the server's workflow list has the run (status and the decision commands find runs through it). */
async function listed(h: WorkflowHandle, status: string): Promise<void> {
  for (let i = 0; ; i++) {
    for await (const w of env.client.workflow.list({ query: `WorkflowId = '${h.workflowId}' AND ExecutionStatus = '${status}'` })) if (w.workflowId === h.workflowId) return;
    assert.ok(i < 300, `${h.workflowId} never listed as ${status}`);
    await new Promise((r) => setTimeout(r, 100));
  }
}

async function statusJson(args: string[]): Promise<{ workflowId: string; status: DeploymentStatus; certificateWarnings?: { workflowId: string; checkedAt: string; warnings: string[] } }> {
  const r = await kha(['status', ...args, '--json'], cli);
  assert.equal(r.code, 0, r.stdout + r.stderr);
  return JSON.parse(r.stdout);
}

describe('kha schedule on the dev server, with mock activities', () => {
  before(async () => {
    uiPort = await freePort();
    mock = await startMockEnv(QUEUE, { uiPort });
    ({ env, hosts } = mock);
    cli = cliEnv({ TEMPORAL_ADDRESS: env.address, TEMPORAL_NAMESPACE: env.namespace ?? 'default', KHA_TASK_QUEUE: QUEUE, XDG_STATE_HOME: join(dir, 'state') });
    // The cluster kha "deployed": the schedule takes its spec from this deployment's input, like kha backup.
    const dep = await env.client.workflow.start('deployCluster', { taskQueue: QUEUE, workflowId: deployWorkflowId(c.name), args: [{ cluster: c, options: { kubeconfigPath: join(dir, 'sched.conf'), autoApprove: true } }] });
    await dep.signal('approveWorkersSignal', 'test');
    await dep.result();
  });
  after(async () => {
    await mock?.close();
    rmSync(dir, { recursive: true, force: true });
  });

  test('bad intervals, unknown actions and bad options: exit 2 with the reason, before any server is contacted', async () => {
    // Nothing listens there: a command that tried the server would fail with exit 1 instead.
    const nowhere = cliEnv({ TEMPORAL_ADDRESS: `127.0.0.1:${await freePort()}`, XDG_STATE_HOME: join(dir, 'nowhere') });
    const cases: Array<[string[], RegExp]> = [
      [['schedule', 'backup', 'sched', '--every', '4m'], /--every 4m: at least 5m between runs/],
      [['schedule', 'backup', 'sched', '--every', '0h'], /--every 0h: at least 5m between runs/],
      [['schedule', 'backup', 'sched', '--every', '6x'], /--every 6x: not a duration of days, hours and minutes such as 30m, 6h, 1d or 1d12h/],
      [['schedule', 'backup', 'sched', '--every', '1h', '--every', '1.5h'], /--every 1\.5h: not a duration/],
      [['schedule', 'certs-check', 'sched', '--every', '400d'], /--every 400d: at most 366d between runs/],
      [['schedule', 'backup', 'sched'], /--every D is required/],
      [['schedule', 'backup', 'sched', '--every', '1h', '--retain', '0'], /--retain 0: not an integer from 1 to 1000/],
      [['schedule', 'certs-check', 'sched', '--every', '1h', '--retain', '3'], /unknown option "--retain"/],
      [['schedule', 'backups', 'sched', '--every', '1h'], /unknown subcommand "backups" \(did you mean "?backup"?\?\)|unknown subcommand "backups".*backup/],
      [['schedule', 'delete', 'sched', 'restore'], /unknown action "restore": one of backup, certs-check/],
      [['schedule', 'delete', 'sched'], /expected CLUSTER and backup\|certs-check/],
      [['schedule'], /what to do\?: one of backup, certs-check, list, delete/],
      [['schedule', 'backup', '--every', '1h'], /expected one cluster name or file, got 0/],
    ];
    for (const [args, msg] of cases) {
      const r = await kha(args, nowhere);
      assert.equal(r.code, 2, `${args.join(' ')}: ${r.stdout}${r.stderr}`);
      assert.match(r.stderr, msg, args.join(' '));
      assert.doesNotMatch(r.stderr, /cannot reach Temporal/);
      assert.equal(r.stdout, '');
    }
    // The same command with a good interval does contact the server (and cannot reach it): exit 1.
    const reach = await kha(['schedule', 'backup', 'sched', '--every', '1h'], nowhere);
    assert.equal(reach.code, 1, reach.stdout + reach.stderr);
    assert.match(reach.stderr, /cannot reach Temporal at 127\.0\.0\.1:\d+/);
  });

  test('schedule backup creates a Temporal Schedule; its trigger runs backupCluster and kha status --backup finds that run', async () => {
    hosts.reset();
    const none = await kha(['status', 'sched', '--backup'], cli);
    assert.equal(none.code, 1);
    assert.match(none.stderr, /no backup of sched on .*start one with: kha backup sched/);

    const r = await kha(['schedule', 'backup', 'sched', '--every', '6h', '--retain', '3'], cli);
    assert.equal(r.code, 0, r.stdout + r.stderr);
    assert.match(r.stdout, /^created schedule kha-schedule-backup-sched: backup of sched every 6h, next run \d{4}-\d\d-\d\dT(00|06|12|18):00:00/m);
    const d = await env.client.schedule.getHandle('kha-schedule-backup-sched').describe();
    assert.equal(d.spec.intervals?.[0]?.every, 6 * HOUR);
    assert.equal(d.policies.overlap, ScheduleOverlapPolicy.SKIP);
    assert.equal(d.action.workflowType, 'backupCluster');
    assert.equal(d.action.taskQueue, QUEUE);
    const input = d.action.args?.[0] as { cluster: ClusterSpec; retain: number };
    assert.equal(input.cluster.name, 'sched');
    assert.deepEqual(input.cluster.spec.nodes.map((n) => n.name), ['cp-1', 'cp-2', 'cp-3', 'w-1']);
    assert.equal(input.retain, 3);
    assert.equal(hosts.calls.length, 0, 'creating the schedule ran nothing');

    const run = await trigger('kha-schedule-backup-sched');
    assert.match(run.workflowId, /^kha-schedule-backup-sched-\d{4}-/);
    const res = (await run.result()) as BackupResult;
    assert.equal(res.node, 'cp-1');
    assert.equal(hosts.ran('etcdBackup'), 1);
    assert.match(scheduledActivities((await run.fetchHistory()).events ?? [])[0]!.input, /"retain":3/);
    assert.equal((await run.describe()).typedSearchAttributes.get({ name: 'KhaCluster', type: 'KEYWORD' } as never), 'sched');
    await listed(run, 'Completed');
    let s = await statusJson(['sched', '--backup']);
    assert.equal(s.workflowId, run.workflowId);
    assert.equal(s.status.state, 'done');
    assert.equal(s.status.phases[0]!.nodes[0]!.note, 'from cp-1: 4096 bytes, revision 42');

    // A backup by hand afterwards is the newest run; then the next scheduled one is.
    const byHand = await kha(['backup', 'sched'], cli);
    assert.equal(byHand.code, 0, byHand.stdout + byHand.stderr);
    assert.match(byHand.stdout, /^started backup kha-backup-sched: sched/m);
    s = await statusJson(['sched', '--backup']);
    assert.equal(s.workflowId, backupWorkflowId('sched'));
    const run2 = await trigger('kha-schedule-backup-sched');
    await run2.result();
    await listed(run2, 'Completed');
    s = await statusJson(['sched', '--backup']);
    assert.equal(s.workflowId, run2.workflowId);
    assert.equal(hosts.ran('etcdBackup'), 3);
    // No certificate check yet: the deployment view has no warning.
    const dep = await kha(['status', 'sched'], cli);
    assert.equal(dep.code, 0, dep.stderr);
    assert.doesNotMatch(dep.stdout, /warning/);
  });

  test('a scheduled backup that waits for the operator is answered by kha retry, and kha backup attaches to it', async () => {
    hosts.reset();
    hosts.failNext('etcdBackup', 'cluster', 1);
    const run = await trigger('kha-schedule-backup-sched');
    await waitForState(run, 'waiting-decision');
    await listed(run, 'Running');
    const attach = await kha(['backup', 'sched', '--detach'], cli);
    assert.equal(attach.code, 0, attach.stdout + attach.stderr);
    assert.match(attach.stdout, new RegExp(`^already running: attaching to backup ${esc(run.workflowId)} \\(started .*, by its schedule\\)$`, 'm'));
    const r = await kha(['retry', 'sched', '--detach'], cli);
    assert.equal(r.code, 0, r.stdout + r.stderr);
    assert.match(r.stdout, /^retry: /m);
    assert.equal(((await run.result()) as BackupResult).node, 'cp-1');
    assert.equal(hosts.ran('etcdBackup'), 2);
  });

  test('a scheduled backup refuses (ClusterBusy) beside a deployment and beside a backup by hand, before any activity', async () => {
    hosts.reset();
    const release = hosts.hold('hostPrep', 'cp-1');
    const dep = await env.client.workflow.start('deployCluster', { taskQueue: QUEUE, workflowId: deployWorkflowId(c.name), args: [{ cluster: c, options: { kubeconfigPath: join(dir, 'sched.conf') } }] });
    for (let i = 0; hosts.ran('hostPrep', 'cp-1') === 0; i++) {
      assert.ok(i < 600, 'the deployment never reached host-prep');
      await new Promise((r) => setTimeout(r, 100));
    }
    const busy = await trigger('kha-schedule-backup-sched');
    const f = await failure(busy);
    assert.equal(f.type, 'ClusterBusy');
    assert.match(f.message, /^the deployment of sched is running \(kha-deploy-sched\); a backup does not start beside it/);
    assert.deepEqual(scheduledActivities((await busy.fetchHistory()).events ?? []), []);
    await dep.terminate('test: next case');
    release();

    hosts.reset();
    const releaseBackup = hosts.hold('etcdBackup', 'cluster');
    const manual = await env.client.workflow.start('backupCluster', { taskQueue: QUEUE, workflowId: backupWorkflowId(c.name), args: [{ cluster: c }] });
    for (let i = 0; hosts.ran('etcdBackup') === 0; i++) {
      assert.ok(i < 600, 'the backup by hand never started its snapshot');
      await new Promise((r) => setTimeout(r, 100));
    }
    const beside = await trigger('kha-schedule-backup-sched');
    const f2 = await failure(beside);
    assert.equal(f2.type, 'ClusterBusy');
    assert.match(f2.message, /^a backup of sched started by hand is running \(kha-backup-sched\); this scheduled backup does not start beside it/);
    releaseBackup();
    await manual.result();
    assert.equal(hosts.ran('etcdBackup'), 1);

    // kha schedule list shows the last run and why it failed.
    const l = await kha(['schedule', 'list', 'sched'], cli);
    assert.equal(l.code, 0, l.stderr);
    const lines = l.stdout.trimEnd().split('\n');
    assert.match(lines[0]!, /^SCHEDULE\s+ACTION\s+EVERY\s+NEXT RUN\s+LAST RUN\s+RESULT$/);
    assert.match(lines[1]!, /^kha-schedule-backup-sched\s+backup\s+6h\s+\d{4}-\S+\s+\d{4}-\S+\s+failed: a backup of sched started by hand is running/);
    assert.equal(lines.length, 2);
  });

  test('running schedule backup again updates the interval in place and says so; list; delete removes the schedule', async () => {
    const u = await kha(['schedule', 'backup', 'sched', '--every', '1d12h'], cli);
    assert.equal(u.code, 0, u.stdout + u.stderr);
    assert.match(u.stdout, /^updated schedule kha-schedule-backup-sched: backup of sched every 1d12h \(was every 6h\), next run /m);
    const h = env.client.schedule.getHandle('kha-schedule-backup-sched');
    const d = await h.describe();
    assert.equal(d.spec.intervals?.length, 1);
    assert.equal(d.spec.intervals?.[0]?.every, 36 * HOUR);
    assert.equal((d.action.args?.[0] as { retain?: number }).retain, undefined, 'the options are those of the last command');
    assert.ok(d.info.numActionsTaken >= 5, 'the same schedule, its runs kept');
    const same = await kha(['schedule', 'backup', 'sched', '--every', '36h'], cli);
    assert.match(same.stdout, /^updated schedule kha-schedule-backup-sched: backup of sched every 1d12h \(unchanged\)/m);

    const j = await kha(['schedule', 'list', 'sched', '--json'], cli);
    assert.equal(j.code, 0, j.stderr);
    const rows = (JSON.parse(j.stdout) as { schedules: Array<Record<string, unknown>> }).schedules;
    assert.deepEqual(rows.map((x) => [x.scheduleId, x.cluster, x.action, x.every, x.paused]), [['kha-schedule-backup-sched', 'sched', 'backup', '1d12h', false]]);
    // The list of every schedule reads the server's schedule list, which follows a change after a moment.
    for (let i = 0; ; i++) {
      const all = await kha(['schedule', 'list'], cli);
      assert.equal(all.code, 0, all.stderr);
      if (/^kha-schedule-backup-sched\s+backup\s+1d12h\s/m.test(all.stdout)) break;
      assert.ok(i < 60, `kha schedule list never showed the schedule: ${all.stdout}`);
      await new Promise((r) => setTimeout(r, 500));
    }

    const del = await kha(['schedule', 'delete', 'sched', 'backup'], cli);
    assert.equal(del.code, 0, del.stdout + del.stderr);
    assert.match(del.stdout, /^deleted schedule kha-schedule-backup-sched; a run it started that still runs goes on \(kha status sched --backup\)$/m);
    await assert.rejects(h.describe(), (e: unknown) => e instanceof ScheduleNotFoundError);
    const again = await kha(['schedule', 'delete', 'sched', 'backup'], cli);
    assert.equal(again.code, 1);
    assert.match(again.stderr, /no schedule kha-schedule-backup-sched on .*; see kha schedule list/);
    const empty = await kha(['schedule', 'list', 'sched'], cli);
    assert.equal(empty.code, 0);
    assert.match(empty.stdout, /^no kha schedules of sched on /m);
  });

  test('a scheduled certificate check: its warnings in kha status CLUSTER (with when it was checked) and in the current details of the Web UI', async () => {
    hosts.reset();
    const r = await kha(['schedule', 'certs-check', 'sched', '--every', '1d'], cli);
    assert.equal(r.code, 0, r.stdout + r.stderr);
    assert.match(r.stdout, /^created schedule kha-schedule-certs-check-sched: certs-check of sched every 1d, next run \d{4}-\d\d-\d\dT00:00:00/m);
    const run = await trigger('kha-schedule-certs-check-sched');
    const res = (await run.result()) as CertsResult;
    assert.equal(res.warnings.length, 3);
    await listed(run, 'Completed');

    const st = await kha(['status', 'sched'], cli);
    assert.equal(st.code, 0, st.stderr);
    for (const n of ['cp-1', 'cp-2', 'cp-3']) assert.match(st.stdout, new RegExp(`^warning: certificate expires soon: ${n} front-proxy-client: 10 days left \\(expires 2030-01-11T00:00:00\\.000Z\\)$`, 'm'));
    assert.match(st.stdout, new RegExp(`^  \\(certificate check of sched at ${esc(res.checkedAt)}, ${esc(run.workflowId)}; kha certs sched checks again\\)$`, 'm'));
    const js = await statusJson(['sched']);
    assert.equal(js.workflowId, deployWorkflowId('sched'));
    assert.deepEqual(js.certificateWarnings, { workflowId: run.workflowId, checkedAt: res.checkedAt, warnings: res.warnings });

    // The run's own status and the details the Web UI shows for it (its metadata query) carry them as warnings.
    const s = await run.query(statusQuery);
    assert.deepEqual(s.warnings, res.warnings.map((w) => `certificate expires soon: ${w}`));
    const meta = await run.query<{ currentDetails?: string }>('__temporal_workflow_metadata');
    assert.match(meta.currentDetails ?? '', /^\*\*⚠ Warning\*\* certificate expires soon: cp-1 front-proxy-client: 10 days left/m);
    // What the Web UI shows of that run: its User Metadata tab, the current details with the warning.
    const b = await launchBrowser({ artifactsDir: join(__dirname, '..', '..', 'test-artifacts', 'engine-schedule') });
    try {
      await b.page.goto(`http://127.0.0.1:${uiPort}/namespaces/default/workflows/${encodeURIComponent(run.workflowId)}/${(await run.describe()).runId}`);
      await b.page.getByRole('tab', { name: 'User Metadata' }).click();
      let table: Awaited<ReturnType<typeof readFrameTable>>;
      for (let i = 0; !(table = await readFrameTable(b.page, ['phase', 'state', 'nodes']).catch(() => undefined)); i++) {
        assert.ok(i < 120, 'the Web UI never showed the current details table');
        await new Promise((r) => setTimeout(r, 500));
      }
      await b.screenshot('certs-check-warning');
      assert.match(table.text, /^⚠ Warning certificate expires soon: cp-1 front-proxy-client: 10 days left \(expires 2030-01-11T00:00:00\.000Z\)$/m);
      assert.deepEqual(table.rows, [['✔ Certificate expiry', 'done', '✔ cluster']]);
      assert.deepEqual(b.blocked, []);
    } finally {
      await b.close();
    }
    const certs = await statusJson(['sched', '--certs']);
    assert.equal(certs.workflowId, run.workflowId);

    const del = await kha(['schedule', 'delete', 'sched', 'certs-check'], cli);
    assert.equal(del.code, 0, del.stderr);
  });
});
