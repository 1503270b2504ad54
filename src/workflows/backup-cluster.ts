// backupCluster: `kha backup` on the shared engine. Refuses beside a deployment or a reset of the cluster (a run
// of its schedule also beside a backup by hand), then
// runs etcdBackup once; a failure after the retries waits for the operator (kha retry / kha abort). The result
// carries the snapshot's path, size, hash and revision: its bytes never leave the activity.
import { ApplicationFailure, workflowInfo } from '@temporalio/workflow';
import type { ClusterSpec } from '../spec/types';
import { backupWorkflowId, deployWorkflowId, resetWorkflowId, restoreWorkflowId, upgradeWorkflowId } from './definitions';
import { refuseBeside } from './exclusive';
import { assertValidCluster, INVALID_SPEC } from './input-check';
import { BACKUP, etcdBackupPhase } from '../phases/backup';
import { Engine } from './engine/engine';

export interface BackupInput {
  cluster: ClusterSpec;
  /** Snapshots of this cluster to keep in the state directory, this one included (default 5). */
  retain?: number;
}

export interface BackupResult {
  cluster: string;
  node: string;
  path: string;
  sizeBytes: number;
  sha256: string;
  revision: number;
  totalKeys: number;
  etcdVersion: string;
  removed: string[];
}

/** Refuses (ClusterBusy) while a deployment or a reset of the cluster runs; `what` names the refusing operation. */
export async function refuseBesideDeployAndReset(e: Engine, cluster: string, what: string): Promise<void> {
  const record = (msg: string) => {
    (e.status.notices ??= []).push(msg);
    e.board.setState('aborted');
  };
  await refuseBeside(deployWorkflowId(cluster), `the deployment of ${cluster} is running (${deployWorkflowId(cluster)}); ${what} does not start beside it: let it finish, then run it again`, record);
  await refuseBeside(resetWorkflowId(cluster), `a reset of ${cluster} is running (${resetWorkflowId(cluster)}); ${what} does not start beside it: wait until it ends (kha status ${cluster} --reset)`, record);
}

/** Refuses (ClusterBusy) while an upgrade or a restore of the cluster runs (deploy, reset, apply, remove, certs renew). */
export async function refuseBesideUpgradeAndRestore(e: Engine, cluster: string, what: string): Promise<void> {
  const record = (msg: string) => {
    (e.status.notices ??= []).push(msg);
    e.board.setState('aborted');
  };
  await refuseBeside(upgradeWorkflowId(cluster), `an upgrade of ${cluster} is running (${upgradeWorkflowId(cluster)}); ${what} does not start beside it: let it finish (kha status ${cluster} --upgrade), then run it again`, record);
  await refuseBeside(restoreWorkflowId(cluster), `a restore of ${cluster} is running (${restoreWorkflowId(cluster)}); ${what} does not start beside it: let it finish (kha status ${cluster} --restore), then run it again`, record);
}

export async function backupCluster(input: BackupInput): Promise<BackupResult> {
  assertValidCluster('backupCluster', input?.cluster, { running: true });
  const { cluster } = input;
  const r = input.retain;
  if (r !== undefined && (!Number.isInteger(r) || r < 1 || r > 1000)) throw ApplicationFailure.nonRetryable(`backupCluster: retain must be an integer from 1 to 1000, got ${JSON.stringify(r)}`, INVALID_SPEC);
  const spec = cluster.spec;
  const first = spec.nodes.find((n) => n.role === 'control-plane')!;
  const e = new Engine(BACKUP, cluster, { heartbeatTimeoutSeconds: 60, startToCloseMs: (spec.ssh.commandTimeoutSeconds + 300) * 1000 });
  await refuseBesideDeployAndReset(e, cluster.name, 'a backup');
  // A run its schedule started (an id derived from the schedule's) never runs beside one started by hand.
  const byHand = backupWorkflowId(cluster.name);
  if (workflowInfo().workflowId !== byHand) {
    await refuseBeside(byHand, `a backup of ${cluster.name} started by hand is running (${byHand}); this scheduled backup does not start beside it: the next one will`, (msg) => {
      (e.status.notices ??= []).push(msg);
      e.board.setState('aborted');
    });
  }
  let result: BackupResult | undefined;
  return e.run(
    async () => {
      const track = { phase: etcdBackupPhase.id, node: 'cluster' };
      await e.steps.step(etcdBackupPhase.id, { ...first, name: 'cluster' }, async () => {
        const r = await e.steps.call('etcdBackup', etcdBackupPhase.id, 'cluster', [{ cluster, retain: input.retain }], undefined, track);
        result = { cluster: cluster.name, node: r.node, path: r.path, sizeBytes: r.sizeBytes, sha256: r.sha256, revision: r.revision, totalKeys: r.totalKeys, etcdVersion: r.etcdVersion, removed: r.removed };
        return `from ${r.node}: ${r.sizeBytes} bytes, revision ${r.revision}`;
      });
      return result!;
    },
    // A snapshot changes nothing on the cluster: an abort just stops.
    async () => 0,
    () => `backup of ${cluster.name} aborted by the operator; no snapshot was taken`,
  );
}
