// kha remove: the check that decides whether a node may leave, and the steps that take it out (drain, kube-vip,
// etcd member by ID, Node). The host's own reset and reboot are compensation's activities (resetNode, rebootNode).
import { ApplicationFailure } from '@temporalio/common';
import type { ClusterSpec } from '../spec/types';
import { advertiseAddress, findNode } from '../spec/types';
import type { MemberHealth } from '../phases/remove';
import { ETCD_MEMBERS_MARKER, memberByPeerURL, parseEtcdMembers, renderEtcdMemberList } from '../render/day2-etcd-members';
import { readResult, ResultError } from '../render/result';
import { renderDeleteNode, renderDrain, renderEtcdRemoveMember, renderKubeVipRemove, renderRemovalCheck } from '../render/remove';
import type { SshSession } from '../ssh/executor';
import type { NodeSpec } from '../spec/types';
import { marker, runScript, stepSummary, withHealthyControlPlane, withNode } from './common';
import type { NodeCall, StepResult } from './types';

export interface RemovalCheck {
  /** The control-plane node that answered. */
  via: string;
  members: MemberHealth[];
  /** The member whose peer URL is exactly the node's https://ADDRESS:2380, if it has one. */
  targetMember?: string;
  nodeExists: boolean;
  /** The host answered SSH; when not, why. */
  reachable: boolean;
  unreachable?: string;
  /** Control-plane nodes other than the target whose member answered, in file order: where later steps run. */
  healthyVia: string[];
  attempt?: number;
}

export interface DrainCall extends NodeCall {
  timeoutSeconds: number;
}

export interface EtcdRemoveCall extends NodeCall {
  /** The member ID the check found for the node (hex). */
  memberId: string;
}

export interface EtcdRemoveResult extends StepResult {
  /** The member that leads now, when leadership moved away from the removed one. */
  movedLeaderTo?: string;
}

const peerURL = (n: NodeSpec) => `https://${advertiseAddress(n)}:2380`;

function controlPlanesBut(cluster: ClusterSpec, node: string, via?: string[]): string[] {
  const cps = cluster.spec.nodes.filter((n) => n.role === 'control-plane' && n.name !== node).map((n) => n.name);
  const pick = via && via.length ? via.filter((v) => cps.includes(v)) : cps;
  if (!pick.length) throw ApplicationFailure.nonRetryable(`no control-plane node other than ${node} to run on`, 'InvalidSpec');
  return pick;
}

async function listMembers(s: SshSession, cp: NodeSpec, cluster: ClusterSpec) {
  const { stdout } = await runScript(s, cp.name, 'remove', renderEtcdMemberList(cluster, cp));
  const raw = marker(stdout, ETCD_MEMBERS_MARKER);
  if (!raw) throw ApplicationFailure.create({ type: 'TransientCommandFailed', message: `etcd member list on ${cp.name} printed nothing` });
  try {
    return parseEtcdMembers(raw);
  } catch (e) {
    throw ApplicationFailure.nonRetryable(`etcd member list on ${cp.name}: ${(e as Error).message}`, 'CommandFailed');
  }
}

/** Every member with its health and whether it leads, as seen from `cp`. */
async function memberHealth(s: SshSession, cp: NodeSpec, cluster: ClusterSpec, target: string): Promise<{ members: MemberHealth[]; nodeExists: boolean }> {
  const members = await listMembers(s, cp, cluster);
  const urls = members.map((m) => m.clientURLs[0]).filter((u): u is string => !!u);
  const { stdout } = await runScript(s, cp.name, 'remove', renderRemovalCheck(cluster, cp, target, urls));
  let report;
  try {
    report = readResult(stdout, 'REMOVAL-CHECK');
  } catch (e) {
    if (e instanceof ResultError) throw ApplicationFailure.nonRetryable(`removal check on ${cp.name}: ${e.message}`, 'CommandFailed');
    throw e;
  }
  if (!report) throw ApplicationFailure.create({ type: 'TransientCommandFailed', message: `removal check on ${cp.name} printed no report` });
  // Each endpoint names its own member ID and the leader it follows, in decimal: compared as hex IDs.
  const hex = (d: string) => (d ? BigInt(d).toString(16) : '');
  const leaders = new Set(report.endpoints.filter((e) => e.healthy && e.leader).map((e) => hex(e.leader)));
  const health = members.map((m): MemberHealth => {
    const ep = report.endpoints.find((e) => m.clientURLs.includes(e.url));
    return { id: m.id, name: m.name, peerURLs: m.peerURLs, clientURLs: m.clientURLs, healthy: !!ep?.healthy && hex(ep.member) === m.id, leader: leaders.has(m.id) };
  });
  return { members: health, nodeExists: report.nodeExists };
}

/** Read-only: the members, their health and leader, the Node, and whether the host answers SSH. */
export async function removalCheck(call: NodeCall): Promise<RemovalCheck> {
  const node = findNode(call.cluster, call.node);
  const seen = await withHealthyControlPlane(call.cluster, controlPlanesBut(call.cluster, call.node, call.via), async (s, cp) => ({ via: cp.name, ...(await memberHealth(s, cp, call.cluster, call.node)) }));
  const target = node.role === 'control-plane' ? memberByPeerURL(seen.members, peerURL(node)) : undefined;
  const healthyVia = call.cluster.spec.nodes
    .filter((n) => n.role === 'control-plane' && n.name !== call.node)
    .filter((n) => seen.members.some((m) => m.healthy && m.peerURLs.includes(peerURL(n))))
    .map((n) => n.name);
  let reachable = true;
  let unreachable: string | undefined;
  try {
    await withNode(call.cluster, call.node, (s) => s.runScript('true'));
  } catch (e) {
    reachable = false;
    unreachable = e instanceof Error ? e.message : String(e);
  }
  return { via: seen.via, members: seen.members, targetMember: target?.id, nodeExists: seen.nodeExists, reachable, unreachable, healthyVia };
}

export async function drainNode(call: DrainCall): Promise<StepResult> {
  return drainVia(call, controlPlanesBut(call.cluster, call.node, call.via), 'remove');
}

/** kubectl drain of call.node from the first of `via` that answers; a timeout is the operator's decision. */
export async function drainVia(call: DrainCall, via: string[], phase: string): Promise<StepResult> {
  return withHealthyControlPlane(call.cluster, via, async (s, cp) => {
    const run = await runScript(s, cp.name, phase, renderDrain(call.cluster, cp, call.node, call.timeoutSeconds, phase), { allowFailure: true });
    if (run.result.exitCode !== 0) {
      const failure = readResult(run.stdout, 'FAILURE');
      const tail = `${run.result.stderrTail}`.trim().split('\n').slice(-4).join(' | ');
      if (failure?.kind === 'timeout') {
        // Each attempt already waited the whole timeout: the operator decides (retry, skip the drain, abort).
        throw ApplicationFailure.create({
          type: 'DrainTimeout',
          nonRetryable: true,
          message: `drain of ${call.node} did not finish within ${call.timeoutSeconds} s (a PodDisruptionBudget may forbid an eviction): ${tail}`,
        });
      }
      throw ApplicationFailure.create({ type: 'TransientCommandFailed', message: `drain of ${call.node} via ${cp.name} exited with ${run.result.exitCode}: ${tail}` });
    }
    const { changed, note } = stepSummary(run, `drained via ${cp.name}`);
    return { node: call.node, changed, note };
  });
}

export async function removeKubeVip(call: NodeCall): Promise<StepResult> {
  return withNode(call.cluster, call.node, async (s, node) => {
    const { changed, note } = stepSummary(await runScript(s, call.node, 'remove', renderKubeVipRemove(call.cluster, node)), 'kube-vip removed');
    return { node: call.node, changed, note };
  });
}

/** Removes the member by its ID from a healthy member, after moving leadership off it when it leads. */
export async function removeEtcdMember(call: EtcdRemoveCall): Promise<EtcdRemoveResult> {
  const node = findNode(call.cluster, call.node);
  return withHealthyControlPlane(call.cluster, controlPlanesBut(call.cluster, call.node, call.via), async (s, cp) => {
    const { members } = await memberHealth(s, cp, call.cluster, call.node);
    const m = members.find((x) => x.id === call.memberId);
    // The ID must still be the node's own member: IDs are never reused, but a file that changed is caught here.
    if (m && !m.peerURLs.includes(peerURL(node))) {
      throw ApplicationFailure.nonRetryable(`etcd member ${call.memberId} has peer URLs ${m.peerURLs.join(', ')}, not ${peerURL(node)}: not removing it`, 'CommandFailed');
    }
    // The script moves leadership only if the member leads when it looks; the successor is ready either way.
    const successor = members.find((x) => x.id !== call.memberId && x.healthy);
    if (m?.leader && !successor) throw ApplicationFailure.create({ type: 'TransientCommandFailed', message: `member ${m.id} leads and no other member is healthy to take over` });
    const script = renderEtcdRemoveMember(call.cluster, cp, call.node, { id: call.memberId, clientURL: m?.healthy ? m.clientURLs[0] : undefined, successor: m?.healthy ? successor?.id : undefined });
    const moved = m?.leader && successor ? successor.name || successor.id : undefined;
    const { changed, note } = stepSummary(await runScript(s, cp.name, 'remove', script), `etcd member ${call.memberId} removed via ${cp.name}${moved ? `, leadership moved to ${moved}` : ''}`);
    return { node: call.node, changed, note, movedLeaderTo: moved };
  });
}

export async function deleteNodeObject(call: NodeCall): Promise<StepResult> {
  return withHealthyControlPlane(call.cluster, controlPlanesBut(call.cluster, call.node, call.via), async (s, cp) => {
    const { changed, note } = stepSummary(await runScript(s, cp.name, 'remove', renderDeleteNode(call.cluster, cp, call.node)), `Node deleted via ${cp.name}`);
    return { node: call.node, changed, note };
  });
}

