// The benchmarks' critical paths from synthetic activity costs: the plan's (the deployment's phase list with its
// barriers and bounds, each step its latency), and the real bench's busy spine.
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { planCriticalPath, type ActivityCost } from '../bench/lib/critical-path';
import type { ActivityTiming } from '../bench/lib/history';
import { busySpine } from '../bench/real';
import { DEPLOY } from '../src/phases/deploy';
import { mockCluster } from './helpers/mock-hosts';

let id = 0;
function act(phase: string, node: string, latencyMs: number, startedMs = 0, endedMs = 0): ActivityCost {
  const activity: ActivityTiming = { id: ++id, type: 'x', phase, node, scheduledMs: startedMs, startedMs, endedMs, attempt: 1, outcome: 'completed' };
  return { activity, commands: 1, latencyMs, leadMs: 0 };
}

const host = (node: string, ms: number) => ['preflight', 'host-prep', 'container-runtime', 'packages'].map((p) => act(p, node, ms / 4));

test('plan critical path from the deployment\'s phase list: the preflight barrier, init, joins one at a time, workers after the control plane, then verification', () => {
  const cluster = mockCluster('cp-path', 3, 2);
  const costs = [
    ...host('cp-1', 4000),
    ...host('cp-2', 4000),
    ...host('cp-3', 9000), // slow host steps: its join waits for the previous join, not for them
    ...host('w-1', 4000),
    ...host('w-2', 12000), // its preflight ends last: every node's host prep waits for it
    act('kube-vip', 'cp-1', 200),
    act('kubeadm-init', 'cp-1', 3000),
    act('calico', 'cluster', 800),
    act('control-plane-join', 'cp-2', 3000),
    act('kube-vip', 'cp-2', 200), // the kube-vip phase runs on the first control plane only
    act('control-plane-join', 'cp-3', 3000),
    act('worker-join', 'w-1', 3000),
    act('worker-join', 'w-2', 3000),
    act('verify', 'cluster', 600),
  ];
  const p = planCriticalPath({ op: DEPLOY, cluster, costs, workflow: { startMs: 0, endMs: 24_500 } });
  assert.equal(p.phaseEndMs['preflight'], 3000);
  assert.equal(p.phaseEndMs['kubeadm-init'], 3000 + 3000 + 200 + 3000);
  assert.equal(p.phaseEndMs['control-plane-join'], 10_000 + 3000 + 3000);
  assert.equal(p.phaseEndMs['worker-join'], 16_000 + 3000);
  assert.equal(p.criticalMs, 19_600);
  assert.equal(p.ratio, 1.25);
  assert.equal(p.unplacedMs, 200);
  assert.deepEqual(
    p.chain.map((c) => `${c.node} ${c.phase} ${c.startMs}-${c.endMs} after ${c.after}`),
    [
      'w-2 preflight 0-3000 after start',
      'cp-1 host-prep 3000-4000 after barrier: preflight on every node',
      "cp-1 container-runtime 4000-5000 after cp-1's host-prep",
      "cp-1 packages 5000-6000 after cp-1's container-runtime",
      "cp-1 kube-vip 6000-6200 after cp-1's packages",
      "cp-1 kubeadm-init 6200-9200 after cp-1's kube-vip",
      "cp-1 calico 9200-10000 after cp-1's kubeadm-init",
      'cp-2 control-plane-join 10000-13000 after barrier: calico on every node',
      "cp-3 control-plane-join 13000-16000 after cp-2's turn",
      'w-2 worker-join 16000-19000 after barrier: approval on every node',
      'cp-1 verify 19000-19600 after barrier: worker-join on every node',
    ],
  );

  // Two joins at a time for three workers: the third waits for a free runner.
  const bounded = planCriticalPath({
    op: DEPLOY,
    cluster: mockCluster('bounded', 1, 3, (y) => y.replace('  policy:\n', '  policy:\n    workerJoinConcurrency: 2\n')),
    costs: [...host('cp-1', 1000), act('kubeadm-init', 'cp-1', 1000), ...['w-1', 'w-2', 'w-3'].flatMap((w) => [...host(w, 1000), act('worker-join', w, 500)])],
    workflow: { startMs: 0, endMs: 3000 },
  });
  assert.equal(bounded.phaseEndMs['worker-join'], 2000 + 500 + 500);
  assert.equal(bounded.chain.at(-2)?.after, 'a free runner (w-1)');
  assert.equal(bounded.criticalMs, 3000);
});

test('busy spine: the union of activity runs and the activities that cover it one after another', () => {
  const t = (s: number, e: number) => act('p', 'n', 0, s, e).activity;
  const a = t(0, 100);
  const b = t(50, 300); // extends a's stretch
  const c = t(60, 120); // inside: not on the spine
  const d = t(500, 600); // after an idle gap
  const { busyMs, spine } = busySpine([d, c, b, a]);
  assert.equal(busyMs, 300 + 100);
  assert.deepEqual(spine, [a, b, d]);
});
