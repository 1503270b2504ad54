// Renders every phase for every node of every example and fixture; every script passes
// shellcheck with no findings and `bash -n`; phase-specific content is asserted.
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { spawnSync } from 'node:child_process';
import { mkdtempSync, readdirSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { basename, join } from 'node:path';
import { deploymentStages, phasesForNode, planFacts, renderAll, renderPhase, RESET_STEPS } from '../src/render';
import type { ClusterSpec } from '../src/spec/types';
import { DEPLOY } from '../src/phases/deploy';
import { RESET } from '../src/phases/reset';
import { nodesOf } from '../src/phases/select';
import { OPERATION_KINDS, OPERATIONS } from '../src/cli/operations';
import type { AnyPhaseName, PhaseRender, RenderFacts } from '../src/render/types';
import { allSpecFiles, loadOrFail, ROOT, SPEC_FIXTURES } from './render-helpers';

const specs = allSpecFiles();
const seedExample = join(ROOT, 'examples', 'seed-cluster.yaml');

function withVersion(c: ClusterSpec, version: string): ClusterSpec {
  return { ...c, spec: { ...c.spec, kubernetes: { ...c.spec.kubernetes, version } } };
}
function factsFor(version: string): RenderFacts {
  return { kubernetesVersion: `v${version}`, packageVersion: `${version}-1.1` };
}
function scriptOf(r: PhaseRender, name: string): string {
  const s = r.scripts.find((x) => x.name === name);
  assert.ok(s, `no script ${name} in ${r.phase} for ${r.node}`);
  return s.content;
}

test('the examples and fixtures are there', () => {
  assert.ok(specs.some((f) => basename(f) === 'seed-cluster.yaml'), 'examples/seed-cluster.yaml');
  assert.ok(specs.filter((f) => f.startsWith(SPEC_FIXTURES)).length >= 3);
});

test('every script of every phase, node and example passes shellcheck and bash -n', () => {
  const dir = mkdtempSync(join(tmpdir(), 'kha-render-'));
  try {
    const paths: string[] = [];
    for (const f of specs) {
      const c = loadOrFail(f);
      for (const r of renderAll(c, planFacts(c).facts)) {
        for (const s of r.scripts) {
          assert.ok(s.content.startsWith('#!/usr/bin/env bash\n'), `${r.node} ${r.phase}/${s.name}: shebang`);
          assert.match(s.content, /\nset -euo pipefail\nexport PATH=\/usr\/local\/sbin:\/usr\/local\/bin:\/usr\/sbin:\/usr\/bin:\/sbin:\/bin\n/);
          const p = join(dir, `${basename(f, '.yaml')}--${r.node}--${r.phase}--${s.name}.sh`);
          writeFileSync(p, s.content);
          paths.push(p);
        }
      }
    }
    assert.ok(paths.length > 150, `rendered ${paths.length} scripts`);
    for (const p of paths) {
      const n = spawnSync('bash', ['-n', p], { encoding: 'utf8' });
      assert.equal(n.status, 0, `bash -n ${basename(p)}: ${n.stderr}`);
    }
    // One shellcheck run over all of them; any finding at any severity fails.
    const sc = spawnSync('shellcheck', ['--severity=style', '--format=gcc', ...paths], { encoding: 'utf8', maxBuffer: 64 << 20 });
    assert.equal(sc.error, undefined, 'shellcheck must be installed');
    assert.equal(sc.stdout + sc.stderr, '', 'shellcheck findings');
    assert.equal(sc.status, 0);
  } finally {
    rmSync(dir, { recursive: true, force: true });
  }
});

test('the stage order names exactly the scripts the renderers produce, with the same runsOn', () => {
  for (const f of specs) {
    const c = loadOrFail(f);
    const facts = planFacts(c).facts;
    for (const stage of deploymentStages(c)) {
      for (const node of stage.nodes) {
        for (const step of stage.steps) {
          const s = renderPhase(c, node, step.phase, facts).scripts.find((x) => x.name === step.script);
          assert.ok(s, `${basename(f)}: stage ${stage.id} step ${step.phase}/${step.script} on ${node}`);
          assert.equal(s.runsOn, step.runsOn, `${stage.id} ${step.phase}/${step.script} runsOn`);
        }
      }
    }
    for (const n of c.spec.nodes) {
      const reset = renderPhase(c, n.name, 'reset', facts);
      assert.deepEqual(
        reset.scripts.map((s) => [s.name, s.runsOn]),
        RESET_STEPS.map((s) => [s.script, s.runsOn]),
      );
    }
  }
});

test('seed order: prep stages in parallel, init on the first node, joins one at a time, approval, workers bounded', () => {
  const c = loadOrFail(seedExample);
  const stages = deploymentStages(c);
  assert.deepEqual(
    stages.map((s) => `${s.id}:${s.mode}`),
    [
      'preflight:parallel',
      'host-prep:parallel',
      'container-runtime:parallel',
      'packages:parallel',
      'kube-vip:single',
      'kubeadm-init:single',
      'calico:cluster',
      'control-plane-join:sequential',
      'approval:gate',
      'worker-join:parallel',
      'verify:cluster',
    ],
  );
  assert.deepEqual(stages.find((s) => s.id === 'control-plane-join')?.nodes, ['k8scp-02', 'k8scp-03']);
  assert.equal(stages.find((s) => s.id === 'worker-join')?.concurrency, c.spec.policy.workerJoinConcurrency);
  assert.deepEqual(phasesForNode(c, 'k8swn-01'), ['preflight', 'host-prep', 'container-runtime', 'packages', 'worker-join', 'reset']);
  assert.throws(() => renderPhase(c, 'k8swn-01', 'kubeadm-init', planFacts(c).facts), /phase kubeadm-init does not run on node k8swn-01/);
});

test('order.ts and the phase list stay pure: erased type imports, and values from the phase list only', () => {
  const files = [join(ROOT, 'src', 'render', 'order.ts'), ...readdirSync(join(ROOT, 'src', 'phases')).map((f) => join(ROOT, 'src', 'phases', f))];
  for (const f of files) {
    const src = readFileSync(f, 'utf8');
    const imports = src.split('\n').filter((l) => /^\s*import\b/.test(l));
    assert.ok(imports.length > 0, f);
    for (const l of imports) assert.match(l, /^import type |^import .* from '(\.\.\/phases\/|\.\/)[a-z-]+';$/, `${f}: ${l}`);
    assert.doesNotMatch(src, /require\(/);
  }
});

test('kubeadm config: v1beta4 with name/value extraArgs from 1.31, v1beta3 with a map below', () => {
  const c = loadOrFail(seedExample);
  const v4 = renderPhase(c, 'k8scp-01', 'kubeadm-init', factsFor('1.31.0')).files[0]!.content;
  assert.match(v4, /apiVersion: kubeadm\.k8s\.io\/v1beta4\nkind: InitConfiguration/);
  assert.match(v4, /kubeletExtraArgs:\n {4}- name: node-ip\n {6}value: 172\.31\.253\.61\n/);
  const v3 = renderPhase(withVersion(c, '1.30'), 'k8scp-01', 'kubeadm-init', factsFor('1.30.5')).files[0]!.content;
  assert.match(v3, /apiVersion: kubeadm\.k8s\.io\/v1beta3\nkind: ClusterConfiguration/);
  assert.match(v3, /kubeletExtraArgs:\n {4}node-ip: 172\.31\.253\.61\n/);
  assert.match(v3, /kubernetesVersion: v1\.30\.5\n/);
  for (const cfg of [v3, v4]) {
    assert.match(cfg, /controlPlaneEndpoint: control-plane-endpoint:6443\n/);
    assert.match(cfg, /imageRepository: registry\.aliyuncs\.com\/google_containers\n/);
    assert.match(cfg, /certSANs:\n {4}- 172\.31\.253\.60\n {4}- control-plane-endpoint\n/);
    assert.match(cfg, /kind: KubeProxyConfiguration\nmode: ipvs\nipvs:\n {2}strictARP: true\n/);
    assert.match(cfg, /kind: KubeletConfiguration\ncgroupDriver: systemd\n/);
  }
  const init = scriptOf(renderPhase(c, 'k8scp-01', 'kubeadm-init', factsFor('1.35.2')), 'init');
  assert.match(init, /kubeadm init --config '\/etc\/kubernetes\/kha\/kubeadm-init\.yaml' --upload-certs --skip-token-print --skip-certificate-key-print/);
  assert.match(init, /already initialized for this cluster; kubeadm init skipped/);
});

test('kube-vip: super-admin.conf on the first node from 1.29 only, switched back; others after join with admin.conf', () => {
  const c = loadOrFail(seedExample);
  const first = renderPhase(c, 'k8scp-01', 'kube-vip', factsFor('1.29.0'));
  assert.deepEqual(first.scripts.map((s) => s.name), ['before-init', 'switch-admin-conf']);
  assert.deepEqual(first.files.map((f) => f.variant ?? 'final'), ['super-admin', 'final']);
  assert.match(first.files[0]!.content, /path: \/etc\/kubernetes\/super-admin\.conf/);
  assert.match(first.files[1]!.content, /path: \/etc\/kubernetes\/admin\.conf/);
  assert.match(scriptOf(first, 'switch-admin-conf'), /https:\/\/172\.31\.253\.60:6443\/livez/);
  const old = renderPhase(withVersion(c, '1.28'), 'k8scp-01', 'kube-vip', factsFor('1.28.15'));
  assert.equal(old.files.length, 1);
  assert.doesNotMatch(scriptOf(old, 'before-init'), /super-admin/);
  const other = renderPhase(c, 'k8scp-02', 'kube-vip', factsFor('1.35.0'));
  assert.deepEqual(other.scripts.map((s) => s.name), ['after-join']);
  assert.match(other.files[0]!.content, /name: vip_interface\n {10}value: enp1s0\n/);
  assert.match(other.files[0]!.content, /name: address\n {10}value: 172\.31\.253\.60\n/);
  assert.doesNotMatch(other.files[0]!.content, /super-admin/);
});

test('containerd: config v3 and v2 picked at run time unless pinned; pause image of the version in the image repository', () => {
  const c = loadOrFail(seedExample);
  const r = renderPhase(c, 'k8swn-01', 'container-runtime', factsFor('1.35.0'));
  const v3 = r.files.find((f) => f.variant === 'containerd-2.x')!.content;
  const v2 = r.files.find((f) => f.variant === 'containerd-1.x')!.content;
  assert.match(v3, /^# .*\nversion = 3\n/);
  assert.match(v3, /sandbox = 'registry\.aliyuncs\.com\/google_containers\/pause:3\.10\.1'/);
  assert.match(v3, /\[plugins\.'io\.containerd\.cri\.v1\.runtime'\.containerd\.runtimes\.runc\.options\]\n {2}SystemdCgroup = true/);
  assert.match(v2, /sandbox_image = "registry\.aliyuncs\.com\/google_containers\/pause:3\.10\.1"/);
  assert.match(v2, /\[plugins\."io\.containerd\.grpc\.v1\.cri"\.registry\]\n {2}config_path = "\/etc\/containerd\/certs\.d"/);
  const script = scriptOf(r, 'container-runtime');
  assert.match(script, /containerd_version="\$\(containerd --version/);
  const pinned = loadOrFail(join(SPEC_FIXTURES, 'v130-iptables.yaml'));
  const p = renderPhase(pinned, 'w-1', 'container-runtime', factsFor('1.30.14'));
  assert.deepEqual(p.files.map((f) => [f.path, f.variant]), [['/etc/containerd/config.toml', undefined], ['/etc/crictl.yaml', undefined]]);
  assert.match(p.files[0]!.content, /version = 2\n/);
  assert.match(p.files[0]!.content, /pause:3\.9"/);
  assert.match(scriptOf(p, 'container-runtime'), /apt_install containerd\.io/);
  const mirrors = loadOrFail(join(SPEC_FIXTURES, 'seed-like.yaml'));
  const hosts = renderPhase(mirrors, 'k8scp-01', 'container-runtime', factsFor('1.35.0')).files.find((f) => f.path.endsWith('hosts.toml'))!;
  assert.equal(hosts.path, '/etc/containerd/certs.d/docker.io/hosts.toml');
  assert.match(hosts.content, /server = "https:\/\/registry-1\.docker\.io"\n\n\[host\."https:\/\/mirror\.example\.com"\]\n {2}capabilities = \["pull", "resolve"\]/);
});

test('docker runtime goes through cri-dockerd with the pause image and its socket', () => {
  const c = loadOrFail(join(SPEC_FIXTURES, 'single-docker.yaml'));
  const facts = planFacts(c).facts;
  const r = renderPhase(c, 'solo-1', 'container-runtime', facts);
  assert.match(r.files.find((f) => f.path === '/etc/docker/daemon.json')!.content, /"native\.cgroupdriver=systemd"/);
  assert.match(r.files.find((f) => f.path.endsWith('10-kha.conf'))!.content, /--pod-infra-container-image=registry\.k8s\.io\/pause:3\.10\n/);
  const init = renderPhase(c, 'solo-1', 'kubeadm-init', facts).files[0]!.content;
  assert.match(init, /criSocket: unix:\/\/\/var\/run\/cri-dockerd\.sock/);
  assert.match(init, /bindPort: 8443/);
  assert.match(init, /mode: nftables\n/);
});

test('packages: the minor repository, its key, the pinned version held', () => {
  const c = loadOrFail(seedExample);
  const r = renderPhase(c, 'k8swn-02', 'packages', factsFor('1.35.2'));
  assert.equal(r.files[0]!.content, 'deb [signed-by=/etc/apt/keyrings/kubernetes-apt-keyring.gpg] https://pkgs.k8s.io/core:/stable:/v1.35/deb/ /\n');
  const s = scriptOf(r, 'packages');
  assert.match(s, /repo_url='https:\/\/pkgs\.k8s\.io\/core:\/stable:\/v1\.35\/deb\/'/);
  // The key is fetched only to be checked against the pinned fingerprint (pkgs.k8s.io's by default).
  assert.match(s, /key_fpr='DE15B14486CD377B9E876E1A234654DA9A296436'/);
  assert.match(s, /kha_fetch_key "\$\{repo_url\}Release\.key" "\$key_dir\/Release\.key" "\$key_fpr" spec\.packages\.keyFingerprint/);
  assert.match(s, /version='1\.35\.2-1\.1'/);
  assert.match(s, /"kubelet=\$version" "kubeadm=\$version" "kubectl=\$version"/);
  assert.match(s, /apt-mark hold "\$p"/);
  assert.match(s, /apt_install 'ipset' 'ipvsadm' 'conntrack' 'socat'/);
});

test('host prep: IPVS modules only in IPVS mode, Calico modules, hosts entry and IPv6 link-local per spec', () => {
  const seed = loadOrFail(seedExample);
  const r = renderPhase(seed, 'k8swn-03', 'host-prep', planFacts(seed).facts);
  const modules = r.files.find((f) => f.path === '/etc/modules-load.d/k8s.conf')!.content.split('\n');
  for (const m of ['overlay', 'br_netfilter', 'ip_vs', 'ip_vs_rr', 'ip_vs_wrr', 'ip_vs_sh', 'nf_conntrack', 'ip_set', 'xt_set', 'ipip']) assert.ok(modules.includes(m), m);
  assert.match(r.files.find((f) => f.path === '/etc/sysctl.d/k8s.conf')!.content, /net\.ipv4\.ip_forward = 1/);
  assert.match(r.files.find((f) => f.path.startsWith('/etc/netplan/'))!.content, /enp1s0:\n {6}link-local: \[\]/);
  const s = scriptOf(r, 'host-prep');
  assert.match(s, /hosts_ip='172\.31\.253\.60'\nhosts_name='control-plane-endpoint'/);
  assert.match(s, /ufw disable/);
  assert.match(s, /swapoff -a/);
  const old = loadOrFail(join(SPEC_FIXTURES, 'v130-iptables.yaml'));
  const o = renderPhase(old, 'w-1', 'host-prep', planFacts(old).facts);
  const oldModules = o.files[0]!.content.split('\n');
  assert.ok(!oldModules.includes('ip_vs'));
  assert.ok(oldModules.includes('vxlan') && !oldModules.includes('ipip'));
  const os = scriptOf(o, 'host-prep');
  assert.doesNotMatch(os, /hosts_name=/);
  assert.doesNotMatch(os, /ufw/);
  assert.equal(o.files.length, 2);
});

test('Calico operator: pool = podSubnet, detection per spec, CRDs first from 3.30; manifest method sets the pool CIDR', () => {
  const seed = loadOrFail(seedExample);
  const r = renderPhase(seed, 'k8scp-01', 'calico', planFacts(seed).facts);
  const res = r.files[0]!.content;
  assert.match(res, /kind: Installation\nmetadata:\n {2}name: default\n/);
  assert.match(res, /cidr: 10\.244\.0\.0\/16\n {8}encapsulation: IPIP\n/);
  assert.match(res, /nodeAddressAutodetectionV4:\n {6}interface: enp1s0\n/);
  assert.match(res, /kind: APIServer\n/);
  assert.doesNotMatch(res, /172\.31\.253\.60/);
  const s = scriptOf(r, 'install');
  const crds = s.indexOf('v3.31.2/manifests/operator-crds.yaml');
  const op = s.indexOf('v3.31.2/manifests/tigera-operator.yaml');
  assert.ok(crds > 0 && op > crds);
  assert.match(s, /kubectl wait --for=condition=Ready node --all/);
  const docker = loadOrFail(join(SPEC_FIXTURES, 'single-docker.yaml'));
  const d = renderPhase(docker, 'solo-1', 'calico', planFacts(docker).facts);
  assert.doesNotMatch(scriptOf(d, 'install'), /operator-crds/);
  assert.match(d.files[0]!.content, /canReach: 198\.18\.2\.1\n/);
  const old = loadOrFail(join(SPEC_FIXTURES, 'v130-iptables.yaml'));
  const m = scriptOf(renderPhase(old, 'cp-1', 'calico', planFacts(old).facts), 'install');
  assert.match(m, /CALICO_IPV4POOL_CIDR/);
  assert.match(m, /pod_cidr='10\.244\.0\.0\/16'/);
  assert.match(m, /'IP_AUTODETECTION_METHOD=interface=eth\.\*'/);
  assert.match(m, /'CALICO_IPV4POOL_VXLAN=Always'/);
  assert.match(m, /image_prefix='registry\.example\.com\/calico-mirror'/);
});

test('joins: secrets only from the environment, control-plane joins carry the certificate key and advertise address', () => {
  const old = loadOrFail(join(SPEC_FIXTURES, 'v130-iptables.yaml'));
  const facts = planFacts(old).facts;
  const cp = renderPhase(old, 'cp-2', 'control-plane-join', facts);
  assert.deepEqual(cp.scripts.map((s) => [s.name, s.runsOn, s.sensitiveOutput]), [
    ['mint-credentials', 'control-plane', true],
    ['join', 'node', false],
    ['label-node', 'control-plane', false],
    ['etcd-check', 'control-plane', false],
  ]);
  const joinScript = cp.scripts.find((s) => s.name === 'join')!;
  assert.deepEqual(joinScript.secretEnv, ['KHA_JOIN_TOKEN', 'KHA_CA_CERT_HASH', 'KHA_CERTIFICATE_KEY']);
  const tpl = cp.files[0]!.content;
  assert.match(tpl, /apiVersion: kubeadm\.k8s\.io\/v1beta3\nkind: JoinConfiguration/);
  assert.match(tpl, /token: "\$\{KHA_JOIN_TOKEN\}"/);
  assert.match(tpl, /caCertHashes:\n {6}- "\$\{KHA_CA_CERT_HASH\}"/);
  assert.match(tpl, /certificateKey: "\$\{KHA_CERTIFICATE_KEY\}"/);
  assert.match(tpl, /advertiseAddress: 198\.18\.1\.12/);
  assert.match(tpl, /node-ip: 198\.18\.1\.12/);
  assert.match(tpl, /apiServerEndpoint: 198\.18\.0\.10:6443/);
  // Custom taints keep the control-plane taint.
  assert.match(tpl, /taints:\n {4}- key: node-role\.kubernetes\.io\/control-plane\n {6}effect: NoSchedule\n {4}- key: infra\n {6}effect: NoExecute/);
  assert.ok(joinScript.content.includes(tpl), 'the script writes exactly the listed template');
  const w = renderPhase(old, 'w-1', 'worker-join', facts);
  assert.deepEqual(w.scripts.map((s) => s.name), ['mint-credentials', 'join', 'label-node']);
  assert.deepEqual(w.scripts[1]!.secretEnv, ['KHA_JOIN_TOKEN', 'KHA_CA_CERT_HASH']);
  assert.doesNotMatch(w.files[0]!.content, /controlPlane|certificateKey/);
  assert.doesNotMatch(w.scripts[0]!.content, /upload-certs/);
});

test('no rendered script or file holds anything shaped like a token or a certificate key', () => {
  for (const f of specs) {
    const c = loadOrFail(f);
    // A package checksum the file names is public and has the shape of a certificate key.
    const checksum = c.spec.containerRuntime.criDockerd?.sha256;
    for (const r of renderAll(c, planFacts(c).facts)) {
      for (const rendered of [...r.scripts.map((s) => s.content), ...r.files.map((x) => x.content)]) {
        const text = checksum ? rendered.replaceAll(checksum, '<sha256 from the file>') : rendered;
        assert.doesNotMatch(text, /\b[a-z0-9]{6}\.[a-z0-9]{16}\b/);
        assert.doesNotMatch(text, /\b[a-f0-9]{64}\b/);
      }
    }
  }
});

test('reset cleans what kubeadm reset leaves; remove-node drops the etcd member by name or peer URL', () => {
  const c = loadOrFail(seedExample);
  const r = renderPhase(c, 'k8scp-02', 'reset', planFacts(c).facts);
  const reset = scriptOf(r, 'reset');
  for (const re of [/kubeadm reset -f --cri-socket/, /\/etc\/cni\/net\.d/, /\/var\/lib\/cni/, /ipvsadm --clear/, /ipset destroy/, /kube-ipvs0 vxlan\.calico tunl0/, /vip='172\.31\.253\.60'/, /ip addr del "\$vip\/32" dev "\$vip_dev"/]) {
    assert.match(reset, re);
  }
  const remove = scriptOf(r, 'remove-node');
  assert.match(remove, /member remove "\$member_id"/);
  assert.match(remove, /peer='https:\/\/172\.31\.253\.62:2380'/);
  assert.match(remove, /kubectl delete node "\$node" --ignore-not-found/);
  const w = scriptOf(renderPhase(c, 'k8swn-01', 'reset', planFacts(c).facts), 'remove-node');
  assert.doesNotMatch(w, /etcdctl/);
  assert.doesNotMatch(scriptOf(renderPhase(c, 'k8swn-01', 'reset', planFacts(c).facts), 'reset'), /ip addr del/);
});

test('every step of every phase names a rendered script with its runsOn and an activity the worker registers; every operation\'s too', async () => {
  const acts: Record<string, unknown> = await import('../src/activities');
  const c = loadOrFail(seedExample);
  const facts = planFacts(c).facts;
  for (const op of [DEPLOY, RESET]) {
    for (const p of op.phases) {
      for (const st of [...p.steps, ...(p.compensation?.steps ?? [])]) {
        assert.equal(typeof acts[st.activity], 'function', `${op.id}/${p.id}: activity ${st.activity}`);
        for (const node of nodesOf(p.nodes, c)) {
          const s = renderPhase(c, node.name, st.render as AnyPhaseName, facts).scripts.find((x) => x.name === st.script);
          assert.ok(s, `${op.id}/${p.id}: ${st.render}/${st.script} on ${node.name}`);
          assert.equal(s.runsOn, st.runsOn, `${op.id}/${p.id}: ${st.render}/${st.script} runsOn`);
        }
      }
    }
    for (const b of op.barriers) assert.ok(op.phases.some((p) => p.id === b.phase) && op.phases.some((p) => p.id === b.after), `${op.id}: barrier ${b.phase} after ${b.after}`);
  }
  // Every other operation of the CLI table: its steps' activities exist and its barriers name its phases
  // (plan.test.ts renders each of their scripts through kha plan --operation).
  const lists = OPERATION_KINDS.flatMap((k) => {
    const ph = OPERATIONS[k].phases;
    return typeof ph === 'function' ? [ph('control-plane'), ph('worker')] : [ph];
  });
  assert.ok(lists.length > 9);
  for (const op of lists) {
    for (const p of op.phases) for (const st of [...p.steps, ...(p.compensation?.steps ?? [])]) assert.equal(typeof acts[st.activity], 'function', `${op.id}/${p.id}: activity ${st.activity}`);
    for (const b of op.barriers) assert.ok(op.phases.some((p) => p.id === b.phase) && op.phases.some((p) => p.id === b.after), `${op.id}: barrier ${b.phase} after ${b.after}`);
    assert.equal(new Set(op.phases.map((p) => p.id)).size, op.phases.length, `${op.id}: phase ids are unique`);
  }
});
