// The simulated Kubernetes tooling on real lab hosts, driven over the hosts' real sshd. Needs root.
import { after, before, describe, test } from 'node:test';
import assert from 'node:assert/strict';
import { spawn } from 'node:child_process';
import { mkdtempSync, rmSync } from 'node:fs';
import { join } from 'node:path';
import { Lab } from '../src/lab/lab';
import type { LabHost } from '../src/lab/layout';

interface Res {
  code: number;
  stdout: string;
  stderr: string;
}

function ssh(lab: Lab, h: LabHost, cmd: string, timeoutMs = 30_000): Promise<Res> {
  const args = ['-F', '/dev/null', '-o', 'BatchMode=yes', '-o', `UserKnownHostsFile=${lab.knownHostsPath}`, '-o', 'StrictHostKeyChecking=yes', '-o', 'ConnectTimeout=3', '-i', lab.rootKeyPath, `root@${h.address}`, cmd];
  return new Promise((resolve, reject) => {
    const child = spawn('ssh', args, { timeout: timeoutMs });
    let stdout = '';
    let stderr = '';
    child.stdout.setEncoding('utf8').on('data', (d: string) => (stdout += d));
    child.stderr.setEncoding('utf8').on('data', (d: string) => (stderr += d));
    child.on('error', reject);
    child.on('close', (code) => resolve({ code: code ?? -1, stdout, stderr }));
    child.stdin.end();
  });
}

async function ok(p: Promise<Res>): Promise<Res> {
  const r = await p;
  assert.equal(r.code, 0, `exit ${r.code}\nstdout: ${r.stdout}\nstderr: ${r.stderr}`);
  return r;
}

const PACKAGES = `set -e
mkdir -p /etc/apt/keyrings
curl -fsSL https://pkgs.k8s.io/core:/stable:/v1.35/deb/Release.key -o /tmp/Release.key
gpg --batch --yes --dearmor -o /etc/apt/keyrings/kubernetes-apt-keyring.gpg /tmp/Release.key
echo 'deb [signed-by=/etc/apt/keyrings/kubernetes-apt-keyring.gpg] https://pkgs.k8s.io/core:/stable:/v1.35/deb/ /' > /etc/apt/sources.list.d/kubernetes.list
apt-get update -q >/dev/null
apt-get install -y -q kubelet=1.35.2-1.1 kubeadm=1.35.2-1.1 kubectl=1.35.2-1.1 containerd ipvsadm ipset >/dev/null
apt-mark hold kubelet kubeadm kubectl >/dev/null
systemctl enable --now containerd kubelet
`;

const HOST_PREP = `set -e
printf 'overlay\\nbr_netfilter\\nip_vs\\n' > /etc/modules-load.d/k8s.conf
modprobe overlay; modprobe br_netfilter
printf 'net.ipv4.ip_forward = 1\\nnet.bridge.bridge-nf-call-iptables = 1\\n' > /etc/sysctl.d/k8s.conf
sysctl --system >/dev/null
swapoff -a
sed -i '/ swap /d' /etc/fstab
`;

function initConfig(address: string, vip: string): string {
  return `apiVersion: kubeadm.k8s.io/v1beta4
kind: InitConfiguration
localAPIEndpoint:
  advertiseAddress: ${address}
---
apiVersion: kubeadm.k8s.io/v1beta4
kind: ClusterConfiguration
kubernetesVersion: v1.35.2
controlPlaneEndpoint: ${vip}:6443
---
apiVersion: kubeproxy.config.k8s.io/v1alpha1
kind: KubeProxyConfiguration
mode: ipvs
`;
}

function kubeVip(vip: string, kubeconfig: string): string {
  return `apiVersion: v1
kind: Pod
metadata:
  name: kube-vip
  namespace: kube-system
spec:
  containers:
  - name: kube-vip
    image: ghcr.io/kube-vip/kube-vip:v1.0.1
    env:
    - name: address
      value: "${vip}"
  hostNetwork: true
  volumes:
  - name: kubeconfig
    hostPath:
      path: ${kubeconfig}
`;
}

function joinConfig(vip: string, token: string, hash: string, cp?: { key: string; address: string }): string {
  return `apiVersion: kubeadm.k8s.io/v1beta4
kind: JoinConfiguration
discovery:
  bootstrapToken:
    apiServerEndpoint: ${vip}:6443
    token: ${token}
    caCertHashes: [${hash}]
${cp ? `controlPlane:\n  certificateKey: ${cp.key}\n  localAPIEndpoint:\n    advertiseAddress: ${cp.address}\n` : ''}`;
}

const ETCDCTL = `id="$(crictl ps --name '^etcd$' --state running -q)"; crictl exec "$id" etcdctl`;

describe('simulated Kubernetes tooling on lab hosts (3 control planes, 2 workers)', () => {
  let lab: Lab;
  let cp: LabHost[];
  let wn: LabHost[];
  const base = mkdtempSync('/var/tmp/kha-lab-sim-');
  before(async () => {
    lab = await Lab.up({ dir: join(base, 'lab'), controlPlanes: 3, workers: 2, rebootDelayMs: 300 });
    cp = lab.hosts.filter((h) => h.role === 'control-plane');
    wn = lab.hosts.filter((h) => h.role === 'worker');
  });
  after(async () => {
    await lab?.down();
    rmSync(base, { recursive: true, force: true });
  });

  /** Fresh join credentials minted on cp1, as the join phase does right before each join. */
  async function credentials(): Promise<{ token: string; hash: string; key: string }> {
    const certs = await ok(ssh(lab, cp[0]!, 'kubeadm init phase upload-certs --upload-certs'));
    const join = await ok(ssh(lab, cp[0]!, 'kubeadm token create --print-join-command'));
    return { key: /certificate key:\n([a-f0-9]{64})/.exec(certs.stdout)![1]!, token: /--token (\S+)/.exec(join.stdout)![1]!, hash: /--discovery-token-ca-cert-hash (\S+)/.exec(join.stdout)![1]! };
  }

  test('packages, then a join before host prep fails with the preflight message; swap shows in /proc/swaps', async () => {
    // A fresh host has no Kubernetes tooling, whatever this machine has installed.
    const fresh = await ok(ssh(lab, cp[0]!, 'for t in kubectl kubeadm kubelet crictl; do command -v "$t" || echo "no $t"; done'));
    assert.equal(fresh.stdout, 'no kubectl\nno kubeadm\nno kubelet\nno crictl\n');
    await Promise.all(lab.hosts.map((h) => ok(ssh(lab, h, PACKAGES))));
    const h = wn[0]!;
    const tools = await ok(ssh(lab, h, 'command -v kubeadm kubectl crictl'));
    assert.deepEqual(tools.stdout.trim().split('\n'), ['/usr/bin/kubeadm', '/usr/bin/kubectl', '/usr/bin/crictl']);
    // swap as on a fresh machine: a swap line in fstab, active
    const swap = await ok(ssh(lab, h, "echo '/swap.img none swap sw 0 0' >> /etc/fstab && swapon -a && wc -l < /proc/swaps"));
    assert.equal(swap.stdout.trim(), '2');
    await ssh(lab, h, `cat > /root/join.yaml <<'EOF'\n${joinConfig(lab.vip, 'abcdef.0123456789abcdef', 'sha256:00', undefined)}EOF`);
    const r = await ssh(lab, h, 'kubeadm join --config /root/join.yaml');
    assert.equal(r.code, 1);
    assert.match(r.stderr, /\[WARNING Swap\]: swap is supported for cgroup v2 only/);
    assert.match(r.stderr, /\[ERROR FileContent--proc-sys-net-ipv4-ip_forward\]: \/proc\/sys\/net\/ipv4\/ip_forward contents are not set to 1/);
    assert.match(r.stderr, /error execution phase preflight: preflight checks failed/);
    await Promise.all(lab.hosts.map((x) => ok(ssh(lab, x, HOST_PREP))));
    assert.equal((await ok(ssh(lab, h, 'wc -l < /proc/swaps'))).stdout.trim(), '1');
  });

  test('init behind the VIP with kube-vip on super-admin.conf; the VIP answers /livez; nodes Ready only after Calico', async () => {
    const c1 = cp[0]!;
    await ok(ssh(lab, c1, `mkdir -p /etc/kubernetes/manifests && cat > /etc/kubernetes/manifests/kube-vip.yaml <<'EOF'\n${kubeVip(lab.vip, '/etc/kubernetes/super-admin.conf')}EOF\ncat > /root/init.yaml <<'EOF'\n${initConfig(c1.address, lab.vip)}EOF`));
    assert.equal((await ssh(lab, c1, `curl -fsSk --max-time 5 https://${lab.vip}:6443/livez`)).code, 7, 'no VIP before init');
    const init = await ok(ssh(lab, c1, 'kubeadm init --config /root/init.yaml --upload-certs --skip-token-print --skip-certificate-key-print'));
    assert.match(init.stdout, /initialized successfully/);
    assert.equal((await ok(ssh(lab, wn[1]!, `curl -fsSk --max-time 5 https://${lab.vip}:6443/livez`))).stdout, 'ok');
    const hash = await ok(ssh(lab, c1, "openssl x509 -pubkey -noout -in /etc/kubernetes/pki/ca.crt | openssl pkey -pubin -outform der | openssl dgst -sha256 -hex | sed 's/^.* //'"));
    const { hash: printed } = await credentials();
    assert.equal(`sha256:${hash.stdout.trim()}`, printed);
    assert.match((await ok(ssh(lab, c1, 'kubectl --kubeconfig /etc/kubernetes/admin.conf get nodes --no-headers'))).stdout, /NotReady/);
    await ok(ssh(lab, c1, 'export KUBECONFIG=/etc/kubernetes/admin.conf; kubectl apply --server-side --force-conflicts -f https://raw.githubusercontent.com/projectcalico/calico/v3.31.2/manifests/operator-crds.yaml -f https://raw.githubusercontent.com/projectcalico/calico/v3.31.2/manifests/tigera-operator.yaml >/dev/null && kubectl wait --for=condition=Established crd/installations.operator.tigera.io --timeout=10s && kubectl apply -f https://raw.githubusercontent.com/projectcalico/calico/v3.31.2/manifests/custom-resources.yaml'));
    await ok(ssh(lab, c1, 'kubectl --kubeconfig /etc/kubernetes/admin.conf wait --for=condition=Ready node --all --timeout=10s'));
  });

  test('token and certificate-key expiry through the lab clock; fresh credentials join the other control planes and workers', async () => {
    const c2 = cp[1]!;
    const old = await credentials();
    await ok(ssh(lab, c2, `cat > /root/join.yaml <<'EOF'\n${joinConfig(lab.vip, old.token, old.hash, { key: old.key, address: c2.address })}EOF`));
    lab.setClockOffset(2 * 3600 + 60);
    let r = await ssh(lab, c2, 'kubeadm join --config /root/join.yaml');
    assert.equal(r.code, 1);
    assert.match(r.stderr, /Secret "kubeadm-certs" was not found in the "kube-system" Namespace. This Secret might have expired. Please, run `kubeadm init phase upload-certs --upload-certs` on a control plane to generate a new one/);
    lab.setClockOffset(24 * 3600 + 60);
    r = await ssh(lab, c2, 'kubeadm join --config /root/join.yaml');
    assert.equal(r.code, 1);
    assert.match(r.stderr, new RegExp(`could not find a JWS signature in the cluster-info ConfigMap for token ID "${old.token.split('.')[0]}"`));
    for (const h of [cp[1]!, cp[2]!]) {
      const c = await credentials();
      await ok(ssh(lab, h, `cat > /root/join.yaml <<'EOF'\n${joinConfig(lab.vip, c.token, c.hash, { key: c.key, address: h.address })}EOF\nkubeadm join --config /root/join.yaml`));
    }
    await Promise.all(wn.map(async (h) => {
      const c = await credentials();
      await ok(ssh(lab, h, `cat > /root/join.yaml <<'EOF'\n${joinConfig(lab.vip, c.token, c.hash)}EOF\nkubeadm join --config /root/join.yaml`));
    }));
    const nodes = await ok(ssh(lab, cp[2]!, 'kubectl --kubeconfig /etc/kubernetes/admin.conf get nodes --no-headers'));
    assert.equal(nodes.stdout.trim().split('\n').filter((l) => /\sReady\s/.test(l)).length, 5, nodes.stdout);
    const members = await ok(ssh(lab, cp[0]!, `${ETCDCTL} member list`));
    assert.equal(members.stdout.trim().split('\n').filter((l) => /, started, k8scp-0\d, .*, false$/.test(l)).length, 3, members.stdout);
  });

  test('reset leaves CNI config and IPVS state; a stale etcd member of the same name refuses the re-join', async () => {
    const c3 = cp[2]!;
    assert.match((await ok(ssh(lab, c3, 'ls /etc/cni/net.d'))).stdout, /10-calico\.conflist/);
    const reset = await ok(ssh(lab, c3, 'kubeadm reset -f --skip-phases=remove-etcd-member'));
    assert.match(reset.stdout, /The reset process does not clean CNI configuration/);
    const after = await ok(ssh(lab, c3, 'ls /etc/cni/net.d; ipvsadm -Ln; ls /etc/kubernetes/manifests | wc -l; test -e /etc/kubernetes/kubelet.conf; echo kubelet.conf=$?'));
    assert.match(after.stdout, /10-calico\.conflist/);
    assert.match(after.stdout, /TCP {2}10\.96\.0\.1:443 rr/);
    assert.match(after.stdout, /^0$/m);
    assert.match(after.stdout, /kubelet\.conf=1/);
    const c = await credentials();
    await ok(ssh(lab, c3, `cat > /root/join.yaml <<'EOF'\n${joinConfig(lab.vip, c.token, c.hash, { key: c.key, address: c3.address })}EOF`));
    const r = await ssh(lab, c3, 'kubeadm join --config /root/join.yaml');
    assert.equal(r.code, 1);
    assert.match(r.stderr, new RegExp(`error execution phase check-etcd: etcd cluster is not healthy: failed to dial endpoint https://${c3.address.replace(/\./g, '\\.')}:2379 with maintenance client: context deadline exceeded`));
    const id = new RegExp(`^(\\w+), started, ${c3.name},`, 'm').exec((await ok(ssh(lab, cp[0]!, `${ETCDCTL} member list`))).stdout)![1]!;
    await ok(ssh(lab, cp[0]!, `${ETCDCTL} member remove ${id}`));
    await ok(ssh(lab, c3, 'kubeadm join --config /root/join.yaml'));
  });

  test('faults: Nth run fails then succeeds; a dropped connection; an unexpected reboot clears runtime state but keeps configuration', async () => {
    const h = wn[1]!;
    lab.setFaults(h, [{ command: 'crictl', argsMatch: '^info', nth: 2, times: 1, exitCode: 1, stderr: 'crictl: connection refused (injected)' }]);
    await ok(ssh(lab, h, 'crictl info >/dev/null'));
    const failed = await ssh(lab, h, 'crictl info');
    assert.equal(failed.code, 1);
    assert.match(failed.stderr, /connection refused \(injected\)/);
    await ok(ssh(lab, h, 'crictl info >/dev/null'));

    lab.setFaults(h, [{ command: 'kubectl', dropConnection: true }]);
    const dropped = await ssh(lab, h, 'echo before; kubectl version --client; echo after');
    assert.equal(dropped.code, 255, JSON.stringify(dropped));
    assert.equal(dropped.stdout, 'before\n');
    lab.clearFaults(h);

    const bootBefore = await lab.bootId(h);
    await ok(ssh(lab, h, 'modprobe ip_vs_sh && lsmod | grep -c ip_vs_sh'));
    lab.setFaults(h, [{ command: 'systemctl', argsMatch: 'restart', reboot: true }]);
    await ssh(lab, h, 'systemctl restart containerd', 10_000);
    lab.clearFaults(h);
    await new Promise((r) => setTimeout(r, 200));
    await lab.waitUp(h, 20_000);
    assert.notEqual(await lab.bootId(h), bootBefore);
    const state = await ok(ssh(lab, h, 'lsmod | grep -c "^ip_vs_sh " || true; lsmod | grep -c "^br_netfilter "; sysctl -n net.ipv4.ip_forward; systemctl is-active containerd; wc -l < /proc/swaps'));
    assert.equal(state.stdout, '0\n1\n1\nactive\n1\n');
  });
  test('tool calls go to the host\'s resident sim server: same answers, stdin only on demand, a killed call never completes, other users run their own process', async () => {
    const h = wn[0]!;
    const up = await ok(ssh(lab, h, 'test -S /run/kha-sim-server.sock && echo socket; head -n 1 /usr/local/sbin/sysctl'));
    assert.match(up.stdout, /^socket\n#!\S*\/kha-sim-client --wrapper\n$/);

    // The same calls give the same output and exit codes through the server and as processes of their own.
    const calls = 'sysctl net.ipv4.ip_forward; systemctl is-active containerd; echo rc=$?; systemctl status nope.service; echo rc=$?; kubeadm version -o short';
    const served = await ok(ssh(lab, h, calls));
    const own = await ok(ssh(lab, h, `export KHA_SIM_NO_SERVER=1; ${calls}`));
    assert.deepEqual(served, own);
    assert.match(served.stdout, /rc=\d\n.*rc=4\nv1\.35\.2\n$/s);

    // A script read from stdin: a tool call in it must not eat the rest of the script.
    const piped = await ok(ssh(lab, h, `printf 'lsmod >/dev/null\\necho after\\n' | bash`));
    assert.equal(piped.stdout, 'after\n');
    // A tool that reads stdin gets all of it.
    const key = '-----BEGIN PGP PUBLIC KEY BLOCK-----\\n\\naGVsbG8gZnJvbSBzdGRpbg==\\n=abcd\\n-----END PGP PUBLIC KEY BLOCK-----\\n';
    const dearmored = await ok(ssh(lab, h, `printf -- '${key}' | gpg --dearmor`));
    assert.equal(dearmored.stdout, 'hello from stdin');

    // Killed while "slow": the call stops on the server too, so its effect never happens.
    lab.setLatency(h, 2500);
    const killed = await ssh(lab, h, 'timeout 0.5 modprobe ip_vs_wrr; echo rc=$?');
    assert.equal(killed.stdout, 'rc=124\n');
    lab.setLatency(h, 0);
    await new Promise((r) => setTimeout(r, 3000));
    const after = await ok(ssh(lab, h, 'lsmod | grep -c "^ip_vs_wrr " || true; grep -c " modprobe ip_vs_wrr$" /kha-lab/calls/$(hostname).log || true'));
    assert.equal(after.stdout, '0\n0\n');
    await ok(ssh(lab, h, 'modprobe ip_vs_wrr && lsmod | grep -q "^ip_vs_wrr "'));

    // The socket is root's: another user's call runs as that user (kubeadm refuses it), not as the server.
    const user = await ssh(lab, h, "su -s /bin/sh kha -c 'sysctl -n net.ipv4.ip_forward; kubeadm reset -f'");
    assert.equal(user.code, 1, JSON.stringify(user));
    assert.match(user.stdout, /^[01]\n/);
    assert.match(user.stderr, /user is not running as root/);
  });
  test('crictl: a static pod whose manifest changed shows a container created after the change (what the kube-vip switch waits for)', async () => {
    const probe = `for i in $(seq 20); do t="$(date +%s%N)"; echo "v: $i" > /etc/kubernetes/manifests/probe.yaml; c="$(crictl ps --name '^probe$' --state running -o json | grep -o '"createdAt": *"[0-9]*"' | grep -o '[0-9][0-9]*')"; [ -n "$c" ] && [ "$c" -ge "$t" ] || echo "run $i: created $c before the change at $t"; done; rm -f /etc/kubernetes/manifests/probe.yaml`;
    const r = await ok(ssh(lab, cp[0]!, probe));
    assert.equal(r.stdout, '');
  });
});
