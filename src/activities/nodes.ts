// Phases that run on every node: host prep, container runtime, packages. The scripts are idempotent,
// so a retry or a re-run deployment only rewrites what differs.
import { ApplicationFailure } from '@temporalio/common';
import { renderPhase } from '../render';
import type { AnyPhaseName, PhaseRender, RenderedScript } from '../render/types';
import type { NodeCall, PackagesResult, StepResult } from './types';
import { runScript, withNode } from './common';

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

/** Counts files a script reported writing ("kha: wrote PATH"), so the status says whether anything changed. */
export function summarise(stderrAndStdout: string, what: string): { changed: boolean; note: string } {
  const wrote = stderrAndStdout.split('\n').filter((l) => /^kha: (wrote|changed|installed|enabled|started|loaded)/.test(l)).length;
  return wrote ? { changed: true, note: `${what}: ${wrote} change(s)` } : { changed: false, note: `${what}: already in place` };
}

export async function runNodePhase(call: NodeCall, phase: AnyPhaseName, what: string, scriptName?: string): Promise<StepResult> {
  return withNode(call.cluster, call.node, async (session) => {
    const render = renderPhase(call.cluster, call.node, phase, facts(call));
    const { result, stdout } = await runScript(session, call.node, phase, scriptOf(render, scriptName));
    return { node: call.node, ...summarise(`${result.stderrTail}\n${stdout}`, what) };
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
    const { result, stdout } = await runScript(session, call.node, 'packages', scriptOf(render), {
      // apt locks and mirror hiccups pass; a wrong version does not (exit 100 with "not found").
      transient: (r) => /Could not get lock|Temporary failure|Connection timed out|Hash Sum mismatch/.test(r.stderrTail),
    });
    const q = await session.runScript("dpkg-query -W -f='${Package} ${Version}\\n' kubeadm kubelet kubectl", {});
    const versions: Record<string, string> = {};
    for (const line of q.stdoutTail.split('\n')) {
      const [pkg, ver] = line.trim().split(/\s+/);
      if (pkg && ver) versions[pkg] = ver;
    }
    return {
      node: call.node,
      ...summarise(`${result.stderrTail}\n${stdout}`, 'packages'),
      versions: { kubeadm: versions.kubeadm ?? 'missing', kubelet: versions.kubelet ?? 'missing', kubectl: versions.kubectl ?? 'missing' },
    };
  });
}

