// The smallest kha-shaped workflow: rounds of one activity per node, nodes of a round in parallel, rounds one
// after another (like an Ansible task over its hosts). The per-step benchmark bundles it into its own worker.
import { proxyActivities } from '@temporalio/workflow';
import type * as acts from './step-activities';
import type { ClusterSpec } from '../../src/spec/types';

const { benchStep, benchNoop } = proxyActivities<typeof acts>({ startToCloseTimeout: '60s', retry: { maximumAttempts: 1 } });

export interface StepRoundsInput {
  cluster: ClusterSpec;
  nodes: string[];
  rounds: number;
  /** 'ssh': connect and run `true` on the node; 'noop': an activity that does nothing (Temporal's share alone). */
  kind: 'ssh' | 'noop';
}

export async function stepRounds(input: StepRoundsInput): Promise<number> {
  const { cluster, nodes } = input;
  // As the deployment does: each activity sees the control-plane nodes and its own node only.
  const forNode = (node: string): ClusterSpec => ({ ...cluster, spec: { ...cluster.spec, nodes: cluster.spec.nodes.filter((n) => n.role === 'control-plane' || n.name === node) } });
  let steps = 0;
  for (let r = 0; r < input.rounds; r++) {
    await Promise.all(nodes.map((node) => (input.kind === 'ssh' ? benchStep({ cluster: forNode(node), node }) : benchNoop({ node }))));
    steps += nodes.length;
  }
  return steps;
}
