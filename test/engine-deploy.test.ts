// The fast tier: deployCluster and resetCluster on the real dev server with mock activities (no lab, no root):
// the order of steps, per-node pipelines, decisions and their validators, compensation, rollback order, and
// what the history costs per worker node.
import { after, before, describe, test } from 'node:test';
import assert from 'node:assert/strict';
import type { TestWorkflowEnvironment } from '@temporalio/testing';
import { WorkflowFailedError, WorkflowUpdateFailedError, type WorkflowHandle } from '@temporalio/client';
import { mockCluster, startMockEnv, type MockHosts } from './helpers/mock-hosts';
import { waitForState } from './helpers/workflow';
import { approveWorkersUpdate, decisionUpdate, deployWorkflowId, resetWorkflowId, statusQuery, type DeployResult, type DeploymentStatus } from '../src/workflows/definitions';
import type { ClusterSpec } from '../src/spec/types';

let mock: Awaited<ReturnType<typeof startMockEnv>> | undefined;
let env: TestWorkflowEnvironment;
let hosts: MockHosts;
const QUEUE = 'engine-fast';

/** Options of every deployment the tests start: the second round runs workers in batches of 2 (child workflows). */
let batching: Record<string, unknown> = {};
function deploy(cluster: ClusterSpec, options: Record<string, unknown> = {}): Promise<WorkflowHandle> {
  return env.client.workflow.start('deployCluster', {
    taskQueue: QUEUE,
    workflowId: deployWorkflowId(cluster.name),
    args: [{ cluster, options: { kubeconfigPath: `/tmp/${cluster.name}.conf`, ...batching, ...options } }],
  });
}
const row = (s: DeploymentStatus, phase: string, node: string) => s.phases.find((p) => p.phase === phase)!.nodes.find((n) => n.node === node)!;
async function refused(p: Promise<unknown>, message: RegExp): Promise<void> {
  await assert.rejects(p, (e: unknown) => e instanceof WorkflowUpdateFailedError && message.test(String((e.cause as Error | undefined)?.message)));
}
/** Waits until `pred` holds on the status, or fails when the run settles without it. */
async function until(h: WorkflowHandle, what: string, pred: (s: DeploymentStatus) => boolean): Promise<DeploymentStatus> {
  for (;;) {
    const s = await h.query(statusQuery);
    if (pred(s)) return s;
    if (s.state === 'done' || s.state === 'aborted') throw new Error(`${what}: never true; the run is ${s.state}`);
    await new Promise((r) => setTimeout(r, 100));
  }
}

for (const mode of ['one workflow', 'batches of 2 workers in child workflows'] as const) {
  // Each round its own cluster names: a batch's workflow id follows its deployment's.
  const name = (n: string) => (mode === 'one workflow' ? n : `${n}-b`);
  describe(`deployments with mock activities: ${mode}`, () => {
    before(async () => {
      mock ??= await startMockEnv(QUEUE);
      ({ env, hosts } = mock);
      batching = mode === 'one workflow' ? {} : { workersPerBatch: 2, batchReportSeconds: 1 };
    });

    test('the deployment runs the phase list in order: joins one at a time, the gate, then the workers', async () => {
      hosts.reset();
      const c = mockCluster(name('order'), 3, 3);
      const release = hosts.hold('hostPrep', 'cp-1');
      const h = await deploy(c);
      await until(h, 'cp-1 in host prep', (s) => row(s, 'host-prep', 'cp-1').state === 'running');
      // Nothing waits for approval yet: the Update's validator refuses it, and nothing is recorded.
      await refused(h.executeUpdate(approveWorkersUpdate, { args: ['early'] }), /nothing waits for approval: the deployment is running/);
      release();
      const gate = await waitForState(h, 'waiting-approval');
      assert.equal(gate.currentPhase, 'approval');
      assert.equal(hosts.ran('joinWorker'), 0);
      assert.equal(await h.executeUpdate(approveWorkersUpdate, { args: ['test'] }), 'approved: joining 3 worker node(s)');
      const res = (await h.result()) as DeployResult;
      assert.equal(res.etcdMembers, 3);
      const seq = hosts.calls.map((x) => `${x.activity} ${x.node}`);
      const at = (s: string) => seq.indexOf(s);
      assert.ok(at('kubeadmInit cp-1') > at('kubeVipFirstNode cp-1'));
      assert.ok(at('joinControlPlane cp-2') > at('installCalico cp-1'));
      assert.ok(at('joinControlPlane cp-3') > at('waitEtcdHealthy cp-2'), 'control-plane joins one at a time, in file order');
      for (const w of ['w-1', 'w-2', 'w-3']) assert.ok(at(`joinWorker ${w}`) > at('waitEtcdHealthy cp-3'), `${w} joined before the control plane was complete`);
      assert.ok(at('verifyCluster cp-1') > Math.max(...['w-1', 'w-2', 'w-3'].map((w) => at(`joinWorker ${w}`))));
      assert.equal(hosts.ran('waitForVip'), 0, 'the switch script waits for the VIP itself');
      const s = await h.query(statusQuery);
      assert.deepEqual(s.phases.map((p) => `${p.phase}:${p.state}`), [
        'preflight:done', 'host-prep:done', 'container-runtime:done', 'packages:done', 'kube-vip:done', 'kubeadm-init:done',
        'calico:done', 'control-plane-join:done', 'approval:done', 'worker-join:done', 'verify:done',
      ]);
      assert.equal(s.state, 'done');
    });

    test('per-node pipelines: a worker stuck in host prep holds back neither the control plane nor the other workers', async () => {
      hosts.reset();
      const c = mockCluster(name('pipes'), 3, 3);
      const release = hosts.hold('hostPrep', 'w-2');
      const h = await deploy(c);
      // A batch of workers reports its rows shortly after they change: wait for them, then check.
      const s = await until(h, 'the gate waits, w-1 and w-3 prepared', (x) => x.state === 'waiting-approval' && ['w-1', 'w-3'].every((w) => row(x, 'packages', w).state === 'done'));
      assert.equal(row(s, 'host-prep', 'w-2').state, 'running');
      assert.equal(row(s, 'control-plane-join', 'cp-3').state, 'done');
      for (const w of ['w-1', 'w-3']) assert.equal(row(s, 'packages', w).state, 'done', w);
      assert.equal(row(s, 'container-runtime', 'w-2').state, 'pending');
      // The status still shows phases: host prep runs (w-2) while the gate waits.
      assert.equal(s.phases.find((p) => p.phase === 'host-prep')!.state, 'running');
      await h.executeUpdate(approveWorkersUpdate, { args: ['test'] });
      await until(h, 'w-1 and w-3 joined', (x) => row(x, 'worker-join', 'w-1').state === 'done' && row(x, 'worker-join', 'w-3').state === 'done');
      assert.equal(hosts.ran('containerRuntime', 'w-2'), 0);
      release();
      await h.result();
      assert.ok(hosts.calls.findIndex((x) => x.activity === 'containerRuntime' && x.node === 'w-2') > hosts.calls.findIndex((x) => x.activity === 'joinWorker' && x.node === 'w-1'));
    });

    test('decisions: validators name what is allowed; compensation runs before the operator is asked; skip ends a worker', async () => {
      hosts.reset();
      const c = mockCluster(name('decide'), 3, 2, (y) => y.replace('  policy:\n', '  policy:\n    approveBeforeWorkers: false\n'));
      hosts.failNext('joinWorker', 'w-2');
      hosts.failNext('hostPrep', 'cp-2', 1);
      const h = await deploy(c);
      let s = await waitForState(h, 'waiting-decision');
      assert.deepEqual([s.pendingDecision?.node, s.pendingDecision?.phase], ['cp-2', 'host-prep']);
      assert.deepEqual(s.pendingDecision?.allowed, ['retry', 'abort-rollback', 'abort-leave']);
      await refused(h.executeUpdate(decisionUpdate, { args: [{ action: 'skip', node: 'cp-2' }] }), /skip is not allowed for cp-2 \(control-plane, phase host-prep\)/);
      await refused(h.executeUpdate(decisionUpdate, { args: [{ action: 'retry', node: 'w-9' }] }), /no decision is pending for w-9; pending: cp-2/);
      assert.equal(await h.executeUpdate(decisionUpdate, { args: [{ action: 'retry' }] }), 'retry cp-2');
      s = await until(h, 'w-2 waits after its compensation', (x) => x.pendingDecision?.node === 'w-2');
      assert.equal(s.pendingDecision?.phase, 'worker-join');
      assert.equal(row(s, 'worker-join', 'w-2').compensations, 1);
      // Compensation of a join: reset, leave the cluster, reboot; then the join again, then the operator.
      const w2 = hosts.calls.filter((x) => x.node === 'w-2').map((x) => x.activity).slice(-5);
      assert.deepEqual(w2, ['joinWorker', 'resetNode', 'removeNodeFromCluster', 'rebootNode', 'joinWorker']);
      assert.equal(await h.executeUpdate(decisionUpdate, { args: [{ action: 'skip', node: 'w-2' }] }), 'skip w-2');
      const res = (await h.result()) as DeployResult;
      assert.deepEqual(res.skippedNodes, ['w-2']);
      s = await h.query(statusQuery);
      assert.equal(row(s, 'worker-join', 'w-2').state, 'skipped');
      assert.equal(row(s, 'host-prep', 'cp-2').attempts, 2);
    });

    test('abort --rollback resets what the run touched: workers first, control-plane nodes newest first, the first one last', async () => {
      hosts.reset();
      const c = mockCluster(name('abort'), 3, 3, (y) => y.replace('compensation: {', 'compensation: { enabled: false,'));
      hosts.failNext('joinWorker', 'w-3');
      const h = await deploy(c, { autoApprove: true });
      await h.signal('approveWorkersSignal', 'auto');
      await until(h, 'w-3 waits', (x) => x.pendingDecision?.node === 'w-3');
      const before = await until(h, 'every touched node listed', (x) => x.rollbackNodes?.length === 6);
      assert.deepEqual(before.rollbackNodes, ['w-1', 'w-2', 'w-3', 'cp-3', 'cp-2', 'cp-1']);
      assert.match(await h.executeUpdate(decisionUpdate, { args: [{ action: 'abort-rollback' }] }), /aborting \(rolling back/);
      await assert.rejects(h.result(), (e: unknown) => e instanceof WorkflowFailedError && /aborted by the operator; rolled back 6 node\(s\)/.test(String((e.cause as Error).message)));
      const resets = hosts.calls.filter((x) => x.activity === 'resetNode').map((x) => x.node);
      assert.deepEqual(resets.slice(3), ['cp-3', 'cp-2', 'cp-1']);
      assert.deepEqual([...resets.slice(0, 3)].sort(), ['w-1', 'w-2', 'w-3']);
      const s = await h.query(statusQuery);
      assert.equal(s.state, 'aborted');
      assert.equal(row(s, 'worker-join', 'w-3').state, 'failed');
    });

    test('abort --rollback waits for a step still running on another node before it resets that node', async () => {
      hosts.reset();
      const c = mockCluster(name('abort-busy'), 3, 3, (y) => y.replace('compensation: {', 'compensation: { enabled: false,'));
      hosts.failNext('joinWorker', 'w-3');
      // w-2's join is slow to end (a remote command being stopped): it finishes only when released.
      const release = hosts.hold('joinWorker', 'w-2');
      const h = await deploy(c, { autoApprove: true });
      await h.signal('approveWorkersSignal', 'auto');
      await until(h, 'w-3 waits while w-2 joins', (x) => x.pendingDecision?.node === 'w-3' && hosts.ran('joinWorker', 'w-2') === 1);
      let joinEnded = -1;
      try {
        await h.executeUpdate(decisionUpdate, { args: [{ action: 'abort-rollback' }] });
        await new Promise((r) => setTimeout(r, 1500));
        assert.equal(hosts.ran('resetNode', 'w-2'), 0, `no reset of w-2 while its join runs: ${JSON.stringify(hosts.calls.filter((x) => x.activity === 'resetNode'))}`);
        joinEnded = hosts.calls.length;
      } finally {
        release();
      }
      await assert.rejects(h.result(), (e: unknown) => e instanceof WorkflowFailedError && /aborted by the operator; rolled back 6 node\(s\)/.test(String((e.cause as Error).message)));
      const resets = hosts.calls.map((x, i) => ({ ...x, i })).filter((x) => x.activity === 'resetNode');
      assert.deepEqual(resets.map((x) => x.node).sort(), ['cp-1', 'cp-2', 'cp-3', 'w-1', 'w-2', 'w-3']);
      assert.ok(resets.find((x) => x.node === 'w-2')!.i >= joinEnded, 'w-2 reset after its join ended');
    });
  });
}

describe('the engine, with mock activities', () => {
  before(async () => {
    mock ??= await startMockEnv(QUEUE);
    ({ env, hosts } = mock);
  });
  after(async () => {
    await mock?.close();
  });

  test('reset: workers first, then control-plane nodes one at a time, the first one last and never removed', async () => {
    hosts.reset();
    const c = mockCluster('teardown', 3, 2);
    const h = await env.client.workflow.start('resetCluster', { taskQueue: QUEUE, workflowId: resetWorkflowId(c.name), args: [{ cluster: c }] });
    const res = (await h.result()) as { reset: string[]; failed: unknown[] };
    assert.deepEqual(res.failed, []);
    const seq = hosts.calls.map((x) => `${x.activity} ${x.node}`);
    assert.deepEqual(seq.slice(4), ['removeNodeFromCluster cp-3', 'resetNode cp-3', 'removeNodeFromCluster cp-2', 'resetNode cp-2', 'resetNode cp-1']);
    assert.deepEqual([...seq.slice(0, 4)].sort(), ['removeNodeFromCluster w-1', 'removeNodeFromCluster w-2', 'resetNode w-1', 'resetNode w-2']);
    assert.equal((await h.query(statusQuery)).state, 'done');
  });

  test('search attributes are upserted only when a value changes', async () => {
    const h = env.client.workflow.getHandle(deployWorkflowId('order'));
    const events = (await h.fetchHistory()).events ?? [];
    const upserts = events.filter((e) => e.upsertWorkflowSearchAttributesEventAttributes).map((e) => JSON.stringify(e.upsertWorkflowSearchAttributesEventAttributes?.searchAttributes?.indexedFields));
    assert.ok(upserts.length >= 3);
    for (let i = 1; i < upserts.length; i++) assert.notEqual(upserts[i], upserts[i - 1], `upsert ${i} repeats the one before`);
  });
});
