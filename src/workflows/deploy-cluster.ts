// deployCluster: the deployment as its phases (src/phases/deploy.ts) on the shared engine (./engine). Each node
// runs its own pipeline; it waits for other nodes only at the operation's barriers. No I/O and no secrets here:
// activities render, run over SSH and check effects; join credentials never leave an activity.
import { ApplicationFailure, log } from '@temporalio/workflow';
import type { ClusterSpec, NodeSpec } from '../spec/types';
import type { RenderFacts } from '../render/types';
import type { NodeFacts } from '../activities/types';
import { removeWorkflowId, resetWorkflowId, type DeployResult } from './definitions';
import { crossNodeProblems } from './checks';
import { resolveKubernetesVersion } from '../render/version';
import { refuseBeside } from './exclusive';
import { checkDeployInput, checkKubeconfigChoice } from './input-check';
import { DEPLOY, approval, calico, containerRuntime, controlPlaneJoin, hostPrep, kubeadmInit, kubeVip, packages, preflight, verify, workerJoin } from '../phases/deploy';
import { Engine, Slots } from './engine/engine';
import { failureText, type StepOutcome } from './engine/steps';
import type { PhaseDef } from '../phases/types';

export interface DeployOptions {
  /** Heartbeat timeout of activities (default 20 s); a killed worker's activity is retried after it. */
  heartbeatTimeoutSeconds?: number;
  /** Where the admin kubeconfig goes on the worker's machine (default: the worker's state directory). */
  kubeconfigPath?: string;
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
  await refuseBeside(removeWorkflowId(cluster.name), `a removal of a node of ${cluster.name} is running (${removeWorkflowId(cluster.name)}); a deployment does not start beside it: wait until it ends (kha status ${cluster.name} --remove), then deploy again`, (msg) => {
    (e.status.notices ??= []).push(msg);
    board.setState('aborted');
  });
  // Refused beside a reset or a removal before anything is scheduled; then the worker checks the kubeconfig choice.
  await checkKubeconfigChoice(input);

  // ---- one step of a phase on one node --------------------------------------------------------------------
  /** Runs the phase's step on `n`; a node's pipeline ends when the operator skips it (its later rows too). */
  async function run(p: PhaseDef, n: NodeSpec, work: () => Promise<string | void>, compensate?: () => Promise<void>): Promise<StepOutcome> {
    const out = await steps.step(p.id, n, work, compensate);
    if (out === 'skipped') {
      skipped.push(n.name);
      for (const later of DEPLOY.phases.slice(DEPLOY.phases.indexOf(p) + 1)) {
        const row = board.phase(later.id).nodes.find((r) => r.node === n.name);
        if (row && row.state === 'pending') {
          row.state = 'skipped';
          row.note = `skipped: ${n.name} was skipped in ${p.id}`;
        }
      }
      board.publish();
    }
    return out;
  }
  const nodeCall = (n: NodeSpec) => ({ cluster: steps.forNode(n.name), node: n.name, facts: f() });
  const prepare = (p: PhaseDef, act: 'hostPrep' | 'containerRuntime') => (n: NodeSpec) =>
    run(p, n, async () => {
      touched.add(n.name);
      return (await steps.call(act, p.id, n.name, [nodeCall(n)])).note;
    });
  const installPackages = (n: NodeSpec) =>
    run(packages, n, async () => {
      touched.add(n.name);
      const res = await steps.call('installPackages', packages.id, n.name, [nodeCall(n)]);
      const v = res.versions;
      if (v.kubeadm !== v.kubelet || v.kubelet !== v.kubectl || v.kubeadm !== f().packageVersion) {
        throw ApplicationFailure.nonRetryable(`versions differ on ${n.name}: kubeadm ${v.kubeadm}, kubelet ${v.kubelet}, kubectl ${v.kubectl}; expected ${f().packageVersion}`, 'PreflightFailed');
      }
      return res.note;
    });
  /** Host prep, container runtime and packages of one node, each as soon as the one before is done. */
  async function prepareNode(n: NodeSpec): Promise<boolean> {
    for (const stepOf of [prepare(hostPrep, 'hostPrep'), prepare(containerRuntime, 'containerRuntime'), installPackages]) {
      if ((await stepOf(n)) === 'skipped') return false;
    }
    return true;
  }
  async function compensateJoin(n: NodeSpec): Promise<void> {
    // Reset what the failed join left, drop the member and Node from the cluster, then reboot to clear the rest.
    const c = { cluster: steps.forNode(n.name), node: n.name };
    await steps.call('resetNode', 'compensation', n.name, [c]);
    await steps.call('removeNodeFromCluster', 'compensation', n.name, [{ ...c, via: [...healthy] }]);
    await steps.call('rebootNode', 'compensation', n.name, [c], { startToCloseTimeout: spec.policy.compensation.rebootTimeoutSeconds * 1000 + 60_000 });
  }

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
    const out = await run(
      controlPlaneJoin,
      n,
      async () => {
        touched.add(n.name);
        const res = await steps.call('joinControlPlane', controlPlaneJoin.id, n.name, [{ ...nodeCall(n), via: [...healthy] }]);
        await steps.call('waitEtcdHealthy', controlPlaneJoin.id, n.name, [{ ...nodeCall(n), via: [...healthy] }]);
        return res.note;
      },
      () => compensateJoin(n),
    );
    if (out === 'done') healthy.push(n.name);
  }
  const joinSlots = new Slots(spec.policy.workerJoinConcurrency);
  /** A worker: prepared as soon as preflight passed, joined after the control plane is complete and approved. */
  async function worker(n: NodeSpec): Promise<void> {
    if (!(await prepareNode(n))) return;
    await e.barrier(workerJoin.id);
    await joinSlots.with(() =>
      run(
        workerJoin,
        n,
        async () => {
          touched.add(n.name);
          return (await steps.call('joinWorker', workerJoin.id, n.name, [{ ...nodeCall(n), via: [...healthy] }])).note;
        },
        () => compensateJoin(n),
      ),
    );
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
      await Promise.all([firstControlPlane(), ...joins, approvalGate(), ...workers.map(worker)]);
      await e.barrier(verify.id);
      return verifyCluster();
    },
    rollback,
    (action, n) => `deployment of ${cluster.name} aborted by the operator${action === 'rollback' ? `; rolled back ${n} node(s)` : '; nodes left as they are'}`,
  );

  // ---- preflight and verification -------------------------------------------------------------------------
  async function preflightAll(): Promise<void> {
    await Promise.all(
      spec.nodes.map((n) =>
        run(preflight, n, async () => {
          const r = await steps.call('preflightNode', preflight.id, n.name, [
            { cluster: steps.forNode(n.name), node: n.name, listVersions: n.name === first.name, expectVipFree: false },
          ]);
          nodeFacts.set(n.name, r);
          return `${r.os} ${r.arch}, ${r.cpus} CPU, ${r.memoryMb} MB`;
        }),
      ),
    );
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
      const expectedNodes = spec.nodes.length - skipped.length;
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
    return { cluster: cluster.name, kubernetesVersion: f().kubernetesVersion, ...verified, skippedNodes: skipped, kubeconfigPath };
  }

  // ---- rollback -------------------------------------------------------------------------------------------
  /** Workers first, then control-plane nodes newest first, the first one last; members from before never. */
  function rollbackOrder(): NodeSpec[] {
    const mine = (n: NodeSpec) => touched.has(n.name) && !steps.membersBefore.has(n.name);
    return [...workers.filter(mine), ...cps.slice(1).filter(mine).reverse(), ...(mine(first) ? [first] : [])];
  }
  /** Workers in parallel, then control-plane nodes one at a time; returns how many it reset. */
  async function rollback(): Promise<number> {
    const order = rollbackOrder();
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
    return order.length;
  }
}
