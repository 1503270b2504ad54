// The fast tier for the day-2 operations: backupCluster on the real dev server with mock activities (no lab):
// its status and result, the operator's retry after a failed snapshot, and its refusal beside a deployment or
// a reset of the same cluster before it schedules anything.
import { after, before, describe, test } from 'node:test';
import assert from 'node:assert/strict';
import type { TestWorkflowEnvironment } from '@temporalio/testing';
import type { WorkflowHandle } from '@temporalio/client';
import { mockCluster, startMockEnv, type MockHosts } from './helpers/mock-hosts';
import { scheduledActivities, waitForState, failure } from './helpers/workflow';
import { backupWorkflowId, certsWorkflowId, decisionUpdate, renewWorkflowId, deployWorkflowId, resetWorkflowId, statusQuery, type DeploymentStatus } from '../src/workflows/definitions';
import type { BackupResult } from '../src/workflows/backup-cluster';
import type { CertsResult } from '../src/workflows/certs-cluster';
import type { RenewResult } from '../src/workflows/renew-cluster';
import { certsTable } from '../src/cli/operations';
import type { ClusterSpec } from '../src/spec/types';
import type * as MockActsModule from '../src/activities';

type MockActs = typeof MockActsModule;

let mock: Awaited<ReturnType<typeof startMockEnv>> | undefined;
let env: TestWorkflowEnvironment;
let hosts: MockHosts;
const QUEUE = 'engine-day2';

function backup(cluster: ClusterSpec, retain?: number): Promise<WorkflowHandle> {
  return env.client.workflow.start('backupCluster', { taskQueue: QUEUE, workflowId: backupWorkflowId(cluster.name), args: [{ cluster, retain }] });
}
/** Once the other run holds in `activity` on `node`, a backup fails ClusterBusy with `message`, scheduling nothing. */
async function refusedWhile(activity: keyof MockActs, node: string, c: ClusterSpec, message: RegExp): Promise<void> {
  for (let i = 0; hosts.ran(activity, node) === 0; i++) {
    assert.ok(i < 600, `the other run never reached ${activity} on ${node}`);
    await new Promise((r) => setTimeout(r, 100));
  }
  const b = await backup(c);
  const f = await failure(b);
  assert.equal(f.type, 'ClusterBusy');
  assert.match(f.message, message);
  assert.deepEqual(scheduledActivities((await b.fetchHistory()).events ?? []), []);
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
    await refusedWhile('hostPrep', 'cp-1', c, /^the deployment of busy is running \(kha-deploy-busy\); a backup does not start beside it/);
    await dep.terminate('test: next case');
    release();

    hosts.reset();
    const releaseReset = hosts.hold('resetNode', 'w-1');
    const reset = await env.client.workflow.start('resetCluster', { taskQueue: QUEUE, workflowId: resetWorkflowId(c.name), args: [{ cluster: c }] });
    await refusedWhile('resetNode', 'w-1', c, /^a reset of busy is running \(kha-reset-busy\); a backup does not start beside it/);
    assert.equal(hosts.ran('etcdBackup'), 0);
    releaseReset();
    await reset.result();

    // With neither running, the same cluster backs up.
    assert.equal(((await (await backup(c)).result()) as BackupResult).node, 'cp-1');
  });

  test('certsCluster: every control plane in the result and the table; under 30 days is a warning in the result and the status', async () => {
    hosts.reset();
    const c = mockCluster('certs', 3, 1);
    const h = await env.client.workflow.start('certsCluster', { taskQueue: QUEUE, workflowId: certsWorkflowId(c.name), args: [{ cluster: c }] });
    const r = (await h.result()) as CertsResult;
    assert.deepEqual(r.nodes.map((n) => n.node), ['cp-1', 'cp-2', 'cp-3']);
    assert.deepEqual(r.warnings, ['cp-1', 'cp-2', 'cp-3'].map((n) => `${n} front-proxy-client: 10 days left (expires 2030-01-11T00:00:00.000Z)`));
    const s = await h.query(statusQuery);
    assert.deepEqual(phases(s), ['certs-check:done']);
    assert.deepEqual(s.warnings, r.warnings.map((w) => `certificate expires soon: ${w}`));
    assert.deepEqual(certsTable(r), [
      'NODE  CERTIFICATE         EXPIRES                   DAYS LEFT',
      ...['cp-1', 'cp-2', 'cp-3'].flatMap((n) => [
        `${n}  apiserver           2031-01-01T00:00:00.000Z  365`,
        `${n}  front-proxy-client  2030-01-11T00:00:00.000Z  10         WARNING: under 30 days`,
        `${n}  ca (CA)             2039-12-30T00:00:00.000Z  3650`,
      ]),
    ]);
    assert.deepEqual(scheduledActivities((await h.fetchHistory()).events ?? []).map((a) => a.type), ['certificateExpiry']);
  });
  test('renewCluster: one control plane at a time, the first one last; a failed node waits and the next starts only after its retry; then the kubeconfig from the first', async () => {
    hosts.reset();
    const c = mockCluster('renew', 3, 2);
    hosts.failNext('renewCertificates', 'cp-2', 1);
    const h = await env.client.workflow.start('renewCluster', { taskQueue: QUEUE, workflowId: renewWorkflowId(c.name), args: [{ cluster: c, kubeconfigPath: '/tmp/renew.conf' }] });
    const w = await waitForState(h, 'waiting-decision');
    assert.equal(w.pendingDecision?.node, 'cp-2');
    assert.equal(w.pendingDecision?.phase, 'certs-renew');
    // The first control plane waits behind the failed node: never two nodes' static pods down at once.
    assert.equal(hosts.ran('renewCertificates', 'cp-1'), 0);
    await h.executeUpdate(decisionUpdate, { args: [{ action: 'retry', node: 'cp-2', by: 'test' }] });
    const r = (await h.result()) as RenewResult;
    assert.deepEqual(r.nodes.map((n) => n.node), ['cp-3', 'cp-2', 'cp-1']);
    assert.equal(r.kubeconfigPath, '/tmp/renew.conf');
    const acts = scheduledActivities((await h.fetchHistory()).events ?? []);
    assert.deepEqual(acts.map((a) => `${a.type}`), ['renewCertificates', 'renewCertificates', 'renewCertificates', 'renewCertificates', 'fetchKubeconfig']);
    assert.deepEqual(acts.map((a) => /"node":"([^"]+)"/.exec(a.input)?.[1]), ['cp-3', 'cp-2', 'cp-2', 'cp-1', 'cp-1']);
    // Workers are never touched by a renewal, and no activity input carries them.
    for (const a of acts) assert.doesNotMatch(a.input, /"name":"w-\d"/);
    const s = await h.query(statusQuery);
    assert.deepEqual(phases(s), ['certs-renew:done', 'kubeconfig-refresh:done']);
    assert.deepEqual(s.phases[0]!.nodes.map((n) => n.node), ['cp-3', 'cp-2', 'cp-1']);
    assert.equal(s.kubeconfigPath, '/tmp/renew.conf');
  });
});
