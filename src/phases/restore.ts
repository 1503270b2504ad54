// kha restore: disaster recovery of the stacked etcd from a snapshot kha backup took, on every member at once.
// A read-only check first (the running members by ID and peer URL against the file's control-plane nodes, the
// snapshot's hash), then the snapshot on every control-plane node, the control plane stopped, the old data
// moved aside, each member restored with its own name and peer URL into a new cluster, etcd and the API
// servers back, the other components restarted, and a final check. Nothing is deleted: the moved-aside data
// and manifests are the way back. PURE: the workflow imports it.
import type { Operation, PhaseDef } from './types';

const restoreStep = (script: string, activity: PhaseDef['steps'][number]['activity'], note?: string): PhaseDef['steps'][number] => ({ render: 'restore', script, runsOn: 'node', activity, ...(note ? { note } : {}) });

export const restoreCheckPhase: PhaseDef = {
  id: 'restore-check',
  title: 'Check the restore',
  mode: 'cluster',
  nodes: 'first-control-plane',
  steps: [{ render: 'restore', script: 'etcd-member-list', runsOn: 'control-plane', activity: 'restoreCheck', note: "the snapshot file in the cluster's backups directory and its sha256 on the worker; the running members by ID and peer URL" }],
  check: 'read-only; refuses when the members do not match the control-plane nodes of the file',
  rollback: 'nothing: the check changes nothing',
};

export const stagePhase: PhaseDef = {
  id: 'restore-stage',
  title: 'Copy the snapshot',
  mode: 'parallel',
  nodes: 'control-planes-first-last',
  steps: [
    restoreStep('restore-prepare', 'stageSnapshot', 'the run\'s directory (0700) and the sha256 of a copy already there'),
    restoreStep('restore-stage', 'stageSnapshot', 'after the file over SSH standard input (0600): its sha256 on the node, etcdutl snapshot status'),
  ],
  check: 'a copy with the same sha256 is not copied again',
  rollback: 'nothing: the copy sits in /var/lib/kha/restore/RUN',
};

export const stopPhase: PhaseDef = {
  id: 'restore-stop',
  title: 'Stop API servers and etcd',
  mode: 'parallel',
  nodes: 'control-planes-first-last',
  steps: [restoreStep('restore-stop', 'stopControlPlane', 'kube-apiserver.yaml, then etcd.yaml moved to /etc/kubernetes/kha-restore/RUN; waits until their containers are gone')],
  check: 'a manifest already moved aside is not moved again',
  rollback: 'none by kha: move the manifests back into /etc/kubernetes/manifests',
};

export const dataAsidePhase: PhaseDef = {
  id: 'restore-data-aside',
  title: 'Move the etcd data aside',
  mode: 'parallel',
  nodes: 'control-planes-first-last',
  steps: [restoreStep('restore-data-aside', 'moveEtcdDataAside', '/var/lib/etcd renamed to /var/lib/etcd.kha-restore-RUN (kept: kha never deletes it)')],
  check: 'a data directory already moved aside is not moved again',
  rollback: 'none by kha: the old data is the way back (see the README)',
};

export const memberRestorePhase: PhaseDef = {
  id: 'restore-member',
  title: 'Restore each member',
  mode: 'parallel',
  nodes: 'control-planes-first-last',
  steps: [restoreStep('restore-member', 'restoreEtcdMember', 'etcdutl snapshot restore with the node name, its peer URL, every member in --initial-cluster and a fresh token')],
  check: 'a member restored by this run (its marker in /var/lib/kha/restore/RUN) is not restored again',
  rollback: 'none by kha',
};

export const etcdStartPhase: PhaseDef = {
  id: 'restore-etcd-start',
  title: 'Start etcd',
  mode: 'parallel',
  nodes: 'control-planes-first-last',
  steps: [restoreStep('restore-etcd-start', 'startEtcd', 'etcd.yaml moved back; waits for the local member to answer')],
  check: 'a manifest already back is not moved again',
  rollback: 'none by kha',
};

export const quorumPhase: PhaseDef = {
  id: 'restore-etcd-quorum',
  title: 'etcd quorum',
  mode: 'cluster',
  nodes: 'first-control-plane',
  steps: [{ render: 'restore', script: 'restore-etcd-quorum', runsOn: 'control-plane', activity: 'waitRestoredQuorum', note: 'every member started and healthy' }],
  check: 'read-only wait',
  rollback: 'none',
};

export const apiStartPhase: PhaseDef = {
  id: 'restore-api-start',
  title: 'Start the API servers',
  mode: 'parallel',
  nodes: 'control-planes-first-last',
  steps: [restoreStep('restore-api-start', 'startApiServer', 'kube-apiserver.yaml moved back; waits for /livez')],
  check: 'a manifest already back is not moved again',
  rollback: 'none by kha',
};

export const restartPhase: PhaseDef = {
  id: 'restore-restart',
  title: 'Restart components',
  mode: 'parallel',
  nodes: 'all',
  steps: [restoreStep('restore-restart', 'restartAfterRestore', 'control-plane nodes: kube-controller-manager and kube-scheduler, then the kubelet; workers: the kubelet')],
  check: 'a component started after this run restored the data is not restarted again',
  rollback: 'none',
};

export const restoreVerifyPhase: PhaseDef = {
  id: 'restore-verify',
  title: 'Check the cluster',
  mode: 'cluster',
  nodes: 'first-control-plane',
  steps: [{ render: 'restore', script: 'restore-verify', runsOn: 'control-plane', activity: 'verifyRestore', note: 'every member started and healthy, /livez through the VIP, the Nodes listed' }],
  check: 'read-only',
  rollback: 'none',
};

export const RESTORE: Operation = {
  id: 'restore',
  title: 'Restore etcd',
  phases: [restoreCheckPhase, stagePhase, stopPhase, dataAsidePhase, memberRestorePhase, etcdStartPhase, quorumPhase, apiStartPhase, restartPhase, restoreVerifyPhase],
  barriers: [
    { phase: 'restore-stop', after: 'restore-stage', why: 'nothing stops before every node has a verified copy' },
    { phase: 'restore-data-aside', after: 'restore-stop', why: 'the data moves only once etcd is stopped everywhere' },
    { phase: 'restore-etcd-start', after: 'restore-member', why: 'a restored member alone has no quorum' },
    { phase: 'restore-api-start', after: 'restore-etcd-quorum', why: 'the API servers start on a healthy etcd' },
  ],
};

/** One etcd member as the check sees it (hex ID, exact URLs). */
export interface RestoreMember {
  id: string;
  name: string;
  peerURLs: string[];
}

/**
 * Why the running members do not fit the file's control-plane nodes, or undefined when every node has exactly
 * one member with its peer URL and its name, and there is no other member. A restore gives each member the
 * name and peer URL of the file: a mismatch would restore a cluster other than the one that runs.
 */
export function memberMismatch(nodes: ReadonlyArray<{ name: string; peerURL: string }>, members: readonly RestoreMember[]): string | undefined {
  const problems: string[] = [];
  for (const n of nodes) {
    const m = members.filter((x) => x.peerURLs.includes(n.peerURL));
    if (m.length === 0) problems.push(`${n.name} (${n.peerURL}) has no etcd member`);
    else if (m.length > 1) problems.push(`${n.name} (${n.peerURL}) has ${m.length} members: ${m.map((x) => x.id).join(', ')}`);
    else if (m[0]!.name && m[0]!.name !== n.name) problems.push(`the member ${m[0]!.id} at ${n.peerURL} is named ${m[0]!.name}, not ${n.name}`);
  }
  for (const m of members) {
    if (!nodes.some((n) => m.peerURLs.includes(n.peerURL))) problems.push(`member ${m.id}${m.name ? ` (${m.name})` : ''} at ${m.peerURLs.join(', ') || 'no peer URL'} is no control-plane node of the file`);
  }
  return problems.length ? problems.join('; ') : undefined;
}
