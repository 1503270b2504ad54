// The fast tier for kha apply: applyCluster on the real dev server with mock activities (no lab). What runs before
// the approval (discovery, preflight of the new nodes only), the joins' order after it (new control-plane nodes one
// at a time, etcd checked after each, then the new workers in parallel), refusals before any host step, nothing to
// do, and compensation and rollback that reset only the new nodes.
import { after, before, describe, test } from 'node:test';
import assert from 'node:assert/strict';
import type { TestWorkflowEnvironment } from '@temporalio/testing';
import type { WorkflowHandle } from '@temporalio/client';
import { mockCluster, startMockEnv, type MockHosts } from './helpers/mock-hosts';
import { scheduledActivities, waitForState, failure } from './helpers/workflow';
import { applyWorkflowId, approveWorkersSignal, approveWorkersUpdate, decisionUpdate, deployWorkflowId, resetWorkflowId, statusQuery, type DeploymentStatus } from '../src/workflows/definitions';
import type { ApplyResult } from '../src/workflows/apply-cluster';
import type { ClusterSpec } from '../src/spec/types';

let mock: Awaited<ReturnType<typeof startMockEnv>> | undefined;
let env: TestWorkflowEnvironment;
let hosts: MockHosts;
const QUEUE = 'engine-apply';

function apply(cluster: ClusterSpec): Promise<WorkflowHandle> {
  return env.client.workflow.start('applyCluster', { taskQueue: QUEUE, workflowId: applyWorkflowId(cluster.name), args: [{ cluster }] });
}
async function until(h: WorkflowHandle, what: string, pred: () => boolean | Promise<boolean>): Promise<void> {
  for (let i = 0; !(await pred()); i++) {
    const s = await h.query(statusQuery);
    if (s.state === 'done' || s.state === 'aborted' || i > 600) throw new Error(`${what}: never true; the run is ${s.state}`);
    await new Promise((r) => setTimeout(r, 100));
  }
}
const row = (s: DeploymentStatus, phase: string, node: string) => s.phases.find((p) => p.phase === phase)!.nodes.find((n) => n.node === node);
const idx = (seq: string[], item: string) => {
  const i = seq.indexOf(item);
  assert.ok(i >= 0, `${item} never ran: ${seq.join(', ')}`);
  return i;
};

describe('kha apply on the engine, with mock activities', () => {
  before(async () => {
    mock = await startMockEnv(QUEUE);
    ({ env, hosts } = mock);
  });
  after(async () => {
    await mock?.close();
  });

  test('nothing but discovery and the new nodes\' preflight before the approval; then control planes one at a time, etcd checked after each, workers in parallel', async () => {
    hosts.reset();
    const c = mockCluster('grow', 5, 4);
    for (const n of ['cp-1', 'cp-2', 'cp-3', 'w-1', 'w-2']) hosts.members.add(n);
    const h = await apply(c);
    const gate = await waitForState(h, 'waiting-approval');
    assert.equal(gate.currentPhase, 'approval');
    assert.match(gate.waitingFor ?? '', /joining cp-4, cp-5, w-3, w-4\): check them, then run: kha approve grow/);
    assert.deepEqual(gate.notices?.slice(1), [
      'apply: + cp-4 (control-plane, 198.19.0.6): joins after the members, one at a time, etcd checked after each',
      'apply: + cp-5 (control-plane, 198.19.0.7): joins after the members, one at a time, etcd checked after each',
      'apply: + w-3 (worker, 198.19.0.10): joins once the control plane is complete, in parallel',
      'apply: + w-4 (worker, 198.19.0.11): joins once the control plane is complete, in parallel',
      'apply: = 5 node(s) unchanged: cp-1, cp-2, cp-3, w-1, w-2',
    ]);
    assert.match(gate.notices?.[0] ?? '', /^apply: grow runs Kubernetes v1\.35\.2 on 5 node\(s\): 3 control-plane, 2 worker; etcd 3 member\(s\), 3 healthy; VIP 198\.19\.255\.1 held by cp-1$/);
    assert.deepEqual([...(gate.membersBefore ?? [])], ['cp-1', 'cp-2', 'cp-3', 'w-1', 'w-2']);
    // Before the approval: read-only steps only, and preflight only on the new nodes.
    assert.deepEqual(hosts.calls.map((x) => `${x.activity} ${x.node}`).sort(), ['discoverCluster cluster', 'preflightNode cp-4', 'preflightNode cp-5', 'preflightNode w-3', 'preflightNode w-4']);

    // Both new workers join at the same time: w-3 holds in its join while w-4 joins.
    const release = hosts.hold('joinWorker', 'w-3');
    assert.equal(await h.executeUpdate(approveWorkersUpdate, { args: ['test'] }), 'approved: joining cp-4, cp-5, w-3, w-4');
    await until(h, 'w-4 joined while w-3 holds', () => hosts.ran('joinWorker', 'w-4') === 1 && hosts.ran('joinWorker', 'w-3') === 1);
    release();
    const r = (await h.result()) as ApplyResult;
    assert.deepEqual(r, { cluster: 'grow', kubernetesVersion: 'v1.35.2', nothingToDo: false, joined: ['cp-4', 'cp-5', 'w-3', 'w-4'], skippedNodes: [], nodesReady: 9, etcdMembers: 5 });

    const seq = hosts.calls.map((x) => `${x.activity} ${x.node}`);
    // One control-plane join at a time, etcd healthy before the next; the workers after the control plane.
    assert.ok(idx(seq, 'joinControlPlane cp-4') < idx(seq, 'waitEtcdHealthy cp-4'));
    assert.ok(idx(seq, 'waitEtcdHealthy cp-4') < idx(seq, 'joinControlPlane cp-5'));
    assert.ok(idx(seq, 'joinControlPlane cp-5') < idx(seq, 'waitEtcdHealthy cp-5'));
    for (const w of ['w-3', 'w-4']) assert.ok(idx(seq, 'waitEtcdHealthy cp-5') < idx(seq, `joinWorker ${w}`));
    // The members: no step ran on them but the read-only verification (on the first control plane, for the cluster).
    const onMembers = hosts.calls.filter((x) => hosts.members.has(x.node)).map((x) => `${x.activity} ${x.node}`);
    assert.deepEqual(onMembers, ['verifyCluster cp-1']);
    // Joins went through the healthy members, and the second join through the first new one too.
    const events = (await h.fetchHistory()).events ?? [];
    const viaOf = (type: string, node: string) => JSON.parse(scheduledActivities(events).find((a) => a.type === type && new RegExp(`"node":"${node}"`).test(a.input))!.input).via as string[];
    assert.deepEqual(viaOf('joinControlPlane', 'cp-4'), ['cp-1', 'cp-2', 'cp-3']);
    assert.deepEqual(viaOf('joinControlPlane', 'cp-5'), ['cp-1', 'cp-2', 'cp-3', 'cp-4']);
    const s = await h.query(statusQuery);
    assert.equal(s.state, 'done');
    assert.deepEqual(s.phases.map((p) => `${p.phase}:${p.state}`), ['discover:done', 'preflight:done', 'approval:done', 'host-prep:done', 'container-runtime:done', 'packages:done', 'control-plane-join:done', 'worker-join:done', 'verify:done']);
  });

  test('a new worker whose join fails is compensated (reset, removed, rebooted) alone; a rollback resets only the new nodes', async () => {
    hosts.reset();
    const c = mockCluster('comp', 3, 3);
    for (const n of ['cp-1', 'cp-2', 'cp-3', 'w-1']) hosts.members.add(n);
    hosts.failNext('joinWorker', 'w-2', 1);
    const h = await apply(c);
    await waitForState(h, 'waiting-approval');
    await h.executeUpdate(approveWorkersUpdate, { args: ['test'] });
    const r = (await h.result()) as ApplyResult;
    assert.deepEqual(r.joined, ['w-2', 'w-3']);
    const undo = hosts.calls.filter((x) => ['resetNode', 'removeNodeFromCluster', 'rebootNode'].includes(x.activity)).map((x) => `${x.activity} ${x.node}`);
    assert.deepEqual(undo, ['resetNode w-2', 'removeNodeFromCluster w-2', 'rebootNode w-2']);
    assert.equal(row(await h.query(statusQuery), 'worker-join', 'w-2')?.compensations, 1);

    // Again from the start, the new worker failing for good: the operator rolls back; only the new nodes are reset.
    hosts.reset();
    for (const n of ['cp-1', 'cp-2', 'cp-3', 'w-1']) hosts.members.add(n);
    hosts.failNext('joinWorker', 'w-2');
    const h2 = await apply(c);
    await waitForState(h2, 'waiting-approval');
    await h2.executeUpdate(approveWorkersUpdate, { args: ['test'] });
    const waiting = await waitForState(h2, 'waiting-decision');
    assert.equal(waiting.pendingDecision?.node, 'w-2');
    assert.deepEqual([...(waiting.rollbackNodes ?? [])].sort(), ['w-2', 'w-3']);
    assert.deepEqual(waiting.membersBefore, ['cp-1', 'cp-2', 'cp-3', 'w-1']);
    await h2.executeUpdate(decisionUpdate, { args: [{ action: 'abort-rollback', by: 'test' }] });
    const f = await failure(h2);
    assert.match(f.message, /^apply of comp aborted by the operator; rolled back 2 new node\(s\)$/);
    const resets = hosts.calls.filter((x) => x.activity === 'resetNode').map((x) => x.node);
    // w-2's compensation rounds, then the rollback of both new workers.
    assert.ok(resets.every((n) => ['w-2', 'w-3'].includes(n)), resets.join());
    assert.deepEqual(resets.slice(-2).sort(), ['w-2', 'w-3']);
    assert.equal(hosts.calls.filter((x) => hosts.members.has(x.node) && x.activity !== 'verifyCluster').length, 0);
  });

  test('refusals before any host step: a node missing from the file (kha remove), another version (kha upgrade); an unchanged file has nothing to do', async () => {
    hosts.reset();
    const members = ['cp-1', 'cp-2', 'cp-3', 'w-1', 'w-2'];
    for (const n of members) hosts.members.add(n);
    hosts.runningSpec = mockCluster('shrink', 3, 2);
    const fewer = mockCluster('shrink', 3, 1);
    const f = await failure(await apply(fewer));
    assert.equal(f.type, 'ApplyRefused');
    assert.match(f.message, /^apply of shrink refused, no host was changed: w-2 \(worker, 198\.19\.0\.7\) runs in shrink but is not in the file; apply never removes a node: use kha remove shrink w-2/);
    hosts.runningSpec = undefined;
    const other = mockCluster('older', 3, 2, (y) => y.replace('version: "1.35"', 'version: "1.34"'));
    const h = await apply(other);
    const g = await failure(h);
    assert.match(g.message, /older runs Kubernetes v1\.35\.2 and the file asks for 1\.34; apply never changes the version of a running cluster: use kha upgrade/);
    assert.deepEqual(scheduledActivities((await h.fetchHistory()).events ?? []).map((a) => a.type), ['discoverCluster']);
    assert.deepEqual([...new Set(hosts.calls.map((x) => x.activity))], ['discoverCluster']);

    // Bare hosts: no cluster runs, apply is the wrong command.
    hosts.members.clear();
    const bare = await failure(await apply(mockCluster('bare', 3, 2)));
    assert.equal(bare.type, 'ApplyRefused');
    assert.match(bare.message, /no control-plane node in the file is a member of a running cluster bare .*: deploy it first with kha deploy FILE$/);
    for (const n of members) hosts.members.add(n);

    const same = await apply(mockCluster('same', 3, 2));
    const r = (await same.result()) as ApplyResult;
    assert.equal(r.nothingToDo, true);
    const s = await same.query(statusQuery);
    assert.equal(s.state, 'done');
    assert.ok(s.notices?.includes('apply: nothing to do: every node of the file runs in same'), JSON.stringify(s.notices));
    assert.deepEqual(s.phases.map((p) => `${p.phase}:${p.state}`), ['discover:done', 'preflight:skipped', 'approval:skipped', 'host-prep:skipped', 'container-runtime:skipped', 'packages:skipped', 'control-plane-join:skipped', 'worker-join:skipped', 'verify:skipped']);
    assert.deepEqual(scheduledActivities((await same.fetchHistory()).events ?? []).map((a) => a.type), ['discoverCluster']);
  });

  test('an approval sent before the gate counts with autoApprove (kha apply --auto-approve) and is ignored without', async () => {
    hosts.reset();
    for (const n of ['cp-1', 'cp-2', 'cp-3']) hosts.members.add(n);
    const c = mockCluster('early', 3, 1);
    const release = hosts.hold('discoverCluster', 'cluster');
    const h = await env.client.workflow.start('applyCluster', { taskQueue: QUEUE, workflowId: applyWorkflowId(c.name), args: [{ cluster: c, options: { autoApprove: true } }] });
    await until(h, 'the apply in discovery', () => hosts.ran('discoverCluster') === 1);
    await h.signal(approveWorkersSignal, 'in advance');
    release();
    assert.deepEqual(((await h.result()) as ApplyResult).joined, ['w-1']);

    hosts.reset();
    for (const n of ['cp-1', 'cp-2', 'cp-3']) hosts.members.add(n);
    const hold = hosts.hold('discoverCluster', 'cluster');
    const h2 = await apply(c);
    await until(h2, 'the apply in discovery', () => hosts.ran('discoverCluster') === 1);
    await h2.signal(approveWorkersSignal, 'too early');
    hold();
    const gate = await waitForState(h2, 'waiting-approval');
    assert.match((gate.notices ?? []).join('\n'), /approval by too early ignored at .*: it came before the gate/);
    assert.equal(hosts.ran('hostPrep'), 0);
    await h2.terminate('test done');
  });

  test('an apply refuses beside a running deployment; a deployment and a reset refuse beside a running apply; none schedules anything', async () => {
    hosts.reset();
    const c = mockCluster('side', 3, 1);
    const busy = async (h: WorkflowHandle, message: RegExp) => {
      const f = await failure(h);
      assert.equal(f.type, 'ClusterBusy');
      assert.match(f.message, message);
      assert.deepEqual(scheduledActivities((await h.fetchHistory()).events ?? []), []);
    };
    const release = hosts.hold('hostPrep', 'cp-1');
    const dep = await env.client.workflow.start('deployCluster', { taskQueue: QUEUE, workflowId: deployWorkflowId(c.name), args: [{ cluster: c }] });
    await until(dep, 'the deployment in host prep', () => hosts.ran('hostPrep', 'cp-1') === 1);
    await busy(await apply(c), /^the deployment of side is running \(kha-deploy-side\); an apply does not start beside it/);
    await dep.terminate('test: next case');
    release();

    hosts.reset();
    for (const n of ['cp-1', 'cp-2', 'cp-3', 'w-1']) hosts.members.add(n);
    const releaseApply = hosts.hold('discoverCluster', 'cluster');
    const a = await apply(c);
    await until(a, 'the apply in discovery', () => hosts.ran('discoverCluster') === 1);
    await busy(await env.client.workflow.start('deployCluster', { taskQueue: QUEUE, workflowId: deployWorkflowId(c.name), args: [{ cluster: c }] }), /^an apply of side is running \(kha-apply-side\); a deployment does not start beside it/);
    await busy(await env.client.workflow.start('resetCluster', { taskQueue: QUEUE, workflowId: resetWorkflowId(c.name), args: [{ cluster: c }] }), /^an apply of side is running \(kha-apply-side\); a reset does not start beside it/);
    releaseApply();
    assert.equal(((await a.result()) as ApplyResult).nothingToDo, true);
  });
});
