// resetCluster: teardown. Workers first (in parallel), then control-plane nodes one at a time, the first one
// last, so etcd keeps quorum until the end. Each node leaves the cluster before its reset.
import { proxyActivities, setHandler, upsertSearchAttributes, setCurrentDetails, log } from '@temporalio/workflow';
import type * as activities from '../activities';
import type { ClusterSpec, NodeSpec } from '../spec/types';
import { NON_RETRYABLE_ERRORS } from '../activities/types';
import {
  SA_CLUSTER,
  SA_PHASE,
  SA_STATE,
  deployWorkflowId,
  statusQuery,
  type DeploymentStatus,
  type StepState,
} from './definitions';
import { renderProgress } from './progress';
import { RESET } from '../phases/reset';
import { nodesOf } from '../phases/select';
import { refuseBeside } from './exclusive';
import { assertValidCluster } from './input-check';

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
  const cps = spec.nodes.filter((n) => n.role === 'control-plane');
  const first = cps[0]!;
  const r = spec.policy.retry;
  const acts = proxyActivities<typeof activities>({
    startToCloseTimeout: (spec.ssh.commandTimeoutSeconds + 120) * 1000,
    heartbeatTimeout: 60_000,
    retry: {
      maximumAttempts: r.maximumAttempts,
      initialInterval: r.initialIntervalSeconds * 1000,
      backoffCoefficient: r.backoffCoefficient,
      maximumInterval: r.maximumIntervalSeconds * 1000,
      nonRetryableErrorTypes: [...NON_RETRYABLE_ERRORS],
    },
  });
  const now = () => new Date().toISOString();
  const phases = RESET.phases.map((p) => ({ phase: p.id, title: p.title, mode: p.mode, nodes: nodesOf(p.nodes, cluster) }));
  const status: DeploymentStatus = {
    cluster: cluster.name,
    state: 'running',
    startedAt: now(),
    phases: phases.map((p) => ({
      phase: p.phase,
      title: p.title,
      mode: p.mode,
      state: 'pending' as StepState,
      nodes: p.nodes.map((n) => ({ node: n.name, state: 'pending' as StepState, attempts: 0, compensations: 0 })),
    })),
  };
  setHandler(statusQuery, () => status);
  const publish = () => {
    upsertSearchAttributes([
      { key: SA_CLUSTER, value: cluster.name },
      { key: SA_PHASE, value: status.currentPhase ?? 'none' },
      { key: SA_STATE, value: status.state },
    ]);
    setCurrentDetails(renderProgress(status));
  };
  const forNode = (node: string): ClusterSpec => ({
    ...cluster,
    spec: { ...spec, nodes: spec.nodes.filter((n) => n.role === 'control-plane' || n.name === node) },
  });
  await refuseBeside(
    'exclusive-with-deploy',
    deployWorkflowId(cluster.name),
    `the deployment of ${cluster.name} is running (${deployWorkflowId(cluster.name)}); a reset does not start beside it: let it finish, or stop it with kha abort ${cluster.name} [--rollback], then reset again`,
    (msg) => {
      status.state = 'aborted';
      status.endedAt = now();
      (status.notices ??= []).push(msg);
      publish();
    },
  );
  const result: ResetResult = { cluster: cluster.name, reset: [], failed: [] };
  const remaining = new Set(cps.map((n) => n.name));

  async function resetOne(phaseIdx: number, n: NodeSpec): Promise<void> {
    const s = status.phases[phaseIdx]!.nodes.find((x) => x.node === n.name)!;
    s.state = 'running';
    s.startedAt = now();
    s.attempts++;
    publish();
    try {
      if (n.name !== first.name) {
        const via = [...remaining].filter((x) => x !== n.name);
        await acts.removeNodeFromCluster.executeWithOptions({ startToCloseTimeout: '10m', summary: `leave cluster · ${n.name}` }, [
          { cluster: forNode(n.name), node: n.name, via },
        ]);
      }
      await acts.resetNode.executeWithOptions({ startToCloseTimeout: '20m', summary: `reset · ${n.name}` }, [{ cluster: forNode(n.name), node: n.name }]);
      if (input.reboot) {
        await acts.rebootNode.executeWithOptions(
          { startToCloseTimeout: (spec.policy.compensation.rebootTimeoutSeconds + 60) * 1000, summary: `reboot · ${n.name}` },
          [{ cluster: forNode(n.name), node: n.name }],
        );
      }
      s.state = 'done';
      result.reset.push(n.name);
    } catch (e) {
      const msg = e instanceof Error ? (e.cause instanceof Error ? e.cause.message : e.message) : String(e);
      s.state = 'failed';
      s.lastError = msg;
      result.failed.push({ node: n.name, error: msg });
      log.warn('reset failed', { node: n.name, error: msg });
    } finally {
      remaining.delete(n.name);
      s.endedAt = now();
      publish();
    }
  }

  for (const [i, p] of phases.entries()) {
    status.currentPhase = p.phase;
    status.phases[i]!.state = 'running';
    publish();
    if (p.mode === 'parallel') await Promise.all(p.nodes.map((n) => resetOne(i, n)));
    else for (const n of p.nodes) await resetOne(i, n);
    status.phases[i]!.state = 'done';
  }
  status.state = result.failed.length ? 'aborted' : 'done';
  status.currentPhase = undefined;
  status.endedAt = now();
  publish();
  return result;
}
