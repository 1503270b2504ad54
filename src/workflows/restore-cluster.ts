// restoreCluster: `kha restore CLUSTER SNAPSHOT` on the shared engine. Refuses without the typed confirmation
// and beside any other operation of the cluster; a read-only check (the snapshot confined to the cluster's
// backups directory and hashed on the worker, the running members against the file's control-plane nodes);
// then, each phase on every control-plane node before the next: the snapshot copied and verified, API servers
// and etcd stopped, the data moved aside, each member restored, etcd started to a full healthy quorum, the API
// servers started, the other components restarted, and a final check. A failed step waits for the operator
// (retry or abort); nothing is rolled back or deleted: the moved-aside data and manifests are the way back.
import { ActivityFailure, ApplicationFailure, workflowInfo } from '@temporalio/workflow';
import type { ClusterSpec, NodeSpec } from '../spec/types';
import type { RestoreCheck } from '../activities/restore';
import { applyWorkflowId, backupWorkflowId, removeWorkflowId, renewWorkflowId, type DecisionAction, upgradeWorkflowId } from './definitions';
import { refuseBeside } from './exclusive';
import { refuseBesideDeployAndReset } from './backup-cluster';
import { assertValidCluster, INVALID_SPEC } from './input-check';
import {
  apiStartPhase,
  dataAsidePhase,
  etcdStartPhase,
  memberMismatch,
  memberRestorePhase,
  quorumPhase,
  restartPhase,
  RESTORE,
  restoreCheckPhase,
  restoreVerifyPhase,
  stagePhase,
  stopPhase,
} from '../phases/restore';
import type { PhaseDef } from '../phases/types';
import { Engine } from './engine/engine';

export interface RestoreInput {
  cluster: ClusterSpec;
  /** A snapshot file name in the cluster's backups directory on the worker, or an absolute path to one there. */
  snapshot: string;
  /** The cluster's name, typed by the operator: nothing runs without it. */
  confirm: string;
}

export interface RestoreResult {
  cluster: string;
  /** The snapshot's path on the worker's machine, its size, hash and etcd revision. */
  snapshot: string;
  sizeBytes: number;
  sha256: string;
  revision: number;
  /** This run's name in the paths below. */
  tag: string;
  /** Where each control-plane node keeps its old etcd data and the static pod manifests kha moved (kept). */
  dataAside: string;
  manifestsAside: string;
  members: Array<{ id: string; name: string }>;
  nodes: string[];
}

const CHOICES: DecisionAction[] = ['retry', 'abort-leave'];

/** The run's name on the nodes: its start time and the first characters of its run id. */
function runTag(): string {
  const i = workflowInfo();
  const stamp = i.startTime.toISOString().replace(/[-:]/g, '').replace(/\.\d+Z$/, 'Z');
  return `${stamp}-${i.runId.replace(/[^0-9a-f]/gi, '').slice(0, 8)}`;
}

/** The innermost application failure's type and message. */
function innermost(e: unknown): { type?: string; message: string } {
  let cur: unknown = e;
  while (cur instanceof ActivityFailure && cur.cause) cur = cur.cause;
  return cur instanceof ApplicationFailure ? { type: cur.type ?? undefined, message: cur.message } : { message: String(e) };
}

export async function restoreCluster(input: RestoreInput): Promise<RestoreResult> {
  assertValidCluster('restoreCluster', input?.cluster, { running: true });
  const { cluster } = input;
  if (input.confirm !== cluster.name) {
    throw ApplicationFailure.nonRetryable(`restoreCluster: confirm must be the cluster's name ${JSON.stringify(cluster.name)} typed by the operator, got ${JSON.stringify(input.confirm ?? null)}; nothing was done`, INVALID_SPEC);
  }
  const snap = input.snapshot;
  if (typeof snap !== 'string' || !snap || snap.length > 4096 || /[\u0000-\u001f\u007f]/.test(snap)) {
    throw ApplicationFailure.nonRetryable('restoreCluster: snapshot must be a file name or a path on one line; nothing was done', INVALID_SPEC);
  }
  const spec = cluster.spec;
  const e = new Engine(RESTORE, cluster, { heartbeatTimeoutSeconds: 60, startToCloseMs: (spec.ssh.commandTimeoutSeconds + 300) * 1000 });
  const { steps, board } = e;
  const record = (msg: string) => {
    (e.status.notices ??= []).push(msg);
    board.setState('aborted');
  };
  await refuseBesideDeployAndReset(e, cluster.name, 'a restore');
  for (const [id, what] of [
    [applyWorkflowId(cluster.name), 'a kha apply'],
    [removeWorkflowId(cluster.name), 'a removal'],
    [backupWorkflowId(cluster.name), 'a backup'],
    [renewWorkflowId(cluster.name), 'a certificate renewal'],
    [upgradeWorkflowId(cluster.name), 'an upgrade'],
  ] as const) {
    await refuseBeside(id, `${what} of ${cluster.name} is running (${id}); a restore does not start beside it: wait until it ends, then run it again`, record);
  }

  const tag = runTag();
  const cps = spec.nodes.filter((n) => n.role === 'control-plane');
  const first = cps[0]!;
  const clusterRow: NodeSpec = { ...first, name: 'cluster' };
  const aside = { data: `/var/lib/etcd.kha-restore-${tag}`, manifests: `/etc/kubernetes/kha-restore/${tag}` };
  const each = (p: PhaseDef, nodes: readonly NodeSpec[], run: (n: NodeSpec) => Promise<string>) =>
    Promise.all(nodes.map((n) => steps.step(p.id, n, () => run(n), undefined, CHOICES)));
  const onNodes = (p: PhaseDef, activity: 'stopControlPlane' | 'moveEtcdDataAside' | 'restoreEtcdMember' | 'startEtcd' | 'startApiServer' | 'restartAfterRestore', nodes: readonly NodeSpec[] = cps) =>
    each(p, nodes, async (n) => (await steps.call(activity, p.id, n.name, [{ cluster: steps.forNode(n.name), node: n.name, tag }])).note);

  return e.run(
    async () => {
      let check: RestoreCheck | undefined;
      let invalid: string | undefined;
      await steps.step(
        restoreCheckPhase.id,
        clusterRow,
        async () => {
          try {
            check = await steps.call('restoreCheck', restoreCheckPhase.id, 'cluster', [{ cluster, snapshot: snap }], undefined, { phase: restoreCheckPhase.id, node: 'cluster' });
          } catch (err) {
            const f = innermost(err);
            // A snapshot outside the backups directory is the input's fault: no retry fixes it.
            if (f.type !== INVALID_SPEC) throw err;
            invalid = f.message;
            return 'refused';
          }
          return `snapshot ${check.path}: ${check.sizeBytes} bytes, sha256 ${check.sha256}; ${check.members.length} etcd members (via ${check.via})`;
        },
        undefined,
        CHOICES,
      );
      const refusal = invalid ?? memberMismatch(cps.map((n) => ({ name: n.name, peerURL: `https://${n.advertiseAddress ?? n.address}:2380` })), check!.members);
      if (refusal) {
        const r = board.row(restoreCheckPhase.id, 'cluster');
        r.state = 'failed';
        r.lastError = `refused: ${refusal}`;
        record(`restore of ${cluster.name} refused: ${refusal}`);
        throw ApplicationFailure.nonRetryable(`restore of ${cluster.name} refused: ${refusal}; nothing was changed`, invalid ? INVALID_SPEC : 'RestoreRefused');
      }
      const k = check!;
      let revision = -1;
      await each(stagePhase, cps, async (n) => {
        const r = await steps.call('stageSnapshot', stagePhase.id, n.name, [{ cluster: steps.forNode(n.name), node: n.name, tag, path: k.path, sha256: k.sha256 }]);
        revision = r.revision;
        return r.note;
      });
      (e.status.notices ??= []).push(`from here on each control-plane node keeps its old etcd data in ${aside.data} and the static pod manifests kha moved in ${aside.manifests}: kha deletes neither`);
      board.publish();
      await onNodes(stopPhase, 'stopControlPlane');
      await onNodes(dataAsidePhase, 'moveEtcdDataAside');
      await onNodes(memberRestorePhase, 'restoreEtcdMember');
      await onNodes(etcdStartPhase, 'startEtcd');
      await steps.step(quorumPhase.id, clusterRow, async () => {
        const r = await steps.call('waitRestoredQuorum', quorumPhase.id, 'cluster', [{ cluster }], undefined, { phase: quorumPhase.id, node: 'cluster' });
        return `${r.members} members started and healthy (via ${r.via})`;
      }, undefined, CHOICES);
      await onNodes(apiStartPhase, 'startApiServer');
      await each(restartPhase, spec.nodes, async (n) => (await steps.call('restartAfterRestore', restartPhase.id, n.name, [{ cluster: steps.forNode(n.name), node: n.name, tag }])).note);
      let result: RestoreResult | undefined;
      await steps.step(restoreVerifyPhase.id, clusterRow, async () => {
        const v = await steps.call('verifyRestore', restoreVerifyPhase.id, 'cluster', [{ cluster }], undefined, { phase: restoreVerifyPhase.id, node: 'cluster' });
        const started = v.members.filter((m) => m.started && !m.isLearner);
        const missing = spec.nodes.map((n) => n.name).filter((n) => !v.nodes.includes(n));
        const problems = [
          memberMismatch(cps.map((n) => ({ name: n.name, peerURL: `https://${n.advertiseAddress ?? n.address}:2380` })), v.members),
          started.length !== cps.length ? `${started.length} of ${cps.length} members started` : undefined,
          v.healthy.length !== cps.length ? `${v.healthy.length} of ${cps.length} members healthy (${v.healthy.join(', ') || 'none'})` : undefined,
          missing.length ? `the API does not list the Nodes ${missing.join(', ')}` : undefined,
        ].filter(Boolean);
        if (problems.length) throw ApplicationFailure.create({ type: 'RestoreCheckFailed', message: `after the restore: ${problems.join('; ')}` });
        result = {
          cluster: cluster.name,
          snapshot: k.path,
          sizeBytes: k.sizeBytes,
          sha256: k.sha256,
          revision,
          tag,
          dataAside: aside.data,
          manifestsAside: aside.manifests,
          members: v.members.map((m) => ({ id: m.id, name: m.name })),
          nodes: v.nodes,
        };
        return `${started.length} members started and healthy, /livez through the VIP, ${v.nodes.length} Nodes listed`;
      }, undefined, CHOICES);
      return result!;
    },
    // Nothing is deleted to go back: the moved-aside data and manifests are the operator's.
    async () => 0,
    () =>
      `restore of ${cluster.name} aborted by the operator; nothing was deleted: on each control-plane node the old etcd data is in ${aside.data} and the static pod manifests kha moved are in ${aside.manifests} (kha status ${cluster.name} --restore shows which steps ran; the README's kha restore section says how to go back)`,
  );
}
