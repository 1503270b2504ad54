// Which nodes a phase runs on, and whether it runs at all. PURE (see types.ts).
import type { ClusterSpec, NodeSpec } from '../spec/types';
import type { NodeSet, Operation, PhaseDef } from './types';

export function nodesOf(set: NodeSet, c: ClusterSpec): NodeSpec[] {
  const cps = c.spec.nodes.filter((n) => n.role === 'control-plane');
  switch (set) {
    case 'all':
      return c.spec.nodes;
    case 'first-control-plane':
      return cps.slice(0, 1);
    case 'control-planes':
      return cps;
    case 'joining-control-planes':
      return cps.slice(1);
    case 'workers':
      return c.spec.nodes.filter((n) => n.role === 'worker');
    case 'control-planes-first-last':
      return [...cps.slice(1).reverse(), ...cps.slice(0, 1)];
    // Which nodes are new only discovery tells: the run adds their rows (a plan of the file shows none).
    case 'new-nodes':
    case 'new-control-planes':
    case 'new-workers':
    case 'none':
      return [];
  }
}

/** The policy's bound of a parallel phase, when it has one. */
export function concurrencyOf(p: PhaseDef, c: ClusterSpec): number | undefined {
  return p.concurrency ? c.spec.policy[p.concurrency] : undefined;
}

/**
 * The phases that do something for this cluster, in order: a phase without nodes is left out, and so is a gate
 * that its policy turns off or that guards no node (no workers after the approval gate).
 */
export function activePhases(op: Operation, c: ClusterSpec): PhaseDef[] {
  return op.phases.filter((p, i) => {
    if (p.when && !c.spec.policy[p.when]) return false;
    if (p.mode === 'gate') return op.phases.slice(i + 1).some((next) => next.mode !== 'cluster' && nodesOf(next.nodes, c).length > 0);
    return nodesOf(p.nodes, c).length > 0;
  });
}

/** Rendered phases in the order they first run (the `kha plan --out` directories 01-..., 11-reset). */
export function renderOrder(...ops: Operation[]): string[] {
  const seen: string[] = [];
  const add = (r: string) => seen.includes(r) || seen.push(r);
  for (const op of ops) for (const p of op.phases) for (const s of p.steps) add(s.render);
  for (const op of ops) for (const p of op.phases) for (const s of p.compensation?.steps ?? []) add(s.render);
  return seen;
}
