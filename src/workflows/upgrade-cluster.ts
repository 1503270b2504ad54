// upgradeCluster: `kha upgrade FILE [--to V]` on the shared engine (phases in src/phases/upgrade.ts). One run is one
// hop (one minor, or a patch): check, verified etcd snapshot, repositories, the control-plane nodes one at a time
// (kubeadm, then drain, kubelet, uncordon), the approval, the workers in batches, and the versions checked on
// every node. A target further away continues as a new run of the same workflow id for the next hop. A step
// that fails waits for the operator (retry, abort; a worker may be skipped); an upgrade is never rolled back.
// Workflow code: no I/O, no secrets.
import { ApplicationFailure, continueAsNew } from '@temporalio/workflow';
import type { ClusterSpec, NodeSpec } from '../spec/types';
import type { RenderFacts } from '../render/types';
import type { ClusterState } from '../render/day2-cluster-state';
import type { ResultOf } from '../render/result';
import { resolveKubernetesVersion } from '../render/version';
import { assertValidCluster, invalidInput } from './input-check';
import { refuseBeside } from './exclusive';
import { refuseBesideDeployAndReset } from './backup-cluster';
import { applyWorkflowId, backupWorkflowId, removeWorkflowId, renewWorkflowId, restoreWorkflowId } from './definitions';
import { UPGRADE, upgradeApprovalPhase, upgradeCheckPhase, upgradeControlPlanePhase, upgradeRepositoryPhase, upgradeSnapshotPhase, upgradeVerifyPhase, upgradeWorkersPhase } from '../phases/upgrade';
import { Engine, bounded } from './engine/engine';
import type { DecisionAction } from './definitions';
import { planUpgrade, versionProblems } from './upgrade-plan';

export const DEFAULT_UPGRADE_DRAIN_TIMEOUT_SECONDS = 300;

export interface UpgradeOptions {
  /** The target instead of the file's kubernetes.version: "1.36" or "1.36.2". */
  to?: string;
  /** Started with --auto-approve: the worker stage of every hop is approved in advance. */
  autoApprove?: boolean;
  /** How long one drain may take before the operator decides (default 300 s). */
  drainTimeoutSeconds?: number;
  /** Heartbeat timeout of activities (default 60 s). */
  heartbeatTimeoutSeconds?: number;
}

export interface UpgradeHop {
  from: string;
  to: string;
  /** The etcd snapshot taken before the hop (path on the worker's machine, and its hash). */
  snapshot: { path: string; sha256: string };
  skippedNodes: string[];
}

export interface UpgradeInput {
  cluster: ClusterSpec;
  options?: UpgradeOptions;
  /** Hops done by the runs before this one (continue-as-new); set by the workflow itself. */
  done?: UpgradeHop[];
}

export interface UpgradeResult {
  cluster: string;
  /** The version before the first hop, and now. */
  from: string;
  kubernetesVersion: string;
  packageVersion: string;
  hops: UpgradeHop[];
  /** Nothing was to do: the cluster runs the target on every node. */
  nothingToDo: boolean;
  /** Workers the operator skipped: they still run the version before their hop. */
  skippedNodes: string[];
  /** Nodes left cordoned as they were before the upgrade. */
  leftCordoned: string[];
}

function checkOptions(o: unknown): UpgradeOptions {
  if (o === undefined) return {};
  if (typeof o !== 'object' || o === null || Array.isArray(o)) throw invalidInput('upgradeCluster', ['options: must be an object']);
  const x = o as Record<string, unknown>;
  const problems: string[] = [];
  const int = (v: unknown, min: number, max: number) => v === undefined || (typeof v === 'number' && Number.isInteger(v) && v >= min && v <= max);
  if (x.to !== undefined && (typeof x.to !== 'string' || !/^v?1\.\d{1,2}(\.\d{1,3})?$/.test(x.to))) problems.push('options.to: must be a Kubernetes version such as 1.36 or 1.36.2');
  if (x.autoApprove !== undefined && typeof x.autoApprove !== 'boolean') problems.push('options.autoApprove: must be true or false');
  if (!int(x.drainTimeoutSeconds, 1, 86_400)) problems.push('options.drainTimeoutSeconds: must be a whole number of seconds from 1 to 86400');
  if (!int(x.heartbeatTimeoutSeconds, 1, 3600)) problems.push('options.heartbeatTimeoutSeconds: must be a whole number of seconds from 1 to 3600');
  if (problems.length) throw invalidInput('upgradeCluster', problems);
  return x as UpgradeOptions;
}

function checkDone(d: unknown): UpgradeHop[] {
  if (d === undefined) return [];
  const ok = Array.isArray(d) && d.length <= 50 && d.every((h) => h && typeof h === 'object' && typeof h.from === 'string' && typeof h.to === 'string' && Array.isArray(h.skippedNodes));
  if (!ok) throw invalidInput('upgradeCluster', ['done: must be the hops an earlier run of this upgrade recorded']);
  return d as UpgradeHop[];
}

export async function upgradeCluster(input: UpgradeInput): Promise<UpgradeResult> {
  assertValidCluster('upgradeCluster', input?.cluster);
  const opts = checkOptions(input.options);
  const done = checkDone(input.done);
  const { cluster } = input;
  const spec = cluster.spec;
  const target = opts.to ?? spec.kubernetes.version;
  const drainTimeout = opts.drainTimeoutSeconds ?? DEFAULT_UPGRADE_DRAIN_TIMEOUT_SECONDS;
  const cps = spec.nodes.filter((n) => n.role === 'control-plane');
  const workers = spec.nodes.filter((n) => n.role === 'worker');
  const first = cps[0]!;
  const clusterRow: NodeSpec = { ...first, name: 'cluster' };
  // kubeadm upgrade apply waits for every static pod in turn: the SSH command timeout, and a drain its own.
  const e = new Engine(UPGRADE, cluster, {
    heartbeatTimeoutSeconds: opts.heartbeatTimeoutSeconds ?? 60,
    startToCloseMs: (spec.ssh.commandTimeoutSeconds + 300) * 1000,
    autoApprove: opts.autoApprove,
  });
  const { steps, board } = e;
  e.acceptApprovals(() => `approved: upgrading the workers`);
  // --auto-approve approved the first hop's workers by a signal; it covers every later hop of the same upgrade.
  if (opts.autoApprove && done.length) e.approveInAdvance(`--auto-approve of the run that did hop ${done[0]!.from} → ${done[0]!.to}`);
  const busy = (msg: string) => {
    (e.status.notices ??= []).push(msg);
    board.setState('aborted');
  };
  await refuseBesideDeployAndReset(e, cluster.name, 'an upgrade');
  for (const [id, what] of [
    [applyWorkflowId(cluster.name), 'an apply'],
    [removeWorkflowId(cluster.name), 'a removal'],
    [backupWorkflowId(cluster.name), 'a backup'],
    [renewWorkflowId(cluster.name), 'a certificate renewal'],
    [restoreWorkflowId(cluster.name), 'a restore'],
  ] as const) {
    await refuseBeside(id, `${what} of ${cluster.name} is running (${id}); an upgrade does not start beside it: let it finish, then run kha upgrade again`, busy);
  }
  const notice = (text: string) => (e.status.notices ??= []).push(text);
  for (const h of done) notice(`upgrade: hop ${h.from} → ${h.to} done before this run`);

  let facts: RenderFacts | undefined;
  const f = () => facts!;
  let state: ClusterState | undefined;
  let plan: ReturnType<typeof planUpgrade> | undefined;
  let snapshot: UpgradeHop['snapshot'] = { path: '', sha256: '' };
  const skipped: string[] = [];
  const packages = new Map<string, ResultOf<'PACKAGES'>>();
  const healthy = cps.map((n) => n.name);

  /** One node's part after kubeadm: drain, kubelet and kubectl, uncordon (unless it was cordoned before). */
  async function kubeletSteps(n: NodeSpec, phase: string): Promise<string> {
    const call = { cluster: steps.forNode(n.name), node: n.name, via: healthy };
    const drained = await steps.call('drainForUpgrade', phase, n.name, [{ ...call, timeoutSeconds: drainTimeout }], { startToCloseTimeout: (drainTimeout + spec.ssh.commandTimeoutSeconds + 120) * 1000 });
    const k = await steps.call('upgradeKubelet', phase, n.name, [{ ...call, facts: f() }]);
    packages.set(n.name, k.packages);
    if (plan!.cordoned.includes(n.name)) return `${drained.note}; ${k.note}; left cordoned as it was before the upgrade`;
    const u = await steps.call('uncordonNode', phase, n.name, [call]);
    return `${drained.note}; ${k.note}; ${u.note}`;
  }

  const result = await e.run(
    async (): Promise<UpgradeResult | { next: true }> => {
      // ---- check: what runs, the hops, what refuses ---------------------------------------------------------
      await steps.step(upgradeCheckPhase.id, clusterRow, async () => {
        state = await steps.call('discoverCluster', upgradeCheckPhase.id, 'cluster', [{ cluster }], undefined, { phase: upgradeCheckPhase.id, node: 'cluster' });
        plan = planUpgrade(cluster, state, target);
        return `read on ${state.via}: Kubernetes ${state.kubernetesVersion}, ${state.nodes.length} Nodes, ${state.members.length} etcd members; hops: ${plan.hops.join(' → ') || 'none'}`;
      }, undefined, ['retry', 'abort-leave']);
      const p = plan!;
      if (p.refusals.length) {
        const msg = `upgrade of ${cluster.name} to ${target} refused, no host was changed: ${p.refusals.join('; ')}`;
        notice(msg);
        board.row(upgradeCheckPhase.id, 'cluster').lastError = msg;
        board.setState('aborted');
        throw ApplicationFailure.nonRetryable(msg, 'UpgradeRefused');
      }
      const from = done[0]?.from ?? p.current;
      if (!p.hops.length) {
        notice(`upgrade: nothing to do: ${cluster.name} runs ${p.current} on every node`);
        for (const ph of UPGRADE.phases.slice(1)) {
          const rows = board.phase(ph.id).nodes;
          for (const r of rows) Object.assign(r, { state: 'skipped', note: 'nothing to do' });
          if (!rows.length) board.endPhase(ph.id, 'skipped');
        }
        board.publish();
        return { cluster: cluster.name, from, kubernetesVersion: p.current, packageVersion: '', hops: done, nothingToDo: !done.length, skippedNodes: done.flatMap((h) => h.skippedNodes), leftCordoned: p.cordoned };
      }
      const hop = p.hops[0]!;
      const minor = hop.split('.').slice(0, 2).join('.');
      notice(`upgrade: hop ${done.length + 1} of ${done.length + p.hops.length}: ${p.current} → ${hop}${p.hops.length > 1 ? ` (then ${p.hops.slice(1).join(' → ')}: one minor at a time)` : ''}`);
      if (p.lagging.length) notice(`upgrade: kubelets behind the control plane: ${p.lagging.join(', ')}`);
      if (p.cordoned.length) notice(`upgrade: cordoned before the upgrade, left cordoned after it: ${p.cordoned.join(', ')}`);

      // ---- a verified snapshot before anything changes ----------------------------------------------------
      await e.barrier(upgradeSnapshotPhase.id);
      await steps.step(upgradeSnapshotPhase.id, clusterRow, async () => {
        const r = await steps.call('etcdBackup', upgradeSnapshotPhase.id, 'cluster', [{ cluster }], undefined, { phase: upgradeSnapshotPhase.id, node: 'cluster' });
        snapshot = { path: r.path, sha256: r.sha256 };
        return `from ${r.node}: ${r.path} (${r.sizeBytes} bytes, revision ${r.revision})`;
      }, undefined, ['retry', 'abort-leave']);

      // ---- every node's repository names the target minor; the patch is chosen --------------------------------
      await e.barrier(upgradeRepositoryPhase.id);
      const offered = new Map<string, string[]>();
      await Promise.all(
        spec.nodes.map((n) =>
          steps.step(upgradeRepositoryPhase.id, n, async () => {
            const r = await steps.call('upgradeRepository', upgradeRepositoryPhase.id, n.name, [{ cluster: steps.forOwnNode(n.name), node: n.name, minor }]);
            offered.set(n.name, r.available);
            return r.note;
          }, undefined, ['retry', 'abort-leave']),
        ),
      );
      try {
        facts = resolveKubernetesVersion(hop, offered.get(first.name) ?? []);
      } catch (err) {
        const msg = `upgrade of ${cluster.name}: ${(err as Error).message}`;
        board.row(upgradeRepositoryPhase.id, first.name).lastError = msg;
        throw ApplicationFailure.nonRetryable(msg, 'UpgradeRefused');
      }
      const lacking = spec.nodes.filter((n) => !(offered.get(n.name) ?? []).includes(f().packageVersion)).map((n) => n.name);
      if (lacking.length) throw ApplicationFailure.nonRetryable(`upgrade of ${cluster.name}: the repository of ${lacking.join(', ')} does not offer kubeadm ${f().packageVersion}; nothing was installed`, 'UpgradeRefused');
      e.status.kubernetesVersion = f().kubernetesVersion;

      // ---- control plane: one node at a time, the first one applies ------------------------------------------
      await e.barrier(upgradeControlPlanePhase.id);
      const cpChoices: DecisionAction[] = ['retry', 'abort-leave'];
      for (const n of cps) {
        await steps.step(upgradeControlPlanePhase.id, n, async () => {
          const mode = n === first ? 'apply' : 'node';
          const k = await steps.call('upgradeKubeadm', upgradeControlPlanePhase.id, n.name, [{ cluster: steps.forNode(n.name), node: n.name, facts: f(), mode }]);
          return `${k.note}; ${await kubeletSteps(n, upgradeControlPlanePhase.id)}`;
        }, undefined, cpChoices);
      }

      // ---- the operator checks the control plane, then the workers in batches ----------------------------------
      await e.barrier(upgradeApprovalPhase.id);
      await e.gate(upgradeApprovalPhase.id, `approval: the control plane runs ${f().kubernetesVersion}; check it, then run: kha approve ${cluster.name}`, !spec.policy.approveBeforeWorkers || !workers.length);
      await e.barrier(upgradeWorkersPhase.id);
      await bounded(workers, spec.policy.workerUpgradeConcurrency, async (n) => {
        const out = await steps.step(upgradeWorkersPhase.id, n, async () => {
          const k = await steps.call('upgradeKubeadm', upgradeWorkersPhase.id, n.name, [{ cluster: steps.forNode(n.name), node: n.name, facts: f(), mode: 'node' }]);
          return `${k.note}; ${await kubeletSteps(n, upgradeWorkersPhase.id)}`;
        }, undefined, ['retry', 'skip', 'abort-leave']);
        if (out === 'skipped') skipped.push(n.name);
      });
      if (!workers.length) board.endPhase(upgradeWorkersPhase.id, 'skipped');

      // ---- one pinned version on every node ---------------------------------------------------------------------
      await e.barrier(upgradeVerifyPhase.id);
      await steps.step(upgradeVerifyPhase.id, clusterRow, async () => {
        const s = await steps.call('discoverCluster', upgradeVerifyPhase.id, 'cluster', [{ cluster }], undefined, { phase: upgradeVerifyPhase.id, node: 'cluster' });
        const problems = versionProblems(cluster, s, f(), packages, skipped);
        if (problems.length) throw ApplicationFailure.nonRetryable(problems.join('; '), 'VerificationFailed');
        return `${f().kubernetesVersion} recorded by kubeadm; ${spec.nodes.length - skipped.length} Nodes Ready with kubelet ${f().kubernetesVersion}; kubeadm, kubelet and kubectl ${f().packageVersion} held on every node; ${s.members.length} etcd members healthy`;
      }, undefined, ['retry', 'abort-leave']);

      const hopDone: UpgradeHop = { from: p.current, to: f().kubernetesVersion, snapshot, skippedNodes: [...skipped] };
      if (p.hops.length > 1) {
        notice(`upgrade: hop to ${f().kubernetesVersion} done; the next hop (${p.hops[1]}) continues as a new run`);
        done.push(hopDone);
        return { next: true };
      }
      const hops = [...done, hopDone];
      return { cluster: cluster.name, from, kubernetesVersion: f().kubernetesVersion, packageVersion: f().packageVersion, hops, nothingToDo: false, skippedNodes: hops.flatMap((h) => h.skippedNodes), leftCordoned: plan!.cordoned };
    },
    // An upgrade is not taken back (kubeadm does not downgrade): an abort stops before the next step.
    async () => 0,
    () => `upgrade of ${cluster.name} aborted by the operator; the steps that ran stay done (kha status ${cluster.name} --upgrade shows them); kha upgrade ${cluster.source} resumes from the first node not at the target`,
  );
  if ('next' in result) return continueAsNew<typeof upgradeCluster>({ cluster, options: input.options, done });
  return result;
}
