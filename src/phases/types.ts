// What a phase is: plain data that the workflows execute, `kha plan` prints, the status table shows and the
// bench reads. PURE: erased type imports only, because the workflow bundle imports it.
import type * as activities from '../activities';
import type { NodeCall, StepResult } from '../activities/types';

/** How a phase runs its nodes: all at once (with a bound), one at a time, on one node, once for the cluster, or as a gate. */
export type PhaseMode = 'parallel' | 'sequential' | 'single' | 'cluster' | 'gate';

/** Which nodes of the cluster a phase runs on, in run order. */
export type NodeSet =
  | 'all'
  | 'first-control-plane'
  /** Every control-plane node in file order, the first one first (upgrades). */
  | 'control-planes'
  /** Control-plane nodes after the first, in file order (joins). */
  | 'joining-control-planes'
  | 'workers'
  /** Control-plane nodes in teardown order: the joined ones newest first, the first one last. */
  | 'control-planes-first-last'
  /** kha apply: the nodes of the file the running cluster lacks (all, control-plane, workers), known after discovery. */
  | 'new-nodes'
  | 'new-control-planes'
  | 'new-workers'
  | 'none';

export type ActivityName = keyof typeof activities;

/** An activity a node's own pipeline can call as one host step: a node call in, a step result out. */
export type HostStepActivity = {
  [K in ActivityName]: (typeof activities)[K] extends (call: NodeCall) => Promise<StepResult> ? K : never;
}[ActivityName];

/** A phase each node runs on its own host between preflight and its join: one step, run by such an activity. */
export interface HostPhaseDef extends PhaseDef {
  steps: readonly [StepRef & { activity: HostStepActivity; runsOn: 'node' }];
}

/** One rendered script: `kha plan` prints it and writes it; `activity` is the activity that runs it. */
export interface StepRef {
  /** The rendered phase the script belongs to (its renderer and its `kha plan --out` directory). */
  render: string;
  script: string;
  /** On the node itself, or on a healthy control-plane node on the node's behalf. */
  runsOn: 'node' | 'control-plane';
  activity: ActivityName;
  /** When it does not run on every node of the phase. */
  note?: string;
}

export interface PhaseDef {
  /** Unique within an operation; the status row, the search attribute KhaPhase and `kha plan --phase`. */
  id: string;
  title: string;
  mode: PhaseMode;
  nodes: NodeSet;
  /** For parallel phases with a bound: the policy field that bounds them. */
  concurrency?: 'workerJoinConcurrency' | 'workerUpgradeConcurrency';
  /** Only when the policy asks for it (the approval gate). */
  when?: 'approveBeforeWorkers';
  /** Exactly what runs, in order, for each node. */
  steps: readonly StepRef[];
  /** The read-only check that makes a step a no-op when its effect is already there. */
  check: string;
  /** What happens after the retries of a node's step are spent, before the operator is asked. */
  compensation?: { steps: readonly StepRef[]; what: string };
  /** What `kha abort --rollback` does for the nodes this phase touched. */
  rollback: string;
}

/** A run's prerequisites between phases, besides each node's own order: the barriers the procedure needs. */
export interface Barrier {
  /** This phase starts on any node only after `after` is done (or skipped) on every one of its nodes. */
  phase: string;
  after: string;
  why: string;
}

/** An operation: its phases in order and the barriers between them (every other wait is per node). */
export interface Operation {
  id: string;
  title: string;
  phases: readonly PhaseDef[];
  barriers: readonly Barrier[];
}
