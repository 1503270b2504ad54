// kha apply: converge a running cluster to its file by adding the nodes it lacks. Discovery (read-only) and the
// diff first, preflight of the new nodes, the operator's approval, then the deployment's own phases on the new
// nodes only: preparation, control-plane joins one at a time (etcd checked after each), worker joins in
// parallel, verification. A member is never touched. PURE (see types.ts).
import type { Operation, PhaseDef } from './types';
import { controlPlaneJoin, HOST_PHASES, preflight, verify, workerJoin } from './deploy';

const NEW_ONLY = 'kubeadm reset and cleanup of each new node this run touched; a member from before is never reset';

export const discover: PhaseDef = {
  id: 'discover',
  title: 'Discover the running cluster',
  mode: 'cluster',
  nodes: 'first-control-plane',
  steps: [{ render: 'day2', script: 'cluster-state', runsOn: 'control-plane', activity: 'discoverCluster', note: 'on the first control-plane node of the file that is a member and answers' }],
  check: 'read-only: version, Nodes, etcd members by ID and peer URL and their health, the VIP holder; then the difference to the file',
  rollback: 'nothing: discovery changes nothing',
};

export const applyPreflight: PhaseDef = { ...preflight, nodes: 'new-nodes' };

export const applyApproval: PhaseDef = {
  id: 'approval',
  title: 'Approval of the changes',
  mode: 'gate',
  nodes: 'none',
  steps: [],
  check: 'the operator approves the printed difference (kha approve); kha apply --auto-approve approves it in advance',
  rollback: 'nothing',
};

/** The deployment's host phases, on the new nodes only. */
export const APPLY_HOST_PHASES: readonly PhaseDef[] = HOST_PHASES.map((p) => ({ ...p, nodes: 'new-nodes', rollback: NEW_ONLY }));
export const applyControlPlaneJoin: PhaseDef = { ...controlPlaneJoin, nodes: 'new-control-planes', rollback: `${NEW_ONLY}; one at a time, newest first` };
export const applyWorkerJoin: PhaseDef = { ...workerJoin, nodes: 'new-workers', rollback: `${NEW_ONLY}; workers first, in parallel` };

export const APPLY: Operation = {
  id: 'apply',
  title: 'Apply',
  phases: [discover, applyPreflight, applyApproval, ...APPLY_HOST_PHASES, applyControlPlaneJoin, applyWorkerJoin, verify],
  barriers: [
    { phase: 'preflight', after: 'discover', why: 'only discovery knows which nodes are new' },
    { phase: 'approval', after: 'preflight', why: 'the operator approves a difference whose new nodes passed preflight' },
    { phase: 'host-prep', after: 'approval', why: 'no host changes before the operator approved' },
    { phase: 'worker-join', after: 'control-plane-join', why: 'workers join a complete control plane' },
    { phase: 'verify', after: 'control-plane-join', why: 'verification checks every node' },
    { phase: 'verify', after: 'worker-join', why: 'verification checks every node' },
  ],
};
