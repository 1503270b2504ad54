// Verification of the finished cluster, and the admin kubeconfig saved on the worker's machine (0600).
import { chmodSync, mkdirSync, writeFileSync, renameSync } from 'node:fs';
import { dirname } from 'node:path';
import { ApplicationFailure } from '@temporalio/common';
import { renderPhase } from '../render';
import { endpointHostPort } from '../spec/types';
import type { KubeconfigResult, NodeCall, VerifyResult } from './types';
import { activityContext, heartbeating, runScript, toFailure, withHealthyControlPlane, withNode, marker } from './common';
import { scriptOf } from './nodes';
import { forgetKubeconfigChoice, kubeconfigTarget } from './kubeconfig-target';

interface VerifyReport {
  nodes: Array<{ name: string; ready: boolean }>;
  etcd: { members: number; healthy: boolean; learners?: number };
  vipAnswers: boolean;
  kubeProxyMode: string;
}

export async function verifyCluster(call: NodeCall): Promise<VerifyResult> {
  if (!call.facts) throw ApplicationFailure.nonRetryable('facts missing', 'InvalidSpec');
  const render = renderPhase(call.cluster, call.node, 'verify', call.facts);
  return withHealthyControlPlane(call.cluster, call.via, async (s, cp) => {
    const { stdout } = await runScript(s, cp.name, 'verify', scriptOf(render, 'cluster'), { allowFailure: true });
    const raw = marker(stdout, 'KHA-VERIFY');
    if (!raw) throw ApplicationFailure.create({ type: 'TransientCommandFailed', message: `verify on ${cp.name} printed no report` });
    const r = JSON.parse(raw) as VerifyReport;
    const want = call.cluster.spec.networking.kubeProxyMode;
    const problems: string[] = [];
    if (!r.etcd.healthy) problems.push('etcd reports unhealthy members');
    if (!r.vipAnswers) problems.push(`VIP ${call.cluster.spec.controlPlaneEndpoint.vip} does not answer /livez`);
    if (r.kubeProxyMode !== want) problems.push(`kube-proxy runs in ${r.kubeProxyMode || 'unknown'} mode, expected ${want}`);
    const notReady = r.nodes.filter((n) => !n.ready).map((n) => n.name);
    return {
      nodesReady: r.nodes.length - notReady.length,
      nodesTotal: r.nodes.length,
      notReady,
      etcdMembers: r.etcd.members,
      etcdHealthy: r.etcd.healthy,
      vipAnswers: r.vipAnswers,
      kubeProxyMode: r.kubeProxyMode,
      problems,
    };
  });
}


/** Copies admin.conf from the node, pointed at the endpoint, to a 0600 file; returns only its path. */
export async function fetchKubeconfig(call: NodeCall & { path?: string }): Promise<KubeconfigResult> {
  const runId = activityContext()?.info.workflowExecution?.runId;
  const path = kubeconfigTarget(call.cluster.name, call.path, runId);
  const server = `https://${endpointHostPort(call.cluster)}`;
  return withNode(call.cluster, call.node, async (session) => {
    let text: string;
    try {
      text = (await heartbeating(`reading admin.conf on ${call.node}`, () => session.readFile('/etc/kubernetes/admin.conf'))).toString('utf8');
    } catch (e) {
      throw toFailure(e, call.node);
    }
    if (!/^\s*server:/m.test(text)) throw ApplicationFailure.nonRetryable(`admin.conf on ${call.node} has no server field`, 'CommandFailed');
    const rewritten = text.replace(/^(\s*server:\s*).*$/m, `$1${server}`);
    mkdirSync(dirname(path), { recursive: true, mode: 0o700 });
    const tmp = `${path}.tmp-${process.pid}`;
    writeFileSync(tmp, rewritten, { mode: 0o600 });
    chmodSync(tmp, 0o600);
    renameSync(tmp, path);
    forgetKubeconfigChoice(call.cluster.name, path, runId);
    return { path, server };
  });
}
