// The benchmarks' critical paths from synthetic activity costs: the plan's (each node's pipeline as far as its
// dependencies allow) and the stage-by-stage one, and the real bench's busy spine.
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { planCriticalPath, type ActivityCost } from '../bench/lib/critical-path';
import type { ActivityTiming } from '../bench/lib/history';
import { busySpine } from '../bench/real';

let id = 0;
function act(phase: string, node: string, latencyMs: number, startedMs = 0, endedMs = 0): ActivityCost {
  const activity: ActivityTiming = { id: ++id, type: 'x', phase, node, scheduledMs: startedMs, startedMs, endedMs, attempt: 1, outcome: 'completed' };
  return { activity, commands: 1, latencyMs, leadMs: 0 };
}

const host = (node: string, ms: number) => ['preflight', 'host-prep', 'container-runtime', 'packages'].map((p) => act(p, node, ms / 4));

test('plan critical path: init after the first control plane\'s host steps, joins one at a time, workers after init and their own host steps', () => {
  const costs = [
    ...host('cp1', 4000),
    ...host('cp2', 4000),
    ...host('cp3', 9000), // slow host steps: the second join waits for them, not for the first join
    ...host('w1', 4000),
    ...host('w2', 12000), // its pipeline ends last
    act('kube-vip', 'cp1', 200),
    act('kubeadm-init', 'cp1', 3000),
    act('calico', 'cp1', 800),
    act('control-plane-join', 'cp2', 3000),
    act('kube-vip', 'cp2', 200),
    act('control-plane-join', 'cp3', 3000),
    act('worker-join', 'w1', 3000),
    act('worker-join', 'w2', 3000),
    act('verify', 'cp1', 600),
  ];
  const p = planCriticalPath({ costs, controlPlanes: ['cp1', 'cp2', 'cp3'], workers: ['w1', 'w2'], workflow: { startMs: 0, endMs: 18_000 } });
  assert.equal(p.initDoneMs, 8000);
  assert.equal(p.controlPlanesDoneMs, 8000 + 3200 + 3000); // cp3's host steps (9000) end before cp2's join (11200)
  assert.equal(p.workersDoneMs, 12000 + 3000);
  assert.deepEqual(p.slowestWorker, { node: 'w2', prepMs: 12000, joinMs: 3000 });
  assert.equal(p.bound, 'worker w2');
  assert.equal(p.criticalMs, 15000 + 600);
  assert.equal(p.ratio, 1.154);

  // Two joins at a time for three workers: the third waits for a free runner after init.
  const bounded = planCriticalPath({
    costs: [...host('cp1', 1000), act('kubeadm-init', 'cp1', 1000), ...['a', 'b', 'c'].flatMap((w) => [...host(w, 1000), act('worker-join', w, 500)])],
    controlPlanes: ['cp1'],
    workers: ['a', 'b', 'c'],
    workerJoinConcurrency: 2,
    workflow: { startMs: 0, endMs: 3000 },
  });
  assert.equal(bounded.workersDoneMs, 2000 + 1000);
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
