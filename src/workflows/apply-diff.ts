// kha apply: the difference between a cluster file and what runs (discoverCluster's state). Pure: the workflow
// imports it. Apply only adds nodes: a node the file lacks, a moved or re-roled node and another version are
// refusals naming the command that does that job (kha remove, kha upgrade).
import type { ClusterState } from '../render/day2-cluster-state';
import { advertiseAddress, type ClusterSpec, type NodeSpec } from '../spec/types';

export interface ApplyDiff {
  /** The version the cluster runs ("v1.35.1"). */
  kubernetesVersion: string;
  /** Nodes of the file that run in the cluster already: never touched. */
  existing: string[];
  /** New nodes, in file order. */
  addControlPlanes: NodeSpec[];
  addWorkers: NodeSpec[];
  /** Control-plane nodes of the file that are Ready with a healthy etcd member, in file order. */
  healthyControlPlanes: string[];
  /** Why apply will not go on; empty when it may. */
  refusals: string[];
  /** The difference as the operator reads it. */
  lines: string[];
}

export const peerUrl = (n: NodeSpec): string => `https://${advertiseAddress(n)}:2380`;

/** Does a running version ("1.35.1") satisfy the file's ("1.35" or "1.35.1")? */
export function versionFits(running: string, wanted: string): boolean {
  const v = running.replace(/^v/, '');
  const w = wanted.replace(/^v/, '');
  return /^1\.\d+$/.test(w) ? v.startsWith(`${w}.`) : v === w;
}

export function applyDiff(cluster: ClusterSpec, state: ClusterState): ApplyDiff {
  const spec = cluster.spec;
  const name = cluster.name;
  const refusals: string[] = [];
  const running = state.kubernetesVersion;
  const byName = new Map(state.nodes.map((n) => [n.name, n]));
  const fileNames = new Set(spec.nodes.map((n) => n.name));

  // A node the cluster has and the file lacks stays: removing is kha remove's job (drain, quorum, member by ID).
  const missing = state.nodes.filter((n) => !fileNames.has(n.name));
  for (const n of missing) {
    refusals.push(`${n.name} (${n.controlPlane ? 'control-plane' : 'worker'}, ${n.address}) runs in ${name} but is not in the file; apply never removes a node: use kha remove ${name} ${n.name}, or put it back in the file`);
  }
  const cpFile = spec.nodes.filter((n) => n.role === 'control-plane');
  for (const m of state.members) {
    if (cpFile.some((n) => m.peerURLs.includes(peerUrl(n)))) continue;
    if (missing.some((n) => n.name === m.name)) continue; // named above
    refusals.push(`etcd member ${m.id} (${m.name || 'not started'}, ${m.peerURLs.join(' ')}) belongs to no control-plane node of the file; apply never removes a member: use kha remove ${name} ${m.name || 'NODE'}`);
  }

  if (!versionFits(running, spec.kubernetes.version)) {
    refusals.push(`${name} runs Kubernetes ${running} and the file asks for ${spec.kubernetes.version}; apply never changes the version of a running cluster: use kha upgrade`);
  }
  const skewed = state.nodes.filter((n) => n.kubeletVersion && n.kubeletVersion.replace(/^v/, '') !== running.replace(/^v/, ''));
  if (skewed.length) {
    refusals.push(`nodes run another kubelet than the control plane's ${running} (${skewed.map((n) => `${n.name}: ${n.kubeletVersion}`).join(', ')}); finish that upgrade first: use kha upgrade`);
  }

  const existing: string[] = [];
  const added: NodeSpec[] = [];
  for (const n of spec.nodes) {
    const live = byName.get(n.name);
    if (!live) {
      added.push(n);
      continue;
    }
    existing.push(n.name);
    if (live.address !== n.address && live.address !== advertiseAddress(n)) {
      refusals.push(`${n.name} runs at ${live.address} and the file says ${n.address}; apply does not move a node: use kha remove ${name} ${n.name}, then apply`);
    }
    if (live.controlPlane !== (n.role === 'control-plane')) {
      refusals.push(`${n.name} runs as a ${live.controlPlane ? 'control-plane node' : 'worker'} and the file says ${n.role}; apply does not change a role: use kha remove ${name} ${n.name}, then apply`);
    }
  }
  const addControlPlanes = added.filter((n) => n.role === 'control-plane');
  const addWorkers = added.filter((n) => n.role === 'worker');

  // The first control-plane node of the file is where kha deploy initializes: a running cluster's is a member.
  const firstCp = cpFile[0];
  if (firstCp && addControlPlanes.includes(firstCp)) {
    refusals.push(`${firstCp.name} is new and listed first among the control-plane nodes; list a member first (new control-plane nodes join after the members)`);
  }
  for (const n of addControlPlanes) {
    const stale = state.members.find((m) => m.peerURLs.includes(peerUrl(n)));
    if (stale) refusals.push(`etcd already has member ${stale.id} at ${peerUrl(n)} (${stale.name || 'not started'}) although ${n.name} is no Node: a member left by an earlier attempt; remove it first: use kha remove ${name} ${n.name} --force`);
  }

  const healthy = new Set(state.healthyEndpoints);
  const memberOf = (n: NodeSpec) => state.members.find((m) => m.peerURLs.includes(peerUrl(n)));
  const healthyControlPlanes = cpFile
    .filter((n) => byName.get(n.name)?.ready && byName.get(n.name)?.controlPlane)
    .filter((n) => memberOf(n)?.clientURLs.some((u) => healthy.has(u)))
    .map((n) => n.name);
  const unhealthy = state.members.filter((m) => !m.clientURLs.some((u) => healthy.has(u)) || m.isLearner);
  if (added.length && !healthyControlPlanes.length) {
    refusals.push(`no control-plane node of ${name} is Ready with a healthy etcd member; fix the control plane before adding nodes`);
  } else if (addControlPlanes.length && unhealthy.length) {
    refusals.push(`etcd member${unhealthy.length > 1 ? 's' : ''} ${unhealthy.map((m) => m.name || m.id).join(', ')} ${unhealthy.length > 1 ? 'are' : 'is'} not healthy (or a learner); a control-plane join needs every member healthy: fix etcd first`);
  }

  const cps = state.nodes.filter((n) => n.controlPlane).length;
  const notReady = state.nodes.filter((n) => !n.ready).map((n) => n.name);
  const lines = [
    `${name} runs Kubernetes ${running} on ${state.nodes.length} node(s): ${cps} control-plane, ${state.nodes.length - cps} worker; etcd ${state.members.length} member(s), ${state.members.length - unhealthy.length} healthy; VIP ${spec.controlPlaneEndpoint.vip} held by ${state.vipHolder || 'no node'}${notReady.length ? `; not Ready: ${notReady.join(', ')}` : ''}`,
    ...addControlPlanes.map((n) => `+ ${n.name} (control-plane, ${n.address}): joins after the members, one at a time, etcd checked after each`),
    ...addWorkers.map((n) => `+ ${n.name} (worker, ${n.address}): joins once the control plane is complete, in parallel`),
    ...(existing.length ? [`= ${existing.length} node(s) unchanged: ${existing.join(', ')}`] : []),
  ];
  return { kubernetesVersion: running, existing, addControlPlanes, addWorkers, healthyControlPlanes, refusals, lines };
}
