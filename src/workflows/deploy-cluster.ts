// deployCluster: the deployment as its phases (src/phases/deploy.ts) on the shared engine (./engine). Each node
// runs its own pipeline; it waits for other nodes only at the operation's barriers. More workers than a batch
// (100) run in child workflows, a batch each (deploy-workers.ts), so this history grows per batch, not per node.
// No I/O and no secrets here: activities render, run over SSH and check effects; join credentials never leave
// an activity.
import { ApplicationFailure, log } from '@temporalio/workflow';
import type { ClusterSpec, NodeSpec } from '../spec/types';
import type { RenderFacts } from '../render/types';
import type { NodeFacts } from '../activities/types';
import { applyWorkflowId, removeWorkflowId, resetWorkflowId, type DeployResult } from './definitions';
import { crossNodeProblems } from './checks';
import { resolveKubernetesVersion } from '../render/version';
import { refuseBeside } from './exclusive';
import { refuseBesideUpgradeAndRestore } from './backup-cluster';
import { checkDeployInput, checkKubeconfigChoice } from './input-check';
import { DEPLOY, approval, calico, controlPlaneJoin, hostPrep, kubeadmInit, kubeVip, preflight, verify, workerJoin } from '../phases/deploy';
import { Engine, Slots } from './engine/engine';
import { failureText } from './engine/steps';
import { nodeSteps } from './deploy-nodes';
import { Batches, batchSize } from './deploy-workers';

export interface DeployOptions {
  /** Heartbeat timeout of activities (default 20 s); a killed worker's activity is retried after it. */
  heartbeatTimeoutSeconds?: number;
  /** Where the admin kubeconfig goes on the worker's machine (default: the worker's state directory). */
  kubeconfigPath?: string;
  /** Workers per child workflow when the cluster has more (default 100); see deploy-workers.ts. */
  workersPerBatch?: number;
  /** How often at most a batch of workers reports plain progress to the deployment (default 30 s). */
  batchReportSeconds?: number;
  /** Limit on clock skew between nodes (default 1000 ms). */
  maxClockSkewMs?: number;
  /** Started with --auto-approve: an approval sent before the gate counts (otherwise it is ignored). */
  autoApprove?: boolean;
}

export interface DeployInput {
  cluster: ClusterSpec;
  options?: DeployOptions;
}

export async function deployCluster(input: DeployInput): Promise<DeployResult> {
  checkDeployInput(input);
  const { cluster } = input;
  const spec = cluster.spec;
  const opts = input.options ?? {};
  const cps = spec.nodes.filter((n) => n.role === 'control-plane');
  const workers = spec.nodes.filter((n) => n.role === 'worker');
  const first = cps[0]!;
  // The nodes this run worked on; a rollback resets those that were not members before it.
  const touched = new Set<string>();
  let batches: Batches | undefined;
  const e = new Engine(DEPLOY, cluster, opts, () => rollbackOrder().map((n) => n.name));
  const { steps, board } = e;
  const healthy: string[] = [first.name];
  const skipped: string[] = [];
  const nodeFacts = new Map<string, NodeFacts>();
  let facts: RenderFacts | undefined;
  const f = () => facts!;

  e.acceptApprovals(() => `approved: joining ${workers.length} worker node(s)`);
  await refuseBeside(resetWorkflowId(cluster.name), `a reset of ${cluster.name} is running (${resetWorkflowId(cluster.name)}); a deployment does not start beside it: wait until it ends (kha status ${cluster.name} --reset), then deploy again`, (msg) => {
    (e.status.notices ??= []).push(msg);
    board.setState('aborted');
  });
  await refuseBeside(applyWorkflowId(cluster.name), `an apply of ${cluster.name} is running (${applyWorkflowId(cluster.name)}); a deployment does not start beside it: let it finish (kha status ${cluster.name} --apply), then deploy again`, (msg) => {
    (e.status.notices ??= []).push(msg);
    board.setState('aborted');
  });
  await refuseBeside(removeWorkflowId(cluster.name), `a removal of a node of ${cluster.name} is running (${removeWorkflowId(cluster.name)}); a deployment does not start beside it: wait until it ends (kha status ${cluster.name} --remove), then deploy again`, (msg) => {
    (e.status.notices ??= []).push(msg);
    board.setState('aborted');
  });
  await refuseBesideUpgradeAndRestore(e, cluster.name, 'a deployment');
  // Refused beside a reset, an apply or a removal before anything is scheduled; then the worker checks the kubeconfig choice.
  await checkKubeconfigChoice(input);

  const joinSlots = new Slots(spec.policy.workerJoinConcurrency);
  const { run, nodeCall, prepareNode, joinControlPlane, preflightNode, worker } = nodeSteps({
    e,
    facts: f,
    healthy: () => healthy,
    touched,
    skipped,
    nodeFacts,
    joinSlots,
    joinReady: () => e.barrier(workerJoin.id),
  });
  // More workers than one history holds comfortably: they run in child workflows, a batch each.
  batches = workers.length > batchSize(opts) ? new Batches(e, cluster, workers, opts) : undefined;
  const local = batches ? cps : spec.nodes;

  // ---- the pipelines --------------------------------------------------------------------------------------
  /** The first control-plane node: its preparation, kube-vip, kubeadm init (the VIP answers), Calico. */
  async function firstControlPlane(): Promise<void> {
    await prepareNode(first);
    await run(kubeVip, first, async () => (await steps.call('kubeVipFirstNode', kubeVip.id, first.name, [nodeCall(first)])).note);
    await run(kubeadmInit, first, async () => {
      const init = await steps.call('kubeadmInit', kubeadmInit.id, first.name, [nodeCall(first)]);
      // The switch script waits for the VIP before and after the switch itself.
      await steps.call('switchKubeVipToAdminConf', kubeadmInit.id, first.name, [nodeCall(first)]);
      return init.note;
    });
    const cluster = { ...first, name: 'cluster' };
    await run(calico, cluster, async () =>
      (await steps.call('installCalico', calico.id, first.name, [{ ...nodeCall(first), via: [first.name] }], undefined, { phase: calico.id, node: 'cluster' })).note,
    );
    if (cps.length === 1) board.endPhase(controlPlaneJoin.id);
  }
  /** A joining control-plane node: prepared in parallel with everyone, then joined one at a time in file order. */
  async function joiningControlPlane(n: NodeSpec, turn: Promise<void>): Promise<void> {
    const ready = await prepareNode(n);
    await turn;
    await e.barrier(controlPlaneJoin.id);
    if (!ready) return;
    await joinControlPlane(controlPlaneJoin, n);
  }
  async function approvalGate(): Promise<void> {
    await e.barrier(approval.id);
    const off = !workers.length || !spec.policy.approveBeforeWorkers;
    await e.gate(approval.id, `approval: check the control plane, then run: kha approve ${cluster.name}`, off);
    if (!workers.length) board.endPhase(workerJoin.id);
  }

  // ---- the deployment -------------------------------------------------------------------------------------
  return e.run(
    async () => {
      await preflightAll();
      await e.barrier(hostPrep.id);
      let turn = Promise.resolve();
      const joins = cps.slice(1).map((n) => (turn = joiningControlPlane(n, turn)));
      await Promise.all([firstControlPlane(), ...joins, approvalGate(), ...(batches ? [batches.join(() => healthy)] : workers.map(worker))]);
      await e.barrier(verify.id);
      const result = await verifyCluster();
      await batches?.finish();
      return result;
    },
    rollback,
    (action, n) => `deployment of ${cluster.name} aborted by the operator${action === 'rollback' ? `; rolled back ${n} node(s)` : '; nodes left as they are'}`,
  );

  // ---- preflight and verification -------------------------------------------------------------------------
  async function preflightAll(): Promise<void> {
    batches?.start();
    await Promise.all(local.map((n) => preflightNode(n, n.name === first.name)));
    if (batches) for (const nf of await batches.facts()) nodeFacts.set(nf.node, nf);
    // Cross-node checks, then version resolution; a problem waits for the operator like a failed step.
    await run(preflight, { ...first, name: 'cluster' }, async () => {
      const all = spec.nodes.map((n) => nodeFacts.get(n.name)!).filter(Boolean);
      const problems = crossNodeProblems({
        facts: all,
        firstControlPlane: first.name,
        controlPlanes: cps.map((n) => n.name),
        vipInterface: (name) => cps.find((c) => c.name === name)?.interface ?? spec.controlPlaneEndpoint.interface,
        maxClockSkewMs: opts.maxClockSkewMs ?? 1000,
      });
      if (problems.length) throw ApplicationFailure.nonRetryable(problems.map((p) => `${p.node}: ${p.message}`).join('; '), 'PreflightFailed');
      steps.membersBefore.clear();
      for (const n of spec.nodes) {
        const nf = nodeFacts.get(n.name);
        if (nf?.clusterCaHash && (nf.kubeletConfPresent || nf.adminConfPresent)) steps.membersBefore.add(n.name);
      }
      e.status.membersBefore = [...steps.membersBefore];
      const running = runningVersion();
      let resolved: RenderFacts;
      try {
        // A cluster that runs keeps its version: changing it is kubeadm upgrade's job, node by node.
        resolved = resolveKubernetesVersion(running ?? spec.kubernetes.version, nodeFacts.get(first.name)?.availableVersions ?? []);
      } catch (err) {
        throw ApplicationFailure.nonRetryable((err as Error).message, 'PreflightFailed');
      }
      facts = resolved;
      e.status.kubernetesVersion = resolved.kubernetesVersion;
      batches?.go(resolved, steps.membersBefore);
      return running
        ? `Kubernetes ${resolved.kubernetesVersion} (package ${resolved.packageVersion}) kept: the version the cluster runs`
        : `Kubernetes ${resolved.kubernetesVersion} (package ${resolved.packageVersion}) for every node`;
    });
  }

  /** The patch the members run ("1.35.1"), when the cluster exists; refuses a file that asks for another. */
  function runningVersion(): string | undefined {
    const byVersion = new Map<string, string[]>();
    for (const m of steps.membersBefore) {
      const v = nodeFacts.get(m)?.installed.kubeadm?.replace(/^v/, '');
      if (v) byVersion.set(v, [...(byVersion.get(v) ?? []), m]);
    }
    if (byVersion.size === 0) return undefined;
    if (byVersion.size > 1) {
      const list = [...byVersion.entries()].map(([v, ns]) => `${ns.join(', ')}: ${v}`).join('; ');
      throw ApplicationFailure.nonRetryable(`the cluster's nodes run different kubeadm versions (${list}); finish that upgrade first: use kha upgrade`, 'PreflightFailed');
    }
    const v = [...byVersion.keys()][0]!;
    const wanted = spec.kubernetes.version.replace(/^v/, '');
    const fits = /^1\.\d+$/.test(wanted) ? v.startsWith(`${wanted}.`) : v === wanted;
    if (!fits) {
      throw ApplicationFailure.nonRetryable(
        `cluster ${cluster.name} runs Kubernetes ${v} and the file asks for ${spec.kubernetes.version}; a deployment never changes the version of a running cluster: use kha upgrade`,
        'PreflightFailed',
      );
    }
    return v;
  }

  async function verifyCluster(): Promise<DeployResult> {
    let verified = { nodesReady: 0, etcdMembers: 0 };
    let kubeconfigPath = '';
    const track = { phase: verify.id, node: 'cluster' };
    await run(verify, { ...first, name: 'cluster' }, async () => {
      // Verification needs every node: it checks that each one is Ready.
      const v = await steps.call('verifyCluster', verify.id, first.name, [{ cluster, node: first.name, facts: f(), via: [...healthy] }], undefined, track);
      const expectedNodes = spec.nodes.length - allSkipped().length;
      const problems = [...v.problems];
      if (v.nodesReady < expectedNodes) problems.push(`${v.nodesReady}/${expectedNodes} nodes Ready (not ready: ${v.notReady.join(', ') || 'missing'})`);
      if (v.etcdMembers !== cps.length) problems.push(`etcd has ${v.etcdMembers} members, expected ${cps.length}`);
      if (problems.length) throw ApplicationFailure.nonRetryable(problems.join('; '), 'VerificationFailed');
      const kc = await steps.call('fetchKubeconfig', verify.id, first.name, [{ cluster: steps.forNode(first.name), node: first.name, path: opts.kubeconfigPath }], undefined, track);
      kubeconfigPath = kc.path;
      e.status.kubeconfigPath = kc.path;
      verified = { nodesReady: v.nodesReady, etcdMembers: v.etcdMembers };
      return `${v.nodesReady} nodes Ready, ${v.etcdMembers} etcd members, kube-proxy ${v.kubeProxyMode}, kubeconfig ${kc.path}`;
    });
    return { cluster: cluster.name, kubernetesVersion: f().kubernetesVersion, ...verified, skippedNodes: allSkipped(), kubeconfigPath };
  }

  // ---- rollback -------------------------------------------------------------------------------------------
  /** Workers first, then control-plane nodes newest first, the first one last; members from before never. */
  function rollbackOrder(): NodeSpec[] {
    // A batch's workers: those its rows show started (the batch resets them itself, before these).
    const started = new Set(batches ? board.phase(hostPrep.id).nodes.filter((r) => r.startedAt).map((r) => r.node) : []);
    const mine = (n: NodeSpec) => (touched.has(n.name) || started.has(n.name)) && !steps.membersBefore.has(n.name);
    return [...workers.filter(mine), ...cps.slice(1).filter(mine).reverse(), ...(mine(first) ? [first] : [])];
  }
  /** The skipped nodes, this run's and its batches' (their worker-join rows). */
  function allSkipped(): string[] {
    if (!batches) return skipped;
    return [...skipped, ...board.phase(workerJoin.id).nodes.filter((r) => batches!.has(r.node) && r.state === 'skipped').map((r) => r.node)];
  }
  /** Workers in parallel (a batch resets its own, drained before this), then control-plane nodes one at a time; returns how many it reset. */
  async function rollback(): Promise<number> {
    const order = rollbackOrder().filter((n) => !batches?.has(n.name));
    const resetOne = async (n: NodeSpec) => {
      try {
        await steps.call('resetNode', 'rollback', n.name, [{ cluster: steps.forNode(n.name), node: n.name }]);
      } catch (err) {
        log.warn('rollback reset failed', { node: n.name, error: failureText(err) });
        board.row(verify.id, n.name).lastError = `rollback failed: ${failureText(err)}`;
      }
    };
    await Promise.all(order.filter((n) => n.role === 'worker').map(resetOne));
    for (const n of order.filter((x) => x.role === 'control-plane')) await resetOne(n);
    return order.length + (batches?.rolledBack ?? 0);
  }
}
