// One node's steps of a deployment, shared by deployCluster and its batches of workers (deployWorkers): the
// same pipeline runs in either workflow. Workflow code: no I/O, no secrets.
import { ApplicationFailure } from '@temporalio/workflow';
import type { NodeSpec } from '../spec/types';
import type { RenderFacts } from '../render/types';
import type { NodeFacts } from '../activities/types';
import { HOST_PHASES, packages, preflight, workerJoin } from '../phases/deploy';
import type { HostPhaseDef, PhaseDef } from '../phases/types';
import type { Engine, Slots } from './engine/engine';
import type { StepOutcome } from './engine/steps';

export interface NodeWork {
  e: Engine;
  facts: () => RenderFacts;
  /** Healthy control-plane nodes a join or compensation goes through. */
  healthy: () => string[];
  /** The nodes this run worked on; a rollback resets those that were not members before it. */
  touched: Set<string>;
  skipped: string[];
  nodeFacts: Map<string, NodeFacts>;
  joinSlots: Slots;
  /** What a worker waits for before it joins: the complete, approved control plane. */
  joinReady: () => Promise<void>;
}

export function nodeSteps(w: NodeWork) {
  const { e, facts: f, touched, skipped } = w;
  const { steps, board } = e;

  /** Runs the phase's step on `n`; a node's pipeline ends when the operator skips it (its later rows too). */
  async function run(p: PhaseDef, n: NodeSpec, work: () => Promise<string | void>, compensate?: () => Promise<void>): Promise<StepOutcome> {
    const out = await steps.step(p.id, n, work, compensate);
    if (out === 'skipped') {
      skipped.push(n.name);
      for (const later of e.op.phases.slice(e.op.phases.findIndex((x) => x.id === p.id) + 1)) {
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
  const ownCall = (n: NodeSpec) => ({ cluster: steps.forOwnNode(n.name), node: n.name, facts: f() });
  const prepare = (p: HostPhaseDef) => (n: NodeSpec) =>
    run(p, n, async () => {
      touched.add(n.name);
      return (await steps.call(p.steps[0].activity, p.id, n.name, [ownCall(n)])).note;
    });
  const installPackages = (n: NodeSpec) =>
    run(packages, n, async () => {
      touched.add(n.name);
      const res = await steps.call('installPackages', packages.id, n.name, [ownCall(n)]);
      const v = res.versions;
      if (v.kubeadm !== v.kubelet || v.kubelet !== v.kubectl || v.kubeadm !== f().packageVersion) {
        throw ApplicationFailure.nonRetryable(`versions differ on ${n.name}: kubeadm ${v.kubeadm}, kubelet ${v.kubelet}, kubectl ${v.kubectl}; expected ${f().packageVersion}`, 'PreflightFailed');
      }
      return res.note;
    });
  /** The host phases of one node (HOST_PHASES), each as soon as the one before is done; the packages also checked. */
  async function prepareNode(n: NodeSpec): Promise<boolean> {
    for (const p of HOST_PHASES) {
      if ((await (p === packages ? installPackages : prepare(p))(n)) === 'skipped') return false;
    }
    return true;
  }
  async function compensateJoin(n: NodeSpec): Promise<void> {
    // Reset what the failed join left, drop the member and Node from the cluster, then reboot to clear the rest.
    const c = { cluster: steps.forNode(n.name), node: n.name };
    await steps.call('resetNode', 'compensation', n.name, [c]);
    await steps.call('removeNodeFromCluster', 'compensation', n.name, [{ ...c, via: [...w.healthy()] }]);
    await steps.call('rebootNode', 'compensation', n.name, [c], { startToCloseTimeout: e.cluster.spec.policy.compensation.rebootTimeoutSeconds * 1000 + 60_000 });
  }
  /** A control-plane join through the healthy members, etcd checked after it; a joined node serves the next. */
  async function joinControlPlane(p: PhaseDef, n: NodeSpec): Promise<void> {
    const via = () => [...w.healthy()];
    const out = await run(
      p,
      n,
      async () => {
        touched.add(n.name);
        const res = await steps.call('joinControlPlane', p.id, n.name, [{ ...nodeCall(n), via: via() }]);
        await steps.call('waitEtcdHealthy', p.id, n.name, [{ ...nodeCall(n), via: via() }]);
        return res.note;
      },
      () => compensateJoin(n),
    );
    if (out === 'done') w.healthy().push(n.name);
  }
  /** A node's preflight: its facts, kept for the cross-node check. */
  const preflightNode = (n: NodeSpec, listVersions: boolean) =>
    run(preflight, n, async () => {
      const r = await steps.call('preflightNode', preflight.id, n.name, [{ cluster: steps.forOwnNode(n.name), node: n.name, listVersions, expectVipFree: false }]);
      w.nodeFacts.set(n.name, r);
      return `${r.os} ${r.arch}, ${r.cpus} CPU, ${r.memoryMb} MB`;
    });
  /** A worker: prepared as soon as preflight passed, joined after the control plane is complete and approved. */
  async function worker(n: NodeSpec): Promise<void> {
    if (!(await prepareNode(n))) return;
    await w.joinReady();
    await w.joinSlots.with(() =>
      run(
        workerJoin,
        n,
        async () => {
          touched.add(n.name);
          return (await steps.call('joinWorker', workerJoin.id, n.name, [{ ...nodeCall(n), via: [...w.healthy()] }])).note;
        },
        () => compensateJoin(n),
      ),
    );
  }
  return { run, nodeCall, prepareNode, compensateJoin, joinControlPlane, preflightNode, worker };
}

/** The facts of a worker the cross-node check and the version check read; the rest stays in the batch. */
export function checkedFacts(f: NodeFacts): NodeFacts {
  return {
    node: f.node,
    hostname: f.hostname,
    macs: f.macs,
    productUuid: f.productUuid,
    machineId: f.machineId,
    os: '',
    arch: '',
    cpus: 0,
    memoryMb: 0,
    clockOffsetMs: f.clockOffsetMs,
    interfaces: [],
    criSockets: [],
    portsInUse: [],
    privileged: f.privileged,
    clusterCaHash: f.clusterCaHash,
    kubeletConfPresent: f.kubeletConfPresent,
    adminConfPresent: f.adminConfPresent,
    installed: { kubeadm: f.installed.kubeadm },
    vipAnswers: f.vipAnswers,
    vipNeighbor: f.vipNeighbor,
    problems: f.problems,
  };
}
