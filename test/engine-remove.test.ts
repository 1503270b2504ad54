// The fast tier for kha remove: removeNode on the real dev server with mock activities (no lab): the order of
// its steps for a worker and a control-plane node, the quorum refusal before any change, a drain timeout that
// waits for the operator (retry, skip the drain, abort), --force on a host that does not answer, and its
// refusal beside a running backup.
import { after, before, describe, test } from 'node:test';
import assert from 'node:assert/strict';
import type { TestWorkflowEnvironment } from '@temporalio/testing';
import type { WorkflowHandle } from '@temporalio/client';
import { mockCluster, startMockEnv, type MockHosts } from './helpers/mock-hosts';
import { scheduledActivities, waitForState, failure } from './helpers/workflow';
import { backupWorkflowId, decisionUpdate, deployWorkflowId, removeWorkflowId, resetWorkflowId, statusQuery, type DeploymentStatus } from '../src/workflows/definitions';
import type { RemoveInput, RemoveResult } from '../src/workflows/remove-node';
import type { ClusterSpec } from '../src/spec/types';

let mock: Awaited<ReturnType<typeof startMockEnv>> | undefined;
let env: TestWorkflowEnvironment;
let hosts: MockHosts;
const QUEUE = 'engine-remove';

function remove(cluster: ClusterSpec, node: string, o: Omit<RemoveInput, 'cluster' | 'node'> = {}): Promise<WorkflowHandle> {
  return env.client.workflow.start('removeNode', { taskQueue: QUEUE, workflowId: removeWorkflowId(cluster.name), args: [{ cluster, node, ...o }] });
}
const activities = async (h: WorkflowHandle) => scheduledActivities((await h.fetchHistory()).events ?? []).map((a) => a.type);
const phases = (s: DeploymentStatus) => s.phases.map((p) => `${p.phase}:${p.state}`);

describe('kha remove on the engine, with mock activities', () => {
  before(async () => {
    mock = await startMockEnv(QUEUE);
    ({ env, hosts } = mock);
  });
  after(async () => {
    await mock?.close();
  });

  test('a worker: check, drain, Node, reset, in that order; no etcd or kube-vip step', async () => {
    hosts.reset();
    const c = mockCluster('rmw', 3, 2);
    const h = await remove(c, 'w-2');
    const r = (await h.result()) as RemoveResult;
    assert.deepEqual(await activities(h), ['removalCheck', 'drainNode', 'deleteNodeObject', 'resetNode']);
    assert.deepEqual({ node: r.node, role: r.role, memberId: r.memberId, skipped: r.skipped, first: r.firstControlPlane }, { node: 'w-2', role: 'worker', memberId: undefined, skipped: [], first: 'cp-1' });
    assert.match(r.fileChange, /^delete w-2 from the cluster file/);
    const s = await h.query(statusQuery);
    assert.equal(s.state, 'done');
    assert.deepEqual(phases(s), ['remove-check:done', 'drain:done', 'delete-node:done', 'reset-host:done']);
  });

  test('the first control-plane node, which leads etcd: kube-vip and the member by ID go before the Node, then reset and reboot; cp-2 is the new first', async () => {
    hosts.reset();
    const c = mockCluster('rmcp', 3, 1);
    const h = await remove(c, 'cp-1', { reboot: true });
    const r = (await h.result()) as RemoveResult;
    assert.deepEqual(await activities(h), ['removalCheck', 'drainNode', 'removeKubeVip', 'removeEtcdMember', 'deleteNodeObject', 'resetNode', 'rebootNode']);
    assert.deepEqual({ memberId: r.memberId, moved: r.movedLeaderTo, first: r.firstControlPlane, skipped: r.skipped }, { memberId: 'a1', moved: 'cp-2', first: 'cp-2', skipped: [] });
    // Two members left: an even count the file cannot have; and the new first control plane.
    assert.match(r.fileChange, /etcd now has 2 members and kha validate wants an odd number of control-plane nodes: add a replacement/);
    assert.match(r.fileChange, /cp-2 is now the first control-plane node operations start from/);
    // The member removal was given the ID the check found and healthy members to run on, the target not among them.
    const input = scheduledActivities((await h.fetchHistory()).events ?? []).find((a) => a.type === 'removeEtcdMember')!.input;
    assert.match(input, /"memberId":"a1"/);
    assert.match(input, /"via":\["cp-2","cp-3"\]/);
    const s = await h.query(statusQuery);
    assert.deepEqual(phases(s), ['remove-check:done', 'drain:done', 'kube-vip-remove:done', 'etcd-member:done', 'delete-node:done', 'reset-host:done']);
  });

  test('a removal that would leave etcd without quorum is refused after the read-only check, before any change', async () => {
    hosts.reset();
    hosts.etcd.unhealthy.add('cp-3');
    const c = mockCluster('rmq', 3, 1);
    const h = await remove(c, 'cp-2');
    const f = await failure(h);
    assert.equal(f.type, 'RemovalRefused');
    assert.match(f.message, /^removal of cp-2 from rmq refused: removing cp-2 would leave 2 etcd members with 1 healthy \(cp-1; not healthy: cp-3\), and 2 members need 2 for a quorum; nothing was changed/);
    assert.deepEqual(await activities(h), ['removalCheck']);
    const s = await h.query(statusQuery);
    assert.equal(s.state, 'aborted');
    assert.equal(s.phases[0]!.nodes[0]!.state, 'failed');
    assert.ok(s.notices?.some((n) => n.startsWith('removal of cp-2 refused: removing cp-2 would leave')), JSON.stringify(s.notices));
    // With all three healthy the same removal goes ahead (2 of 2 healthy left).
    hosts.etcd.unhealthy.clear();
    assert.equal(((await (await remove(c, 'cp-2')).result()) as RemoveResult).memberId, 'a2');
  });

  test('the only etcd member is never removed', async () => {
    hosts.reset();
    const h = await remove(mockCluster('rmone', 1, 1), 'cp-1', {});
    const f = await failure(h);
    assert.equal(f.type, 'RemovalRefused');
    assert.match(f.message, /cp-1 holds the only etcd member: removing it ends the cluster; use kha reset instead/);
    assert.deepEqual(await activities(h), ['removalCheck']);
  });

  test('a drain timeout waits for the operator: retry drains again, skip goes on without the drain and says so', async () => {
    hosts.reset();
    hosts.drainTimeouts = 2;
    const c = mockCluster('rmdrain', 3, 1);
    const h = await remove(c, 'cp-3', { drainTimeoutSeconds: 7 });
    let s = await waitForState(h, 'waiting-decision');
    assert.equal(s.pendingDecision?.phase, 'drain');
    assert.equal(s.pendingDecision?.node, 'cp-3');
    assert.match(s.pendingDecision?.error ?? '', /^DrainTimeout: drain of cp-3 did not finish within 7 s/);
    assert.deepEqual(s.pendingDecision?.allowed, ['retry', 'skip', 'abort-leave']);
    // The timeout is not retried by Temporal: the attempt already waited all of it.
    assert.equal(hosts.ran('drainNode', 'cp-3'), 1);
    await h.executeUpdate(decisionUpdate, { args: [{ action: 'retry', by: 'test' }] });
    for (let i = 0; hosts.ran('drainNode', 'cp-3') < 2; i++) {
      assert.ok(i < 600, 'no second drain');
      await new Promise((r) => setTimeout(r, 50));
    }
    s = await waitForState(h, 'waiting-decision');
    assert.equal(s.pendingDecision?.phase, 'drain');
    await h.executeUpdate(decisionUpdate, { args: [{ action: 'skip', node: 'cp-3', by: 'test' }] });
    const r = (await h.result()) as RemoveResult;
    assert.deepEqual(r.skipped.map((x) => x.step), ['drain']);
    assert.match(r.skipped[0]!.why, /^skipped by operator after: DrainTimeout: drain of cp-3/);
    assert.deepEqual(await activities(h), ['removalCheck', 'drainNode', 'drainNode', 'removeKubeVip', 'removeEtcdMember', 'deleteNodeObject', 'resetNode']);
    assert.match(scheduledActivities((await h.fetchHistory()).events ?? []).find((a) => a.type === 'drainNode')!.input, /"timeoutSeconds":7/);
  });

  test('a drain timeout then kha abort: the run stops there, the Node and the member stay', async () => {
    hosts.reset();
    hosts.drainTimeouts = 1;
    const h = await remove(mockCluster('rmabort', 3, 1), 'w-1');
    await waitForState(h, 'waiting-decision');
    await h.executeUpdate(decisionUpdate, { args: [{ action: 'abort-leave', by: 'test' }] });
    const f = await failure(h);
    assert.equal(f.type, 'DeploymentAborted');
    assert.match(f.message, /^removal of w-1 from rmabort aborted by the operator/);
    assert.deepEqual(await activities(h), ['removalCheck', 'drainNode']);
  });

  test('a host that does not answer: refused without --force (naming it); with --force only the steps that need no host run, the others are named', async () => {
    hosts.reset();
    hosts.unreachable.add('cp-2');
    const c = mockCluster('rmdead', 3, 1);
    const refused = await remove(c, 'cp-2');
    const f = await failure(refused);
    assert.equal(f.type, 'RemovalRefused');
    assert.match(f.message, /cp-2 does not answer SSH \(cp-2: connect timed out \(mock\)\); nothing was changed\. If the host is gone for good, kha remove rmdead cp-2 --force/);
    assert.deepEqual(await activities(refused), ['removalCheck']);

    hosts.etcd.unhealthy.add('cp-2'); // a dead host's member does not answer either
    const h = await remove(c, 'cp-2', { force: true });
    const r = (await h.result()) as RemoveResult;
    assert.deepEqual(await activities(h), ['removalCheck', 'removeEtcdMember', 'deleteNodeObject']);
    assert.deepEqual(r.skipped.map((x) => x.step), ['drain', 'kube-vip-remove', 'reset-host']);
    for (const x of r.skipped) assert.match(x.why, /^--force: cp-2 does not answer SSH, so /);
    assert.equal(r.memberId, 'a2');
    const s = await h.query(statusQuery);
    assert.deepEqual(phases(s), ['remove-check:done', 'drain:skipped', 'kube-vip-remove:skipped', 'etcd-member:done', 'delete-node:done', 'reset-host:skipped']);
  });

  test('refused beside a running backup of the cluster, before any activity; a deployment and a reset refuse beside a removal; a node not in the file is InvalidSpec', async () => {
    hosts.reset();
    const c = mockCluster('rmbusy', 3, 1);
    const release = hosts.hold('etcdBackup', 'cluster');
    const b = await env.client.workflow.start('backupCluster', { taskQueue: QUEUE, workflowId: backupWorkflowId(c.name), args: [{ cluster: c }] });
    for (let i = 0; hosts.ran('etcdBackup') === 0; i++) {
      assert.ok(i < 600, 'the backup never started');
      await new Promise((r) => setTimeout(r, 50));
    }
    const h = await remove(c, 'w-1');
    const f = await failure(h);
    assert.equal(f.type, 'ClusterBusy');
    assert.match(f.message, /^a backup of rmbusy is running \(kha-backup-rmbusy\); a removal does not start beside it/);
    assert.deepEqual(await activities(h), []);
    release();
    await b.result();

    // And the other way round: a deployment and a reset refuse while a removal runs.
    hosts.reset();
    const releaseDrain = hosts.hold('drainNode', 'w-1');
    const running = await remove(c, 'w-1');
    for (let i = 0; hosts.ran('drainNode') === 0; i++) {
      assert.ok(i < 600, 'the removal never drained');
      await new Promise((r) => setTimeout(r, 50));
    }
    const dep = await env.client.workflow.start('deployCluster', { taskQueue: QUEUE, workflowId: deployWorkflowId(c.name), args: [{ cluster: c, options: { kubeconfigPath: `/tmp/${c.name}.conf` } }] });
    const fd = await failure(dep);
    assert.equal(fd.type, 'ClusterBusy');
    assert.match(fd.message, /^a removal of a node of rmbusy is running \(kha-remove-rmbusy\); a deployment does not start beside it/);
    assert.deepEqual(await activities(dep), []);
    const rst = await env.client.workflow.start('resetCluster', { taskQueue: QUEUE, workflowId: resetWorkflowId(c.name), args: [{ cluster: c }] });
    const fr = await failure(rst);
    assert.equal(fr.type, 'ClusterBusy');
    assert.match(fr.message, /^a removal of a node of rmbusy is running \(kha-remove-rmbusy\); a reset does not start beside it/);
    assert.deepEqual(await activities(rst), []);
    releaseDrain();
    assert.equal(((await running.result()) as RemoveResult).node, 'w-1');

    const bad = await remove(c, 'w-9');
    const g = await failure(bad);
    assert.equal(g.type, 'InvalidSpec');
    assert.match(g.message, /"w-9" is not a node of rmbusy \(nodes: cp-1, cp-2, cp-3, w-1\); nothing was done/);
    assert.deepEqual(await activities(bad), []);
  });
});
