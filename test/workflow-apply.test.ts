// kha apply end to end on the simulated tier: a 3+3 cluster deployed from a file, then `kha apply` of files that
// leave it as it is (nothing to do), lack a node (refused: kha remove), ask for another version (refused: kha
// upgrade), and add two control-plane nodes and a worker (the difference printed, kha approve, the joins). The
// nodes that ran before are untouched: same boot ids, same files, no reset, init or join in their call logs.
// Real dev server, real sshd on lab hosts, the real CLI against the same server. (A file with 4 control-plane
// nodes is invalid, so the cluster grows from 3 to 5.)
import { after, before, describe, test } from 'node:test';
import assert from 'node:assert/strict';
import { existsSync, readFileSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import YAML from 'yaml';
import { labModel, startDeployEnv, type DeployEnv } from './helpers/deploy';
import { resultOrFail, scheduledActivities, nodeOf } from './helpers/workflow';
import { cliEnv, kha, type CliResult } from './cli-run';
import { applyWorkflowId, deployWorkflowId, type DeployResult } from '../src/workflows/definitions';
import { loadClusterOrThrow } from '../src/spec/load';
import { recordKubeconfigChoice } from '../src/activities/kubeconfig-target';
import { subnet } from './helpers/subnet';

let d: DeployEnv;
const QUEUE = 'apply';
const MEMBERS = ['k8scp-01', 'k8scp-02', 'k8scp-03', 'k8swn-01', 'k8swn-02', 'k8swn-03'];
const ALL = [...MEMBERS.slice(0, 3), 'k8scp-04', 'k8scp-05', ...MEMBERS.slice(3), 'k8swn-04'];

/** A cluster file "grow" with these lab nodes (in lab order) and version; fast retries. */
function clusterFile(tag: string, nodes: string[], version = '1.35.1'): string {
  const doc = YAML.parse(d.lab.specYaml({ name: 'grow', kubernetesVersion: version })) as { spec: Record<string, unknown> & { nodes: Array<{ name: string }> } };
  doc.spec.nodes = doc.spec.nodes.filter((n) => nodes.includes(n.name));
  doc.spec.policy = { approveBeforeWorkers: false, retry: { initialIntervalSeconds: 0.2, maximumIntervalSeconds: 1 }, compensation: { rebootTimeoutSeconds: 60 } };
  const file = join(d.dir, `grow-${tag}.yaml`);
  writeFileSync(file, YAML.stringify(doc));
  return file;
}

function cli(args: string[], timeoutMs = 120_000): Promise<CliResult> {
  return kha(args, cliEnv({ TEMPORAL_ADDRESS: d.env.address, TEMPORAL_NAMESPACE: d.env.namespace ?? 'default', KHA_TASK_QUEUE: QUEUE, XDG_STATE_HOME: join(d.dir, 'state') }), timeoutMs);
}

async function lastApplyActivities(): Promise<Array<{ type: string; node: string }>> {
  const h = d.env.client.workflow.getHandle(applyWorkflowId('grow'));
  return scheduledActivities((await h.fetchHistory()).events ?? []).map((a) => ({ type: a.type, node: nodeOf(a.input) }));
}

const callLog = (host: string): string[] => {
  const f = join(d.lab.sharedDir, 'calls', `${host}.log`);
  return existsSync(f) ? readFileSync(f, 'utf8').trimEnd().split('\n') : [];
};

/** What a node is: its boot id, its call log's length, and the hashes of its Kubernetes, runtime and kernel files. */
async function snapshot(host: string): Promise<{ boot: string; calls: number; files: string }> {
  const files = await d.lab.exec(host, 'find /etc/kubernetes /etc/containerd /etc/modules-load.d /etc/sysctl.d /etc/apt/sources.list.d -type f -exec sha256sum {} + 2>/dev/null | sort');
  return { boot: await d.lab.bootId(host), calls: callLog(host).length, files: files.stdout };
}

describe('kha apply on a running 3+3 cluster (simulated tier)', () => {
  before(async () => {
    d = await startDeployEnv({ controlPlanes: 5, workers: 4, subnetIndex: subnet(110) });
    const cluster = loadClusterOrThrow(clusterFile('3-3', MEMBERS));
    const kubeconfig = join(d.dir, 'grow.conf');
    recordKubeconfigChoice(cluster.name, kubeconfig);
    await d.withWorker(QUEUE, async () => {
      const h = await d.env.client.workflow.start('deployCluster', { taskQueue: QUEUE, workflowId: deployWorkflowId('grow'), args: [{ cluster, options: { kubeconfigPath: kubeconfig } }] });
      const r = await resultOrFail<DeployResult>(h);
      assert.equal(r.nodesReady, 6);
      assert.equal(r.kubernetesVersion, 'v1.35.1');
    });
  });
  after(async () => {
    await d?.close();
  });

  test('the file it was deployed from: nothing to do, no approval asked, nothing run but the discovery', async () => {
    await d.withWorker(QUEUE, async () => {
      const r = await cli(['apply', join(d.dir, 'grow-3-3.yaml')]);
      assert.equal(r.code, 0, r.stdout + r.stderr);
      assert.match(r.stdout, /^note: apply: grow runs Kubernetes v1\.35\.1 on 6 node\(s\): 3 control-plane, 3 worker; etcd 3 member\(s\), 3 healthy; VIP \S+ held by k8scp-0[123]$/m);
      assert.match(r.stdout, /^✔ grow: nothing to do: every node of the file runs \(Kubernetes v1\.35\.1, 6 nodes Ready, 3 etcd members\)$/m);
      assert.doesNotMatch(r.stdout + r.stderr, /waits for approval|kha approve|waiting-approval/);
      assert.deepEqual(await lastApplyActivities(), [{ type: 'discoverCluster', node: '' }]);
    });
  });

  test('a file without k8swn-03 is refused naming kha remove; one asking for 1.35.2 naming kha upgrade; no host changed', async () => {
    const before = await Promise.all(ALL.map(snapshot));
    await d.withWorker(QUEUE, async () => {
      const fewer = await cli(['apply', clusterFile('no-wn3', MEMBERS.filter((n) => n !== 'k8swn-03'))]);
      assert.equal(fewer.code, 1, fewer.stdout + fewer.stderr);
      assert.match(fewer.stderr, /^✖ apply of grow refused, no host was changed: k8swn-03 \(worker, [0-9.]+\) runs in grow but is not in the file; apply never removes a node: use kha remove grow k8swn-03, or put it back in the file$/m);
      assert.deepEqual(await lastApplyActivities(), [{ type: 'discoverCluster', node: '' }]);

      const newer = await cli(['apply', clusterFile('v1352', ALL, '1.35.2')]);
      assert.equal(newer.code, 1, newer.stdout + newer.stderr);
      assert.match(newer.stderr, /grow runs Kubernetes v1\.35\.1 and the file asks for 1\.35\.2; apply never changes the version of a running cluster: use kha upgrade/);
      assert.deepEqual(await lastApplyActivities(), [{ type: 'discoverCluster', node: '' }]);
    });
    const after = await Promise.all(ALL.map(snapshot));
    // Discovery reads on one control-plane node (kubectl, etcdctl); nothing else ran anywhere.
    for (let i = 0; i < ALL.length; i++) {
      assert.equal(after[i]!.boot, before[i]!.boot, ALL[i]);
      assert.equal(after[i]!.files, before[i]!.files, ALL[i]);
      const fresh = callLog(ALL[i]!).slice(before[i]!.calls).map((l) => l.replace(/^\d+ /, ''));
      assert.ok(fresh.every((l) => /^(kubectl|etcdctl|crictl)\b/.test(l)), `${ALL[i]}: ${fresh.join('; ')}`);
    }
  });

  test('a file with two more control-plane nodes and a worker: the difference, kha approve, the joins; the members untouched', async () => {
    const before = new Map(await Promise.all(MEMBERS.map(async (h) => [h, await snapshot(h)] as const)));
    await d.withWorker(QUEUE, async () => {
      const file = clusterFile('5-4', ALL);
      const asked = await cli(['apply', file]);
      assert.equal(asked.code, 10, asked.stdout + asked.stderr);
      for (const line of [
        /^note: apply: \+ k8scp-04 \(control-plane, [0-9.]+\): joins after the members, one at a time, etcd checked after each$/m,
        /^note: apply: \+ k8scp-05 \(control-plane, [0-9.]+\): joins after the members, one at a time, etcd checked after each$/m,
        /^note: apply: \+ k8swn-04 \(worker, [0-9.]+\): joins once the control plane is complete, in parallel$/m,
        /^note: apply: = 6 node\(s\) unchanged: k8scp-01, k8scp-02, k8scp-03, k8swn-01, k8swn-02, k8swn-03$/m,
        /^⏸ grow waits for approval of the changes above before it joins the new nodes\. Check them, then run: kha approve grow$/m,
      ]) assert.match(asked.stdout, line);
      // Nothing changed before the approval: the new nodes are still bare.
      for (const h of ['k8scp-04', 'k8scp-05', 'k8swn-04']) assert.equal((await d.lab.exec(h, 'test -e /etc/modules-load.d/k8s.conf && echo prepared || echo bare')).stdout.trim(), 'bare', h);

      const approved = await cli(['approve', 'grow'], 600_000);
      assert.equal(approved.code, 0, approved.stdout + approved.stderr);
      assert.match(approved.stdout, /^approve: approved: joining k8scp-04, k8scp-05, k8swn-04$/m);
      assert.match(approved.stdout, /^✔ grow applied: joined k8scp-04, k8scp-05, k8swn-04; Kubernetes v1\.35\.1, 9 nodes Ready, 5 etcd members$/m);

      const acts = await lastApplyActivities();
      const onMembers = acts.filter((a) => MEMBERS.includes(a.node)).map((a) => `${a.type} ${a.node}`);
      assert.deepEqual(onMembers, ['verifyCluster k8scp-01'], 'only the read-only verification names a member');
      const joins = acts.filter((a) => a.type === 'joinControlPlane' || a.type === 'waitEtcdHealthy').map((a) => `${a.type} ${a.node}`);
      assert.deepEqual(joins, ['joinControlPlane k8scp-04', 'waitEtcdHealthy k8scp-04', 'joinControlPlane k8scp-05', 'waitEtcdHealthy k8scp-05']);
    });
    // What the simulator reports: five running etcd members, nine Nodes, the new ones at the version that runs.
    const m = labModel(d.lab).cluster!;
    assert.deepEqual(m.etcd.filter((e) => e.running && !e.isLearner).map((e) => e.name).sort(), ['k8scp-01', 'k8scp-02', 'k8scp-03', 'k8scp-04', 'k8scp-05']);
    assert.deepEqual(m.nodes.map((n) => n.name).sort(), [...ALL].sort());
    assert.equal((await d.lab.exec('k8swn-04', "dpkg-query -W -f='${Version}' kubeadm")).stdout.trim(), '1.35.1-1.1');
    // The members: same boot, same files, and nothing in their call logs that resets, initializes, joins or installs.
    for (const h of MEMBERS) {
      const now = await snapshot(h);
      const b = before.get(h)!;
      assert.equal(now.boot, b.boot, `${h} rebooted`);
      assert.equal(now.files, b.files, `${h}: its files changed`);
      const fresh = callLog(h).slice(b.calls).map((l) => l.replace(/^\d+ /, ''));
      const changing = fresh.filter((l) => /^kubeadm (reset|join)\b|^kubeadm init$|^apt-get|^systemctl (restart|start|stop|enable)|^modprobe|^reboot|^swapoff/.test(l));
      assert.deepEqual(changing, [], `${h}: ${fresh.join('; ')}`);
      if (h.startsWith('k8swn')) assert.deepEqual(fresh, [], `${h}: nothing ran on a member worker`);
    }
  });
});
