// kha restore on the fast tier: restoreCluster on the real dev server with mock activities (its phases in
// order, each on every control-plane node before the next; the operator's retry and abort, which deletes
// nothing), the typed confirmation, the snapshot confined to the backups directory, the members checked against
// the file, and the refusal beside a backup; the worker's confinement of the path on real files; and the
// command line's refusals before any server or host is contacted.
import { after, before, describe, test } from 'node:test';
import assert from 'node:assert/strict';
import { spawnSync } from 'node:child_process';
import { existsSync, mkdirSync, mkdtempSync, rmSync, symlinkSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import type { TestWorkflowEnvironment } from '@temporalio/testing';
import type { WorkflowHandle } from '@temporalio/client';
import { mockCluster, startMockEnv, type MockHosts } from './helpers/mock-hosts';
import { failure, scheduledActivities, waitForState } from './helpers/workflow';
import { backupWorkflowId, decisionUpdate, restoreWorkflowId, statusQuery } from '../src/workflows/definitions';
import type { RestoreResult } from '../src/workflows/restore-cluster';
import { confineSnapshot } from '../src/activities/restore';
import { memberMismatch } from '../src/phases/restore';
import * as R from '../src/render/day2-etcd-restore';
import type { ClusterSpec } from '../src/spec/types';
import { KHA_MAIN, cliEnv, freePort, kha } from './cli-run';

let mock: Awaited<ReturnType<typeof startMockEnv>> | undefined;
let env: TestWorkflowEnvironment;
let hosts: MockHosts;
const QUEUE = 'engine-restore';
const SNAP = 'etcd-20261202T100000.000Z-cp-1.db';

function restore(cluster: ClusterSpec, o: { snapshot?: string; confirm?: string | null } = {}): Promise<WorkflowHandle> {
  const confirm = o.confirm === null ? undefined : (o.confirm ?? cluster.name);
  return env.client.workflow.start('restoreCluster', { taskQueue: QUEUE, workflowId: restoreWorkflowId(cluster.name), args: [{ cluster, snapshot: o.snapshot ?? SNAP, confirm }] });
}
const acts = async (h: WorkflowHandle) => scheduledActivities((await h.fetchHistory()).events ?? []);

describe('kha restore on the engine, with mock activities', () => {
  before(async () => {
    mock = await startMockEnv(QUEUE);
    ({ env, hosts } = mock);
  });
  after(async () => {
    await mock?.close();
  });

  test('every phase in order, each on every control-plane node before the next; the kubelet of the worker restarts too; the result names the paths kept', async () => {
    hosts.reset();
    const c = mockCluster('rst', 3, 1);
    const h = await restore(c);
    const r = (await h.result()) as RestoreResult;
    assert.equal(r.snapshot, `/tmp/mock-backups/rst/${SNAP}`);
    assert.equal(r.revision, 42);
    assert.match(r.tag, /^\d{8}T\d{6}Z-[0-9a-f]{8}$/);
    assert.equal(r.dataAside, `/var/lib/etcd.kha-restore-${r.tag}`);
    assert.equal(r.manifestsAside, `/etc/kubernetes/kha-restore/${r.tag}`);
    assert.deepEqual(r.members.map((m) => m.name), ['cp-1', 'cp-2', 'cp-3']);
    const s = await h.query(statusQuery);
    assert.equal(s.state, 'done');
    assert.deepEqual(
      s.phases.map((p) => `${p.phase}:${p.state}:${p.nodes.map((n) => n.node).join(',')}`),
      [
        'restore-check:done:cluster',
        'restore-stage:done:cp-3,cp-2,cp-1',
        'restore-stop:done:cp-3,cp-2,cp-1',
        'restore-data-aside:done:cp-3,cp-2,cp-1',
        'restore-member:done:cp-3,cp-2,cp-1',
        'restore-etcd-start:done:cp-3,cp-2,cp-1',
        'restore-etcd-quorum:done:cluster',
        'restore-api-start:done:cp-3,cp-2,cp-1',
        'restore-restart:done:cp-1,cp-2,cp-3,w-1',
        'restore-verify:done:cluster',
      ],
    );
    assert.ok(s.notices?.some((n) => n.includes(r.dataAside) && n.includes('kha deletes neither')));
    // The order in history: no step of a phase before every node ended the one before it.
    const types = (await acts(h)).map((a) => a.type);
    const order = ['restoreCheck', 'stageSnapshot', 'stopControlPlane', 'moveEtcdDataAside', 'restoreEtcdMember', 'startEtcd', 'waitRestoredQuorum', 'startApiServer', 'restartAfterRestore', 'verifyRestore'];
    assert.deepEqual([...new Set(types)], order);
    for (let i = 1; i < order.length; i++) assert.ok(types.lastIndexOf(order[i - 1]!) < types.indexOf(order[i]!), `${order[i]} started before every ${order[i - 1]} was scheduled`);
    assert.deepEqual(types.filter((t) => t === 'restoreEtcdMember').length, 3);
    // The activities get the run's tag and the checked path and hash, never file content.
    const stage = (await acts(h)).filter((a) => a.type === 'stageSnapshot');
    for (const a of stage) {
      assert.match(a.input, new RegExp(`"tag":"${r.tag}"`));
      assert.match(a.input, /"sha256":"1{64}"/);
    }
  });

  test('without the typed confirmation, or with another name, nothing is scheduled (InvalidSpec)', async () => {
    hosts.reset();
    const c = mockCluster('rstconf', 3, 0);
    for (const confirm of [null, '', 'other', 'RSTCONF']) {
      const h = await restore(c, { confirm });
      const f = await failure(h);
      assert.equal(f.type, 'InvalidSpec');
      assert.match(f.message, /confirm must be the cluster's name "rstconf" typed by the operator/);
      assert.deepEqual(await acts(h), []);
    }
    assert.equal(hosts.calls.length, 0);
  });

  test('a snapshot outside the backups directory fails as InvalidSpec after the check alone; nothing else runs', async () => {
    hosts.reset();
    const c = mockCluster('rstpath', 3, 0);
    const h = await restore(c, { snapshot: '/etc/passwd' });
    const f = await failure(h);
    assert.equal(f.type, 'InvalidSpec');
    assert.match(f.message, /restore of rstpath refused: snapshot "\/etc\/passwd": not a snapshot kha backup took of rstpath/);
    assert.deepEqual((await acts(h)).map((a) => a.type), ['restoreCheck']);
    const s = await h.query(statusQuery);
    assert.equal(s.state, 'aborted');
    assert.equal(s.phases[0]!.state, 'failed');
  });

  test('members that do not match the file are refused before any copy (an extra member; a member under another name)', async () => {
    hosts.reset();
    const c = mockCluster('rstmem', 3, 0);
    const cps = c.spec.nodes;
    hosts.restoreMembers = () => [
      ...cps.map((n, i) => ({ id: `b${i}`, name: n.name, peerURLs: [`https://${n.address}:2380`], clientURLs: [], isLearner: false, started: true })),
      { id: 'ff', name: 'stray', peerURLs: ['https://198.19.9.9:2380'], clientURLs: [], isLearner: false, started: true },
    ];
    const h = await restore(c);
    const f = await failure(h);
    assert.equal(f.type, 'RestoreRefused');
    assert.match(f.message, /member ff \(stray\) at https:\/\/198\.19\.9\.9:2380 is no control-plane node of the file; nothing was changed/);
    assert.deepEqual((await acts(h)).map((a) => a.type), ['restoreCheck']);
    assert.equal(
      memberMismatch([{ name: 'cp-1', peerURL: 'https://a:2380' }], [{ id: '1', name: 'cp-9', peerURLs: ['https://a:2380'] }]),
      'the member 1 at https://a:2380 is named cp-9, not cp-1',
    );
    assert.equal(memberMismatch([{ name: 'cp-1', peerURL: 'https://a:2380' }], []), 'cp-1 (https://a:2380) has no etcd member');
  });

  test('a failed member restore waits for the operator (retry or abort, no rollback); etcd does not start meanwhile; kha retry completes it', async () => {
    hosts.reset();
    const c = mockCluster('rstfail', 3, 0);
    hosts.failNext('restoreEtcdMember', 'cp-2', 1);
    const h = await restore(c);
    const s = await waitForState(h, 'waiting-decision');
    assert.equal(s.pendingDecision?.phase, 'restore-member');
    assert.equal(s.pendingDecision?.node, 'cp-2');
    assert.deepEqual(s.pendingDecision?.allowed, ['retry', 'abort-leave']);
    await assert.rejects(h.executeUpdate(decisionUpdate, { args: [{ action: 'skip', node: 'cp-2', by: 'test' }] }), (e: Error) => /skip is not allowed for cp-2/.test(String((e.cause as Error | undefined)?.message)));
    assert.equal(hosts.ran('startEtcd'), 0);
    await h.executeUpdate(decisionUpdate, { args: [{ action: 'retry', by: 'test' }] });
    const r = (await h.result()) as RestoreResult;
    assert.equal(r.members.length, 3);
    assert.equal(hosts.ran('restoreEtcdMember', 'cp-2'), 2);
    assert.equal(hosts.ran('restoreEtcdMember', 'cp-1'), 1);
    assert.equal(hosts.ran('startEtcd'), 3);
  });

  test('kha abort at a failed API server start stops the run; the message says where the old data and manifests are; nothing runs after', async () => {
    hosts.reset();
    const c = mockCluster('rstabort', 3, 0);
    hosts.failNext('startApiServer', 'cp-3');
    const h = await restore(c);
    await waitForState(h, 'waiting-decision');
    await h.executeUpdate(decisionUpdate, { args: [{ action: 'abort-leave', by: 'test' }] });
    const f = await failure(h);
    assert.equal(f.type, 'DeploymentAborted');
    assert.match(f.message, /restore of rstabort aborted by the operator; nothing was deleted: on each control-plane node the old etcd data is in \/var\/lib\/etcd\.kha-restore-\S+ and the static pod manifests kha moved are in \/etc\/kubernetes\/kha-restore\//);
    assert.equal(hosts.ran('restartAfterRestore'), 0);
    assert.equal(hosts.ran('verifyRestore'), 0);
  });

  test('refused beside a running backup of the cluster, before any activity', async () => {
    hosts.reset();
    const c = mockCluster('rstbusy', 3, 0);
    const release = hosts.hold('etcdBackup', 'cluster');
    const b = await env.client.workflow.start('backupCluster', { taskQueue: QUEUE, workflowId: backupWorkflowId(c.name), args: [{ cluster: c }] });
    for (let i = 0; hosts.ran('etcdBackup') === 0; i++) {
      assert.ok(i < 600, 'the backup never started');
      await new Promise((r) => setTimeout(r, 100));
    }
    const h = await restore(c);
    const f = await failure(h);
    assert.equal(f.type, 'ClusterBusy');
    assert.match(f.message, /^a backup of rstbusy is running \(kha-backup-rstbusy\); a restore does not start beside it/);
    assert.deepEqual(await acts(h), []);
    release();
    await b.result();
  });
});

describe('the worker confines SNAPSHOT to the cluster backups directory', () => {
  const dir = mkdtempSync(join(tmpdir(), 'kha-restore-confine-'));
  const saved = process.env.XDG_STATE_HOME;
  const backups = join(dir, 'kha', 'c1', 'backups');
  before(() => {
    process.env.XDG_STATE_HOME = dir;
    mkdirSync(backups, { recursive: true });
    mkdirSync(join(dir, 'kha', 'c2', 'backups'), { recursive: true });
    writeFileSync(join(backups, SNAP), 'x', { mode: 0o600 });
    writeFileSync(join(dir, 'kha', 'c2', 'backups', SNAP), 'y');
    writeFileSync(join(backups, 'notes.txt'), 'z');
    symlinkSync('/etc/hostname', join(backups, 'etcd-20261202T100000.000Z-evil.db'));
  });
  after(() => {
    if (saved === undefined) delete process.env.XDG_STATE_HOME;
    else process.env.XDG_STATE_HOME = saved;
    rmSync(dir, { recursive: true, force: true });
  });

  test('by name or by path inside the directory: the real path', () => {
    assert.equal(confineSnapshot('c1', SNAP), join(backups, SNAP));
    assert.equal(confineSnapshot('c1', join(backups, '..', 'backups', SNAP)), join(backups, SNAP));
  });
  test('anything else is InvalidSpec naming the snapshot and what is there', () => {
    const bad = (s: string, re: RegExp) => assert.throws(() => confineSnapshot('c1', s), (e: Error & { type?: string }) => e.type === 'InvalidSpec' && re.test(e.message));
    bad('/etc/passwd', /snapshot "\/etc\/passwd": not a snapshot kha backup took of c1; kha restore reads only .*\/kha\/c1\/backups\/etcd-\*\.db \(snapshots of c1: etcd-20261202T100000\.000Z-cp-1\.db/);
    bad(join(dir, 'kha', 'c2', 'backups', SNAP), /not a snapshot kha backup took of c1/);
    bad('notes.txt', /not a snapshot kha backup took of c1/);
    bad('etcd-20261202T100000.000Z-evil.db', /not a snapshot kha backup took of c1/);
    bad('missing.db', /snapshot "missing\.db": no such file/);
    bad('rel/x.db', /give a file name in .* or an absolute path/);
    bad('a\nb', /on one line/);
  });
});

describe('the restore scripts', () => {
  test('each parses with bash -n; the member restore names the node, its peer URL, every member and a fresh token', () => {
    const c = mockCluster('rsc', 3, 1);
    const [cp, w] = [c.spec.nodes[1]!, c.spec.nodes[3]!];
    const tag = '20261202T100000Z-abcdef12';
    const scripts = [
      R.renderRestorePrepare(c, cp, tag),
      R.renderRestoreStage(c, cp, tag, 'a'.repeat(64)),
      R.renderRestoreStop(c, cp, tag),
      R.renderRestoreDataAside(c, cp, tag),
      R.renderRestoreMember(c, cp, tag),
      R.renderRestoreEtcdStart(c, cp, tag),
      R.renderRestoreQuorum(c, cp),
      R.renderRestoreApiStart(c, cp, tag),
      R.renderRestoreRestart(c, cp, tag),
      R.renderRestoreRestart(c, w, tag),
      R.renderRestoreVerify(c, cp),
    ];
    for (const sc of scripts) {
      const r = spawnSync('bash', ['-n'], { input: sc.content, encoding: 'utf8' });
      assert.equal(r.status, 0, `${sc.name}: ${r.stderr}`);
    }
    const member = scripts[4]!.content;
    assert.match(member, /snapshot restore '\/var\/lib\/kha\/restore\/20261202T100000Z-abcdef12\/snapshot\.db' --name 'cp-2' --initial-cluster 'cp-1=https:\/\/198\.19\.0\.3:2380,cp-2=https:\/\/198\.19\.0\.4:2380,cp-3=https:\/\/198\.19\.0\.5:2380' --initial-cluster-token 'kha-restore-20261202T100000Z-abcdef12' --initial-advertise-peer-urls 'https:\/\/198\.19\.0\.4:2380'/);
    assert.doesNotMatch(scripts[9]!.content, /kube-scheduler/);
    assert.throws(() => R.restorePaths('../x'), /not letters, digits and dashes/);
  });
});

describe('kha restore: refusals before anything starts', () => {
  const dir = mkdtempSync(join(tmpdir(), 'kha-cli-restore-'));
  const file = join(dir, 'rs.yaml');
  const state = join(dir, 'state');
  let cenv: NodeJS.ProcessEnv;
  before(async () => {
    writeFileSync(
      file,
      [
        'apiVersion: kha.dev/v1alpha1',
        'kind: Cluster',
        'metadata: { name: rs }',
        'spec:',
        '  kubernetes: { version: "1.35" }',
        '  nodes:',
        '    - { name: cp-1, address: 198.19.0.2, role: control-plane }',
        '  controlPlaneEndpoint: { vip: 198.19.0.10, interface: eth0 }',
        '',
      ].join('\n'),
    );
    cenv = cliEnv({ XDG_STATE_HOME: state, KHA_SERVER_PORT: String(await freePort()), KHA_UI_PORT: String(await freePort()) });
  });
  after(() => rmSync(dir, { recursive: true, force: true }));
  const noServer = () => assert.equal(existsSync(join(state, 'kha', 'temporal.sqlite')), false, 'a server was started');

  test('--help shows the usage', async () => {
    const r = await kha(['restore', '--help'], cenv);
    assert.equal(r.code, 0);
    assert.match(r.stdout, /^usage: kha restore CLUSTER SNAPSHOT \[--confirm CLUSTER\] \[--json\] \[--detach\]/);
  });
  test('without a terminal and without --confirm: refused, exit 2; a wrong --confirm and a missing SNAPSHOT too', async () => {
    const r = await kha(['restore', file, SNAP], cenv);
    assert.equal(r.code, 2, r.stdout + r.stderr);
    assert.match(r.stderr, /refusing to restore rs without confirmation: standard input is not a terminal; add --confirm rs/);
    const wrong = await kha(['restore', file, SNAP, '--confirm', 'rt'], cenv);
    assert.equal(wrong.code, 2);
    assert.match(wrong.stderr, /--confirm "rt" is not the cluster's name "rs"; nothing was done/);
    const none = await kha(['restore', file], cenv);
    assert.equal(none.code, 2);
    assert.match(none.stderr, /expected CLUSTER SNAPSHOT, got 1 argument\(s\)/);
    noServer();
  });
  test('on a terminal the cluster name is asked for; another answer restores nothing (exit 1)', () => {
    const r = spawnSync('script', ['-qec', `${process.execPath} ${KHA_MAIN} restore ${file} ${SNAP}`, '/dev/null'], { env: cenv, input: 'rz\n', encoding: 'utf8', timeout: 60_000 });
    assert.equal(r.status, 1, r.stdout + r.stderr);
    assert.match(r.stdout, /Type the cluster name to confirm: /);
    assert.match(r.stdout, /kha restore: not confirmed \(expected "rs"\); nothing was done/);
    noServer();
  });
});
