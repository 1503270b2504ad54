// kha upgrade: one activity per rendered script (src/render/upgrade.ts); drain and uncordon run on a healthy
// control-plane node on the node's behalf, the node itself first when it is one (a cluster may have only one).
import { ApplicationFailure } from '@temporalio/common';
import { findNode } from '../spec/types';
import type { RenderFacts } from '../render/types';
import { readResult, requireResult, ResultError, type ResultOf } from '../render/result';
import { drainVia } from './remove';
import { renderUncordon, renderUpgradeKubeadm, renderUpgradeKubelet, renderUpgradeRepository, type KubeadmUpgradeMode } from '../render/upgrade';
import { runScript, stepSummary, withHealthyControlPlane, withNode } from './common';
import type { NodeCall, StepResult } from './types';

export interface RepositoryCall extends NodeCall {
  /** The target minor, "1.35". */
  minor: string;
}

export interface RepositoryResult extends StepResult {
  /** kubeadm package versions the target repository offers ("1.35.4-1.1"). */
  available: string[];
}

export interface KubeadmUpgradeCall extends NodeCall {
  facts: RenderFacts;
  mode: KubeadmUpgradeMode;
}

export interface UpgradeStepResult extends StepResult {
  /** The versions of kubeadm, kubelet and kubectl the node has now. */
  packages: ResultOf<'PACKAGES'>;
}

export interface UpgradeDrainCall extends NodeCall {
  timeoutSeconds: number;
}

function packagesOf(stdout: string, what: string): ResultOf<'PACKAGES'> {
  try {
    return requireResult(stdout, 'PACKAGES', what);
  } catch (e) {
    if (e instanceof ResultError) throw ApplicationFailure.nonRetryable(`${what}: ${e.message}`, 'CommandFailed');
    throw e;
  }
}

/** Control-plane nodes to run a kubectl step from: the node itself first when it is one, then the healthy ones. */
function viaFor(call: NodeCall): string[] {
  const cps = call.cluster.spec.nodes.filter((n) => n.role === 'control-plane').map((n) => n.name);
  const via = (call.via?.length ? call.via : cps).filter((v) => cps.includes(v));
  return cps.includes(call.node) ? [call.node, ...via.filter((v) => v !== call.node)] : via;
}

export async function upgradeRepository(call: RepositoryCall): Promise<RepositoryResult> {
  return withNode(call.cluster, call.node, async (s, node) => {
    const run = await runScript(s, call.node, 'upgrade', renderUpgradeRepository(call.cluster, node, call.minor), { retryOn: ['apt-unavailable'] });
    let r;
    try {
      r = readResult(run.stdout, 'UPGRADE-REPOSITORY');
    } catch (e) {
      if (e instanceof ResultError) throw ApplicationFailure.nonRetryable(`upgrade-repository on ${call.node}: ${e.message}`, 'CommandFailed');
      throw e;
    }
    if (!r) throw ApplicationFailure.create({ type: 'TransientCommandFailed', message: `upgrade-repository on ${call.node} printed no versions` });
    const { changed, note } = stepSummary(run, `apt source: Kubernetes ${call.minor}`);
    return { node: call.node, changed, note, available: r.available };
  });
}

export async function upgradeKubeadm(call: KubeadmUpgradeCall): Promise<UpgradeStepResult> {
  return withNode(call.cluster, call.node, async (s, node) => {
    const run = await runScript(s, call.node, 'upgrade', renderUpgradeKubeadm(call.cluster, node, call.facts, call.mode), { retryOn: ['apt-unavailable'] });
    const what = call.mode === 'apply' ? `kubeadm upgrade apply ${call.facts.kubernetesVersion}` : 'kubeadm upgrade node';
    const { changed, note } = stepSummary(run, what);
    return { node: call.node, changed, note, packages: packagesOf(run.stdout, `kubeadm-upgrade on ${call.node}`) };
  });
}

export async function drainForUpgrade(call: UpgradeDrainCall): Promise<StepResult> {
  findNode(call.cluster, call.node);
  return drainVia(call, viaFor(call), 'upgrade');
}

export async function upgradeKubelet(call: NodeCall & { facts: RenderFacts }): Promise<UpgradeStepResult> {
  return withNode(call.cluster, call.node, async (s, node) => {
    const run = await runScript(s, call.node, 'upgrade', renderUpgradeKubelet(call.cluster, node, call.facts), { retryOn: ['apt-unavailable'] });
    const { changed, note } = stepSummary(run, `kubelet ${call.facts.kubernetesVersion}`);
    return { node: call.node, changed, note, packages: packagesOf(run.stdout, `kubelet-upgrade on ${call.node}`) };
  });
}

export async function uncordonNode(call: NodeCall): Promise<StepResult> {
  findNode(call.cluster, call.node);
  return withHealthyControlPlane(call.cluster, viaFor(call), async (s, cp) => {
    const { changed, note } = stepSummary(await runScript(s, cp.name, 'upgrade', renderUncordon(call.cluster, cp, call.node), { transient: true }), `uncordoned via ${cp.name}`);
    return { node: call.node, changed, note };
  });
}
