// The fast tier for kha upgrade: upgradeCluster on the real dev server with mock activities (no lab). The order
// of one hop (snapshot before any change, the first control plane applies, the others follow one at a time, the
// workers after the approval), a failed kubeadm upgrade node that waits for the operator and resumes at that
// step, refusals before any change, two hops as two runs of one workflow id, a skipped worker, a cordoned node.
import { after, before, describe, test } from 'node:test';
import assert from 'node:assert/strict';
import type { TestWorkflowEnvironment } from '@temporalio/testing';
import type { WorkflowHandle, WorkflowHandleWithFirstExecutionRunId } from '@temporalio/client';
import { mockCluster, startMockEnv, type MockHosts } from './helpers/mock-hosts';
import { failure, nodeOf, scheduledActivities, waitForState } from './helpers/workflow';
import { approveWorkersUpdate, decisionUpdate, statusQuery, upgradeWorkflowId, type DeploymentStatus } from '../src/workflows/definitions';
import type { UpgradeInput, UpgradeResult } from '../src/workflows/upgrade-cluster';
import type { ClusterSpec } from '../src/spec/types';

let mock: Awaited<ReturnType<typeof startMockEnv>> | undefined;
let env: TestWorkflowEnvironment;
let hosts: MockHosts;
const QUEUE = 'engine-upgrade';

function upgrade(cluster: ClusterSpec, options?: UpgradeInput['options']): Promise<WorkflowHandleWithFirstExecutionRunId> {
  return env.client.workflow.start('upgradeCluster', { taskQueue: QUEUE, workflowId: upgradeWorkflowId(cluster.name), args: [{ cluster, options }] });
}
/** "activity node" of every activity the run (this run only) scheduled, in order. */
const calls = async (h: WorkflowHandle) => scheduledActivities((await h.fetchHistory()).events ?? []).map((a) => `${a.type} ${nodeOf(a.input) || 'cluster'}`);
const phases = (s: DeploymentStatus) => s.phases.map((p) => `${p.phase}:${p.state}`);
/** A running 1.34.4 cluster of every node of the file, whose repositories offer 1.35.3 and 1.35.4 (and 1.36.1). */
function running(c: ClusterSpec): void {
  hosts.reset();
  for (const n of c.spec.nodes) hosts.members.add(n.name);
  Object.assign(hosts.kube, { start: 'v1.34.4', cluster: 'v1.34.4' });
  hosts.kube.offered.set('1.35', ['1.35.3-1.1', '1.35.4-1.1']);
  hosts.kube.offered.set('1.36', ['1.36.1-1.1']);
}
const perNode = (n: string) => [`drainForUpgrade ${n}`, `upgradeKubelet ${n}`, `uncordonNode ${n}`];

describe('kha upgrade on the engine, with mock activities', () => {
  before(async () => {
    mock = await startMockEnv(QUEUE);
    ({ env, hosts } = mock);
  });
  after(async () => {
    await mock?.close();
  });

  test('one hop 1.34.4 → 1.35: check, snapshot, repositories, control plane one node at a time, approval, workers, versions', async () => {
    const c = mockCluster('up1', 3, 2);
    running(c);
    const h = await upgrade(c);
    const s0 = await waitForState(h, 'waiting-approval');
    // Control plane done, no worker touched before the approval.
    assert.equal(hosts.ran('upgradeKubeadm', 'w-1') + hosts.ran('drainForUpgrade', 'w-1'), 0);
    assert.match(s0.waitingFor ?? '', /the control plane runs v1\.35\.4; check it, then run: kha approve up1/);
    assert.deepEqual([hosts.kube.cluster, hosts.kube.kubelet.get('cp-3'), hosts.kube.kubelet.get('w-1')], ['v1.35.4', 'v1.35.4', undefined]);
    await h.executeUpdate(approveWorkersUpdate, { args: ['test'] });
    const r = (await h.result()) as UpgradeResult;
    const order = await calls(h);
    assert.deepEqual(order.slice(0, 2), ['discoverCluster cluster', 'etcdBackup cluster']);
    assert.deepEqual(order.slice(2, 7).sort(), ['cp-1', 'cp-2', 'cp-3', 'w-1', 'w-2'].map((n) => `upgradeRepository ${n}`));
    assert.deepEqual(order.slice(7), [
      'upgradeKubeadm cp-1', ...perNode('cp-1'),
      'upgradeKubeadm cp-2', ...perNode('cp-2'),
      'upgradeKubeadm cp-3', ...perNode('cp-3'),
      'upgradeKubeadm w-1', ...perNode('w-1'),
      'upgradeKubeadm w-2', ...perNode('w-2'),
      'discoverCluster cluster',
    ]);
    // The first applies, every other node follows; the newest patch of the minor, on every node.
    const inputs = scheduledActivities((await h.fetchHistory()).events ?? []).filter((a) => a.type === 'upgradeKubeadm').map((a) => `${nodeOf(a.input)} ${/"mode":"(apply|node)"/.exec(a.input)![1]} ${/"packageVersion":"([^"]+)"/.exec(a.input)![1]}`);
    assert.deepEqual(inputs, ['cp-1 apply 1.35.4-1.1', 'cp-2 node 1.35.4-1.1', 'cp-3 node 1.35.4-1.1', 'w-1 node 1.35.4-1.1', 'w-2 node 1.35.4-1.1']);
    assert.deepEqual({ from: r.from, to: r.kubernetesVersion, pkg: r.packageVersion, hops: r.hops.map((x) => `${x.from}→${x.to}`), skipped: r.skippedNodes, nothing: r.nothingToDo }, { from: 'v1.34.4', to: 'v1.35.4', pkg: '1.35.4-1.1', hops: ['v1.34.4→v1.35.4'], skipped: [], nothing: false });
    assert.match(r.hops[0]!.snapshot.path, /mock-backups\/up1\//);
    const s = await h.query(statusQuery);
    assert.equal(s.state, 'done');
    assert.deepEqual(phases(s), ['upgrade-check:done', 'etcd-snapshot:done', 'repository:done', 'control-plane-upgrade:done', 'approve-workers:done', 'worker-upgrade:done', 'upgrade-verify:done']);
  });

  test('kubeadm upgrade node failing on cp-2 waits for the operator; a retry resumes at that step: cp-1 is not upgraded again', async () => {
    const c = mockCluster('up2', 3, 1);
    running(c);
    hosts.failNext('upgradeKubeadm', 'cp-2', 1);
    const h = await upgrade(c, { autoApprove: true });
    await h.signal('approveWorkersSignal', 'test');
    const s = await waitForState(h, 'waiting-decision');
    assert.deepEqual([s.pendingDecision?.phase, s.pendingDecision?.node, s.pendingDecision?.allowed], ['control-plane-upgrade', 'cp-2', ['retry', 'abort-leave']]);
    assert.match(s.pendingDecision?.error ?? '', /upgradeKubeadm failed on cp-2/);
    // Nothing after cp-2 ran; the workers wait.
    assert.deepEqual([hosts.ran('upgradeKubeadm', 'cp-3'), hosts.ran('upgradeKubeadm', 'w-1'), hosts.ran('drainForUpgrade', 'cp-2')], [0, 0, 0]);
    await h.executeUpdate(decisionUpdate, { args: [{ action: 'retry', by: 'test' }] });
    const r = (await h.result()) as UpgradeResult;
    assert.equal(r.kubernetesVersion, 'v1.35.4');
    assert.deepEqual(['cp-1', 'cp-2', 'cp-3', 'w-1'].map((n) => hosts.ran('upgradeKubeadm', n)), [1, 2, 1, 1]);
    assert.equal(hosts.ran('etcdBackup'), 1);
  });

  test('refusals before any change: a downgrade, a node missing from the cluster, kubelets too old; nothing but the check ran', async () => {
    const down = mockCluster('up3', 1, 1, (y) => y.replace('version: "1.35"', 'version: "1.33"'));
    running(down);
    let h = await upgrade(down);
    let f = await failure(h);
    assert.equal(f.type, 'UpgradeRefused');
    assert.match(f.message, /^upgrade of up3 to 1\.33 refused, no host was changed: the cluster runs v1\.34\.4 and 1\.33 is older: kubeadm does not downgrade/);
    assert.deepEqual(await calls(h), ['discoverCluster cluster']);
    assert.equal((await h.query(statusQuery)).state, 'aborted');

    const grown = mockCluster('up3', 1, 2);
    running(grown);
    hosts.members.delete('w-2');
    hosts.kube.kubelet.set('w-1', 'v1.30.2');
    h = await upgrade(grown);
    f = await failure(h);
    assert.match(f.message, /w-2 is in .* but no Node of up3: join it first \(kha apply/);
    assert.match(f.message, /Node w-1 runs kubelet v1\.30\.2: after the next hop the API servers would be 5 minors newer/);
    assert.deepEqual(await calls(h), ['discoverCluster cluster']);
  });

  test('--to 1.36 from 1.34.4 is two hops, one run each of the same workflow id, a snapshot before each', async () => {
    const c = mockCluster('up4', 1, 1);
    running(c);
    const h = await upgrade(c, { to: '1.36', autoApprove: true });
    await h.signal('approveWorkersSignal', 'test');
    const r = (await h.result()) as UpgradeResult;
    assert.deepEqual(r.hops.map((x) => `${x.from}→${x.to}`), ['v1.34.4→v1.35.4', 'v1.35.4→v1.36.1']);
    assert.deepEqual({ from: r.from, to: r.kubernetesVersion }, { from: 'v1.34.4', to: 'v1.36.1' });
    assert.deepEqual([hosts.ran('etcdBackup'), hosts.ran('upgradeKubeadm', 'cp-1'), hosts.ran('upgradeKubelet', 'w-1')], [2, 2, 2]);
    const d = await env.client.workflow.getHandle(upgradeWorkflowId('up4')).describe();
    assert.notEqual(d.runId, h.firstExecutionRunId, 'the second hop is a new run');
    const s = await env.client.workflow.getHandle(upgradeWorkflowId('up4')).query(statusQuery);
    assert.ok(s.notices?.some((n) => n === 'upgrade: hop v1.34.4 → v1.35.4 done before this run'), JSON.stringify(s.notices));
  });

  test('a worker that keeps failing may be skipped: the check leaves it out and the result names it; a cordoned node stays cordoned', async () => {
    const c = mockCluster('up5', 1, 3);
    running(c);
    hosts.kube.cordoned.add('w-3');
    hosts.failNext('upgradeKubelet', 'w-1');
    const h = await upgrade(c, { autoApprove: true });
    await h.signal('approveWorkersSignal', 'test');
    const s = await waitForState(h, 'waiting-decision');
    assert.deepEqual(s.pendingDecision?.allowed, ['retry', 'skip', 'abort-leave']);
    await h.executeUpdate(decisionUpdate, { args: [{ action: 'skip', node: 'w-1', by: 'test' }] });
    const r = (await h.result()) as UpgradeResult;
    assert.deepEqual([r.skippedNodes, r.leftCordoned], [['w-1'], ['w-3']]);
    assert.deepEqual([hosts.ran('uncordonNode', 'w-2'), hosts.ran('uncordonNode', 'w-3'), hosts.ran('upgradeKubelet', 'w-3')], [1, 0, 1]);
    // Run again: w-1 is the only node behind, so the hop is the version the cluster runs, and only w-1 changes.
    hosts.clear('upgradeKubelet', 'w-1');
    hosts.calls.length = 0;
    const again = await upgrade(c, { autoApprove: true });
    await again.signal('approveWorkersSignal', 'test');
    const r2 = (await again.result()) as UpgradeResult;
    assert.deepEqual({ to: r2.kubernetesVersion, skipped: r2.skippedNodes }, { to: 'v1.35.4', skipped: [] });
    assert.equal(hosts.kube.kubelet.get('w-1'), 'v1.35.4');
    // And once more: nothing to do, nothing but the check.
    hosts.calls.length = 0;
    const third = await upgrade(c);
    const r3 = (await third.result()) as UpgradeResult;
    assert.equal(r3.nothingToDo, true);
    assert.deepEqual(hosts.calls.map((x) => x.activity), ['discoverCluster']);
  });
});
