// The deployment order as the renderers and `kha plan` see it: stages, their nodes and scripts, all read from
// the phase list (src/phases/deploy.ts). PURE: no Node modules, no yaml - the Temporal workflow imports this
// file, and only erased type imports and pure modules are allowed here.
import type { ClusterSpec } from '../spec/types';
import { DEPLOY, workerJoin } from '../phases/deploy';
import { RESET } from '../phases/reset';
import { activePhases, concurrencyOf, nodesOf, renderOrder } from '../phases/select';
import type { PhaseMode, StepRef } from '../phases/types';
import type { AnyPhaseName, RenderedScript } from './types';

export type StageMode = PhaseMode;

/** One script of a rendered phase, run for each node of the stage (`runsOn` as in RenderedScript). */
export interface StageStep {
  phase: AnyPhaseName;
  script: string;
  runsOn: RenderedScript['runsOn'];
}

export interface Stage {
  /** The phase id: unique within the deployment. */
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
export const PHASE_ORDER = renderOrder(DEPLOY, RESET) as readonly AnyPhaseName[];

export function phaseDirName(phase: AnyPhaseName): string {
  return `${String(PHASE_ORDER.indexOf(phase) + 1).padStart(2, '0')}-${phase}`;
}

const stageStep = (s: StepRef): StageStep => ({ phase: s.render as AnyPhaseName, script: s.script, runsOn: s.runsOn });

/** Stages of a deployment in order. Stages without nodes (no extra control planes, no workers) are left out. */
export function deploymentStages(c: ClusterSpec): Stage[] {
  if (!c.spec.nodes.some((n) => n.role === 'control-plane')) throw new Error(`${c.source}: no control-plane node`);
  return activePhases(DEPLOY, c).map((p) => {
    const concurrency = concurrencyOf(p, c);
    return {
      id: p.id,
      title: p.title,
      mode: p.mode,
      nodes: nodesOf(p.nodes, c).map((n) => n.name),
      steps: p.steps.map(stageStep),
      ...(concurrency !== undefined ? { concurrency } : {}),
    };
  });
}

/** The rendered teardown scripts of a node, in the order a failed join's compensation runs them. */
export const RESET_STEPS: readonly StageStep[] = (workerJoin.compensation?.steps ?? []).map(stageStep);

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

export function describeMode(s: Pick<Stage, 'mode' | 'concurrency' | 'nodes'>): string {
  switch (s.mode) {
    case 'parallel':
      return s.concurrency && s.concurrency < s.nodes.length ? `parallel, at most ${s.concurrency} at a time` : 'parallel';
    case 'sequential':
      return 'one at a time';
    case 'single':
      return 'single node';
    case 'cluster':
      return 'once for the cluster';
    case 'gate':
      return 'waits for approval';
  }
}
