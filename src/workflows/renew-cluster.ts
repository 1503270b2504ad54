// renewCluster: `kha certs renew` on the shared engine. One control-plane node at a time, the first one last
// (so etcd keeps quorum and another node can hold the VIP): kubeadm certs renew all, then that node's static
// pods restarted and healthy again before the next node starts. Then the admin kubeconfig kha saved is copied
// again, since the old one's client certificate was replaced. A node whose renewal fails waits for the operator.
import { ApplicationFailure } from '@temporalio/workflow';
import type { ClusterSpec } from '../spec/types';
import { assertValidCluster, INVALID_SPEC } from './input-check';
import { refuseBesideDeployAndReset, refuseBesideUpgradeAndRestore } from './backup-cluster';
import { CERTS_RENEW, certsRenewPhase, kubeconfigRefreshPhase } from '../phases/certs';
import { nodesOf } from '../phases/select';
import { Engine } from './engine/engine';

export interface RenewInput {
  cluster: ClusterSpec;
  /** Where to save the refreshed admin kubeconfig (the worker confines it as for a deployment). */
  kubeconfigPath?: string;
}

export interface RenewResult {
  cluster: string;
  nodes: Array<{ node: string; restarted: string[] }>;
  kubeconfigPath: string;
}

export async function renewCluster(input: RenewInput): Promise<RenewResult> {
  assertValidCluster('renewCluster', input?.cluster, { running: true });
  const { cluster } = input;
  const p = input.kubeconfigPath;
  if (p !== undefined && (typeof p !== 'string' || !p.startsWith('/'))) throw ApplicationFailure.nonRetryable(`renewCluster: kubeconfigPath must be an absolute path`, INVALID_SPEC);
  const spec = cluster.spec;
  // Five restarts with a wait of up to 3 minutes each fit in the SSH command timeout; the activity gets that and more.
  const e = new Engine(CERTS_RENEW, cluster, { heartbeatTimeoutSeconds: 60, startToCloseMs: (spec.ssh.commandTimeoutSeconds + 300) * 1000 });
  await refuseBesideDeployAndReset(e, cluster.name, 'a certificate renewal');
  await refuseBesideUpgradeAndRestore(e, cluster.name, 'a certificate renewal');
  const result: RenewResult = { cluster: cluster.name, nodes: [], kubeconfigPath: '' };
  return e.run(
    async () => {
      for (const n of nodesOf(certsRenewPhase.nodes, cluster)) {
        await e.steps.step(certsRenewPhase.id, n, async () => {
          const r = await e.steps.call('renewCertificates', certsRenewPhase.id, n.name, [{ cluster: e.steps.forNode(n.name), node: n.name }]);
          result.nodes.push({ node: n.name, restarted: r.restarted });
          return `renewed; restarted ${r.restarted.join(', ')}`;
        });
      }
      await e.barrier(kubeconfigRefreshPhase.id);
      const first = nodesOf(kubeconfigRefreshPhase.nodes, cluster)[0]!;
      await e.steps.step(kubeconfigRefreshPhase.id, first, async () => {
        const kc = await e.steps.call('fetchKubeconfig', kubeconfigRefreshPhase.id, first.name, [{ cluster: e.steps.forNode(first.name), node: first.name, path: p }]);
        result.kubeconfigPath = kc.path;
        e.status.kubeconfigPath = kc.path;
        return `admin kubeconfig saved again: ${kc.path}`;
      });
      return result;
    },
    // Renewed certificates are not taken back: an abort stops before the next node.
    async () => 0,
    () => `certificate renewal of ${cluster.name} aborted by the operator; renewed so far: ${result.nodes.map((n) => n.node).join(', ') || 'none'}`,
  );
}
