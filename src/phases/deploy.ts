// The deployment, phase by phase: the one list that deployCluster runs, `kha plan` prints and writes, the
// status table shows and the bench reads. PURE (see types.ts).
import type { Barrier, HostPhaseDef, HostStepActivity, Operation, PhaseDef, StepRef } from './types';

/** A host step: the script of the same name as its rendered phase, on the node itself. */
const host = (render: string, activity: HostStepActivity) => ({ render, script: render, runsOn: 'node', activity }) as const;
const on = (render: string, script: string, activity: StepRef['activity'], runsOn: StepRef['runsOn'] = 'node'): StepRef => ({ render, script, runsOn, activity });

/** Reset, leave the cluster (the etcd member and the Node object), reboot: what a failed join left is gone. */
const UNDO_JOIN = {
  steps: [on('reset', 'reset', 'resetNode'), on('reset', 'remove-node', 'removeNodeFromCluster', 'control-plane')],
  what: 'kubeadm reset and cleanup on the node, removal of its etcd member and Node from a healthy control-plane node, then a reboot; never for a node that was a member before this run or failed after it joined',
} as const;

const RESET_ON_ROLLBACK = 'kubeadm reset and cleanup of each node this run touched that was not a member before it';

export const preflight: PhaseDef = {
  id: 'preflight',
  title: 'Preflight checks',
  mode: 'parallel',
  nodes: 'all',
  steps: [on('preflight', 'preflight', 'preflightNode')],
  check: 'read-only: gathers facts; the cross-node check (clock skew, interfaces, versions) runs once all nodes answered',
  rollback: 'nothing: preflight changes nothing',
};

export const hostPrep: HostPhaseDef = {
  id: 'host-prep',
  title: 'Host preparation',
  mode: 'parallel',
  nodes: 'all',
  steps: [host('host-prep', 'hostPrep')],
  check: 'each file, module and sysctl is compared before it is written',
  rollback: RESET_ON_ROLLBACK,
};

export const containerRuntime: HostPhaseDef = {
  id: 'container-runtime',
  title: 'Container runtime',
  mode: 'parallel',
  nodes: 'all',
  steps: [host('container-runtime', 'containerRuntime')],
  check: 'the runtime config is compared before it is written; the service restarts only when it changed',
  rollback: RESET_ON_ROLLBACK,
};

export const packages: HostPhaseDef = {
  id: 'packages',
  title: 'kubeadm, kubelet, kubectl',
  mode: 'parallel',
  nodes: 'all',
  steps: [host('packages', 'installPackages')],
  check: 'installed versions are read first; apt runs only when they differ from the pinned version',
  rollback: RESET_ON_ROLLBACK,
};

/**
 * What each node does on its own host after preflight, in order, each as soon as the one before is done: the
 * deployment, its batches of workers and kha apply (on the new nodes) run this list.
 */
export const HOST_PHASES: readonly HostPhaseDef[] = [hostPrep, containerRuntime, packages];

export const kubeVip: PhaseDef = {
  id: 'kube-vip',
  title: 'kube-vip on the first control-plane node',
  mode: 'single',
  nodes: 'first-control-plane',
  steps: [on('kube-vip', 'before-init', 'kubeVipFirstNode')],
  check: 'once init has run, the admin.conf manifest is kept',
  rollback: RESET_ON_ROLLBACK,
};

export const kubeadmInit: PhaseDef = {
  id: 'kubeadm-init',
  title: 'kubeadm init',
  mode: 'single',
  nodes: 'first-control-plane',
  // The switch script waits for the VIP before and after pointing kube-vip back at admin.conf.
  steps: [on('kubeadm-init', 'init', 'kubeadmInit'), on('kube-vip', 'switch-admin-conf', 'switchKubeVipToAdminConf')],
  check: 'skipped when admin.conf and the API server manifest of this cluster exist',
  rollback: RESET_ON_ROLLBACK,
};

export const calico: PhaseDef = {
  id: 'calico',
  title: 'Calico',
  mode: 'cluster',
  nodes: 'first-control-plane',
  steps: [on('calico', 'install', 'installCalico')],
  check: 'kubectl apply: objects that match are left as they are',
  rollback: 'goes with the cluster when its control-plane nodes are reset',
};

export const controlPlaneJoin: PhaseDef = {
  id: 'control-plane-join',
  title: 'Control-plane joins',
  mode: 'sequential',
  nodes: 'joining-control-planes',
  steps: [
    on('control-plane-join', 'mint-credentials', 'joinControlPlane', 'control-plane'),
    on('control-plane-join', 'join', 'joinControlPlane'),
    on('kube-vip', 'after-join', 'joinControlPlane'),
    on('control-plane-join', 'label-node', 'joinControlPlane', 'control-plane'),
    on('control-plane-join', 'etcd-check', 'waitEtcdHealthy', 'control-plane'),
  ],
  check: 'a node that already belongs to this cluster skips kubeadm join',
  compensation: UNDO_JOIN,
  rollback: `${RESET_ON_ROLLBACK}, one at a time, newest first`,
};

export const approval: PhaseDef = {
  id: 'approval',
  title: 'Approval before workers',
  mode: 'gate',
  nodes: 'none',
  when: 'approveBeforeWorkers',
  steps: [],
  check: 'an approval given with --auto-approve counts; one sent earlier is ignored',
  rollback: 'nothing',
};

export const workerJoin: PhaseDef = {
  id: 'worker-join',
  title: 'Worker joins',
  mode: 'parallel',
  nodes: 'workers',
  concurrency: 'workerJoinConcurrency',
  steps: [
    on('worker-join', 'mint-credentials', 'joinWorker', 'control-plane'),
    on('worker-join', 'join', 'joinWorker'),
    on('worker-join', 'label-node', 'joinWorker', 'control-plane'),
  ],
  check: 'a node that already belongs to this cluster skips kubeadm join',
  compensation: UNDO_JOIN,
  rollback: `${RESET_ON_ROLLBACK}, workers first and in parallel`,
};

export const verify: PhaseDef = {
  id: 'verify',
  title: 'Verification',
  mode: 'cluster',
  nodes: 'first-control-plane',
  steps: [on('verify', 'cluster', 'verifyCluster')],
  check: 'read-only',
  rollback: 'nothing: verification changes nothing',
};

/** Waits across nodes; everything else waits only for the same node's previous phase. */
export const DEPLOY_BARRIERS: readonly Barrier[] = [
  { phase: 'host-prep', after: 'preflight', why: 'the cross-node check and the version must pass before any host changes' },
  { phase: 'control-plane-join', after: 'calico', why: 'a join needs the initialized control plane' },
  { phase: 'approval', after: 'control-plane-join', why: 'the operator approves a complete control plane' },
  { phase: 'worker-join', after: 'approval', why: 'workers join a complete, approved control plane' },
  { phase: 'verify', after: 'control-plane-join', why: 'verification checks every node' },
  { phase: 'verify', after: 'worker-join', why: 'verification checks every node' },
];

export const DEPLOY: Operation = {
  id: 'deploy',
  title: 'Deployment',
  phases: [preflight, ...HOST_PHASES, kubeVip, kubeadmInit, calico, controlPlaneJoin, approval, workerJoin, verify],
  barriers: DEPLOY_BARRIERS,
};
