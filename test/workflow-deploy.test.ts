// deployCluster end to end: real Temporal dev server, real sshd on lab hosts, the real rendered scripts.
import { after, before, describe, test } from 'node:test';
import assert from 'node:assert/strict';
import { readFileSync, statSync } from 'node:fs';
import { join } from 'node:path';
import { WorkflowUpdateFailedError } from '@temporalio/client';
import { startDeployEnv, type DeployEnv } from './helpers/deploy';
import { approveWorkersUpdate, deployWorkflowId, statusQuery, type DeployResult } from '../src/workflows/definitions';
import { resultOrFail, waitForState } from './helpers/workflow';
import type { SimModel } from '../src/lab/sim/model';
import { recordKubeconfigChoice } from '../src/activities/kubeconfig-target';
import { subnet } from './helpers/subnet';

let d: DeployEnv;

function model(): SimModel {
  return JSON.parse(readFileSync(join(d.lab.sharedDir, 'model.json'), 'utf8')) as SimModel;
}

describe('deployCluster on the seed topology (3+3)', () => {
  before(async () => {
    d = await startDeployEnv({ subnetIndex: subnet(41) });
  });
  after(async () => {
    await d?.close();
  });

  test('stops at the approval gate with no worker joined, then completes with 6 Ready nodes and 3 etcd members', async () => {
    const cluster = d.cluster('seed');
    const kubeconfig = join(d.dir, 'admin.conf');
    // Outside the worker's state directory, so chosen the way kha deploy --kubeconfig does.
    recordKubeconfigChoice(cluster.name, kubeconfig);
    await d.withWorker('happy', async () => {
      const handle = await d.env.client.workflow.start('deployCluster', {
        taskQueue: 'happy',
        workflowId: deployWorkflowId(cluster.name),
        args: [{ cluster, options: { heartbeatTimeoutSeconds: 15, kubeconfigPath: kubeconfig } }],
      });
      // Nothing waits yet: the Update's validator rejects approval.
      await assert.rejects(handle.executeUpdate(approveWorkersUpdate, { args: ['test'] }), (e: unknown) => {
        assert.ok(e instanceof WorkflowUpdateFailedError, String(e));
        assert.match(String(((e as Error).cause as Error | undefined)?.message ?? ''), /nothing waits for approval/);
        return true;
      });

      const gate = await waitForState(handle, 'waiting-approval', 240_000);
      assert.match(gate.waitingFor ?? '', /kha approve seed/);
      const m = model();
      assert.deepEqual(m.cluster?.nodes.map((n) => n.name).sort(), ['k8scp-01', 'k8scp-02', 'k8scp-03']);
      for (const w of ['k8swn-01', 'k8swn-02', 'k8swn-03']) {
        const r = await d.lab.exec(w, 'test -e /etc/kubernetes/kubelet.conf && echo joined || echo clean');
        assert.equal(r.stdout.trim(), 'clean', `${w} joined before approval`);
      }

      assert.equal(await handle.executeUpdate(approveWorkersUpdate, { args: ['test'] }), 'approved: joining 3 worker node(s)');
      const result = await resultOrFail<DeployResult>(handle);
      assert.equal(result.nodesReady, 6);
      assert.equal(result.etcdMembers, 3);
      assert.match(result.kubernetesVersion, /^v1\.35\.\d+$/);

      const final = model();
      assert.equal(final.cluster?.nodes.length, 6);
      assert.equal(final.cluster?.etcd.filter((e) => !e.isLearner).length, 3);
      // What the scripts wrote is on the hosts.
      const mods = await d.lab.readFile('k8swn-02', '/etc/modules-load.d/k8s.conf');
      assert.match(mods, /^br_netfilter$/m);
      assert.match(mods, /^ip_vs$/m);
      const vip = await d.lab.readFile('k8scp-03', '/etc/kubernetes/manifests/kube-vip.yaml');
      assert.match(vip, new RegExp(d.lab.vip.replace(/\./g, '\\.')));
      assert.doesNotMatch(await d.lab.readFile('k8scp-01', '/etc/kubernetes/manifests/kube-vip.yaml'), /super-admin\.conf/);
      // The kubeconfig is on this machine, 0600, pointing at the endpoint.
      assert.equal(statSync(kubeconfig).mode & 0o777, 0o600);
      assert.match(readFileSync(kubeconfig, 'utf8'), /server: https:\/\/k8s-api\.lab\.internal:6443/);

      const status = await handle.query(statusQuery);
      assert.equal(status.state, 'done');
      assert.ok(status.phases.every((p) => p.state === 'done'), JSON.stringify(status.phases.map((p) => [p.phase, p.state])));
    });
  });
});
