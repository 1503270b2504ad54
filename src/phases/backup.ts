// kha backup: one cluster-wide phase, an etcd snapshot from the first healthy member (file order), verified with
// etcdutl on the node, copied to the worker's state directory (0600) with a retention count. PURE.
import type { Operation, PhaseDef } from './types';

export const etcdBackupPhase: PhaseDef = {
  id: 'etcd-backup',
  title: 'etcd snapshot',
  mode: 'cluster',
  nodes: 'first-control-plane',
  steps: [
    { render: 'day2', script: 'etcd-snapshot', runsOn: 'control-plane', activity: 'etcdBackup', note: 'on the first control-plane node whose member is healthy' },
    { render: 'day2', script: 'etcd-snapshot-cleanup', runsOn: 'control-plane', activity: 'etcdBackup', note: 'once the copy is on the worker (0600)' },
  ],
  check: 'none needed: every run takes a new snapshot; retention deletes the oldest beyond the count',
  rollback: 'nothing: a snapshot changes nothing on the cluster',
};

export const BACKUP: Operation = {
  id: 'backup',
  title: 'Backup',
  phases: [etcdBackupPhase],
  barriers: [],
};
