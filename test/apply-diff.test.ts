// kha apply's difference (pure): what it adds, and every refusal with the command that does that job instead.
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { applyDiff, versionFits } from '../src/workflows/apply-diff';
import type { ClusterState } from '../src/render/day2-cluster-state';
import { mockCluster } from './helpers/mock-hosts';

const file = mockCluster('d', 5, 3);
const addr = (name: string) => file.spec.nodes.find((n) => n.name === name)!.address;
/** What runs: these nodes of the file, every one Ready, each control plane's member healthy. */
function running(names: string[], tweak: (s: ClusterState) => void = () => {}): ClusterState {
  const nodes = names.map((name) => ({ name, address: addr(name), ready: true, controlPlane: name.startsWith('cp'), kubeletVersion: 'v1.35.2', unschedulable: false }));
  const cps = nodes.filter((n) => n.controlPlane);
  const s: ClusterState = {
    via: 'cp-1',
    kubernetesVersion: 'v1.35.2',
    nodes,
    members: cps.map((n, i) => ({ id: `a${i}`, name: n.name, peerURLs: [`https://${n.address}:2380`], clientURLs: [`https://${n.address}:2379`], isLearner: false, started: true })),
    healthyEndpoints: cps.map((n) => `https://${n.address}:2379`),
    vipHolder: 'cp-2',
  };
  tweak(s);
  return s;
}

test('the new nodes in file order, the members unchanged, the healthy control planes as the joins via', () => {
  const d = applyDiff(file, running(['cp-1', 'cp-2', 'cp-3', 'w-1']));
  assert.deepEqual(d.refusals, []);
  assert.deepEqual([d.addControlPlanes.map((n) => n.name), d.addWorkers.map((n) => n.name), d.existing], [['cp-4', 'cp-5'], ['w-2', 'w-3'], ['cp-1', 'cp-2', 'cp-3', 'w-1']]);
  assert.deepEqual(d.healthyControlPlanes, ['cp-1', 'cp-2', 'cp-3']);
  assert.match(d.lines[0]!, /^d runs Kubernetes v1\.35\.2 on 4 node\(s\): 3 control-plane, 1 worker; etcd 3 member\(s\), 3 healthy; VIP 198\.19\.255\.1 held by cp-2$/);
});

test('refusals: a missing node or member (kha remove), another version or kubelet (kha upgrade), moved, re-roled, stale, first, unhealthy', () => {
  const refusals = (s: ClusterState, c = file) => applyDiff(c, s).refusals.join('\n');
  const three = mockCluster('d', 3, 1);
  assert.match(refusals(running(['cp-1', 'cp-2', 'cp-3', 'w-1']), mockCluster('d', 3, 0)), /^w-1 \(worker, [0-9.]+\) runs in d but is not in the file; apply never removes a node: use kha remove d w-1/);
  assert.match(refusals(running(['cp-1', 'cp-2', 'cp-3'], (s) => s.members.push({ id: 'ff', name: 'old', peerURLs: ['https://192.0.2.99:2380'], clientURLs: [], isLearner: false, started: true })), three), /^etcd member ff \(old, https:\/\/192\.0\.2\.99:2380\) belongs to no control-plane node of the file; .*use kha remove d old/);
  assert.match(refusals(running(['cp-1', 'cp-2', 'cp-3']), mockCluster('d', 3, 0, (y) => y.replace('version: "1.35"', 'version: "1.35.1"'))), /d runs Kubernetes v1\.35\.2 and the file asks for 1\.35\.1; .*use kha upgrade/);
  assert.match(refusals(running(['cp-1', 'cp-2', 'cp-3'], (s) => (s.nodes[2]!.kubeletVersion = 'v1.34.4'))), /cp-3: v1\.34\.4\); finish that upgrade first: use kha upgrade/);
  assert.match(refusals(running(['cp-1', 'cp-2', 'cp-3'], (s) => (s.nodes[1]!.address = '192.0.2.50'))), /cp-2 runs at 192\.0\.2\.50 and the file says [0-9.]+; apply does not move a node: use kha remove d cp-2, then apply/);
  assert.match(refusals(running(['cp-1', 'cp-2', 'cp-3', 'w-1'], (s) => (s.nodes[3]!.controlPlane = true))), /w-1 runs as a control-plane node and the file says worker; apply does not change a role/);
  assert.match(refusals(running(['cp-1', 'cp-2', 'cp-3'], (s) => s.members.push({ id: 'ee', name: '', peerURLs: [`https://${addr('cp-4')}:2380`], clientURLs: [], isLearner: true, started: false }))), /etcd already has member ee at https:\/\/[0-9.]+:2380 \(not started\) although cp-4 is no Node: .*use kha remove d cp-4 --force/);
  assert.match(refusals(running(['cp-2', 'cp-3', 'cp-4'])), /cp-1 is new and listed first among the control-plane nodes; list a member first/);
  assert.match(refusals(running(['cp-1', 'cp-2', 'cp-3'], (s) => s.healthyEndpoints.pop())), /etcd member cp-3 is not healthy \(or a learner\); a control-plane join needs every member healthy/);
  // Workers may join beside an unhealthy member; with no healthy control plane nothing may.
  assert.equal(refusals(running(['cp-1', 'cp-2', 'cp-3'], (s) => s.healthyEndpoints.pop()), mockCluster('d', 3, 2)), '');
  assert.match(refusals(running(['cp-1', 'cp-2', 'cp-3'], (s) => (s.healthyEndpoints = [])), mockCluster('d', 3, 2)), /no control-plane node of d is Ready with a healthy etcd member/);
});

test('versionFits: a minor takes any of its patches, a patch only itself', () => {
  assert.equal(versionFits('v1.35.2', '1.35'), true);
  assert.equal(versionFits('v1.35.2', '1.34'), false);
  assert.equal(versionFits('v1.35.2', 'v1.35.2'), true);
  assert.equal(versionFits('v1.35.2', '1.35.1'), false);
  assert.equal(versionFits('v1.35.20', '1.35.2'), false);
});
