// kha upgrade: one Kubernetes minor (or patch) per run of the workflow, the way kubeadm's documentation orders it:
// a read-only check that may refuse, a verified etcd snapshot, every node's package repository switched to the
// target minor, then each control-plane node in turn (kubeadm upgrade apply on the first, kubeadm upgrade node on
// the others, then drain, kubelet and kubectl, uncordon), an approval, the workers in batches, and a check that
// every node runs the one pinned version. A further target continues as a new run for the next minor.
// PURE: the workflow imports it.
import type { Operation, PhaseDef, StepRef } from './types';

export const upgradeCheckPhase: PhaseDef = {
  id: 'upgrade-check',
  title: 'Check the upgrade',
  mode: 'cluster',
  nodes: 'none',
  steps: [{ render: 'day2', script: 'cluster-state', runsOn: 'control-plane', activity: 'discoverCluster', note: 'version kubeadm recorded, Nodes and their kubelets, etcd members and health' }],
  check: 'read-only; refuses a downgrade, a skipped minor, version skew, a node missing from the file or not Ready, an unhealthy etcd member',
  rollback: 'nothing: the check changes nothing',
};

export const upgradeSnapshotPhase: PhaseDef = {
  id: 'etcd-snapshot',
  title: 'etcd snapshot',
  mode: 'cluster',
  nodes: 'first-control-plane',
  steps: [
    { render: 'day2', script: 'etcd-snapshot', runsOn: 'control-plane', activity: 'etcdBackup', note: 'verified with etcdutl, copied to the state directory (0600)' },
    { render: 'day2', script: 'etcd-snapshot-cleanup', runsOn: 'control-plane', activity: 'etcdBackup' },
  ],
  check: 'a snapshot is taken before every hop; an older one is kept by the retention count',
  rollback: 'nothing: the snapshot is what kha restore would start from',
};

export const upgradeRepositoryPhase: PhaseDef = {
  id: 'repository',
  title: 'Package repository',
  mode: 'parallel',
  nodes: 'all',
  steps: [{ render: 'upgrade', script: 'upgrade-repository', runsOn: 'node', activity: 'upgradeRepository', note: 'the Kubernetes apt source points at the target minor; apt-get update; nothing is installed' }],
  check: 'a source that already names the target minor is not rewritten',
  rollback: 'none: the held packages stay as they are; kha deploy --again writes the source of the file\'s minor',
};

/** What follows kubeadm on every node: drain, kubelet and kubectl, uncordon (not a node cordoned before). */
const kubeletSteps: readonly StepRef[] = [
  { render: 'remove', script: 'drain', runsOn: 'control-plane', activity: 'drainForUpgrade' },
  { render: 'upgrade', script: 'kubelet-upgrade', runsOn: 'node', activity: 'upgradeKubelet', note: 'kubelet and kubectl packages, held; daemon-reload; kubelet restarted and reporting the target version' },
  { render: 'upgrade', script: 'uncordon', runsOn: 'control-plane', activity: 'uncordonNode', note: 'not a node that was cordoned before the upgrade' },
];

export const upgradeControlPlanePhase: PhaseDef = {
  id: 'control-plane-upgrade',
  title: 'Upgrade control plane',
  mode: 'sequential',
  nodes: 'control-planes',
  steps: [
    { render: 'upgrade', script: 'kubeadm-upgrade', runsOn: 'node', activity: 'upgradeKubeadm', note: 'kubeadm package, then kubeadm upgrade plan + apply on the first control-plane node, kubeadm upgrade node on the others' },
    ...kubeletSteps,
  ],
  check: 'kubeadm upgrade is skipped when the node\'s static pods already run the target; packages at the target are not installed again',
  rollback: 'none: kubeadm does not downgrade; a failed step is retried (kubeadm upgrade is idempotent)',
};

export const upgradeApprovalPhase: PhaseDef = {
  id: 'approve-workers',
  title: 'Approve workers',
  mode: 'gate',
  nodes: 'none',
  when: 'approveBeforeWorkers',
  steps: [],
  check: 'approved in advance with --auto-approve',
  rollback: 'nothing',
};

export const upgradeWorkersPhase: PhaseDef = {
  id: 'worker-upgrade',
  title: 'Upgrade workers',
  mode: 'parallel',
  nodes: 'workers',
  concurrency: 'workerUpgradeConcurrency',
  steps: [
    { render: 'upgrade', script: 'kubeadm-upgrade', runsOn: 'node', activity: 'upgradeKubeadm', note: 'kubeadm package, kubeadm upgrade node (the kubelet configuration)' },
    ...kubeletSteps,
  ],
  check: 'as for the control plane',
  rollback: 'none',
};

export const upgradeVerifyPhase: PhaseDef = {
  id: 'upgrade-verify',
  title: 'Versions',
  mode: 'cluster',
  nodes: 'none',
  steps: [{ render: 'day2', script: 'cluster-state', runsOn: 'control-plane', activity: 'discoverCluster', note: 'plus the package versions every node reported' }],
  check: 'read-only: kubeadm\'s recorded version, every Node\'s kubelet and every node\'s held kubeadm, kubelet and kubectl packages are the one target version; etcd healthy',
  rollback: 'nothing',
};

export const UPGRADE: Operation = {
  id: 'upgrade',
  title: 'Upgrade',
  phases: [upgradeCheckPhase, upgradeSnapshotPhase, upgradeRepositoryPhase, upgradeControlPlanePhase, upgradeApprovalPhase, upgradeWorkersPhase, upgradeVerifyPhase],
  barriers: [
    { phase: 'etcd-snapshot', after: 'upgrade-check', why: 'nothing changes before the check passed' },
    { phase: 'repository', after: 'etcd-snapshot', why: 'a verified snapshot exists before the first change' },
    { phase: 'control-plane-upgrade', after: 'repository', why: 'every node can install the target packages before any is upgraded' },
    { phase: 'approve-workers', after: 'control-plane-upgrade', why: 'the operator checks the upgraded control plane first' },
    { phase: 'worker-upgrade', after: 'approve-workers', why: 'kubelets are never newer than the API servers' },
    { phase: 'upgrade-verify', after: 'worker-upgrade', why: 'the versions are checked once every node is done' },
  ],
};
