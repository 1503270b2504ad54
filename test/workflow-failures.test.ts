// deployCluster when hosts fail: retries, compensation, operator decisions, expiry across a late approval,
// and the histories of these runs replayed against the current workflow code. Real dev server, lab hosts.
import { after, before, describe, test } from 'node:test';
import assert from 'node:assert/strict';
import { readFileSync } from 'node:fs';
import { join } from 'node:path';
import { Worker } from '@temporalio/worker';
import { WorkflowFailedError, type WorkflowHandle } from '@temporalio/client';
import { startDeployEnv, type DeployEnv } from './helpers/deploy';
import { resultOrFail, scheduledActivities, nodeOf, waitForState } from './helpers/workflow';
import {
  approveWorkersSignal,
  decisionUpdate,
  deployWorkflowId,
  statusQuery,
  type DeployResult,
} from '../src/workflows/definitions';
import type { SimModel } from '../src/lab/sim/model';
import type { ClusterSpec } from '../src/spec/types';
import { recordKubeconfigChoice } from '../src/activities/kubeconfig-target';
import { subnet } from './helpers/subnet';

let d: DeployEnv;
const histories: Array<{ id: string; history: unknown }> = [];

function model(): SimModel {
  return JSON.parse(readFileSync(join(d.lab.sharedDir, 'model.json'), 'utf8')) as SimModel;
}

async function start(cluster: ClusterSpec, taskQueue: string): Promise<WorkflowHandle> {
  const kubeconfigPath = join(d.dir, `${cluster.name}.conf`);
  // Outside the worker's state directory, so chosen the way kha deploy --kubeconfig does.
  recordKubeconfigChoice(cluster.name, kubeconfigPath);
  return d.env.client.workflow.start('deployCluster', {
    taskQueue,
    workflowId: deployWorkflowId(cluster.name),
    args: [{ cluster, options: { heartbeatTimeoutSeconds: 15, kubeconfigPath } }],
  });
}

async function keep(handle: WorkflowHandle): Promise<void> {
  histories.push({ id: handle.workflowId, history: await handle.fetchHistory() });
}

const noApproval = (c: ClusterSpec) => {
  c.spec.policy.approveBeforeWorkers = false;
};

describe('deployCluster under failures', () => {
  before(async () => {
    d = await startDeployEnv({ subnetIndex: subnet(42) });
  });
  after(async () => {
    await d?.close();
  });

  test('a control-plane join that fails twice succeeds on the third attempt, without compensation', async () => {
    const cluster = d.cluster('retry', noApproval);
    const bootBefore = await d.lab.bootId('k8scp-02');
    d.lab.setFaults('k8scp-02', [
      { command: 'kubeadm', argsMatch: '^join', nth: 1, times: 2, exitCode: 1, stderr: 'error execution phase kubelet-start: timed out waiting for the condition' },
    ]);
    await d.withWorker('retry', async () => {
      const handle = await start(cluster, 'retry');
      const result = await resultOrFail<DeployResult>(handle);
      assert.equal(result.nodesReady, 6);
      const row = (await handle.query(statusQuery)).phases.find((p) => p.phase === 'control-plane-join')!.nodes.find((n) => n.node === 'k8scp-02')!;
      assert.equal(row.compensations, 0);
      // Attempts are Temporal's retries of the step: joinControlPlane took three (twice failed); waitEtcdHealthy,
      // one, adds none.
      assert.equal(row.attempts, 3, JSON.stringify(row));
      const history = await handle.fetchHistory();
      const acts = scheduledActivities(history.events ?? []);
      assert.equal(acts.filter((a) => a.type === 'resetNode' || a.type === 'rebootNode').length, 0);
      const started = (history.events ?? []).filter((e) => e.activityTaskStartedEventAttributes?.attempt === 3);
      assert.ok(started.length >= 1, 'one activity reached its third attempt');
      assert.equal(await d.lab.bootId('k8scp-02'), bootBefore, 'no reboot');
      await keep(handle);
    });
  });

  test('a worker whose join keeps failing until reset and reboot is compensated and joins', async () => {
    await d.freshLab(); // each scenario starts from clean hosts
    const cluster = d.cluster('comp', noApproval);
    const bootBefore = await d.lab.bootId('k8swn-02');
    d.lab.setFaults('k8swn-02', [
      {
        command: 'kubeadm',
        argsMatch: '^join',
        untilReboot: true,
        exitCode: 1,
        stderr: 'error execution phase preflight: [preflight] Some fatal errors occurred:\n\t[ERROR Port-10250]: Port 10250 is in use',
      },
    ]);
    await d.withWorker('comp', async () => {
      const handle = await start(cluster, 'comp');
      const result = await resultOrFail<DeployResult>(handle);
      assert.equal(result.nodesReady, 6);
      const row = (await handle.query(statusQuery)).phases.find((p) => p.phase === 'worker-join')!.nodes.find((n) => n.node === 'k8swn-02')!;
      assert.equal(row.compensations, 1);
      // kubeadm's preflight refusal is not retried blindly: one attempt, then compensation, then the join.
      assert.equal(row.attempts, 2, JSON.stringify(row));
      assert.notEqual(await d.lab.bootId('k8swn-02'), bootBefore, 'the node was rebooted');
      const acts = scheduledActivities((await handle.fetchHistory()).events ?? []);
      const comp = acts.filter((a) => ['resetNode', 'removeNodeFromCluster', 'rebootNode'].includes(a.type));
      assert.deepEqual(comp.map((a) => `${a.type}:${nodeOf(a.input)}`), ['resetNode:k8swn-02', 'removeNodeFromCluster:k8swn-02', 'rebootNode:k8swn-02']);
      assert.ok(model().cluster!.nodes.some((n) => n.name === 'k8swn-02'));
      await keep(handle);
    });
  });

  test('a control-plane join that fails after etcd registered its member: compensation removes the member, the node joins', async () => {
    await d.freshLab(); // each scenario starts from clean hosts
    const cluster = d.cluster('etcd', noApproval);
    d.lab.setFaults('k8scp-03', [{ command: 'kubeadm', argsMatch: '^join', failAfterEtcdMember: true }]);
    await d.withWorker('etcd', async () => {
      const handle = await start(cluster, 'etcd');
      // While k8scp-03 is being compensated, etcd still lists its half-made member.
      const result = await resultOrFail<DeployResult>(handle);
      assert.equal(result.etcdMembers, 3);
      const m = model().cluster!;
      assert.deepEqual(m.etcd.map((e) => [e.name, e.running, e.isLearner]).sort(), [
        ['k8scp-01', true, false],
        ['k8scp-02', true, false],
        ['k8scp-03', true, false],
      ]);
      const row = (await handle.query(statusQuery)).phases.find((p) => p.phase === 'control-plane-join')!.nodes.find((n) => n.node === 'k8scp-03')!;
      assert.equal(row.compensations, 1);
      const acts = scheduledActivities((await handle.fetchHistory()).events ?? []);
      assert.ok(acts.some((a) => a.type === 'removeNodeFromCluster' && nodeOf(a.input) === 'k8scp-03'));
      // k8scp-02 was never reset: compensation touches one control-plane node at a time, the failing one.
      assert.ok(!acts.some((a) => a.type === 'resetNode' && nodeOf(a.input) !== 'k8scp-03'));
      await keep(handle);
    });
  });

  test('approval given 3 hours later (lab clock): workers still join with freshly minted credentials', async () => {
    await d.freshLab(); // each scenario starts from clean hosts
    const cluster = d.cluster('late');
    await d.withWorker('late', async () => {
      const handle = await start(cluster, 'late');
      await waitForState(handle, 'waiting-approval');
      const atGate = model().cluster!;
      const tokensAtGate = atGate.tokens.map((t) => t.id);
      d.lab.setClockOffset(3 * 3600);
      // Everything kha minted before the gate has expired in lab time: join tokens (30 min), the certificate key (2 h).
      const labNow = Date.now() + 3 * 3600 * 1000;
      const minted = atGate.tokens.filter((t) => t.description?.startsWith('kha join'));
      assert.ok(minted.length >= 2, 'the control-plane joins minted tokens');
      assert.ok(minted.every((t) => t.expires > 0 && t.expires < labNow));
      assert.ok(atGate.certKey && atGate.certKey.expires < labNow);
      // Fire-and-forget callers approve with the Signal.
      await handle.signal(approveWorkersSignal, 'test');
      const result = await resultOrFail<DeployResult>(handle);
      assert.equal(result.nodesReady, 6);
      const fresh = model().cluster!.tokens.filter((t) => !tokensAtGate.includes(t.id));
      assert.ok(fresh.length >= 3, `a token per worker join after the gate (got ${fresh.length})`);
      await keep(handle);
    });
    d.lab.setClockOffset(0);
  });

  test('retries used up: the workflow waits for the operator; after the fault is cleared, retry completes it', async () => {
    await d.freshLab(); // each scenario starts from clean hosts
    const cluster = d.cluster('wait', (c) => {
      noApproval(c);
      c.spec.policy.compensation.enabled = false;
      c.spec.policy.retry.maximumAttempts = 2;
    });
    d.lab.setFaults('k8swn-03', [{ command: 'kubeadm', argsMatch: '^join', times: 0, exitCode: 1, stderr: 'error execution phase kubelet-start: timed out waiting for the condition' }]);
    await d.withWorker('wait', async () => {
      const handle = await start(cluster, 'wait');
      const waiting = await waitForState(handle, 'waiting-decision');
      assert.equal(waiting.pendingDecision?.node, 'k8swn-03');
      assert.equal(waiting.pendingDecision?.phase, 'worker-join');
      assert.match(waiting.pendingDecision?.error ?? '', /timed out waiting for the condition/);
      assert.deepEqual(waiting.pendingDecision?.allowed, ['retry', 'skip', 'abort-rollback', 'abort-leave']);
      // Skip is refused for control-plane nodes, and a decision names a pending node.
      await assert.rejects(handle.executeUpdate(decisionUpdate, { args: [{ action: 'skip', node: 'k8scp-02' }] }), (e: unknown) => {
        assert.match(String(((e as Error).cause as Error | undefined)?.message), /no decision is pending for k8scp-02; pending: k8swn-03/);
        return true;
      });
      d.lab.clearFaults('k8swn-03');
      assert.equal(await handle.executeUpdate(decisionUpdate, { args: [{ action: 'retry' }] }), 'retry k8swn-03');
      const result = await resultOrFail<DeployResult>(handle);
      assert.equal(result.nodesReady, 6);
      assert.deepEqual(result.skippedNodes, []);
      await keep(handle);
    });
  });

  test('abort with rollback resets every node the deployment touched, workers first and the first control-plane node last', async () => {
    await d.freshLab(); // each scenario starts from clean hosts
    const cluster = d.cluster('abort', (c) => {
      noApproval(c);
      c.spec.policy.compensation.enabled = false;
      c.spec.policy.retry.maximumAttempts = 1;
    });
    d.lab.setFaults('k8swn-01', [{ command: 'kubeadm', argsMatch: '^join', times: 0, exitCode: 1, stderr: 'error execution phase kubelet-start: timed out waiting for the condition' }]);
    await d.withWorker('abort', async () => {
      const handle = await start(cluster, 'abort');
      await waitForState(handle, 'waiting-decision');
      await handle.executeUpdate(decisionUpdate, { args: [{ action: 'abort-rollback' }] });
      await assert.rejects(handle.result(), (e: unknown) => {
        assert.ok(e instanceof WorkflowFailedError);
        assert.match(String((e.cause as Error).message), /aborted by the operator; rolled back 6 node\(s\)/);
        return true;
      });
      const s = await handle.query(statusQuery);
      assert.equal(s.state, 'aborted');
      for (const h of ['k8scp-01', 'k8scp-02', 'k8scp-03', 'k8swn-01', 'k8swn-02', 'k8swn-03']) {
        const r = await d.lab.exec(h, 'ls /etc/kubernetes/kubelet.conf /etc/kubernetes/admin.conf /etc/kubernetes/manifests/*.yaml 2>/dev/null | wc -l');
        assert.equal(r.stdout.trim(), '0', `${h} still has Kubernetes files`);
      }
      const resets = scheduledActivities((await handle.fetchHistory()).events ?? []).filter((a) => a.type === 'resetNode').map((a) => nodeOf(a.input));
      assert.deepEqual(resets.slice(0, 3).sort(), ['k8swn-01', 'k8swn-02', 'k8swn-03']);
      assert.deepEqual(resets.slice(3), ['k8scp-03', 'k8scp-02', 'k8scp-01']);
      await keep(handle);
    });
  });

  test('abort while a join hangs: the activity is cancelled and the remote command ends; nodes are left as they are', async () => {
    await d.freshLab();
    const cluster = d.cluster('hang', noApproval);
    d.lab.setFaults('k8swn-02', [{ command: 'kubeadm', argsMatch: '^join', hang: true }]);
    await d.withWorker('hang', async () => {
      const handle = await start(cluster, 'hang');
      // Wait until the hanging kubeadm runs on the host (the sim client serving it, or the tool's own process).
      const running = `pgrep -f '(main[.]js |--wrapper [^ ]*/)kubeadm join'`;
      const end = Date.now() + 180_000;
      for (;;) {
        const r = await d.lab.exec('k8swn-02', `${running} || true`);
        if (r.stdout.trim()) break;
        if (Date.now() > end) assert.fail('kubeadm join never started on k8swn-02');
        await new Promise((res) => setTimeout(res, 300));
      }
      assert.equal((await handle.query(statusQuery)).state, 'running');
      await handle.executeUpdate(decisionUpdate, { args: [{ action: 'abort-leave' }] });
      await assert.rejects(handle.result(), (e: unknown) => {
        assert.ok(e instanceof WorkflowFailedError);
        assert.match(String((e.cause as Error).message), /aborted by the operator; nodes left as they are/);
        return true;
      });
      const gone = await d.lab.exec('k8swn-02', `${running} || echo none`);
      if (gone.stdout.trim() !== 'none') {
        const ps = await d.lab.exec('k8swn-02', 'ps -eo pid,ppid,pgid,sid,args');
        assert.fail(`the hanging kubeadm join still runs on the host:\n${ps.stdout}`);
      }
      const s = await handle.query(statusQuery);
      const row = s.phases.find((p) => p.phase === 'worker-join')!.nodes.find((n) => n.node === 'k8swn-02')!;
      assert.equal(row.state, 'failed');
      assert.equal(row.note, 'aborted by operator');
      // Left as they are: the control plane still stands.
      assert.equal(model().cluster!.etcd.length, 3);
      await keep(handle);
    });
  });

  test('the histories of these runs replay against the current workflow code', async () => {
    assert.ok(histories.length >= 5, `histories kept: ${histories.length}`);
    for (const h of histories) {
      await Worker.runReplayHistory({ workflowsPath: require.resolve('../src/workflows') }, h.history, h.id);
    }
  });
});
