// One step of any operation (a StepRef of src/phases/) rendered for one node: what `kha plan --operation`
// prints and writes. The deployment's scripts come from RENDERERS; the day-2 scripts from the renderers their
// activities call, given stand-ins for what only a run learns (etcd member IDs, the restore run, the
// snapshot's hash).
import type { ClusterSpec, NodeSpec } from '../spec/types';
import { kubeMinor } from '../spec/types';
import type { StepRef } from '../phases/types';
import { renderCertsCheck, renderCertsRenew } from './day2-certs';
import { renderClusterState } from './day2-cluster-state';
import { renderEtcdSnapshot, renderEtcdSnapshotCleanup } from './day2-etcd-backup';
import { renderEtcdMemberList } from './day2-etcd-members';
import {
  clientURL,
  renderRestoreApiStart,
  renderRestoreDataAside,
  renderRestoreEtcdStart,
  renderRestoreMember,
  renderRestorePrepare,
  renderRestoreQuorum,
  renderRestoreRestart,
  renderRestoreStage,
  renderRestoreStop,
  renderRestoreVerify,
} from './day2-etcd-restore';
import { RENDERERS } from './index';
import { renderDeleteNode, renderDrain, renderEtcdRemoveMember, renderKubeVipRemove, renderRemovalCheck } from './remove';
import type { AnyPhaseName, RenderedScript, RenderFacts } from './types';
import { renderUncordon, renderUpgradeKubeadm, renderUpgradeKubelet, renderUpgradeRepository } from './upgrade';

/** What a run learns and the plan stands in for; `kha plan` prints these beside the plan. */
export const PLAN_STAND_INS = {
  restoreTag: 'RUN',
  snapshotSha256: '0'.repeat(64),
  memberId: '1',
  successorId: '2',
} as const;

export interface StepContext {
  /** The operation's id (src/phases/): kha upgrade's drain logs as its own phase. */
  operation: string;
  cluster: ClusterSpec;
  /** The node the step is for (its row in the status). */
  node: NodeSpec;
  /** Where a step that runs on a healthy control-plane node runs: one that is not `node`, when there is one. */
  via: NodeSpec;
  facts: RenderFacts;
  drainTimeoutSeconds: number;
}

/** A rendered script, or 'ssh' for a step that is a plain SSH call (a reboot, reading admin.conf). */
export type StepScript = RenderedScript | 'ssh';

type Day2Renderer = (x: StepContext) => StepScript;
const S = PLAN_STAND_INS;
const urls = (c: ClusterSpec) => c.spec.nodes.filter((n) => n.role === 'control-plane').map(clientURL);
const firstCp = (c: ClusterSpec) => c.spec.nodes.find((n) => n.role === 'control-plane')!;

// By `render/script` of the step; each entry calls the renderer its activity calls.
const DAY2: Record<string, Day2Renderer> = {
  'day2/cluster-state': (x) => renderClusterState(x.cluster, x.via),
  'day2/etcd-snapshot': (x) => renderEtcdSnapshot(x.cluster, x.via),
  'day2/etcd-snapshot-cleanup': (x) => renderEtcdSnapshotCleanup(x.cluster, x.via),
  'day2/certs-check-expiration': (x) => renderCertsCheck(x.cluster, x.node),
  'day2/certs-renew': (x) => renderCertsRenew(x.cluster, x.node),
  'day2/admin.conf copy': () => 'ssh',
  'upgrade/upgrade-repository': (x) => renderUpgradeRepository(x.cluster, x.node, kubeMinor(x.facts.kubernetesVersion.replace(/^v/, ''))),
  'upgrade/kubeadm-upgrade': (x) => renderUpgradeKubeadm(x.cluster, x.node, x.facts, x.node.name === firstCp(x.cluster).name ? 'apply' : 'node'),
  'upgrade/kubelet-upgrade': (x) => renderUpgradeKubelet(x.cluster, x.node, x.facts),
  'upgrade/uncordon': (x) => renderUncordon(x.cluster, x.via, x.node.name),
  'remove/drain': (x) => renderDrain(x.cluster, x.via, x.node.name, x.drainTimeoutSeconds, x.operation === 'upgrade' ? 'upgrade' : 'remove'),
  'remove/etcd-member-list': (x) => renderEtcdMemberList(x.cluster, x.via),
  'remove/removal-check': (x) => renderRemovalCheck(x.cluster, x.via, x.node.name, urls(x.cluster)),
  'remove/kube-vip-remove': (x) => renderKubeVipRemove(x.cluster, x.node),
  'remove/etcd-remove-member': (x) => renderEtcdRemoveMember(x.cluster, x.via, x.node.name, { id: S.memberId, clientURL: clientURL(x.node), successor: S.successorId }),
  'remove/delete-node': (x) => renderDeleteNode(x.cluster, x.via, x.node.name),
  'restore/etcd-member-list': (x) => renderEtcdMemberList(x.cluster, x.via),
  'restore/restore-prepare': (x) => renderRestorePrepare(x.cluster, x.node, S.restoreTag),
  'restore/restore-stage': (x) => renderRestoreStage(x.cluster, x.node, S.restoreTag, S.snapshotSha256),
  'restore/restore-stop': (x) => renderRestoreStop(x.cluster, x.node, S.restoreTag),
  'restore/restore-data-aside': (x) => renderRestoreDataAside(x.cluster, x.node, S.restoreTag),
  'restore/restore-member': (x) => renderRestoreMember(x.cluster, x.node, S.restoreTag),
  'restore/restore-etcd-start': (x) => renderRestoreEtcdStart(x.cluster, x.node, S.restoreTag),
  'restore/restore-etcd-quorum': (x) => renderRestoreQuorum(x.cluster, x.via),
  'restore/restore-api-start': (x) => renderRestoreApiStart(x.cluster, x.node, S.restoreTag),
  'restore/restore-restart': (x) => renderRestoreRestart(x.cluster, x.node, S.restoreTag),
  'restore/restore-verify': (x) => renderRestoreVerify(x.cluster, x.via),
};

/** The script a step runs for `x.node`; throws when no renderer makes it (a phase list that drifted). */
export function renderStep(step: StepRef, x: StepContext): StepScript {
  if (step.render in RENDERERS) {
    const s = RENDERERS[step.render as AnyPhaseName](x.cluster, x.node, x.facts).scripts.find((r) => r.name === step.script);
    if (!s) throw new Error(`${step.render} renders no script ${step.script} for ${x.node.name}`);
    return s;
  }
  const r = DAY2[`${step.render}/${step.script}`];
  if (!r) throw new Error(`no renderer for step ${step.render}/${step.script}`);
  return r(x);
}
