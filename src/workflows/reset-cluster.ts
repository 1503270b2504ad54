// resetCluster: the teardown as its phases (src/phases/reset.ts) on the shared engine: workers first (in
// parallel), then control-plane nodes one at a time, the first one last, so etcd keeps quorum until the end.
// Each node leaves the cluster before its reset. A node that fails is recorded and the others go on.
import { log } from '@temporalio/workflow';
import type { ClusterSpec, NodeSpec } from '../spec/types';
import { applyWorkflowId, deployWorkflowId, removeWorkflowId } from './definitions';
import { refuseBeside } from './exclusive';
import { refuseBesideUpgradeAndRestore } from './backup-cluster';
import { assertValidCluster } from './input-check';
import { RESET, resetControlPlanes, resetWorkers } from '../phases/reset';
import { nodesOf } from '../phases/select';
import type { PhaseDef } from '../phases/types';
import { Engine, bounded } from './engine/engine';

export interface ResetInput {
  cluster: ClusterSpec;
  /** Reboot each node after its reset (clears what reset cannot: CNI links, IPVS tables, loaded state). */
  reboot?: boolean;
}

export interface ResetResult {
  cluster: string;
  reset: string[];
  failed: Array<{ node: string; error: string }>;
}

export async function resetCluster(input: ResetInput): Promise<ResetResult> {
  assertValidCluster('resetCluster', input?.cluster);
  const { cluster } = input;
  const spec = cluster.spec;
  const first = spec.nodes.find((n) => n.role === 'control-plane')!;
  const e = new Engine(RESET, cluster, { heartbeatTimeoutSeconds: 60, startToCloseMs: (spec.ssh.commandTimeoutSeconds + 120) * 1000 });
  const { steps, board } = e;
  await refuseBeside(
    deployWorkflowId(cluster.name),
    `the deployment of ${cluster.name} is running (${deployWorkflowId(cluster.name)}); a reset does not start beside it: let it finish, or stop it with kha abort ${cluster.name} [--rollback], then reset again`,
    (msg) => {
      (e.status.notices ??= []).push(msg);
      board.setState('aborted');
    },
  );
  await refuseBeside(applyWorkflowId(cluster.name), `an apply of ${cluster.name} is running (${applyWorkflowId(cluster.name)}); a reset does not start beside it: let it finish, or stop it with kha abort ${cluster.name} [--rollback], then reset again`, (msg) => {
    (e.status.notices ??= []).push(msg);
    board.setState('aborted');
  });
  await refuseBeside(removeWorkflowId(cluster.name), `a removal of a node of ${cluster.name} is running (${removeWorkflowId(cluster.name)}); a reset does not start beside it: wait until it ends (kha status ${cluster.name} --remove), then reset again`, (msg) => {
    (e.status.notices ??= []).push(msg);
    board.setState('aborted');
  });
  await refuseBesideUpgradeAndRestore(e, cluster.name, 'a reset');
  const result: ResetResult = { cluster: cluster.name, reset: [], failed: [] };
  const remaining = new Set(nodesOf('control-planes-first-last', cluster).map((n) => n.name));

  async function resetOne(p: PhaseDef, n: NodeSpec): Promise<void> {
    const s = board.row(p.id, n.name);
    s.state = 'running';
    s.startedAt = new Date().toISOString();
    board.publish();
    const c = { cluster: steps.forNode(n.name), node: n.name };
    try {
      // The last control-plane node has nobody left to remove it.
      if (n.name !== first.name) await steps.call('removeNodeFromCluster', p.id, n.name, [{ ...c, via: [...remaining].filter((x) => x !== n.name) }], { startToCloseTimeout: '10m' });
      await steps.call('resetNode', p.id, n.name, [c], { startToCloseTimeout: '20m' });
      if (input.reboot) await steps.call('rebootNode', p.id, n.name, [c], { startToCloseTimeout: (spec.policy.compensation.rebootTimeoutSeconds + 60) * 1000 });
      s.state = 'done';
      result.reset.push(n.name);
    } catch (err) {
      const msg = err instanceof Error ? (err.cause instanceof Error ? err.cause.message : err.message) : String(err);
      s.state = 'failed';
      s.lastError = msg;
      result.failed.push({ node: n.name, error: msg });
      log.warn('reset failed', { node: n.name, error: msg });
    } finally {
      remaining.delete(n.name);
      s.endedAt = new Date().toISOString();
      board.publish();
    }
  }

  return e.run(
    async () => {
      for (const p of [resetWorkers, resetControlPlanes]) {
        await e.barrier(p.id);
        const nodes = nodesOf(p.nodes, cluster);
        await bounded(nodes, p.mode === 'parallel' ? nodes.length : 1, (n) => resetOne(p, n));
        if (!nodes.length) board.endPhase(p.id);
      }
      return result;
    },
    // A teardown is not undone: an abort stops it where it is.
    async () => 0,
    () => `reset of ${cluster.name} aborted by the operator; ${result.reset.length} node(s) were reset: ${result.reset.join(', ') || 'none'}`,
    (r) => (r.failed.length ? 'aborted' : 'done'),
  );
}
