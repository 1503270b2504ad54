// The cluster file loader: examples, defaults, normalisation, warnings and exact positions.
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { mkdtempSync, writeFileSync, chmodSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join, resolve } from 'node:path';
import { formatIssue, formatWarning, loadClusterFile, loadClusterOrThrow, loadClusterText, SpecError, type LoadResult } from '../src/spec/load';
import { endpointHostPort, firstControlPlane, nodeSsh, workerNodes } from '../src/spec/types';

const root = resolve(__dirname, '..', '..');
const example = (name: string) => join(root, 'examples', name);

/** 1-based line and column of the n-th occurrence of needle, found independently of the loader. */
function pos(text: string, needle: string, nth = 1): { line: number; col: number } {
  let at = -1;
  for (let i = 0; i < nth; i++) {
    at = text.indexOf(needle, at + 1);
    assert.ok(at >= 0, `fixture lacks ${needle}`);
  }
  const before = text.slice(0, at).split('\n');
  return { line: before.length, col: before[before.length - 1]!.length + 1 };
}

const BASE = `apiVersion: kha.dev/v1alpha1
kind: Cluster
metadata:
  name: t
spec:
  kubernetes:
    version: "1.34"
  nodes:
    - { name: cp-1, address: 192.0.2.11, role: control-plane }
    - { name: cp-2, address: 192.0.2.12, role: control-plane }
    - { name: cp-3, address: 192.0.2.13, role: control-plane }
    - { name: wk-1, address: 192.0.2.21, role: worker }
  controlPlaneEndpoint:
    vip: 192.0.2.10
    interface: eth0
`;

function ok(r: LoadResult) {
  assert.deepEqual(r.errors.map(formatIssue), []);
  assert.ok(r.cluster);
  return r.cluster;
}

test('the seed example loads with the seed topology', () => {
  const r = loadClusterFile(example('seed-cluster.yaml'));
  const c = ok(r);
  assert.equal(c.name, 'seed');
  assert.equal(c.spec.kubernetes.version, '1.35');
  assert.deepEqual(
    c.spec.nodes.map((n) => `${n.name} ${n.address} ${n.role}`),
    [
      'k8scp-01 172.31.253.61 control-plane',
      'k8scp-02 172.31.253.62 control-plane',
      'k8scp-03 172.31.253.63 control-plane',
      'k8swn-01 172.31.253.71 worker',
      'k8swn-02 172.31.253.72 worker',
      'k8swn-03 172.31.253.73 worker',
    ],
  );
  const ep = c.spec.controlPlaneEndpoint;
  assert.deepEqual([ep.name, ep.vip, ep.port, ep.interface, ep.kubeVip.mode], ['control-plane-endpoint', '172.31.253.60', 6443, 'enp1s0', 'arp']);
  assert.equal(c.spec.images.repository, 'registry.aliyuncs.com/google_containers');
  assert.equal(c.spec.networking.kubeProxyMode, 'ipvs');
  assert.equal(c.spec.hostPrep.disableUfw, true);
  assert.equal(c.spec.hostPrep.disableIPv6LinkLocal, true);
  assert.equal(c.spec.packages.repository, 'https://pkgs.k8s.io/core:/stable:');
  // Not written in the file: IPVS with kube-vip ARP turns strictARP on.
  assert.equal(c.spec.networking.ipvsStrictARP, true);
  assert.equal(firstControlPlane(c).name, 'k8scp-01');
  assert.equal(endpointHostPort(c), 'control-plane-endpoint:6443');
  assert.equal(workerNodes(c).length, 3);
  // 1.35 deprecates IPVS: the only warning.
  assert.deepEqual(r.warnings.map((w) => `${w.field}: ${w.message}`), [
    "spec.networking.kubeProxyMode: kube-proxy's IPVS mode is deprecated since Kubernetes 1.35; consider nftables",
  ]);
});

test('the minimal example gets every default', () => {
  const c = ok(loadClusterFile(example('minimal.yaml')));
  const s = c.spec;
  assert.deepEqual(
    { user: s.ssh.user, port: s.ssh.port, kh: s.ssh.knownHosts.policy, sudo: s.ssh.sudo, ct: s.ssh.connectTimeoutSeconds, agent: s.ssh.useAgent },
    { user: 'root', port: 22, kh: 'accept-new', sudo: 'auto', ct: 15, agent: false },
  );
  assert.equal(s.containerRuntime.type, 'containerd');
  assert.equal(s.containerRuntime.containerd.packageSource, 'distro');
  assert.deepEqual(s.containerRuntime.registryMirrors, []);
  assert.equal(s.packages.repository, 'https://pkgs.k8s.io/core:/stable:');
  assert.deepEqual(s.packages.extra, ['ipset', 'ipvsadm', 'conntrack', 'socat']);
  assert.equal(s.images.repository, 'registry.k8s.io');
  assert.deepEqual(
    [s.networking.podSubnet, s.networking.serviceSubnet, s.networking.dnsDomain, s.networking.kubeProxyMode],
    ['10.244.0.0/16', '10.96.0.0/12', 'cluster.local', 'ipvs'],
  );
  assert.deepEqual(s.networking.calico, {
    version: 'v3.31.2',
    installMethod: 'operator',
    encapsulation: 'IPIP',
    nodeAddressDetection: { method: 'node-internal-ip' },
  });
  assert.deepEqual(s.controlPlaneEndpoint.kubeVip, { version: 'v1.0.1', image: 'ghcr.io/kube-vip/kube-vip', mode: 'arp' });
  assert.equal(s.controlPlaneEndpoint.port, 6443);
  assert.equal(s.controlPlaneEndpoint.writeHostsEntry, true);
  assert.equal(s.controlPlaneEndpoint.name, undefined);
  assert.equal(endpointHostPort(c), '192.0.2.10:6443');
  assert.deepEqual(s.hostPrep, { disableUfw: true, disableIPv6LinkLocal: false, disableSwap: true });
  assert.equal(s.policy.retry.maximumAttempts, 3);
  assert.equal(s.policy.compensation.enabled, true);
  assert.equal(s.policy.approveBeforeWorkers, true);
  assert.equal(s.policy.workerJoinConcurrency, 5);
  assert.deepEqual(s.nodes[0]!.labels, {});
  assert.deepEqual(s.nodes[0]!.taints, []);
  assert.equal(s.networking.ipvsStrictARP, true);
});

test('the 1.30 example keeps iptables mode and its patch version', () => {
  const c = ok(loadClusterFile(example('iptables-1.30.yaml')));
  assert.equal(c.spec.kubernetes.version, '1.30.14');
  assert.equal(c.spec.networking.kubeProxyMode, 'iptables');
  assert.equal(c.spec.networking.ipvsStrictARP, undefined);
  const ssh = nodeSsh(c, c.spec.nodes[3]!);
  assert.deepEqual([ssh.user, ssh.address, ssh.privateKeyPath], ['ubuntu', '198.51.100.21', '~/.ssh/id_ed25519']);
});

test('knownHosts.file: used by accept-new without a warning, ignored with a warning by pinned', () => {
  const withKh = (kh: string) => BASE.replace('  nodes:\n', `  ssh:\n    knownHosts: ${kh}\n  nodes:\n`);
  const accept = loadClusterText(withKh('{ policy: accept-new, file: ~/.ssh/kha_hosts }'), 'a.yaml');
  assert.deepEqual(accept.warnings.filter((w) => w.field.startsWith('spec.ssh')).map(formatWarning), []);
  assert.equal(ok(accept).spec.ssh.knownHosts.file, '~/.ssh/kha_hosts');
  const text = withKh('{ policy: pinned, file: ~/.ssh/kha_hosts, fingerprints: { cp-1: "SHA256:' + 'A'.repeat(43) + '", cp-2: "SHA256:' + 'A'.repeat(43) + '", cp-3: "SHA256:' + 'A'.repeat(43) + '", wk-1: "SHA256:' + 'A'.repeat(43) + '" } }');
  const pinned = loadClusterText(text, 'p.yaml');
  ok(pinned);
  const p = pos(text, '~/.ssh/kha_hosts');
  assert.deepEqual(pinned.warnings.filter((w) => w.field.startsWith('spec.ssh')).map(formatWarning), [
    `p.yaml:${p.line}:${p.col}: spec.ssh.knownHosts.file: warning: ignored: policy is pinned; host keys are checked against knownHosts.fingerprints only`,
  ]);
});

test('strictARP: set for IPVS with ARP, overridden with a warning when false, left alone otherwise', () => {
  const unset = ok(loadClusterText(BASE, 'a.yaml'));
  assert.equal(unset.spec.networking.kubeProxyMode, 'ipvs');
  assert.equal(unset.spec.networking.ipvsStrictARP, true);

  const text = `${BASE}  networking:\n    kubeProxyMode: ipvs\n    ipvsStrictARP: false\n`;
  const r = loadClusterText(text, 'b.yaml');
  assert.equal(ok(r).spec.networking.ipvsStrictARP, true);
  const p = pos(text, 'false');
  assert.deepEqual(r.warnings.map(formatWarning), [
    `b.yaml:${p.line}:${p.col}: spec.networking.ipvsStrictARP: warning: set to true: with kube-proxy in IPVS mode and kube-vip in ARP mode, strictARP keeps nodes from answering ARP for addresses on kube-ipvs0`,
  ]);

  const ipt = `${BASE}  networking:\n    kubeProxyMode: iptables\n    ipvsStrictARP: true\n`;
  const r2 = loadClusterText(ipt, 'c.yaml');
  assert.equal(ok(r2).spec.networking.ipvsStrictARP, true);
  assert.deepEqual(r2.warnings.map((w) => w.message), ['has no effect: kubeProxyMode is iptables, not ipvs']);

  const nft = `${BASE}  networking:\n    kubeProxyMode: nftables\n`;
  const c3 = ok(loadClusterText(nft, 'd.yaml'));
  assert.equal(c3.spec.networking.ipvsStrictARP, undefined);
});

test('versions are normalised: Kubernetes without v, image tags with v', () => {
  const text = BASE.replace('"1.34"', 'v1.34.2') + '    kubeVip: { version: 1.0.1 }\n  networking: { kubeProxyMode: nftables, calico: { version: 3.31.2 } }\n';
  const c = ok(loadClusterText(text, 'v.yaml'));
  assert.equal(c.spec.kubernetes.version, '1.34.2');
  assert.equal(c.spec.controlPlaneEndpoint.kubeVip.version, 'v1.0.1');
  assert.equal(c.spec.networking.calico.version, 'v3.31.2');
});

test('one control-plane node is allowed with a warning at the nodes key', () => {
  const text = BASE.replace(/    - \{ name: cp-[23].*\n/g, '');
  const r = loadClusterText(text, 'one.yaml');
  assert.equal(ok(r).spec.nodes.length, 2);
  const p = pos(text, 'nodes:');
  assert.deepEqual(r.warnings.map(formatWarning), [
    `one.yaml:${p.line}:${p.col}: spec.nodes: warning: only one control-plane node: the cluster is not highly available; use 3 control-plane nodes for HA`,
  ]);
});

test('positions point at the value, at the key of an unknown field, and at the parent of a missing one', () => {
  const text = BASE.replace('address: 192.0.2.12', 'address: 192.0.2.256')
    .replace('    vip: 192.0.2.10\n', '')
    .replace('    interface: eth0\n', '    interfaec: eth0\n    port: 0\n')
    .replace('  name: t\n', '  name: t\n  labels: {}\n');
  const r = loadClusterText(text, 'p.yaml');
  assert.equal(r.cluster, undefined);
  const bad = pos(text, '192.0.2.256');
  const unk = pos(text, 'interfaec');
  const port = pos(text, 'port: 0');
  const lab = pos(text, 'labels');
  const ep = pos(text, 'controlPlaneEndpoint');
  assert.deepEqual(r.errors.map(formatIssue), [
    `p.yaml:${lab.line}:${lab.col}: metadata.labels: unknown field "labels"; allowed fields here: name`,
    `p.yaml:${bad.line}:${bad.col}: spec.nodes[1].address: must be an IPv4 address such as 192.0.2.10 (got "192.0.2.256")`,
    // The misspelt interface is reported once, as a typo; the missing vip at its parent's key.
    `p.yaml:${ep.line}:${ep.col}: spec.controlPlaneEndpoint.vip: required field is missing`,
    `p.yaml:${unk.line}:${unk.col}: spec.controlPlaneEndpoint.interfaec: unknown field "interfaec" (did you mean "interface"?)`,
    `p.yaml:${port.line}:${port.col + 'port: '.length}: spec.controlPlaneEndpoint.port: must be at least 1 (got 0)`,
  ]);
});

test('cross-field errors are all reported, sorted by line', () => {
  const text = BASE.replace('vip: 192.0.2.10', 'vip: 192.0.2.12').replace('name: wk-1', 'name: cp-1') + '  networking:\n    serviceSubnet: 192.0.2.0/24\n';
  const r = loadClusterText(text, 's.yaml');
  const lines = r.errors.map((e) => e.line);
  assert.deepEqual(lines, [...lines].sort((a, b) => a - b));
  assert.deepEqual(
    r.errors.map((e) => e.field),
    ['spec.nodes[3].name', 'spec.controlPlaneEndpoint.vip', 'spec.networking.serviceSubnet', 'spec.networking.serviceSubnet'],
  );
});

test('an unquoted version is caught with the text as written', () => {
  const r = loadClusterText(BASE.replace('"1.34"', '1.30'), 'n.yaml');
  assert.deepEqual(r.errors.map((e) => e.message), ['must be a string, got the number 1.30: put it in quotes, "1.30"']);
});

test('unreadable files give one clear error without a position', () => {
  const dir = mkdtempSync(join(tmpdir(), 'kha-spec-'));
  assert.deepEqual(loadClusterFile(join(dir, 'nope.yaml')).errors.map(formatIssue), [`${join(dir, 'nope.yaml')}: (file): no such file`]);
  assert.deepEqual(loadClusterFile(dir).errors.map(formatIssue), [`${dir}: (file): is a directory, not a cluster file`]);
  const locked = join(dir, 'locked.yaml');
  writeFileSync(locked, BASE);
  chmodSync(locked, 0o000);
  const r = loadClusterFile(locked);
  // root reads through mode 000; everyone else gets the permission error.
  if (process.getuid?.() === 0) assert.ok(r.cluster);
  else assert.deepEqual(r.errors.map((e) => e.message), ['permission denied: cannot read the file']);
});

test('loadClusterOrThrow returns the cluster or throws SpecError with every issue', () => {
  assert.equal(loadClusterOrThrow(example('minimal.yaml')).name, 'minimal');
  const dir = mkdtempSync(join(tmpdir(), 'kha-spec-'));
  const f = join(dir, 'bad.yaml');
  writeFileSync(f, BASE.replace('role: worker', 'role: master').replace('vip: 192.0.2.10', 'vip: 300.1.1.1'));
  assert.throws(
    () => loadClusterOrThrow(f),
    (e: unknown) => {
      assert.ok(e instanceof SpecError);
      assert.equal(e.issues.length, 2);
      assert.equal(e.message, e.issues.map(formatIssue).join('\n'));
      assert.match(e.message, /spec\.nodes\[3\]\.role: must be one of "control-plane", "worker" \(got "master"\)/);
      return true;
    },
  );
});

test('merge keys and aliases let nodes share settings; keys written in the map win over merged ones', () => {
  const text = BASE.replace(
    /  nodes:\n[\s\S]*?  controlPlaneEndpoint:/,
    `  nodes:
    - &cp { name: cp-1, address: 192.0.2.11, role: control-plane, labels: &l { team: a, zone: z1 } }
    - { <<: *cp, name: cp-2, address: 192.0.2.12 }
    - <<: [{ name: cp-3, labels: { team: b } }, *cp]
      address: 192.0.2.13
    - { name: wk-1, address: 192.0.2.21, role: worker, labels: *l }
  controlPlaneEndpoint:`,
  );
  const c = ok(loadClusterText(text, 'm.yaml'));
  assert.deepEqual(
    c.spec.nodes.map((n) => [n.name, n.address, n.role, n.labels]),
    [
      ['cp-1', '192.0.2.11', 'control-plane', { team: 'a', zone: 'z1' }],
      ['cp-2', '192.0.2.12', 'control-plane', { team: 'a', zone: 'z1' }],
      ['cp-3', '192.0.2.13', 'control-plane', { team: 'b' }],
      ['wk-1', '192.0.2.21', 'worker', { team: 'a', zone: 'z1' }],
    ],
  );
  // A merge of something that is not a mapping is an error at that value.
  const bad = loadClusterText(BASE.replace('    - { name: wk-1, address: 192.0.2.21, role: worker }', '    - { <<: [1], name: wk-1 }'), 'b.yaml');
  assert.deepEqual(bad.errors.map(formatIssue), [`b.yaml:${pos(BASE, '- { name: wk-1').line}:14: (yaml): << (merge) takes a mapping, an alias of one, or a list of them`]);
});

test('addresses that cannot be nodes or the VIP, and an endpoint name of localhost, are refused at their position', () => {
  const text = BASE.replace('192.0.2.11', '127.0.0.5')
    .replace('192.0.2.12', '0.0.0.0')
    .replace('{ name: cp-3, address: 192.0.2.13, role: control-plane }', '{ name: cp-3, address: 192.0.2.13, role: control-plane, advertiseAddress: 239.1.2.3 }')
    .replace('192.0.2.21', '255.255.255.255')
    .replace('    vip: 192.0.2.10\n', '    name: localhost\n    vip: 127.0.0.1\n');
  const r = loadClusterText(text, 'a.yaml');
  const at = (needle: string) => {
    const p = pos(text, needle);
    return `a.yaml:${p.line}:${p.col}`;
  };
  assert.deepEqual(r.errors.map(formatIssue), [
    `${at('127.0.0.5')}: spec.nodes[0].address: 127.0.0.5 is a loopback address: it would reach the worker itself, not a node; give the node's own address`,
    `${at('0.0.0.0')}: spec.nodes[1].address: 0.0.0.0 is in 0.0.0.0/8 ("this network"), which no host can be reached at; give the node's own address`,
    `${at('239.1.2.3')}: spec.nodes[2].advertiseAddress: 239.1.2.3 is a multicast address, not the address of one host; give the node's own address`,
    `${at('255.255.255.255')}: spec.nodes[3].address: 255.255.255.255 is in 240.0.0.0/4 (reserved, and 255.255.255.255 is the broadcast address), not the address of one host; give the node's own address`,
    `${at('localhost')}: spec.controlPlaneEndpoint.name: "localhost" always means this machine (loopback) on every node and the worker: use a name for the VIP, such as k8s-api.example.internal`,
    `${at('127.0.0.1')}: spec.controlPlaneEndpoint.vip: 127.0.0.1 is a loopback address: it would reach the worker itself, not a node; the VIP must be a free address in the nodes' network`,
  ]);
  // The last usable addresses around the refused ranges still pass.
  ok(loadClusterText(BASE.replace('192.0.2.11', '1.0.0.1').replace('192.0.2.12', '128.0.0.1').replace('192.0.2.13', '223.255.255.254'), 'b.yaml'));
});
