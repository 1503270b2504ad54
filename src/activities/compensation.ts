// Compensation for a failed join, and teardown: reset the node, clean what kubeadm reset leaves, remove its
// etcd member and Node object from a healthy control-plane node, reboot and wait for a new boot id.
import { renderPhase } from '../render';
import type { NodeCall, StepResult } from './types';
import { heartbeating, runScript, stepSummary, toFailure, withHealthyControlPlane, withNode } from './common';
import { scriptOf } from './nodes';
import { assumedFacts } from '../render/version';

function factsOf(call: NodeCall) {
  return call.facts ?? assumedFacts(call.cluster.spec.kubernetes.version);
}

export async function resetNode(call: NodeCall): Promise<StepResult> {
  return withNode(call.cluster, call.node, async (session) => {
    const render = renderPhase(call.cluster, call.node, 'reset', factsOf(call));
    const { changed, note } = stepSummary(await runScript(session, call.node, 'reset', scriptOf(render, 'reset')), 'reset');
    return { node: call.node, changed, note };
  });
}

export async function removeNodeFromCluster(call: NodeCall): Promise<StepResult> {
  const via = (call.via ?? []).filter((n) => n !== call.node);
  const render = renderPhase(call.cluster, call.node, 'reset', factsOf(call));
  return withHealthyControlPlane(call.cluster, via, async (s, cp) => {
    const { changed, note } = stepSummary(await runScript(s, cp.name, 'reset', scriptOf(render, 'remove-node')), `removed from the cluster via ${cp.name}`);
    return { node: call.node, changed, note };
  });
}

export async function rebootNode(call: NodeCall): Promise<StepResult> {
  const deadlineMs = call.cluster.spec.policy.compensation.rebootTimeoutSeconds * 1000;
  return withNode(call.cluster, call.node, async (session) => {
    try {
      const { before, after } = await heartbeating(`rebooting ${call.node}`, () => session.reboot({ deadlineMs }));
      return { node: call.node, changed: true, note: `rebooted (boot id ${before.slice(0, 8)} -> ${after.slice(0, 8)})` };
    } catch (e) {
      throw toFailure(e, call.node);
    }
  });
}
