// kha remove: one node leaves a running cluster. A check first (etcd members by ID, their health, the leader,
// the Node, whether the host answers) that may refuse before anything changes; then drain, for a control-plane
// node its kube-vip and its etcd member (leadership moved away first), the Node object, and kubeadm reset with
// kha's cleanup on the host. PURE: the workflow imports it.
import type { Operation, PhaseDef, StepRef } from './types';

const memberList: StepRef = { render: 'remove', script: 'etcd-member-list', runsOn: 'control-plane', activity: 'removalCheck' };

const check: PhaseDef = {
  id: 'remove-check',
  title: 'Check the removal',
  mode: 'cluster',
  nodes: 'none',
  steps: [memberList, { render: 'remove', script: 'removal-check', runsOn: 'control-plane', activity: 'removalCheck', note: 'etcd members by ID, health and leader; the Node; whether the host answers SSH' }],
  check: 'read-only; refuses when the remaining etcd members would lose quorum',
  rollback: 'nothing: the check changes nothing',
};

export const drainPhase: PhaseDef = {
  id: 'drain',
  title: 'Drain',
  mode: 'single',
  nodes: 'none',
  steps: [{ render: 'remove', script: 'drain', runsOn: 'control-plane', activity: 'drainNode' }],
  check: 'kubectl drain of a drained node evicts nothing; a missing Node is not drained',
  rollback: 'none: kubectl uncordon NODE by hand',
};

export const kubeVipPhase: PhaseDef = {
  id: 'kube-vip-remove',
  title: 'Remove kube-vip',
  mode: 'single',
  nodes: 'none',
  steps: [{ render: 'remove', script: 'kube-vip-remove', runsOn: 'node', activity: 'removeKubeVip', note: 'control-plane nodes only' }],
  check: 'a missing manifest is not removed again',
  rollback: 'none',
};

export const etcdMemberPhase: PhaseDef = {
  id: 'etcd-member',
  title: 'Remove the etcd member',
  mode: 'single',
  nodes: 'none',
  steps: [
    { ...memberList, activity: 'removeEtcdMember', note: 'the member ID the check found is still the node\'s' },
    { render: 'remove', script: 'removal-check', runsOn: 'control-plane', activity: 'removeEtcdMember' },
    { render: 'remove', script: 'etcd-remove-member', runsOn: 'control-plane', activity: 'removeEtcdMember', note: 'control-plane nodes only; by member ID, after move-leader when it leads' },
  ],
  check: 'a member ID no longer listed is not removed again',
  rollback: 'none: a removed member joins again only as a new node (kha deploy --again)',
};

export const deleteNodePhase: PhaseDef = {
  id: 'delete-node',
  title: 'Delete the Node',
  mode: 'single',
  nodes: 'none',
  steps: [{ render: 'remove', script: 'delete-node', runsOn: 'control-plane', activity: 'deleteNodeObject' }],
  check: 'kubectl delete node --ignore-not-found',
  rollback: 'none',
};

const resetStep: StepRef = { render: 'reset', script: 'reset', runsOn: 'node', activity: 'resetNode' };

export const resetHostPhase: PhaseDef = {
  id: 'reset-host',
  title: 'Reset the host',
  mode: 'single',
  nodes: 'none',
  steps: [{ ...resetStep, note: 'then, with --reboot, a reboot (a plain SSH call, rebootNode)' }],
  check: 'reset of a clean node changes nothing',
  rollback: 'none: a teardown is not undone',
};

export const removeCheckPhase = check;

/** The phases removing a node of this role runs, in order. */
export function removeOperation(role: 'control-plane' | 'worker'): Operation {
  const phases = role === 'control-plane' ? [check, drainPhase, kubeVipPhase, etcdMemberPhase, deleteNodePhase, resetHostPhase] : [check, drainPhase, deleteNodePhase, resetHostPhase];
  return { id: 'remove', title: 'Remove a node', phases, barriers: [] };
}

/** One etcd member as the removal check sees it: by hex ID, its exact peer URL and whether it answered. */
export interface MemberHealth {
  id: string;
  name: string;
  peerURLs: string[];
  clientURLs: string[];
  /** Answered a quorum read (etcdctl endpoint health) on its client URL. */
  healthy: boolean;
  leader: boolean;
}

/** The smallest majority of n members. */
export const quorumOf = (n: number): number => Math.floor(n / 2) + 1;

/**
 * Why removing the member `targetId` (undefined: the node has none) must be refused, or undefined when it may
 * go: the cluster needs a quorum now to change its membership, and the members left need one afterwards.
 */
export function quorumRefusal(node: string, members: readonly MemberHealth[], targetId: string | undefined): string | undefined {
  if (targetId === undefined) return undefined;
  const name = (m: MemberHealth) => m.name || m.id;
  const healthy = members.filter((m) => m.healthy);
  const remaining = members.filter((m) => m.id !== targetId);
  const healthyLeft = remaining.filter((m) => m.healthy);
  const sick = remaining.filter((m) => !m.healthy).map(name);
  if (remaining.length === 0) return `${node} holds the only etcd member: removing it ends the cluster; use kha reset instead`;
  if (healthy.length < quorumOf(members.length)) {
    return `etcd has no quorum: ${healthy.length} of ${members.length} members healthy (${healthy.map(name).join(', ') || 'none'}), ${quorumOf(members.length)} needed to change the membership; nothing was changed`;
  }
  if (healthyLeft.length < quorumOf(remaining.length)) {
    return (
      `removing ${node} would leave ${remaining.length} etcd members with ${healthyLeft.length} healthy (${healthyLeft.map(name).join(', ') || 'none'}; not healthy: ${sick.join(', ')}), ` +
      `and ${remaining.length} members need ${quorumOf(remaining.length)} for a quorum; nothing was changed. Bring ${sick.join(', ')} back (etcdctl endpoint health), then run kha remove again`
    );
  }
  return undefined;
}
