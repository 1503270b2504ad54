// applyCluster: `kha apply FILE` on the shared engine (phases in src/phases/apply.ts). Discovers what runs, prints
// the difference as notices, refuses what is not apply's job (removing a node, another version), waits for the
// operator's approval, then runs the deployment's own activities on the new nodes only: preparation, control-plane
// joins one at a time with etcd checked after each, workers in parallel once the control plane is complete.
// Members are never touched: no step runs on them but read-only ones, and compensation and rollback reset only
// nodes this run joined. Workflow code: no I/O, no secrets.
import { ActivityFailure, ApplicationFailure, log } from '@temporalio/workflow';
import type { ClusterSpec, NodeSpec } from '../spec/types';
import type { RenderFacts } from '../render/types';
import type { NodeFacts } from '../activities/types';
import type { ClusterState } from '../render/day2-cluster-state';
import { resolveKubernetesVersion } from '../render/version';
import { crossNodeProblems } from './checks';
import { assertValidCluster, invalidInput } from './input-check';
import { refuseBesideDeployAndReset, refuseBesideUpgradeAndRestore } from './backup-cluster';
import { APPLY, APPLY_HOST_PHASES, applyApproval, applyControlPlaneJoin, applyPreflight, applyWorkerJoin, discover } from '../phases/apply';
import { verify } from '../phases/deploy';
import type { PhaseDef } from '../phases/types';
import { Engine, Slots } from './engine/engine';
import { nodeSteps } from './deploy-nodes';
import { failureText } from './engine/steps';
import { applyDiff } from './apply-diff';

export interface ApplyOptions {
  /** Heartbeat timeout of activities (default 20 s). */
  heartbeatTimeoutSeconds?: number;
  /** Started with --auto-approve: the difference is approved in advance. */
  autoApprove?: boolean;
  /** Limit on the clock skew of a new node against the worker (default 1000 ms). */
  maxClockSkewMs?: number;
}

export interface ApplyInput {
  cluster: ClusterSpec;
  options?: ApplyOptions;
}

export interface ApplyResult {
  cluster: string;
  kubernetesVersion: string;
  /** The file lists no node the cluster lacks: nothing was asked or changed. */
  nothingToDo: boolean;
  /** New nodes that joined, control-plane nodes first. */
  joined: string[];
  skippedNodes: string[];
  nodesReady: number;
  etcdMembers: number;
}

function checkOptions(o: unknown): ApplyOptions {
  if (o === undefined) return {};
  const problems: string[] = [];
  if (typeof o !== 'object' || o === null || Array.isArray(o)) throw invalidInput('applyCluster', ['options: must be an object']);
  const x = o as Record<string, unknown>;
  const num = (v: unknown, min: number, max: number) => v === undefined || (typeof v === 'number' && Number.isFinite(v) && v >= min && v <= max);
  if (!num(x.heartbeatTimeoutSeconds, 1, 3600)) problems.push('options.heartbeatTimeoutSeconds: must be a number of seconds from 1 to 3600');
  if (!num(x.maxClockSkewMs, 0, 3_600_000)) problems.push('options.maxClockSkewMs: must be a number of milliseconds from 0 to 3600000');
  if (x.autoApprove !== undefined && typeof x.autoApprove !== 'boolean') problems.push('options.autoApprove: must be true or false');
  if (problems.length) throw invalidInput('applyCluster', problems);
  return x as ApplyOptions;
}

export async function applyCluster(input: ApplyInput): Promise<ApplyResult> {
  assertValidCluster('applyCluster', input?.cluster);
  const opts = checkOptions(input.options);
  const { cluster } = input;
  const spec = cluster.spec;
  const first = spec.nodes.find((n) => n.role === 'control-plane')!;
  const clusterRow: NodeSpec = { ...first, name: 'cluster' };
  // The new nodes this run worked on: the only ones its rollback resets.
  const touched = new Set<string>();
  let added: NodeSpec[] = [];
  const e = new Engine(APPLY, cluster, { heartbeatTimeoutSeconds: opts.heartbeatTimeoutSeconds, autoApprove: opts.autoApprove }, () => rollbackOrder().map((n) => n.name));
  const { steps, board } = e;
  const healthy: string[] = [];
  const skipped: string[] = [];
  let facts: RenderFacts | undefined;
  const f = () => facts!;

  e.acceptApprovals(() => `approved: joining ${added.map((n) => n.name).join(', ') || 'no node'}`);
  await refuseBesideDeployAndReset(e, cluster.name, 'an apply');
  await refuseBesideUpgradeAndRestore(e, cluster.name, 'an apply');

  const notice = (text: string) => (e.status.notices ??= []).push(text);
  /** Not apply's job: the run ends before any host changed, naming the command that does it. */
  function refuse(reasons: string[]): never {
    const msg = `apply of ${cluster.name} refused, no host was changed: ${reasons.join('; ')}`;
    notice(msg);
    board.setState('aborted');
    throw ApplicationFailure.nonRetryable(msg, 'ApplyRefused');
  }
  /** Every row of a phase that will not run ends as skipped (a phase without rows too). */
  function skipPhase(p: PhaseDef, note: string): void {
    const rows = board.phase(p.id).nodes;
    for (const r of rows) if (r.state === 'pending') Object.assign(r, { state: 'skipped', note });
    if (!rows.length) board.endPhase(p.id, 'skipped');
    board.publish();
  }

  // The deployment's own node steps, on the new nodes only; a worker joins once the control plane is complete.
  const { run, prepareNode, joinControlPlane, worker } = nodeSteps({
    e,
    facts: f,
    healthy: () => healthy,
    touched,
    skipped,
    nodeFacts: new Map(),
    joinSlots: new Slots(spec.policy.workerJoinConcurrency),
    joinReady: () => e.barrier(applyWorkerJoin.id),
  });
  /** A new control-plane node: prepared at once, joined after the one before it, etcd checked before the next. */
  async function joiningControlPlane(n: NodeSpec, turn: Promise<void>): Promise<void> {
    const ready = await prepareNode(n);
    await turn;
    if (ready) await joinControlPlane(applyControlPlaneJoin, n);
  }

  return e.run(
    async () => {
      // ---- what runs, and the difference ----------------------------------------------------------------------
      let state: ClusterState | undefined;
      let none: string | undefined;
      await run(discover, clusterRow, async () => {
        let r;
        try {
          r = await steps.call('discoverCluster', discover.id, 'cluster', [{ cluster }], undefined, { phase: discover.id, node: 'cluster' });
        } catch (err) {
          // No cluster runs on these hosts: nothing for an operator to retry, apply is the wrong command.
          if (!(err instanceof ActivityFailure && err.cause instanceof ApplicationFailure && err.cause.type === 'NotACluster')) throw err;
          none = err.cause.message;
          return 'no control-plane node of the file is a member';
        }
        state = r;
        return `read on ${r.via}: Kubernetes ${r.kubernetesVersion}, ${r.nodes.length} Nodes, ${r.members.length} etcd members, VIP held by ${r.vipHolder || 'no node'}`;
      });
      if (none !== undefined) refuse([none]);
      const d = applyDiff(cluster, state!);
      e.status.kubernetesVersion = d.kubernetesVersion;
      for (const line of d.lines) notice(`apply: ${line}`);
      if (d.refusals.length) refuse(d.refusals);
      for (const n of d.existing) steps.membersBefore.add(n);
      e.status.membersBefore = [...d.existing];
      healthy.push(...d.healthyControlPlanes);
      added = spec.nodes.filter((n) => d.addControlPlanes.includes(n) || d.addWorkers.includes(n));
      if (!added.length) {
        notice(`apply: nothing to do: every node of the file runs in ${cluster.name}`);
        for (const p of APPLY.phases.slice(1)) skipPhase(p, 'nothing to do');
        return { cluster: cluster.name, kubernetesVersion: d.kubernetesVersion, nothingToDo: true, joined: [], skippedNodes: [], nodesReady: state!.nodes.filter((n) => n.ready).length, etcdMembers: state!.members.length };
      }
      // The rows of the new nodes, now that they are known.
      for (const p of [applyPreflight, ...APPLY_HOST_PHASES]) for (const n of added) board.row(p.id, n.name);
      for (const n of d.addControlPlanes) board.row(applyControlPlaneJoin.id, n.name);
      for (const n of d.addWorkers) board.row(applyWorkerJoin.id, n.name);
      if (!d.addControlPlanes.length) board.endPhase(applyControlPlaneJoin.id, 'skipped');
      if (!d.addWorkers.length) board.endPhase(applyWorkerJoin.id, 'skipped');

      // ---- preflight of the new nodes (read-only), then the approval ------------------------------------------
      await e.barrier(applyPreflight.id);
      const nodeFacts = new Map<string, NodeFacts>();
      await Promise.all(
        added.map((n) =>
          run(applyPreflight, n, async () => {
            const r = await steps.call('preflightNode', applyPreflight.id, n.name, [{ cluster: steps.forNode(n.name), node: n.name, listVersions: n === added[0], expectVipFree: false }]);
            nodeFacts.set(n.name, r);
            return `${r.os} ${r.arch}, ${r.cpus} CPU, ${r.memoryMb} MB`;
          }),
        ),
      );
      await run(applyPreflight, clusterRow, async () => {
        const all = added.map((n) => nodeFacts.get(n.name)!).filter(Boolean);
        const maxSkew = opts.maxClockSkewMs ?? 1000;
        // The checks against a first node (its CA, its VIP) do not apply: that node is a member, not asked here.
        const problems = crossNodeProblems({ facts: all, firstControlPlane: '', controlPlanes: d.addControlPlanes.map((n) => n.name), vipInterface: (name) => spec.nodes.find((c) => c.name === name)?.interface ?? spec.controlPlaneEndpoint.interface, maxClockSkewMs: maxSkew });
        const live = new Set(state!.nodes.map((n) => n.name));
        for (const x of all) {
          if (x.clusterCaHash) problems.push({ node: x.node, message: `already belongs to a cluster (CA ${x.clusterCaHash.slice(0, 19)}…) but is no Node of ${cluster.name}; reset it first (kubeadm reset) or remove it from the file` });
          if (live.has(x.hostname)) problems.push({ node: x.node, message: `hostname ${x.hostname} is the name of a Node of ${cluster.name} already (cloned machine?); make it unique` });
          if (Math.abs(x.clockOffsetMs) > maxSkew) problems.push({ node: x.node, message: `clock differs from the kha worker's by ${Math.round(Math.abs(x.clockOffsetMs))} ms (limit ${maxSkew} ms); enable NTP/chrony` });
        }
        if (problems.length) throw ApplicationFailure.nonRetryable(problems.map((p) => `${p.node}: ${p.message}`).join('; '), 'PreflightFailed');
        try {
          // New nodes get the version the cluster runs, exactly.
          facts = resolveKubernetesVersion(d.kubernetesVersion, nodeFacts.get(added[0]!.name)?.availableVersions ?? []);
        } catch (err) {
          throw ApplicationFailure.nonRetryable((err as Error).message, 'PreflightFailed');
        }
        return `Kubernetes ${f().kubernetesVersion} (package ${f().packageVersion}) for the new nodes: the version the cluster runs`;
      });
      await e.barrier(applyApproval.id);
      await e.gate(applyApproval.id, `approval of the changes above (joining ${added.map((n) => n.name).join(', ')}): check them, then run: kha approve ${cluster.name}`, false);

      // ---- the joins -------------------------------------------------------------------------------------------
      await e.barrier(APPLY_HOST_PHASES[0]!.id);
      let turn = Promise.resolve();
      const cpJoins = d.addControlPlanes.map((n) => (turn = joiningControlPlane(n, turn)));
      await Promise.all([...cpJoins, ...d.addWorkers.map(worker)]);
      await e.barrier(verify.id);

      // ---- verification ----------------------------------------------------------------------------------------
      let verified = { nodesReady: 0, etcdMembers: 0 };
      await run(verify, clusterRow, async () => {
        const v = await steps.call('verifyCluster', verify.id, first.name, [{ cluster, node: first.name, facts: f(), via: [...healthy] }], undefined, { phase: verify.id, node: 'cluster' });
        const cps = spec.nodes.filter((n) => n.role === 'control-plane').length;
        const expected = spec.nodes.length - skipped.length;
        const problems = [...v.problems];
        if (v.nodesReady < expected) problems.push(`${v.nodesReady}/${expected} nodes Ready (not ready: ${v.notReady.join(', ') || 'missing'})`);
        if (v.etcdMembers !== cps) problems.push(`etcd has ${v.etcdMembers} members, expected ${cps}`);
        if (problems.length) throw ApplicationFailure.nonRetryable(problems.join('; '), 'VerificationFailed');
        verified = { nodesReady: v.nodesReady, etcdMembers: v.etcdMembers };
        return `${v.nodesReady} nodes Ready, ${v.etcdMembers} etcd members, kube-proxy ${v.kubeProxyMode}`;
      });
      const joined = added.filter((n) => !skipped.includes(n.name)).map((n) => n.name);
      return { cluster: cluster.name, kubernetesVersion: f().kubernetesVersion, nothingToDo: false, joined, skippedNodes: [...skipped], ...verified };
    },
    rollback,
    (action, n) => `apply of ${cluster.name} aborted by the operator${action === 'rollback' ? `; rolled back ${n} new node(s)` : '; nodes left as they are'}`,
  );

  /** New workers first, then new control-plane nodes newest first; a member from before never. */
  function rollbackOrder(): NodeSpec[] {
    const mine = (n: NodeSpec) => touched.has(n.name) && !steps.membersBefore.has(n.name);
    return [...added.filter((n) => n.role === 'worker' && mine(n)), ...added.filter((n) => n.role === 'control-plane' && mine(n)).reverse()];
  }
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
