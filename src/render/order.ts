// The deployment order as data: stages, their nodes and how the nodes run (all at once, one at a
// time, a single node, or an approval gate). PURE: no Node modules, no yaml - the Temporal
// workflow imports this file, and only erased type imports are allowed here.
import type { ClusterSpec, NodeSpec } from '../spec/types';
import type { AnyPhaseName, PhaseName, RenderedScript } from './types';

export type StageMode = 'parallel' | 'one-at-a-time' | 'single' | 'gate';

/** One script of a rendered phase, run for each node of the stage (`runsOn` as in RenderedScript). */
export interface StageStep {
  phase: AnyPhaseName;
  script: string;
  runsOn: RenderedScript['runsOn'];
}

export interface Stage {
  /** Unique within the deployment, e.g. "kube-vip-before-init". */
  id: string;
  title: string;
  mode: StageMode;
  nodes: string[];
  /** Run in this order for each node; empty for the approval gate. */
  steps: StageStep[];
  /** For parallel stages with a bound (worker joins). */
  concurrency?: number;
}

/** Phase directory numbers used by `kha plan --out` (01-preflight ... 11-reset). */
export const PHASE_ORDER: readonly AnyPhaseName[] = [
  'preflight',
  'host-prep',
  'container-runtime',
  'packages',
  'kube-vip',
  'kubeadm-init',
  'calico',
  'control-plane-join',
  'worker-join',
  'verify',
  'reset',
];

export function phaseDirName(phase: AnyPhaseName): string {
  return `${String(PHASE_ORDER.indexOf(phase) + 1).padStart(2, '0')}-${phase}`;
}

function cps(c: ClusterSpec): NodeSpec[] {
  return c.spec.nodes.filter((n) => n.role === 'control-plane');
}
function workers(c: ClusterSpec): NodeSpec[] {
  return c.spec.nodes.filter((n) => n.role === 'worker');
}

const step = (phase: PhaseName, script: string, runsOn: RenderedScript['runsOn'] = 'node'): StageStep => ({ phase, script, runsOn });

/** Stages of a deployment in order. Stages without nodes (no extra control planes, no workers) are left out. */
export function deploymentStages(c: ClusterSpec): Stage[] {
  const all = c.spec.nodes.map((n) => n.name);
  const controlPlanes = cps(c);
  const first = controlPlanes[0];
  if (!first) throw new Error(`${c.source}: no control-plane node`);
  const firstName = [first.name];
  const joiners = controlPlanes.slice(1).map((n) => n.name);
  const workerNames = workers(c).map((n) => n.name);
  const everyNode = (phase: PhaseName, title: string): Stage => ({ id: phase, title, mode: 'parallel', nodes: all, steps: [step(phase, phase)] });

  const stages: Stage[] = [
    everyNode('preflight', 'Preflight checks (read-only)'),
    everyNode('host-prep', 'Host preparation'),
    everyNode('container-runtime', 'Container runtime'),
    everyNode('packages', 'kubelet, kubeadm, kubectl'),
    { id: 'kube-vip-before-init', title: 'kube-vip on the first control-plane node', mode: 'single', nodes: firstName, steps: [step('kube-vip', 'before-init')] },
    { id: 'kubeadm-init', title: 'kubeadm init', mode: 'single', nodes: firstName, steps: [step('kubeadm-init', 'init')] },
    { id: 'kube-vip-switch', title: 'VIP answers; kube-vip back to admin.conf', mode: 'single', nodes: firstName, steps: [step('verify', 'vip-livez'), step('kube-vip', 'switch-admin-conf'), step('verify', 'vip-livez')] },
    { id: 'calico', title: 'Calico, until nodes are Ready', mode: 'single', nodes: firstName, steps: [step('calico', 'install')] },
  ];
  if (joiners.length) {
    stages.push({
      id: 'control-plane-join',
      title: 'Control-plane joins',
      mode: 'one-at-a-time',
      nodes: joiners,
      steps: [
        step('control-plane-join', 'mint-credentials', 'control-plane'),
        step('control-plane-join', 'join'),
        step('kube-vip', 'after-join'),
        step('control-plane-join', 'label-node', 'control-plane'),
        step('control-plane-join', 'etcd-check', 'control-plane'),
      ],
    });
  }
  if (workerNames.length) {
    if (c.spec.policy.approveBeforeWorkers) {
      stages.push({ id: 'approve-workers', title: 'Operator approval before the workers', mode: 'gate', nodes: [], steps: [] });
    }
    stages.push({
      id: 'worker-join',
      title: 'Worker joins',
      mode: 'parallel',
      nodes: workerNames,
      concurrency: c.spec.policy.workerJoinConcurrency,
      steps: [step('worker-join', 'mint-credentials', 'control-plane'), step('worker-join', 'join'), step('worker-join', 'label-node', 'control-plane')],
    });
  }
  stages.push({
    id: 'verify',
    title: 'Verification',
    mode: 'single',
    nodes: firstName,
    steps: [step('verify', 'cluster')],
  });
  return stages;
}

/** Teardown of one node: reset on the node, then removal from a healthy control-plane node. */
export const RESET_STEPS: readonly StageStep[] = [
  { phase: 'reset', script: 'reset', runsOn: 'node' },
  { phase: 'reset', script: 'remove-node', runsOn: 'control-plane' },
];

/** The phases rendered for a node, in PHASE_ORDER. */
export function phasesForNode(c: ClusterSpec, nodeName: string): AnyPhaseName[] {
  const node = c.spec.nodes.find((n) => n.name === nodeName);
  if (!node) throw new Error(`${c.source}: no node named ${nodeName}`);
  const phases = new Set<AnyPhaseName>();
  for (const s of deploymentStages(c)) {
    if (s.nodes.includes(nodeName)) for (const st of s.steps) phases.add(st.phase);
  }
  phases.add('reset');
  return PHASE_ORDER.filter((p) => phases.has(p));
}

export function describeMode(s: Stage): string {
  switch (s.mode) {
    case 'parallel':
      return s.concurrency && s.concurrency < s.nodes.length ? `parallel, at most ${s.concurrency} at a time` : 'parallel';
    case 'one-at-a-time':
      return 'one at a time';
    case 'single':
      return 'single node';
    case 'gate':
      return 'waits for approval';
  }
}
