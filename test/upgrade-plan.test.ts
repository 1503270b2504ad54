// kha upgrade's plan, pure: hops one minor at a time, refusals before any host changes, the final version check.
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { planHops, planUpgrade, versionProblems } from '../src/workflows/upgrade-plan';
import type { ClusterState } from '../src/render/day2-cluster-state';
import { mockCluster } from './helpers/mock-hosts';

test('planHops: one minor per hop at its newest patch, the last as asked; a patch is one hop; the same version none; downgrades refused', () => {
  assert.deepEqual(planHops('v1.34.4', '1.35'), { hops: ['1.35'] });
  assert.deepEqual(planHops('v1.34.4', 'v1.35.4'), { hops: ['1.35.4'] });
  assert.deepEqual(planHops('v1.34.4', '1.37.1'), { hops: ['1.35', '1.36', '1.37.1'] });
  assert.deepEqual(planHops('v1.35.2', '1.35.4'), { hops: ['1.35.4'] });
  assert.deepEqual(planHops('v1.35.2', '1.35'), { hops: [] });
  assert.deepEqual(planHops('v1.35.2', '1.35.2'), { hops: [] });
  assert.match(planHops('v1.35.2', '1.34').refusal ?? '', /^the cluster runs v1\.35\.2 and 1\.34 is older: kubeadm does not downgrade/);
  assert.match(planHops('v1.35.4', '1.35.2').refusal ?? '', /1\.35\.2 is older/);
  assert.match(planHops('v1.35.4', 'latest').refusal ?? '', /"latest" is not a Kubernetes version/);
  assert.match(planHops('1.35', '1.36').refusal ?? '', /not a full version/);
});

function state(nodes: Array<[string, string, Partial<{ ready: boolean; unschedulable: boolean }>?]>, over: Partial<ClusterState> = {}): ClusterState {
  const addr = (n: string) => `198.19.0.${n.startsWith('cp') ? 10 + Number(n.slice(3)) : 20 + Number(n.slice(2))}`;
  const cps = nodes.filter(([n]) => n.startsWith('cp'));
  return {
    via: 'cp-1',
    kubernetesVersion: 'v1.34.4',
    nodes: nodes.map(([name, kubeletVersion, o]) => ({ name, address: addr(name), ready: o?.ready ?? true, controlPlane: name.startsWith('cp'), kubeletVersion, unschedulable: o?.unschedulable ?? false })),
    members: cps.map(([n], i) => ({ id: `a${i}`, name: n, peerURLs: [`https://${addr(n)}:2380`], clientURLs: [`https://${addr(n)}:2379`], isLearner: false, started: true })),
    healthyEndpoints: cps.map(([n]) => `https://${addr(n)}:2379`),
    vipHolder: 'cp-1',
    ...over,
  };
}

test('planUpgrade: refuses nodes missing on either side, not Ready, unhealthy etcd, kubelet skew; lagging kubelets make a hop at the same version; cordoned nodes are named', () => {
  const c = mockCluster('plan', 3, 2);
  const all = (v: string) => ['cp-1', 'cp-2', 'cp-3', 'w-1', 'w-2'].map((n) => [n, v] as [string, string]);
  const ok = planUpgrade(c, state(all('v1.34.4')), '1.35');
  assert.deepEqual([ok.hops, ok.refusals, ok.lagging], [['1.35'], [], []]);

  const missing = planUpgrade(c, state([...all('v1.34.4').slice(0, 4), ['w-9', 'v1.34.4']]), '1.35');
  assert.equal(missing.refusals.length, 2, missing.refusals.join('\n'));
  assert.match(missing.refusals[0]!, /^w-2 is in .* but no Node of plan: join it first \(kha apply/);
  assert.match(missing.refusals[1]!, /^Node\(s\) w-9 of plan are not in .*: kha cannot reach them/);

  const sick = planUpgrade(c, state([...all('v1.34.4').slice(0, 4), ['w-2', 'v1.34.4', { ready: false }]], { healthyEndpoints: [] }), '1.35');
  assert.ok(sick.refusals.some((r) => /^w-2 is not Ready/.test(r)), sick.refusals.join('\n'));
  assert.ok(sick.refusals.some((r) => /^etcd member\(s\) cp-1, cp-2, cp-3 do not answer a health check/.test(r)), sick.refusals.join('\n'));

  const old = planUpgrade(c, state([...all('v1.34.4').slice(0, 4), ['w-2', 'v1.31.9']]), '1.35');
  assert.deepEqual(old.refusals, ['Node w-2 runs kubelet v1.31.9: after the next hop the API servers would be 4 minors newer, more than the 3 the version skew policy allows']);
  const three = planUpgrade(c, state([...all('v1.34.4').slice(0, 4), ['w-2', 'v1.32.1']]), '1.35');
  assert.deepEqual([three.refusals, three.lagging], [[], ['w-2']]);
  const newer = planUpgrade(c, state([...all('v1.34.4').slice(0, 4), ['w-2', 'v1.35.0']]), '1.35');
  assert.match(newer.refusals[0] ?? '', /^Node w-2 runs kubelet v1\.35\.0, newer than the control plane's v1\.34\.4/);

  // An upgrade that stopped after the control plane: the same version again finishes the workers.
  const half = planUpgrade(c, state([...all('v1.35.4').slice(0, 3), ['w-1', 'v1.34.4'], ['w-2', 'v1.34.4', { unschedulable: true }]], { kubernetesVersion: 'v1.35.4' }), '1.35');
  assert.deepEqual([half.hops, half.refusals, half.lagging, half.cordoned], [['1.35.4'], [], ['w-1', 'w-2'], ['w-2']]);
  const none = planUpgrade(c, state(all('v1.35.4'), { kubernetesVersion: 'v1.35.4' }), '1.35.4');
  assert.deepEqual([none.hops, none.refusals], [[], []]);
});

test('versionProblems: every node not skipped at the one version (kubeadm-config, kubelet, packages), etcd healthy', () => {
  const c = mockCluster('ver', 1, 2);
  const facts = { kubernetesVersion: 'v1.35.4', packageVersion: '1.35.4-1.1' };
  const pk = (v: string) => ({ kubeadm: v, kubelet: v, kubectl: v });
  const s = state([['cp-1', 'v1.35.4'], ['w-1', 'v1.35.4'], ['w-2', 'v1.34.4']], { kubernetesVersion: 'v1.35.4' });
  const packages = new Map([['cp-1', pk('1.35.4-1.1')], ['w-1', { ...pk('1.35.4-1.1'), kubectl: '1.34.4-1.1' }]]);
  assert.deepEqual(versionProblems(c, s, facts, packages, []), ['w-1 has kubectl 1.34.4-1.1, not 1.35.4-1.1', 'Node w-2 reports kubelet v1.34.4', 'w-2 reported no package versions']);
  packages.set('w-1', pk('1.35.4-1.1'));
  assert.deepEqual(versionProblems(c, s, facts, packages, ['w-2']), []);
  assert.deepEqual(versionProblems(c, { ...s, kubernetesVersion: 'v1.34.4' }, facts, packages, ['w-2']), ['kubeadm-config records v1.34.4, not v1.35.4']);
});
