// removeNode: `kha remove CLUSTER NODE` on the shared engine. A read-only check comes first and may refuse
// (etcd would lose quorum, the host does not answer without --force) before anything changes; then drain (a
// timeout waits for the operator: retry, skip the drain, abort), for a control-plane node its kube-vip and its
// etcd member by ID (leadership moved away first), the Node, and kubeadm reset with kha's cleanup on the host.
// With --force a host that does not answer loses only the steps that need it, each named in the result.
import { ApplicationFailure } from '@temporalio/workflow';
import type { ClusterSpec, NodeSpec } from '../spec/types';
import type { RemovalCheck } from '../activities/remove';
import { backupWorkflowId } from './definitions';
import { refuseBeside } from './exclusive';
import { refuseBesideDeployAndReset, refuseBesideUpgradeAndRestore } from './backup-cluster';
import { assertValidCluster, INVALID_SPEC } from './input-check';
import { deleteNodePhase, drainPhase, etcdMemberPhase, kubeVipPhase, quorumRefusal, removeCheckPhase, removeOperation, resetHostPhase } from '../phases/remove';
import type { PhaseDef } from '../phases/types';
import { Engine } from './engine/engine';

export const DEFAULT_DRAIN_TIMEOUT_SECONDS = 300;

export interface RemoveInput {
  cluster: ClusterSpec;
  node: string;
  /** The host may be dead: steps that need it are skipped (and named) instead of refusing. */
  force?: boolean;
  /** Reboot the host after its reset. */
  reboot?: boolean;
  /** How long kubectl drain may take before the operator decides (default 300 s). */
  drainTimeoutSeconds?: number;
}

export interface RemoveResult {
  cluster: string;
  node: string;
  role: NodeSpec['role'];
  /** The etcd member removed (hex), when the node had one. */
  memberId?: string;
  movedLeaderTo?: string;
  /** Steps not run, and why (--force on a dead host, the operator's skip). */
  skipped: Array<{ step: string; why: string }>;
  /** The first control-plane node in file order whose etcd member is healthy: where later operations start. */
  firstControlPlane: string;
  /** What the operator changes in the cluster file now. */
  fileChange: string;
}

export async function removeNode(input: RemoveInput): Promise<RemoveResult> {
  assertValidCluster('removeNode', input?.cluster, { running: true });
  const { cluster } = input;
  const spec = cluster.spec;
  const target = spec.nodes.find((n) => n.name === input.node);
  if (!target) throw ApplicationFailure.nonRetryable(`removeNode: ${JSON.stringify(input.node)} is not a node of ${cluster.name} (nodes: ${spec.nodes.map((n) => n.name).join(', ')}); nothing was done`, INVALID_SPEC);
  const drainTimeout = input.drainTimeoutSeconds ?? DEFAULT_DRAIN_TIMEOUT_SECONDS;
  if (!Number.isInteger(drainTimeout) || drainTimeout < 1 || drainTimeout > 86_400) {
    throw ApplicationFailure.nonRetryable(`removeNode: drainTimeoutSeconds must be an integer from 1 to 86400, got ${JSON.stringify(input.drainTimeoutSeconds)}`, INVALID_SPEC);
  }
  const cp = target.role === 'control-plane';
  const op = removeOperation(target.role);
  const e = new Engine(op, cluster, { heartbeatTimeoutSeconds: 60, startToCloseMs: (spec.ssh.commandTimeoutSeconds + 300) * 1000 });
  const { steps, board } = e;
  await refuseBesideDeployAndReset(e, cluster.name, 'a removal');
  await refuseBesideUpgradeAndRestore(e, cluster.name, 'a removal');
  await refuseBeside(backupWorkflowId(cluster.name), `a backup of ${cluster.name} is running (${backupWorkflowId(cluster.name)}); a removal does not start beside it: wait until it ends, then run it again`, (msg) => {
    (e.status.notices ??= []).push(msg);
    board.setState('aborted');
  });
  const rowOf = (p: PhaseDef) => board.row(p.id, p.mode === 'cluster' ? 'cluster' : target.name);
  for (const p of op.phases) rowOf(p);
  board.publish();

  const c = steps.forNode(target.name);
  const first = spec.nodes.find((n) => n.role === 'control-plane')!;
  const skipped: RemoveResult['skipped'] = [];
  const skip = (p: PhaseDef, why: string) => {
    const r = rowOf(p);
    r.state = 'skipped';
    r.note = why;
    r.startedAt ??= new Date().toISOString();
    r.endedAt = new Date().toISOString();
    skipped.push({ step: p.id, why });
    board.publish();
  };
  const nothing = (p: PhaseDef, note: string) => {
    const r = rowOf(p);
    r.state = 'done';
    r.note = note;
    r.startedAt ??= new Date().toISOString();
    r.endedAt = new Date().toISOString();
    board.publish();
  };

  return e.run(
    async () => {
      let check: RemovalCheck | undefined;
      await steps.step(removeCheckPhase.id, { ...first, name: 'cluster' }, async () => {
        check = await steps.call('removalCheck', removeCheckPhase.id, 'cluster', [{ cluster: c, node: target.name }], undefined, { phase: removeCheckPhase.id, node: 'cluster' });
        const healthy = check.members.filter((m) => m.healthy).length;
        return `${check.members.length} etcd members (${healthy} healthy), Node ${check.nodeExists ? 'present' : 'absent'}, host ${check.reachable ? 'answers' : 'does not answer'} (via ${check.via})`;
      });
      const k = check!;
      const refusal =
        (cp ? quorumRefusal(target.name, k.members, k.targetMember) : undefined) ??
        (!k.reachable && !input.force
          ? `${target.name} does not answer SSH (${k.unreachable ?? 'unknown error'}); nothing was changed. If the host is gone for good, kha remove ${cluster.name} ${target.name} --force removes it from the cluster without draining or resetting it`
          : undefined) ??
        (cp && k.targetMember && !k.healthyVia.length ? `no control-plane node other than ${target.name} has a healthy etcd member; nothing was changed` : undefined);
      if (refusal) {
        const r = rowOf(removeCheckPhase);
        r.state = 'failed';
        r.lastError = `refused: ${refusal}`;
        (e.status.notices ??= []).push(`removal of ${target.name} refused: ${refusal}`);
        board.setState('aborted');
        throw ApplicationFailure.nonRetryable(`removal of ${target.name} from ${cluster.name} refused: ${refusal}`, 'RemovalRefused');
      }
      const via = k.healthyVia.length ? k.healthyVia : [k.via];
      const call = { cluster: c, node: target.name, via };
      const dead = !k.reachable;
      const deadWhy = (what: string) => `--force: ${target.name} does not answer SSH, so ${what}`;

      if (!k.nodeExists) nothing(drainPhase, 'no Node object: nothing to drain');
      else if (dead) skip(drainPhase, deadWhy('its pods are not drained; they are deleted with its Node'));
      else {
        const out = await steps.step(
          drainPhase.id,
          target,
          async () => (await steps.call('drainNode', drainPhase.id, target.name, [{ ...call, timeoutSeconds: drainTimeout }], { startToCloseTimeout: (drainTimeout + spec.ssh.commandTimeoutSeconds + 120) * 1000 })).note,
          undefined,
          ['retry', 'skip', 'abort-leave'],
        );
        if (out === 'skipped') skipped.push({ step: drainPhase.id, why: rowOf(drainPhase).note ?? 'skipped by the operator' });
      }

      let movedLeaderTo: string | undefined;
      if (cp) {
        if (dead) skip(kubeVipPhase, deadWhy('its kube-vip manifest stays on the host (it cannot reach the others while down)'));
        else await steps.step(kubeVipPhase.id, target, async () => (await steps.call('removeKubeVip', kubeVipPhase.id, target.name, [call])).note);
        if (!k.targetMember) nothing(etcdMemberPhase, `no etcd member has the peer URL of ${target.name}: nothing to remove`);
        else {
          await steps.step(etcdMemberPhase.id, target, async () => {
            const r = await steps.call('removeEtcdMember', etcdMemberPhase.id, target.name, [{ ...call, memberId: k.targetMember! }]);
            movedLeaderTo = r.movedLeaderTo;
            return r.note;
          });
        }
      }

      await steps.step(deleteNodePhase.id, target, async () => (await steps.call('deleteNodeObject', deleteNodePhase.id, target.name, [call])).note);

      if (dead) skip(resetHostPhase, deadWhy('kubeadm reset and the cleanup did not run: reset or reinstall the host before it is back on the network (its kubelet would register the Node again)'));
      else {
        await steps.step(resetHostPhase.id, target, async () => {
          const r = await steps.call('resetNode', resetHostPhase.id, target.name, [{ cluster: c, node: target.name }], { startToCloseTimeout: '20m' });
          if (!input.reboot) return r.note;
          const b = await steps.call('rebootNode', resetHostPhase.id, target.name, [{ cluster: c, node: target.name }], { startToCloseTimeout: (spec.policy.compensation.rebootTimeoutSeconds + 60) * 1000 });
          return `${r.note}; ${b.note}`;
        });
      }

      const firstControlPlane = cp ? (k.healthyVia[0] ?? via[0]!) : (k.healthyVia[0] ?? first.name);
      const membersLeft = k.members.filter((m) => m.id !== k.targetMember).length;
      const fileChange =
        `delete ${target.name} from the cluster file (${cluster.source}): kha deploy --again would join it again and kha reset would reset it` +
        (cp && k.targetMember && membersLeft % 2 === 0 ? `; etcd now has ${membersLeft} members and kha validate wants an odd number of control-plane nodes: add a replacement to the file and run kha deploy --again` : '') +
        (cp && target.name === first.name ? `; ${firstControlPlane} is now the first control-plane node operations start from: keep it first in the file` : '');
      return { cluster: cluster.name, node: target.name, role: target.role, memberId: k.targetMember, movedLeaderTo, skipped, firstControlPlane, fileChange };
    },
    // A removal is not undone: an abort stops it where it is (an uncordon is the operator's).
    async () => 0,
    () => `removal of ${target.name} from ${cluster.name} aborted by the operator; kha status ${cluster.name} --remove shows the steps that ran`,
  );
}
