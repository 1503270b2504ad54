// The first control-plane node (kube-vip, init, VIP gate, super-admin switch back, Calico) and the
// joins. Join credentials are minted on a healthy control-plane node and used on the joining node in the
// same call; they exist only in this process's memory and the SSH channels.
import { ApplicationFailure } from '@temporalio/common';
import { renderPhase } from '../render';
import { joinEnv, parseJoinCredentials } from '../render/join';
import type { NodeCall, StepResult } from './types';
import { requireResult } from '../render/result';
import { activityContext, redact, runScript, stepSummary, toFailure, withHealthyControlPlane, withNode } from './common';
import { runNodePhase, scriptOf } from './nodes';
import { sleep } from '../util/sleep';

function facts(call: NodeCall) {
  if (!call.facts) throw ApplicationFailure.nonRetryable('facts missing: preflight must resolve the version first', 'InvalidSpec');
  return call.facts;
}

export async function kubeVipFirstNode(call: NodeCall): Promise<StepResult> {
  return runNodePhase(call, 'kube-vip', 'kube-vip static pod', 'before-init');
}

export async function kubeadmInit(call: NodeCall): Promise<StepResult> {
  return withNode(call.cluster, call.node, async (session) => {
    const render = renderPhase(call.cluster, call.node, 'kubeadm-init', facts(call));
    // kubeadm init is not retried blindly: a half-done init needs a reset, which the operator decides.
    const s = stepSummary(await runScript(session, call.node, 'kubeadm-init', scriptOf(render, 'init')), 'kubeadm init');
    return { node: call.node, changed: !s.already && s.changed, note: s.already ? 'already initialized: nothing to do' : 'cluster initialized' };
  });
}

/** Polls https://VIP:port/livez from the first control-plane node until it answers. */
export async function waitForVip(call: NodeCall): Promise<StepResult> {
  const ep = call.cluster.spec.controlPlaneEndpoint;
  return withNode(call.cluster, call.node, async (session) => {
    const render = renderPhase(call.cluster, call.node, 'verify', facts(call));
    const check = scriptOf(render, 'vip-livez');
    const deadline = Date.now() + 5 * 60_000;
    let last = '';
    for (let i = 1; ; i++) {
      const { result } = await runScript(session, call.node, 'kubeadm-init', check, { allowFailure: true });
      if (result.exitCode === 0) return { node: call.node, changed: false, note: `VIP ${ep.vip}:${ep.port} answers /livez` };
      last = redact(result.stderrTail || result.stdoutTail).trim().split('\n').pop() ?? '';
      activityContext()?.heartbeat({ step: 'waiting for the VIP', attempt: i, last });
      if (Date.now() > deadline) break;
      await sleep(Math.min(1000 * i, 5000), activityContext()?.cancellationSignal, { rejectOnAbort: true });
    }
    throw ApplicationFailure.create({
      type: 'TransientCommandFailed',
      message: `VIP ${ep.vip}:${ep.port} does not answer /livez from ${call.node} after 5 minutes (${last}); check kube-vip's interface and the super-admin.conf switch`,
    });
  });
}

export async function switchKubeVipToAdminConf(call: NodeCall): Promise<StepResult> {
  return runNodePhase(call, 'kube-vip', 'kube-vip back to admin.conf', 'switch-admin-conf');
}

export async function installCalico(call: NodeCall): Promise<StepResult> {
  return withNode(call.cluster, call.node, async (session) => {
    const render = renderPhase(call.cluster, call.node, 'calico', facts(call));
    const run = await runScript(session, call.node, 'calico', scriptOf(render), {
      // Waiting for Ready can time out while images pull; trying again is the right move.
      retryOn: ['timeout'],
    });
    const { changed, note } = stepSummary(run, 'Calico');
    return { node: call.node, changed, note };
  });
}

async function join(call: NodeCall, phase: 'control-plane-join' | 'worker-join'): Promise<StepResult> {
  const f = facts(call);
  const render = renderPhase(call.cluster, call.node, phase, f);
  const mint = scriptOf(render, 'mint-credentials');
  const joinScript = scriptOf(render, 'join');
  const creds = await withHealthyControlPlane(call.cluster, call.via, async (s, cp) => {
    const { stdout } = await runScript(s, cp.name, phase, mint);
    return parseJoinCredentials(stdout);
  });
  return withNode(call.cluster, call.node, async (session) => {
    const run = await runScript(session, call.node, phase, joinScript, {
      env: joinEnv(creds),
      // A join that failed outside kubeadm's preflight (VIP hiccup, etcd busy) is worth retrying.
      transient: true,
    });
    const { already } = stepSummary(run, phase);
    let note = already ? 'already joined: nothing to do' : 'joined';
    if (phase === 'control-plane-join') {
      // kube-vip only after the join: its manifest in an empty manifests dir would fail kubeadm's preflight.
      const kv = renderPhase(call.cluster, call.node, 'kube-vip', f);
      await afterJoin(call.node, () => runScript(session, call.node, 'kube-vip', scriptOf(kv, 'after-join')));
      note += ', kube-vip running';
    }
    return { node: call.node, changed: !already, note };
  }).then(async (r) => {
    // Labels need admin rights (kubelet may not set every label on itself): applied from a control-plane node.
    const label = render.scripts.find((x) => x.name === 'label-node');
    if (label) await afterJoin(call.node, () => withHealthyControlPlane(call.cluster, call.via, (s, cp) => runScript(s, cp.name, phase, label, { transient: true })));
    return r;
  });
}

/**
 * A step after the node joined (kube-vip, labels): its failure is retried (the join itself is skipped then, the
 * node being a member), and never compensated: resetting a joined node to fix a label would undo the join.
 */
async function afterJoin<T>(node: string, fn: () => Promise<T>): Promise<T> {
  try {
    return await fn();
  } catch (e) {
    const f = toFailure(e, node);
    if (!(f instanceof ApplicationFailure)) throw f;
    throw ApplicationFailure.create({ type: 'JoinedStepFailed', message: `${node} joined, then: ${f.message}` });
  }
}

export async function joinControlPlane(call: NodeCall): Promise<StepResult> {
  return join(call, 'control-plane-join');
}

export async function joinWorker(call: NodeCall): Promise<StepResult> {
  return join(call, 'worker-join');
}

/** Waits until etcd lists every member started and none a learner (a new member starts as one). */
export async function waitEtcdHealthy(call: NodeCall): Promise<StepResult> {
  const render = renderPhase(call.cluster, call.node, 'control-plane-join', facts(call));
  const check = scriptOf(render, 'etcd-check');
  return withHealthyControlPlane(call.cluster, call.via, async (s, cp) => {
    const deadline = Date.now() + 5 * 60_000;
    let last = '';
    for (let i = 1; ; i++) {
      const { result, stdout } = await runScript(s, cp.name, 'control-plane-join', check, { allowFailure: true });
      if (result.exitCode === 0) {
        const etcd = requireResult(stdout, 'ETCD', 'etcd-check');
        return { node: call.node, changed: false, note: `etcd healthy: ${etcd.members} members started, ${etcd.node} among them` };
      }
      last = redact(result.stderrTail || result.stdoutTail).trim().split('\n').pop() ?? '';
      activityContext()?.heartbeat({ step: 'waiting for etcd', attempt: i, last });
      if (Date.now() > deadline) break;
      await sleep(Math.min(1000 * i, 5000), activityContext()?.cancellationSignal, { rejectOnAbort: true });
    }
    throw ApplicationFailure.create({ type: 'TransientCommandFailed', message: `etcd not healthy after ${call.node} joined: ${last}` });
  });
}
