// The fast tier for the day-2 operations: backupCluster on the real dev server with mock activities (no lab):
// its status and result, the operator's retry after a failed snapshot, and its refusal beside a deployment or
// a reset of the same cluster before it schedules anything.
import { after, before, describe, test } from 'node:test';
import assert from 'node:assert/strict';
import type { TestWorkflowEnvironment } from '@temporalio/testing';
import { WorkflowFailedError, type WorkflowHandle } from '@temporalio/client';
import { ApplicationFailure } from '@temporalio/common';
import { mockCluster, startMockEnv, type MockHosts } from './helpers/mock-hosts';
import { scheduledActivities, waitForState } from './helpers/workflow';
import { backupWorkflowId, decisionUpdate, deployWorkflowId, resetWorkflowId, statusQuery, type DeploymentStatus } from '../src/workflows/definitions';
import type { BackupResult } from '../src/workflows/backup-cluster';
import type { ClusterSpec } from '../src/spec/types';

let mock: Awaited<ReturnType<typeof startMockEnv>> | undefined;
let env: TestWorkflowEnvironment;
let hosts: MockHosts;
const QUEUE = 'engine-day2';

function backup(cluster: ClusterSpec, retain?: number): Promise<WorkflowHandle> {
  return env.client.workflow.start('backupCluster', { taskQueue: QUEUE, workflowId: backupWorkflowId(cluster.name), args: [{ cluster, retain }] });
}
async function failure(h: WorkflowHandle): Promise<ApplicationFailure> {
  const e = await h.result().then(
    () => assert.fail('the workflow completed'),
    (err: unknown) => err,
  );
  assert.ok(e instanceof WorkflowFailedError && e.cause instanceof ApplicationFailure, String(e));
  return e.cause;
}
const phases = (s: DeploymentStatus) => s.phases.map((p) => `${p.phase}:${p.state}`);

describe('day-2 operations on the engine, with mock activities', () => {
  before(async () => {
    mock = await startMockEnv(QUEUE);
    ({ env, hosts } = mock);
  });
  after(async () => {
    await mock?.close();
  });

  test('backupCluster: one etcd-backup phase, done; the result names path, size and revision; retain reaches the activity', async () => {
    hosts.reset();
    const c = mockCluster('snap', 3, 1);
    const h = await backup(c, 3);
    const r = (await h.result()) as BackupResult;
    assert.deepEqual(
      { node: r.node, path: r.path, sizeBytes: r.sizeBytes, revision: r.revision, cluster: r.cluster },
      { node: 'cp-1', path: '/tmp/mock-backups/snap/etcd-mock-cp-1.db', sizeBytes: 4096, revision: 42, cluster: 'snap' },
    );
    const s = await h.query(statusQuery);
    assert.deepEqual(phases(s), ['etcd-backup:done']);
    assert.equal(s.state, 'done');
    assert.equal(s.phases[0]!.nodes[0]!.note, 'from cp-1: 4096 bytes, revision 42');
    const acts = scheduledActivities((await h.fetchHistory()).events ?? []);
    assert.deepEqual(acts.map((a) => a.type), ['etcdBackup']);
    assert.match(acts[0]!.input, /"retain":3/);
  });

  test('a failed snapshot waits for the operator; kha retry runs it again and the backup completes', async () => {
    hosts.reset();
    const c = mockCluster('snapfail', 1, 0);
    hosts.failNext('etcdBackup', 'cluster', 1);
    const h = await backup(c);
    const s = await waitForState(h, 'waiting-decision');
    assert.equal(s.pendingDecision?.phase, 'etcd-backup');
    assert.match(s.pendingDecision?.error ?? '', /etcdBackup failed on cluster \(mock\)/);
    assert.deepEqual(s.pendingDecision?.allowed, ['retry', 'abort-rollback', 'abort-leave']);
    await h.executeUpdate(decisionUpdate, { args: [{ action: 'retry', by: 'test' }] });
    assert.equal(((await h.result()) as BackupResult).node, 'cp-1');
    assert.equal(hosts.ran('etcdBackup'), 2);
    assert.equal((await h.query(statusQuery)).state, 'done');
  });

  test('a retain out of range fails as InvalidSpec before any activity', async () => {
    hosts.reset();
    const h = await backup(mockCluster('snapbad', 1, 0), 0);
    const f = await failure(h);
    assert.equal(f.type, 'InvalidSpec');
    assert.match(f.message, /retain must be an integer from 1 to 1000, got 0/);
    assert.deepEqual(scheduledActivities((await h.fetchHistory()).events ?? []), []);
  });

  test('backupCluster refuses beside a running deployment and a running reset of the cluster, before any activity', async () => {
    hosts.reset();
    const c = mockCluster('busy', 1, 1);
    const release = hosts.hold('hostPrep', 'cp-1');
    const dep = await env.client.workflow.start('deployCluster', { taskQueue: QUEUE, workflowId: deployWorkflowId(c.name), args: [{ cluster: c, options: { kubeconfigPath: `/tmp/${c.name}.conf` } }] });
    for (let i = 0; hosts.ran('hostPrep', 'cp-1') === 0; i++) {
      assert.ok(i < 600, 'the deployment never reached host prep');
      await new Promise((r) => setTimeout(r, 100));
    }
    const b1 = await backup(c);
    const f1 = await failure(b1);
    assert.equal(f1.type, 'ClusterBusy');
    assert.match(f1.message, /^the deployment of busy is running \(kha-deploy-busy\); a backup does not start beside it/);
    assert.deepEqual(scheduledActivities((await b1.fetchHistory()).events ?? []), []);
    await dep.terminate('test: next case');
    release();

    hosts.reset();
    const releaseReset = hosts.hold('resetNode', 'w-1');
    const reset = await env.client.workflow.start('resetCluster', { taskQueue: QUEUE, workflowId: resetWorkflowId(c.name), args: [{ cluster: c }] });
    for (let i = 0; hosts.ran('resetNode', 'w-1') === 0; i++) {
      assert.ok(i < 600, 'the reset never reached w-1');
      await new Promise((r) => setTimeout(r, 100));
    }
    const b2 = await backup(c);
    const f2 = await failure(b2);
    assert.equal(f2.type, 'ClusterBusy');
    assert.match(f2.message, /^a reset of busy is running \(kha-reset-busy\); a backup does not start beside it/);
    assert.deepEqual(scheduledActivities((await b2.fetchHistory()).events ?? []), []);
    assert.equal(hosts.ran('etcdBackup'), 0);
    releaseReset();
    await reset.result();

    // With neither running, the same cluster backs up.
    assert.equal(((await (await backup(c)).result()) as BackupResult).node, 'cp-1');
  });
});
