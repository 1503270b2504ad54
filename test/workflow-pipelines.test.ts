// Per-node pipelines: a worker that fails host preparation waits for the operator on its own; the control
// plane goes on, comes up and waits at the approval gate. Real dev server, lab hosts.
import { after, before, describe, test } from 'node:test';
import assert from 'node:assert/strict';
import { join } from 'node:path';
import type { WorkflowHandle } from '@temporalio/client';
import { startDeployEnv, type DeployEnv } from './helpers/deploy';
import { resultOrFail, scheduledActivities, nodeOf, waitForState } from './helpers/workflow';
import { approveWorkersUpdate, decisionUpdate, deployWorkflowId, statusQuery, type DeployResult, type DeploymentStatus } from '../src/workflows/definitions';
import { recordKubeconfigChoice } from '../src/activities/kubeconfig-target';
import { subnet } from './helpers/subnet';

let d: DeployEnv;

const row = (s: DeploymentStatus, phase: string, node: string) => s.phases.find((p) => p.phase === phase)!.nodes.find((n) => n.node === node)!;

describe('deployCluster runs a pipeline per node', () => {
  before(async () => {
    d = await startDeployEnv({ subnetIndex: subnet(90) });
  });
  after(async () => {
    await d?.close();
  });

  test('a worker failing host prep never holds back the control plane: it comes up and waits at the gate', async () => {
    const cluster = d.cluster('pipes', (c) => {
      c.spec.policy.retry.maximumAttempts = 2;
      c.spec.policy.retry.initialIntervalSeconds = 1;
    });
    // Every modprobe on k8swn-02 fails: its host prep fails however often it is retried.
    d.lab.setFaults('k8swn-02', [{ command: 'modprobe', times: 0, exitCode: 1, stderr: 'modprobe: FATAL: Module br_netfilter not found (injected)' }]);
    const kubeconfigPath = join(d.dir, 'pipes.conf');
    recordKubeconfigChoice(cluster.name, kubeconfigPath);
    await d.withWorker('pipes', async () => {
      const handle: WorkflowHandle = await d.env.client.workflow.start('deployCluster', {
        taskQueue: 'pipes',
        workflowId: deployWorkflowId(cluster.name),
        args: [{ cluster, options: { heartbeatTimeoutSeconds: 15, kubeconfigPath } }],
      });
      // The worker waits for a decision from host prep on; the control plane keeps going meanwhile.
      await waitForState(handle, 'waiting-decision');
      // Until the gate waits, or nothing runs any more (what a barrier after host prep would leave).
      let s: DeploymentStatus;
      for (;;) {
        s = await handle.query(statusQuery);
        const gate = s.phases.find((p) => p.phase === 'approval')!.state === 'running';
        const busy = s.phases.some((p) => p.nodes.some((n) => n.state === 'running' || n.state === 'compensating'));
        if (gate || !busy) break;
        await new Promise((r) => setTimeout(r, 500));
      }
      assert.equal(s.phases.find((p) => p.phase === 'approval')!.state, 'running', JSON.stringify(s.phases.map((p) => [p.phase, p.state])));
      assert.equal(s.state, 'waiting-decision', 'a decision is still pending while the gate waits');
      assert.equal(s.currentPhase, 'approval');
      assert.deepEqual(s.pendingDecision && [s.pendingDecision.node, s.pendingDecision.phase], ['k8swn-02', 'host-prep']);
      assert.match(s.pendingDecision!.error, /kernel module/);
      assert.equal(row(s, 'host-prep', 'k8swn-02').state, 'waiting');
      for (const p of ['kube-vip', 'kubeadm-init']) assert.equal(row(s, p, 'k8scp-01').state, 'done', p);
      assert.equal(row(s, 'calico', 'cluster').state, 'done');
      for (const n of ['k8scp-02', 'k8scp-03']) assert.equal(row(s, 'control-plane-join', n).state, 'done', n);
      // The healthy workers got as far as the gate allows; the failing one never reached its next phase.
      for (const n of ['k8swn-01', 'k8swn-03']) assert.equal(row(s, 'packages', n).state === 'done' || row(s, 'packages', n).state === 'running', true, n);
      assert.equal(row(s, 'container-runtime', 'k8swn-02').state, 'pending');
      for (const n of ['k8swn-01', 'k8swn-02', 'k8swn-03']) assert.equal(row(s, 'worker-join', n).state, 'pending', n);
      const events = (await handle.fetchHistory()).events ?? [];
      assert.ok(!scheduledActivities(events).some((a) => a.type === 'joinWorker'), 'no worker joined before the approval');
      assert.ok(!scheduledActivities(events).some((a) => a.type === 'containerRuntime' && nodeOf(a.input) === 'k8swn-02'));

      // The operator fixes the host and retries; the gate is approved: the worker catches up and joins.
      d.lab.setFaults('k8swn-02', []);
      assert.equal(await handle.executeUpdate(decisionUpdate, { args: [{ action: 'retry', node: 'k8swn-02', by: 'test' }] }), 'retry k8swn-02');
      assert.match(await handle.executeUpdate(approveWorkersUpdate, { args: ['test'] }), /approved: joining 3 worker/);
      const res = await resultOrFail<DeployResult>(handle);
      assert.equal(res.nodesReady, 6);
      assert.deepEqual(res.skippedNodes, []);
      const done = await handle.query(statusQuery);
      assert.equal(done.state, 'done');
      assert.ok(row(done, 'host-prep', 'k8swn-02').attempts >= 2, `attempts ${row(done, 'host-prep', 'k8swn-02').attempts}`);
    });
  });
});
