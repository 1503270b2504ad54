// Golden files pin what the seed example and the 1.30 example (kubeadm v1beta3) render.
// UPDATE_GOLDEN=1 rewrites them; review the diff before committing.
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { existsSync, mkdirSync, readFileSync, writeFileSync } from 'node:fs';
import { dirname, join } from 'node:path';
import { planFacts, renderPhase } from '../src/render';
import type { AnyPhaseName, RenderedFile } from '../src/render/types';
import { GOLDEN_DIR, loadOrFail, ROOT } from './render-helpers';

const update = process.env.UPDATE_GOLDEN === '1';

interface Case {
  golden: string;
  example: string;
  node: string;
  phase: AnyPhaseName;
  pick: (files: RenderedFile[]) => RenderedFile | undefined;
}

const byPath = (path: string, variant?: string) => (files: RenderedFile[]) => files.find((f) => f.path === path && f.variant === variant);

const cases: Case[] = [
  { golden: 'seed/kubeadm-init.k8scp-01.yaml', example: 'seed-cluster.yaml', node: 'k8scp-01', phase: 'kubeadm-init', pick: byPath('/etc/kubernetes/kha/kubeadm-init.yaml') },
  { golden: 'seed/kube-vip.k8scp-01.before-init.yaml', example: 'seed-cluster.yaml', node: 'k8scp-01', phase: 'kube-vip', pick: byPath('/etc/kubernetes/manifests/kube-vip.yaml', 'super-admin') },
  { golden: 'seed/kube-vip.k8scp-01.yaml', example: 'seed-cluster.yaml', node: 'k8scp-01', phase: 'kube-vip', pick: byPath('/etc/kubernetes/manifests/kube-vip.yaml') },
  { golden: 'seed/kube-vip.k8scp-02.yaml', example: 'seed-cluster.yaml', node: 'k8scp-02', phase: 'kube-vip', pick: byPath('/etc/kubernetes/manifests/kube-vip.yaml') },
  { golden: 'seed/containerd-config.containerd-2.x.toml', example: 'seed-cluster.yaml', node: 'k8swn-01', phase: 'container-runtime', pick: byPath('/etc/containerd/config.toml', 'containerd-2.x') },
  { golden: 'seed/containerd-config.containerd-1.x.toml', example: 'seed-cluster.yaml', node: 'k8swn-01', phase: 'container-runtime', pick: byPath('/etc/containerd/config.toml', 'containerd-1.x') },
  { golden: 'seed/calico-resources.yaml', example: 'seed-cluster.yaml', node: 'k8scp-01', phase: 'calico', pick: byPath('/etc/kubernetes/kha/calico-resources.yaml') },
  { golden: 'seed/kubeadm-join.k8scp-02.yaml', example: 'seed-cluster.yaml', node: 'k8scp-02', phase: 'control-plane-join', pick: byPath('/run/kha/kubeadm-join.yaml', 'template') },
  { golden: 'iptables-1.30/kubeadm-init.cp-1.yaml', example: 'iptables-1.30.yaml', node: 'cp-1', phase: 'kubeadm-init', pick: byPath('/etc/kubernetes/kha/kubeadm-init.yaml') },
  { golden: 'iptables-1.30/kubeadm-join.cp-2.yaml', example: 'iptables-1.30.yaml', node: 'cp-2', phase: 'control-plane-join', pick: byPath('/run/kha/kubeadm-join.yaml', 'template') },
  { golden: 'iptables-1.30/kubeadm-join.worker-1.yaml', example: 'iptables-1.30.yaml', node: 'worker-1', phase: 'worker-join', pick: byPath('/run/kha/kubeadm-join.yaml', 'template') },
  { golden: 'iptables-1.30/kube-vip.cp-1.before-init.yaml', example: 'iptables-1.30.yaml', node: 'cp-1', phase: 'kube-vip', pick: byPath('/etc/kubernetes/manifests/kube-vip.yaml', 'super-admin') },
  { golden: 'iptables-1.30/containerd-config.containerd-2.x.toml', example: 'iptables-1.30.yaml', node: 'worker-1', phase: 'container-runtime', pick: byPath('/etc/containerd/config.toml', 'containerd-2.x') },
];

for (const c of cases) {
  test(`golden ${c.golden}`, () => {
    const cluster = loadOrFail(join(ROOT, 'examples', c.example));
    const rendered = renderPhase(cluster, c.node, c.phase, planFacts(cluster).facts);
    const f = c.pick(rendered.files);
    assert.ok(f, `${c.example} ${c.node} ${c.phase}: file not rendered (has ${rendered.files.map((x) => `${x.path}${x.variant ? `.${x.variant}` : ''}`).join(', ')})`);
    const path = join(GOLDEN_DIR, c.golden);
    if (update) {
      mkdirSync(dirname(path), { recursive: true });
      writeFileSync(path, f.content);
    }
    assert.ok(existsSync(path), `${path} missing: run the tests with UPDATE_GOLDEN=1`);
    assert.equal(f.content, readFileSync(path, 'utf8'));
  });
}

test('the golden 1.30 kubeadm config is v1beta3 and the seed one v1beta4', () => {
  assert.match(readFileSync(join(GOLDEN_DIR, 'iptables-1.30/kubeadm-init.cp-1.yaml'), 'utf8'), /^apiVersion: kubeadm\.k8s\.io\/v1beta3$/m);
  assert.match(readFileSync(join(GOLDEN_DIR, 'seed/kubeadm-init.k8scp-01.yaml'), 'utf8'), /^apiVersion: kubeadm\.k8s\.io\/v1beta4$/m);
});
