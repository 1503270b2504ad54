// The seed topology (3 control-plane nodes + 3 workers) deployed by `kha deploy` onto the lab's real tier:
// real kubeadm, kubelet, etcd, API servers, controller managers, schedulers, kube-proxy, CoreDNS, containerd and
// runc, images pulled through the registry mirrors the cluster file names (src/lab/real). Checked afterwards
// with the real kubectl over the VIP and the kubeconfig kha saved, and the real etcdctl; then the VIP's move
// when the leader's API server stops, and `kha reset`.
import { after, before, describe, it } from 'node:test';
import assert from 'node:assert/strict';
import { spawnSync } from 'node:child_process';
import { mkdirSync, readFileSync, rmSync, statSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { Lab } from '../src/lab/lab';
import { findRealBinaries, kubeBinDir } from '../src/lab/real/tier';
import { cliEnv, freePort, kha } from './cli-run';
import { subnet } from './helpers/subnet';
import { EtcdCtl, describeSamples, sampleEtcd, teardownProblems, type EtcdSample } from './helpers/etcd';

const SUBNET = subnet(45);
const LONG = 1_500_000;
const CONTROL_PLANES = ['k8scp-01', 'k8scp-02', 'k8scp-03'];
const WORKERS = ['k8swn-01', 'k8swn-02', 'k8swn-03'];
const timings: Record<string, number> = {};

describe('kha deploy onto real Kubernetes components (lab real tier, 3+3)', () => {
  const dir = join(tmpdir(), `kha-real-${SUBNET}`);
  const file = join(dir, 'real.yaml');
  const kubeconfig = join(dir, 'admin.conf');
  const tier = findRealBinaries();
  let kubectlBin = '';
  let lab: Lab;
  let env: NodeJS.ProcessEnv;

  /** The real kubectl on this machine, through the VIP (this machine does not resolve the endpoint name). */
  const kubectl = (args: string[]) => {
    const r = spawnSync(kubectlBin, ['--kubeconfig', kubeconfig, '--server', `https://${lab.vip}:6443`, '--request-timeout=10s', ...args], { encoding: 'utf8' });
    return { code: r.status, stdout: r.stdout, stderr: r.stderr };
  };

  /** The real etcdctl against the members, with the health-check client certificate of a control plane. */
  const etcdctl = async (args: string[], from = 'k8scp-01', only?: string) => {
    const pki = join(dir, 'etcd-pki');
    mkdirSync(pki, { recursive: true });
    for (const f of ['ca.crt', 'healthcheck-client.crt', 'healthcheck-client.key']) {
      writeFileSync(join(pki, f), await lab.readFile(from, `/etc/kubernetes/pki/etcd/${f}`), { mode: 0o600 });
    }
    const endpoints = only ? `https://${lab.host(only).address}:2379` : lab.hosts.filter((h) => h.role === 'control-plane').map((h) => `https://${h.address}:2379`).join(',');
    const r = spawnSync(
      join(tier.etcdDir, 'etcdctl'),
      ['--endpoints', endpoints, '--cacert', join(pki, 'ca.crt'), '--cert', join(pki, 'healthcheck-client.crt'), '--key', join(pki, 'healthcheck-client.key'), '--command-timeout=10s', ...args],
      { encoding: 'utf8' },
    );
    return { code: r.status, stdout: r.stdout, stderr: r.stderr };
  };

  const vipHolder = async (): Promise<string[]> => {
    const holders: string[] = [];
    for (const h of CONTROL_PLANES) {
      const r = await lab.exec(h, `ip -4 -o addr show dev eth0 | grep -c ' ${lab.vip}/32' || true`);
      if (r.stdout.trim() !== '0') holders.push(h);
    }
    return holders;
  };

  before(async () => {
    await Lab.downDir(join(dir, 'lab'));
    rmSync(dir, { recursive: true, force: true });
    mkdirSync(dir, { recursive: true });
    const t0 = Date.now();
    lab = await Lab.up({ dir: join(dir, 'lab'), controlPlanes: 3, workers: 3, subnetIndex: SUBNET, rebootDelayMs: 500, kube: 'real' });
    timings.labUp = Date.now() - t0;
    const version = lab.realKubeVersions().at(-1)!;
    kubectlBin = join(kubeBinDir(tier, version), 'kubectl');
    writeFileSync(file, lab.specYaml({ name: 'real', kubernetesVersion: version.split('.').slice(0, 2).join('.') }));
    env = cliEnv({ XDG_STATE_HOME: join(dir, 'state'), KHA_SERVER_PORT: String(await freePort()), KHA_UI_PORT: String(await freePort()) });
  });

  after(async () => {
    await kha(['server', '--stop'], env).catch(() => undefined);
    await lab?.down();
    rmSync(dir, { recursive: true, force: true });
    process.stderr.write(`real-tier timings (ms): ${JSON.stringify(timings)}\n`);
  });

  it('kha deploy --auto-approve ends with exit 0 and a 0600 kubeconfig; a join killed after its etcd member was added is compensated', async () => {
    // The first `kubeadm join` of k8scp-02 dies right after it added its (learner) member to the real etcd: the
    // retries meet the leftovers, compensation resets the node and removes the stale member, the next round joins.
    const cp2 = `https://${lab.host('k8scp-02').address}:2380`;
    let killed = '';
    let stop = false;
    const killer = (async () => {
      while (!stop && !killed) {
        await new Promise((res) => setTimeout(res, 200));
        let list: { members?: Array<{ ID?: string; peerURLs?: string[]; isLearner?: boolean }> };
        try {
          const r = await etcdctl(['member', 'list', '-w', 'json'], 'k8scp-01', 'k8scp-01');
          if (r.code !== 0) continue;
          list = JSON.parse(r.stdout);
        } catch {
          continue; // no etcd (or no certificates) yet
        }
        const m = (list.members ?? []).find((x) => (x.peerURLs ?? []).includes(cp2));
        if (!m) continue;
        const k = await lab.exec('k8scp-02', "pkill -KILL -f '^kubeadm join' && echo killed || true");
        if (k.stdout.includes('killed')) killed = `member ${m.ID} learner=${m.isLearner}`;
      }
    })();
    const r = await kha(['deploy', file, '--auto-approve', '--kubeconfig', kubeconfig], env, LONG).finally(() => {
      stop = true;
    });
    await killer;
    timings.deploy = r.ms;
    assert.equal(r.code, 0, r.stdout + r.stderr);
    assert.ok(killed, 'the first join of k8scp-02 was never caught after adding its etcd member');
    assert.match(r.stdout, /^control-plane-join k8scp-02: done \(.*\b1 compensation\b/m, `${killed}\n${r.stdout}`);
    assert.match(r.stdout, /^✔ real deployed: Kubernetes v1\.\d+\.\d+, 6 nodes Ready, 3 etcd members; admin kubeconfig: /m);
    assert.equal(statSync(kubeconfig).mode & 0o777, 0o600);
  });

  it('the real API server over the VIP: 6 nodes Ready, control planes labelled and tainted', () => {
    const r = kubectl(['get', 'nodes', '-o', 'json']);
    assert.equal(r.code, 0, r.stderr);
    const nodes = (JSON.parse(r.stdout) as { items: Array<{ metadata: { name: string; labels: Record<string, string> }; spec: { taints?: Array<{ key: string; effect: string }> }; status: { conditions: Array<{ type: string; status: string }>; nodeInfo: { kubeletVersion: string } } }> }).items;
    assert.deepEqual(nodes.map((n) => n.metadata.name).sort(), [...CONTROL_PLANES, ...WORKERS]);
    for (const n of nodes) {
      assert.equal(n.status.conditions.find((c) => c.type === 'Ready')?.status, 'True', `${n.metadata.name} not Ready`);
      const cp = CONTROL_PLANES.includes(n.metadata.name);
      assert.equal('node-role.kubernetes.io/control-plane' in n.metadata.labels, cp, `${n.metadata.name} control-plane label`);
      assert.equal((n.spec.taints ?? []).some((t) => t.key === 'node-role.kubernetes.io/control-plane' && t.effect === 'NoSchedule'), cp, `${n.metadata.name} taint`);
    }
    assert.equal(new Set(nodes.map((n) => n.status.nodeInfo.kubeletVersion)).size, 1, 'one kubelet version on every node');
  });

  it('the real etcd: 3 started voting members, no learner, every endpoint healthy', async () => {
    const r = await etcdctl(['member', 'list', '-w', 'json']);
    assert.equal(r.code, 0, r.stderr);
    const members = (JSON.parse(r.stdout) as { members: Array<{ name?: string; isLearner?: boolean; clientURLs?: string[] }> }).members;
    assert.equal(members.length, 3, r.stdout);
    assert.deepEqual(members.map((m) => m.name).sort(), CONTROL_PLANES);
    assert.ok(members.every((m) => !m.isLearner && (m.clientURLs ?? []).length > 0), r.stdout);
    const h = await etcdctl(['endpoint', 'health']);
    assert.equal(h.code, 0, h.stdout + h.stderr);
  });

  it('the VIP moves when the API server of its holder stops, and the API stays reachable through it', async () => {
    const [holder, ...others] = await vipHolder();
    assert.ok(holder && others.length === 0, `one VIP holder, got ${[holder, ...others].join(',')}`);
    // The kubelet stops a static pod whose manifest leaves the directory; kube-vip there then loses its Lease.
    const moved = await lab.exec(holder, 'mv /etc/kubernetes/manifests/kube-apiserver.yaml /root/kube-apiserver.yaml');
    assert.equal(moved.code, 0, moved.stderr);
    const t0 = Date.now();
    let now: string[] = [];
    let answered = false;
    while (Date.now() - t0 < 120_000) {
      now = await vipHolder();
      if (now.length === 1 && now[0] !== holder) {
        const r = kubectl(['get', '--raw', '/livez']);
        if (r.code === 0 && r.stdout.trim() === 'ok') {
          answered = true;
          break;
        }
      }
      await new Promise((res) => setTimeout(res, 500));
    }
    timings.vipFailover = Date.now() - t0;
    assert.ok(answered, `the VIP did not move to a healthy control plane with its API answering (holders now: ${now.join(',') || 'none'})`);
    const back = await lab.exec(holder, 'mv /root/kube-apiserver.yaml /etc/kubernetes/manifests/kube-apiserver.yaml');
    assert.equal(back.code, 0, back.stderr);
    // The cluster as it was for what follows: the holder's API server answers again.
    const address = lab.host(holder).address;
    const t1 = Date.now();
    let again = kubectl(['--server', `https://${address}:6443`, 'get', '--raw', '/livez']);
    while (again.code !== 0 && Date.now() - t1 < 180_000) {
      await new Promise((res) => setTimeout(res, 1000));
      again = kubectl(['--server', `https://${address}:6443`, 'get', '--raw', '/livez']);
    }
    assert.equal(again.code, 0, `the API server of ${holder} did not come back: ${again.stderr}`);
  });

  it('kha reset --yes: no kubelet.conf, static pods or etcd data left on any node; the remaining etcd members healthy at every step', async () => {
    // Watched from this machine while the reset runs: every member still listed answers a quorum read, and the
    // members leave one at a time, the first control plane last.
    const etcd = await EtcdCtl.fromLab(lab, tier.etcdDir, join(dir, 'watch-pki'), 'k8scp-01');
    const samples: EtcdSample[] = [await sampleEtcd(etcd)];
    assert.deepEqual(samples[0], { ...samples[0], kind: 'ok', members: CONTROL_PLANES }, 'etcd before the reset');
    let done = false;
    const watcher = (async () => {
      while (!done) {
        samples.push(await sampleEtcd(etcd));
        await new Promise((res) => setTimeout(res, 250));
      }
    })();
    const r = await kha(['reset', file, '--yes'], env, LONG).finally(() => {
      done = true;
    });
    await watcher;
    samples.push(await sampleEtcd(etcd));
    timings.reset = r.ms;
    assert.equal(r.code, 0, r.stdout + r.stderr);
    const problems = teardownProblems(samples, [CONTROL_PLANES, ['k8scp-01', 'k8scp-02'], ['k8scp-01']]);
    assert.deepEqual(problems, [], `${samples.length} samples`);
    assert.equal(samples.at(-1)?.kind, 'unreachable', 'etcd still answers after the reset');
    timings.resetSamples = samples.length;
    process.stderr.write(`reset: etcd as sampled: ${describeSamples(samples)}\n`);
    for (const h of [...WORKERS, ...CONTROL_PLANES]) {
      const left = await lab.exec(h, 'ls /etc/kubernetes/kubelet.conf /etc/kubernetes/manifests/*.yaml /var/lib/etcd/member 2>/dev/null; true');
      assert.equal(left.stdout.trim(), '', `${h} keeps ${left.stdout}`);
      const containers = await lab.exec(h, 'crictl ps -q 2>/dev/null | wc -l');
      assert.equal(containers.stdout.trim(), '0', `${h} still runs containers`);
    }
    assert.ok(readFileSync(file, 'utf8').length > 0);
  });
});
