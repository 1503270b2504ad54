// The teardown (kha reset): workers first, in parallel, then control-plane nodes one at a time with the first
// one last, so etcd keeps quorum until the end. Each node leaves the cluster first, then is reset. PURE.
import type { Operation, PhaseDef, StepRef } from './types';

const leave: StepRef = { render: 'reset', script: 'remove-node', runsOn: 'control-plane', activity: 'removeNodeFromCluster' };
const reset: StepRef = { render: 'reset', script: 'reset', runsOn: 'node', activity: 'resetNode' };

export const resetWorkers: PhaseDef = {
  id: 'reset-workers',
  title: 'Reset workers',
  mode: 'parallel',
  nodes: 'workers',
  steps: [leave, reset],
  check: 'a node that is no member is not removed again; reset of a clean node changes nothing',
  rollback: 'none: a teardown is not undone',
};

export const resetControlPlanes: PhaseDef = {
  id: 'reset-control-plane',
  title: 'Reset control-plane nodes',
  mode: 'sequential',
  nodes: 'control-planes-first-last',
  steps: [{ ...leave, note: 'not on the last one: nobody is left to remove it' }, reset],
  check: 'a node that is no member is not removed again; reset of a clean node changes nothing',
  rollback: 'none: a teardown is not undone',
};

export const RESET: Operation = {
  id: 'reset',
  title: 'Reset',
  phases: [resetWorkers, resetControlPlanes],
  barriers: [{ phase: 'reset-control-plane', after: 'reset-workers', why: 'etcd keeps quorum while workers leave' }],
};
