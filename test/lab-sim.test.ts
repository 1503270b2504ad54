// The simulated Kubernetes tooling, run as real processes against per-host temp roots sharing one lab dir.
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { spawnSync } from 'node:child_process';
import * as fs from 'node:fs';
import * as os from 'node:os';
import * as path from 'node:path';

const MAIN = path.resolve(__dirname, '../src/lab/sim/main.js');

interface Run {
  code: number;
  stdout: string;
  stderr: string;
}

class Lab {
  readonly dir = fs.mkdtempSync(path.join(os.tmpdir(), 'kha-sim-'));
  readonly shared = path.join(this.dir, 'shared');
  constructor() {
    fs.mkdirSync(this.shared);
  }
  root(host: string): string {
    return path.join(this.dir, host);
  }
  run(host: string, address: string, tool: string, args: string[], extraEnv: Record<string, string> = {}): Run {
    const r = spawnSync(process.execPath, [MAIN, tool, ...args], {
      encoding: 'utf8',
      env: { ...process.env, KHA_SIM_LAB_DIR: this.shared, KHA_SIM_ROOT: this.root(host), KHA_SIM_HOSTNAME: host, KHA_SIM_ADDRESS: address, KHA_SIM_BOOT_ID: 'unit-test-boot', ...extraEnv },
      input: '',
    });
    return { code: r.status ?? -1, stdout: r.stdout, stderr: r.stderr };
  }
  write(host: string, p: string, content: string): void {
    fs.mkdirSync(path.dirname(path.join(this.root(host), p)), { recursive: true });
    fs.writeFileSync(path.join(this.root(host), p), content);
  }
  exists(host: string, p: string): boolean {
    return fs.existsSync(path.join(this.root(host), p));
  }
  setClock(offsetMs: number): void {
    fs.writeFileSync(path.join(this.shared, 'clock.json'), JSON.stringify({ offsetMs }));
  }
  /** Packages installed; host prep (modules, sysctls, swap) only when `prep`. */
  host(host: string, address: string, prep: boolean): (tool: string, ...args: string[]) => Run {
    const sh = (tool: string, ...args: string[]) => this.run(host, address, tool, args);
    this.write(host, '/etc/apt/sources.list.d/kubernetes.list', 'deb https://pkgs.k8s.io/core:/stable:/v1.35/deb/ /\n');
    this.write(host, '/etc/fstab', '/swap.img none swap sw 0 0\n');
    ok(sh('apt-get', 'update', '-q'));
    ok(sh('apt-get', 'install', '-y', '-q', 'kubelet=1.35.2-1.1', 'kubeadm=1.35.2-1.1', 'kubectl=1.35.2-1.1', 'containerd', 'ipvsadm', 'ipset'));
    if (prep) {
      this.write(host, '/etc/modules-load.d/k8s.conf', 'overlay\nbr_netfilter\nip_vs\n');
      this.write(host, '/etc/sysctl.d/k8s.conf', 'net.ipv4.ip_forward = 1\nnet.bridge.bridge-nf-call-iptables = 1\n');
      ok(sh('modprobe', '-a', 'overlay', 'br_netfilter'));
      ok(sh('sysctl', '--system'));
      ok(sh('swapoff', '-a'));
    }
    return sh;
  }
  cleanup(): void {
    fs.rmSync(this.dir, { recursive: true, force: true });
  }
}

/** etcdctl the way the scripts reach it without the etcd-client package: inside the etcd container. */
function etcdctl(sh: (tool: string, ...args: string[]) => Run, ...args: string[]): Run {
  const id = ok(sh('crictl', 'ps', '--name', '^etcd$', '--state', 'running', '-q')).stdout.trim();
  assert.ok(id, 'an etcd container runs');
  return sh('crictl', 'exec', id, 'etcdctl', ...args);
}

function ok(r: Run): Run {
  assert.equal(r.code, 0, `exit ${r.code}\nstdout: ${r.stdout}\nstderr: ${r.stderr}`);
  return r;
}

const INIT = (addr: string) => `apiVersion: kubeadm.k8s.io/v1beta4
kind: InitConfiguration
localAPIEndpoint:
  advertiseAddress: ${addr}
---
apiVersion: kubeadm.k8s.io/v1beta4
kind: ClusterConfiguration
kubernetesVersion: v1.35.2
controlPlaneEndpoint: ${addr}:6443
---
apiVersion: kubeproxy.config.k8s.io/v1alpha1
kind: KubeProxyConfiguration
mode: ipvs
`;

function joinConfig(endpoint: string, token: string, hash: string, cp?: { key: string; addr: string }): string {
  return `apiVersion: kubeadm.k8s.io/v1beta4
kind: JoinConfiguration
discovery:
  bootstrapToken:
    apiServerEndpoint: ${endpoint}
    token: ${token}
    caCertHashes: [${hash}]
${cp ? `controlPlane:\n  certificateKey: ${cp.key}\n  localAPIEndpoint:\n    advertiseAddress: ${cp.addr}\n` : ''}`;
}

/** A cluster initialised on cp1 (198.18.0.11); returns the join credentials printed by the real commands. */
function initCluster(lab: Lab) {
  const cp1 = lab.host('cp1', '198.18.0.11', true);
  lab.write('cp1', '/root/init.yaml', INIT('198.18.0.11'));
  ok(cp1('kubeadm', 'init', '--config', '/root/init.yaml', '--upload-certs', '--skip-token-print', '--skip-certificate-key-print'));
  const certs = ok(cp1('kubeadm', 'init', 'phase', 'upload-certs', '--upload-certs')).stdout;
  const key = /certificate key:\n([a-f0-9]{64})/.exec(certs)![1]!;
  const join = ok(cp1('kubeadm', 'token', 'create', '--print-join-command')).stdout;
  const token = /--token (\S+)/.exec(join)![1]!;
  const hash = /--discovery-token-ca-cert-hash (\S+)/.exec(join)![1]!;
  return { cp1, key, token, hash };
}

test('init writes the kubeconfigs and a CA whose openssl hash is the one kubeadm prints; nodes are NotReady until the CNI', () => {
  const lab = new Lab();
  try {
    const { cp1, hash } = initCluster(lab);
    for (const f of ['admin.conf', 'super-admin.conf', 'kubelet.conf', 'pki/ca.crt', 'manifests/etcd.yaml', 'manifests/kube-apiserver.yaml']) assert.ok(lab.exists('cp1', `/etc/kubernetes/${f}`), f);
    const pem = fs.readFileSync(path.join(lab.root('cp1'), 'etc/kubernetes/pki/ca.crt'), 'utf8');
    const { X509Certificate, createHash } = require('node:crypto') as typeof import('node:crypto');
    const spki = new X509Certificate(pem).publicKey.export({ type: 'spki', format: 'der' });
    assert.equal(hash, 'sha256:' + createHash('sha256').update(spki).digest('hex'));
    const kc = ['--kubeconfig', '/etc/kubernetes/admin.conf'];
    assert.match(ok(cp1('kubectl', ...kc, 'get', 'nodes', '--no-headers')).stdout, /^cp1\s+NotReady\s+control-plane/);
    const again = cp1('kubeadm', 'init', '--config', '/root/init.yaml');
    assert.equal(again.code, 1);
    assert.match(again.stderr, /\[ERROR Port-6443\]: Port 6443 is in use/);
    assert.match(again.stderr, /\[ERROR FileAvailable--etc-kubernetes-manifests-kube-apiserver.yaml\]: \/etc\/kubernetes\/manifests\/kube-apiserver.yaml already exists/);
    ok(cp1('kubectl', ...kc, 'apply', '--server-side', '-f', 'https://raw.githubusercontent.com/projectcalico/calico/v3.31.2/manifests/operator-crds.yaml', '-f', 'https://raw.githubusercontent.com/projectcalico/calico/v3.31.2/manifests/tigera-operator.yaml'));
    ok(cp1('kubectl', ...kc, 'wait', '--for=condition=Established', 'crd/installations.operator.tigera.io', '--timeout=5s'));
    ok(cp1('kubectl', ...kc, 'apply', '-f', 'https://raw.githubusercontent.com/projectcalico/calico/v3.31.2/manifests/custom-resources.yaml'));
    assert.match(ok(cp1('kubectl', ...kc, 'wait', '--for=condition=Ready', 'node', '--all', '--timeout=5s')).stdout, /node\/cp1 condition met/);
  } finally {
    lab.cleanup();
  }
});

test('join before host prep fails with the preflight message; after prep it joins', () => {
  const lab = new Lab();
  try {
    const { token, hash } = initCluster(lab);
    const w1 = lab.host('w1', '198.18.0.21', false);
    lab.write('w1', '/root/join.yaml', joinConfig('198.18.0.11:6443', token, hash));
    const r = w1('kubeadm', 'join', '--config', '/root/join.yaml');
    assert.equal(r.code, 1);
    assert.match(r.stderr, /\[ERROR FileContent--proc-sys-net-ipv4-ip_forward\]: \/proc\/sys\/net\/ipv4\/ip_forward contents are not set to 1/);
    assert.match(r.stderr, /\[WARNING Swap\]: swap is supported for cgroup v2 only/);
    assert.match(r.stderr, /error execution phase preflight: preflight checks failed/);
    assert.ok(!lab.exists('w1', '/etc/kubernetes/kubelet.conf'));
    lab.host('w1', '198.18.0.21', true);
    ok(w1('kubeadm', 'join', '--config', '/root/join.yaml'));
    assert.ok(lab.exists('w1', '/etc/kubernetes/kubelet.conf'));
  } finally {
    lab.cleanup();
  }
});

test('kubectl -o jsonpath with {range}...{end} and string literals lists every node and its Ready status in one call', () => {
  const lab = new Lab();
  try {
    const { cp1, token, hash } = initCluster(lab);
    const w1 = lab.host('w1', '198.18.0.21', true);
    lab.write('w1', '/root/join.yaml', joinConfig('198.18.0.11:6443', token, hash));
    ok(w1('kubeadm', 'join', '--config', '/root/join.yaml'));
    const kc = ['--kubeconfig', '/etc/kubernetes/admin.conf'];
    const expr = 'jsonpath={range .items[*]}{.metadata.name}{" "}{.status.conditions[?(@.type=="Ready")].status}{"\\n"}{end}';
    assert.equal(ok(cp1('kubectl', ...kc, 'get', 'nodes', '-o', expr)).stdout, 'cp1 False\nw1 False\n');
    ok(cp1('kubectl', ...kc, 'apply', '-f', 'https://raw.githubusercontent.com/projectcalico/calico/v3.31.2/manifests/calico.yaml'));
    assert.equal(ok(cp1('kubectl', ...kc, 'get', 'nodes', '-o', expr)).stdout, 'cp1 True\nw1 True\n');
    // An empty range prints nothing and the text after {end} still follows.
    assert.equal(ok(cp1('kubectl', ...kc, 'get', 'pods', '-n', 'nowhere', '-o', 'jsonpath={range .items[*]}{.metadata.name}{end}done')).stdout, 'done');
  } finally {
    lab.cleanup();
  }
});

test('token and certificate-key expiry through the lab clock give kubeadm messages', () => {
  const lab = new Lab();
  try {
    const { cp1, key, token, hash } = initCluster(lab);
    const cp2 = lab.host('cp2', '198.18.0.12', true);
    lab.write('cp2', '/root/join.yaml', joinConfig('198.18.0.11:6443', token, hash, { key, addr: '198.18.0.12' }));
    lab.setClock(2 * 3600_000 + 60_000); // certificate key (2 h) gone, token (24 h) still valid
    let r = cp2('kubeadm', 'join', '--config', '/root/join.yaml');
    assert.equal(r.code, 1);
    assert.match(r.stderr, /error execution phase control-plane-prepare\/download-certs: error downloading certs: error downloading the secret: Secret "kubeadm-certs" was not found in the "kube-system" Namespace. This Secret might have expired/);
    lab.setClock(25 * 3600_000);
    r = cp2('kubeadm', 'join', '--config', '/root/join.yaml');
    assert.equal(r.code, 1);
    assert.match(r.stderr, new RegExp(`could not find a JWS signature in the cluster-info ConfigMap for token ID "${token.split('.')[0]}"`));
    // Fresh credentials right before the join work at the same lab time.
    const key2 = /certificate key:\n([a-f0-9]{64})/.exec(ok(cp1('kubeadm', 'init', 'phase', 'upload-certs', '--upload-certs')).stdout)![1]!;
    const token2 = /--token (\S+)/.exec(ok(cp1('kubeadm', 'token', 'create', '--print-join-command')).stdout)![1]!;
    lab.write('cp2', '/root/join.yaml', joinConfig('198.18.0.11:6443', token2, hash, { key: key2, addr: '198.18.0.12' }));
    ok(cp2('kubeadm', 'join', '--config', '/root/join.yaml'));
    const members = ok(etcdctl(cp1, 'member', 'list')).stdout;
    assert.match(members, /started, cp1, https:\/\/198\.18\.0\.11:2380/);
    assert.match(members, /started, cp2, https:\/\/198\.18\.0\.12:2380/);
  } finally {
    lab.cleanup();
  }
});

test('a stale etcd member of the same name refuses the re-join until it is removed; reset leaves CNI config and IPVS state', () => {
  const lab = new Lab();
  try {
    const { cp1, key, token, hash } = initCluster(lab);
    const kc = ['--kubeconfig', '/etc/kubernetes/admin.conf'];
    ok(cp1('kubectl', ...kc, 'apply', '-f', 'https://raw.githubusercontent.com/projectcalico/calico/v3.31.2/manifests/calico.yaml'));
    // Three members, so one stale member leaves etcd its quorum (as in the seed's failure).
    const cp3 = lab.host('cp3', '198.18.0.13', true);
    lab.write('cp3', '/root/join.yaml', joinConfig('198.18.0.11:6443', token, hash, { key, addr: '198.18.0.13' }));
    ok(cp3('kubeadm', 'join', '--config', '/root/join.yaml'));
    const cp2 = lab.host('cp2', '198.18.0.12', true);
    lab.write('cp2', '/root/join.yaml', joinConfig('198.18.0.11:6443', token, hash, { key, addr: '198.18.0.12' }));
    ok(cp2('kubeadm', 'join', '--config', '/root/join.yaml'));
    assert.ok(lab.exists('cp2', '/etc/cni/net.d/10-calico.conflist'));
    assert.match(ok(cp2('ipvsadm', '-Ln')).stdout, /10\.96\.0\.1:443/);
    // Reset without removing the member (as when etcd did not answer): the member stays behind, stale.
    const reset = ok(cp2('kubeadm', 'reset', '-f', '--skip-phases=remove-etcd-member'));
    assert.match(reset.stdout, /does not clean CNI configuration/);
    assert.ok(!lab.exists('cp2', '/etc/kubernetes/kubelet.conf'));
    assert.ok(!lab.exists('cp2', '/etc/kubernetes/manifests/etcd.yaml'));
    assert.ok(lab.exists('cp2', '/etc/cni/net.d/10-calico.conflist'), 'reset leaves /etc/cni/net.d');
    assert.match(ok(cp2('ipvsadm', '-Ln')).stdout, /10\.96\.0\.1:443/, 'reset leaves IPVS tables');
    const r = cp2('kubeadm', 'join', '--config', '/root/join.yaml');
    assert.equal(r.code, 1);
    assert.match(r.stderr, /error execution phase check-etcd: etcd cluster is not healthy: failed to dial endpoint https:\/\/198\.18\.0\.12:2379 with maintenance client: context deadline exceeded/);
    const list = ok(etcdctl(cp1, 'member', 'list')).stdout;
    const id = /^(\w+), started, cp2,/m.exec(list)![1]!;
    assert.match(ok(etcdctl(cp1, 'member', 'remove', id)).stdout, new RegExp(`Member ${id} removed`));
    ok(cp2('kubeadm', 'join', '--config', '/root/join.yaml'));
    // A reset while the cluster answers removes the member itself.
    ok(cp2('kubeadm', 'reset', '-f'));
    assert.doesNotMatch(ok(etcdctl(cp1, 'member', 'list')).stdout, /cp2/);
  } finally {
    lab.cleanup();
  }
});

test('faults: the Nth matching run fails with the given stderr, later runs succeed; latency applies', () => {
  const lab = new Lab();
  try {
    const h = lab.host('w1', '198.18.0.21', false);
    fs.mkdirSync(path.join(lab.shared, 'faults'));
    fs.writeFileSync(path.join(lab.shared, 'faults', 'w1.json'), JSON.stringify({ generation: 'g1', latencyMs: 0, faults: [{ command: 'apt-get', argsMatch: '^install', nth: 2, times: 1, exitCode: 100, stderr: 'E: Could not get lock /var/lib/dpkg/lock-frontend' }] }));
    ok(h('apt-get', 'install', '-y', 'ipvsadm'));
    ok(h('apt-get', 'update')); // does not match argsMatch: not counted
    const r = h('apt-get', 'install', '-y', 'ipset');
    assert.equal(r.code, 100);
    assert.equal(r.stderr.trim(), 'E: Could not get lock /var/lib/dpkg/lock-frontend');
    ok(h('apt-get', 'install', '-y', 'ipset'));
    fs.writeFileSync(path.join(lab.shared, 'faults', 'w1.json'), JSON.stringify({ generation: 'g2', latencyMs: 300, faults: [] }));
    const t0 = Date.now();
    ok(h('sysctl', '-n', 'net.ipv4.ip_forward'));
    assert.ok(Date.now() - t0 >= 300);
  } finally {
    lab.cleanup();
  }
});

test('apt and gpg keep the real contracts scripts rely on', () => {
  const lab = new Lab();
  try {
    const h = (tool: string, ...args: string[]) => lab.run('w1', '198.18.0.21', tool, args);
    assert.equal(h('kubeadm', 'version').code, 127, 'kubeadm is not there before its package');
    ok(h('curl', '-fsSL', 'https://pkgs.k8s.io/core:/stable:/v1.35/deb/Release.key', '-o', '/tmp/Release.key'));
    ok(h('gpg', '--batch', '--yes', '--dearmor', '-o', '/tmp/k.gpg', '/tmp/Release.key'));
    const g = h('gpg', '--dearmor', '-o', '/tmp/k.gpg', '/tmp/Release.key');
    assert.equal(g.code, 2, 'without --yes gpg asks on the tty and fails');
    lab.write('w1', '/etc/apt/sources.list.d/k.list', 'deb [signed-by=/etc/apt/keyrings/missing.gpg] https://pkgs.k8s.io/core:/stable:/v1.35/deb/ /\n');
    const u = h('apt-get', 'update');
    assert.equal(u.code, 100);
    assert.match(u.stderr, /NO_PUBKEY/);
    lab.write('w1', '/etc/apt/sources.list.d/k.list', 'deb [signed-by=/tmp/k.gpg] https://pkgs.k8s.io/core:/stable:/v1.35/deb/ /\n');
    ok(h('apt-get', 'update'));
    assert.match(h('apt-get', 'install', '-y', 'kubeadm=1.99.0-1.1').stderr, /E: Version '1.99.0-1.1' for 'kubeadm' was not found/);
    ok(h('apt-get', 'install', '-y', 'kubeadm=1.35.1-1.1'));
    ok(h('apt-mark', 'hold', 'kubeadm'));
    const held = h('apt-get', 'install', '-y', 'kubeadm=1.35.2-1.1');
    assert.equal(held.code, 100);
    assert.match(held.stderr, /Held packages were changed/);
    ok(h('apt-get', 'install', '-y', '--allow-change-held-packages', 'kubeadm=1.35.2-1.1'));
    assert.equal(ok(h('kubeadm', 'version', '-o', 'short')).stdout.trim(), 'v1.35.2');
    assert.equal(ok(h('dpkg-query', '-W', '-f=${Version}', 'kubeadm')).stdout, '1.35.2-1.1');
  } finally {
    lab.cleanup();
  }
});

test('sim server: the client gets the same answers as a process of its own; a bad call header is refused and the server keeps serving', async () => {
  const { spawn } = await import('node:child_process');
  const net = await import('node:net');
  const lab = new Lab();
  const sock = path.join(lab.dir, 'server.sock');
  const server = spawn(process.execPath, [path.resolve(__dirname, '../src/lab/sim/server.js'), sock], { stdio: 'ignore' });
  try {
    const deadline = Date.now() + 10_000;
    while (!fs.existsSync(sock)) {
      if (Date.now() > deadline) assert.fail('the sim server did not start');
      await new Promise((r) => setTimeout(r, 20));
    }
    const client = path.resolve(__dirname, '../bin/kha-sim-client');
    const env = { ...process.env, KHA_SIM_LAB_DIR: lab.shared, KHA_SIM_ROOT: lab.root('h1'), KHA_SIM_HOSTNAME: 'h1', KHA_SIM_BOOT_ID: 'unit-test-boot' };
    // Through the server only: a fallback to a process of its own would fail to exec this node.
    const via = (args: string[], input = '') => {
      const r = spawnSync(client, ['/nonexistent/node', MAIN, ...args], { encoding: 'utf8', env: { ...env, KHA_SIM_SOCKET: sock }, input });
      return { code: r.status ?? -1, stdout: r.stdout, stderr: r.stderr };
    };
    const own = (args: string[], input = '') => {
      const r = spawnSync(client, [process.execPath, MAIN, ...args], { encoding: 'utf8', env: { ...env, KHA_SIM_NO_SERVER: '1' }, input });
      return { code: r.status ?? -1, stdout: r.stdout, stderr: r.stderr };
    };
    for (const args of [['sysctl', '-n', 'net.ipv4.ip_forward'], ['systemctl', 'status', 'nope.service'], ['kubeadm', 'version'], ['modprobe']]) {
      assert.deepEqual(via(args), own(args), args.join(' '));
    }
    const key = '-----BEGIN PGP PUBLIC KEY BLOCK-----\n\naGVsbG8gdmlhIHRoZSBzZXJ2ZXI=\n=abcd\n-----END PGP PUBLIC KEY BLOCK-----\n';
    assert.equal(via(['gpg', '--dearmor'], key).stdout, 'hello via the server');

    const raw = (frame: Buffer) =>
      new Promise<Buffer>((resolve, reject) => {
        const c = net.createConnection(sock, () => c.end(frame));
        const parts: Buffer[] = [];
        c.on('data', (d) => parts.push(d));
        c.on('error', reject);
        c.on('close', () => resolve(Buffer.concat(parts)));
      });
    const body = Buffer.from('{not json');
    const head = Buffer.alloc(5);
    head.write('h', 0, 'latin1');
    head.writeUInt32BE(body.length, 1);
    const reply = (await raw(Buffer.concat([head, body]))).toString('latin1');
    assert.match(reply, /^e.{4}kha-sim-server: bad call header: /s);
    assert.match(reply, /x\0\0\0\x0270$/);
    assert.deepEqual(via(['sysctl', '-n', 'net.ipv4.ip_forward']), own(['sysctl', '-n', 'net.ipv4.ip_forward']), 'still serving');
  } finally {
    server.kill('SIGTERM');
    fs.rmSync(lab.dir, { recursive: true, force: true });
  }
});
