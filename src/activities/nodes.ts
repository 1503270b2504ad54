// Phases that run on every node: host prep, container runtime, packages. The scripts are idempotent,
// so a retry or a re-run deployment only rewrites what differs.
import { ApplicationFailure } from '@temporalio/common';
import { renderPhase } from '../render';
import type { AnyPhaseName, PhaseRender, RenderedScript } from '../render/types';
import type { NodeCall, PackagesResult, StepResult } from './types';
import { runScript, stepSummary, withNode } from './common';
import { requireResult } from '../render/result';

export function scriptOf(render: PhaseRender, name?: string): RenderedScript {
  const s = name ? render.scripts.find((x) => x.name === name) : render.scripts[0];
  if (!s) {
    throw ApplicationFailure.nonRetryable(
      `no script ${name ?? '(first)'} in phase ${render.phase} for ${render.node} (has ${render.scripts.map((x) => x.name).join(', ') || 'none'})`,
      'InvalidSpec',
    );
  }
  return s;
}

function facts(call: NodeCall) {
  if (!call.facts) throw ApplicationFailure.nonRetryable('facts missing: preflight must resolve the version first', 'InvalidSpec');
  return call.facts;
}

export async function runNodePhase(call: NodeCall, phase: AnyPhaseName, what: string, scriptName?: string): Promise<StepResult> {
  return withNode(call.cluster, call.node, async (session) => {
    const render = renderPhase(call.cluster, call.node, phase, facts(call));
    const { changed, note } = stepSummary(await runScript(session, call.node, phase, scriptOf(render, scriptName)), what);
    return { node: call.node, changed, note };
  });
}

export async function hostPrep(call: NodeCall): Promise<StepResult> {
  return runNodePhase(call, 'host-prep', 'kernel modules, sysctl, swap, firewall, hosts');
}

export async function containerRuntime(call: NodeCall): Promise<StepResult> {
  return runNodePhase(call, 'container-runtime', 'container runtime');
}

export async function installPackages(call: NodeCall): Promise<PackagesResult> {
  return withNode(call.cluster, call.node, async (session) => {
    const render = renderPhase(call.cluster, call.node, 'packages', facts(call));
    const run = await runScript(session, call.node, 'packages', scriptOf(render), {
      // apt locks and mirror hiccups pass; a wrong version does not (exit 100 with "not found").
      retryOn: ['apt-unavailable'],
    });
    const { changed, note } = stepSummary(run, 'packages');
    const v = requireResult(run.stdout, 'PACKAGES', 'packages');
    return { node: call.node, changed, note, versions: { kubeadm: v.kubeadm || 'missing', kubelet: v.kubelet || 'missing', kubectl: v.kubectl || 'missing' } };
  });
}

