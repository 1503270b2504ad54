// Entry point of the renderers: one phase for one node, or everything for the plan.
import type { ClusterSpec, NodeSpec } from '../spec/types';
import { findNode } from '../spec/types';
import { renderCalico } from './calico';
import { renderContainerRuntime } from './container-runtime';
import { renderHostPrep } from './host-prep';
import { renderControlPlaneJoin, renderWorkerJoin } from './join';
import { renderKubeadmInit } from './kubeadm';
import { renderKubeVip } from './kube-vip';
import { phasesForNode } from './order';
import { renderPackages } from './packages';
import { renderPreflight } from './preflight';
import { renderReset } from './reset';
import type { AnyPhaseName, PhaseRender, RenderFacts } from './types';
import { renderVerify } from './verify';
import { assumedFacts } from './version';

export type Renderer = (c: ClusterSpec, n: NodeSpec, facts: RenderFacts) => PhaseRender;

export const RENDERERS = {
  preflight: renderPreflight,
  'host-prep': renderHostPrep,
  'container-runtime': renderContainerRuntime,
  packages: renderPackages,
  'kube-vip': renderKubeVip,
  'kubeadm-init': renderKubeadmInit,
  calico: renderCalico,
  'control-plane-join': renderControlPlaneJoin,
  'worker-join': renderWorkerJoin,
  verify: renderVerify,
  reset: renderReset,
} as const satisfies Record<string, Renderer>;

/** Renders one phase for one node. Throws when the phase does not run on that node. */
export function renderPhase(cluster: ClusterSpec, nodeName: string, phase: AnyPhaseName, facts: RenderFacts): PhaseRender {
  const node = findNode(cluster, nodeName);
  if (!phasesForNode(cluster, nodeName).includes(phase)) {
    throw new Error(`phase ${phase} does not run on node ${nodeName} (${node.role})`);
  }
  return RENDERERS[phase](cluster, node, facts);
}

/** Every phase of every node (reset included), nodes in file order, phases in deployment order. */
export function renderAll(cluster: ClusterSpec, facts: RenderFacts): PhaseRender[] {
  return cluster.spec.nodes.flatMap((n) => phasesForNode(cluster, n.name).map((p) => RENDERERS[p](cluster, n, facts)));
}

/**
 * Facts for rendering before any host was asked (plan, tests): a full version is used as is; a
 * minor uses its .0 patch, and `resolvedAtDeploy` says that deploy resolves the real patch.
 */
export function planFacts(cluster: ClusterSpec): { facts: RenderFacts; resolvedAtDeploy: boolean } {
  const v = cluster.spec.kubernetes.version;
  return { facts: assumedFacts(v), resolvedAtDeploy: /^v?1\.\d+$/.test(v) };
}

export { assumedFacts } from './version';
export { deploymentStages, describeMode, phaseDirName, phasesForNode, PHASE_ORDER, RESET_STEPS } from './order';
export type { Stage, StageMode, StageStep } from './order';
export { FACTS_MARKER, LIST_VERSIONS_ENV, LIST_VERSIONS_FLAG, parseFacts, resolveKubernetesVersion } from './preflight';
export type { HostFacts, InterfaceFacts } from './preflight';
export { CREDENTIALS_MARKER, ETCD_MARKER, JOIN_ENV, joinEnv, parseJoinCredentials } from './join';
export type { JoinCredentials } from './join';
export { VERIFY_MARKER } from './verify';
