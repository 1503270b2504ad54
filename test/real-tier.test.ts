// The seed topology (3 control-plane nodes + 3 workers) deployed by `kha deploy` onto the lab's real tier:
// real kubeadm, kubelet, etcd, API servers, controller managers, schedulers, kube-proxy, CoreDNS, containerd and
// runc, images pulled through the registry mirrors the cluster file names (src/lab/real). Checked afterwards
// with the real kubectl over the VIP and the kubeconfig kha saved, and the real etcdctl; the packages kha's
// packages phase installed with the real apt from the lab's signed repository (src/lab/real/apt-repo.ts), and
// each host's own dpkg database; then the day-2 building
// blocks against the same cluster (etcd member list, etcd backup, certificate expiry; the activities run in a mock
// activity context, which records every heartbeat they send), the VIP's move when the leader's API server
// stops, and `kha reset`. One deploy serves them all: the real tier's deploy is its longest step.
import { after, before, describe, it } from 'node:test';
import assert from 'node:assert/strict';
import { execFileSync, spawnSync } from 'node:child_process';
import { connect as tlsConnect } from 'node:tls';
import { createHash, randomUUID, X509Certificate } from 'node:crypto';
import { existsSync, mkdirSync, readdirSync, readFileSync, rmSync, statSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { MockActivityEnvironment } from '@temporalio/testing';
import { Client, Connection } from '@temporalio/client';
import { Lab } from '../src/lab/lab';
import { realPaths } from '../src/lab/real/setup';
import { findRealBinaries, kubeBinDir } from '../src/lab/real/tier';
import { loadClusterOrThrow } from '../src/spec/load';
import type { ClusterSpec } from '../src/spec/types';
import { certificateExpiry, etcdBackup, etcdMembers } from '../src/activities/day2';
import { memberByPeerURL } from '../src/render/day2-etcd-members';
import { SNAPSHOT_DIR } from '../src/render/day2-etcd-backup';
import { cliEnv, freePort, kha } from './cli-run';
import { subnet } from './helpers/subnet';
import { EtcdCtl, describeSamples, sampleEtcd, teardownProblems, type EtcdSample } from './helpers/etcd';

const SUBNET = subnet(45);
const LONG = 1_500_000;
const CONTROL_PLANES = ['k8scp-01', 'k8scp-02', 'k8scp-03'];
const WORKERS = ['k8swn-01', 'k8swn-02', 'k8swn-03'];
const timings: Record<string, number> = {};

/** The armored key as binary OpenPGP, as `gpg --dearmor` writes it (what kha's packages script stores). */
function dearmor(armored: string): Buffer {
  const r = spawnSync('gpg', ['--batch', '--dearmor'], { input: armored });
  assert.equal(r.status, 0, r.stderr?.toString());
  return r.stdout;
}

const minorOf = (v: string) => v.split('.').slice(0, 2).join('.');

/** Runs an activity in a mock context; returns its result and every heartbeat it sent. */
async function run<A, R>(fn: (a: A) => Promise<R>, arg: A): Promise<{ result: R; heartbeats: unknown[] }> {
  const env = new MockActivityEnvironment();
  const heartbeats: unknown[] = [];
  env.on('heartbeat', (d: unknown) => heartbeats.push(d));
  const result = (await env.run(fn, arg)) as R;
  return { result, heartbeats };
}

describe('kha deploy onto real Kubernetes components (lab real tier, 3+3)', () => {
  const dir = join(tmpdir(), `kha-real-${SUBNET}`);
  const file = join(dir, 'real.yaml');
  const kubeconfig = join(dir, 'admin.conf');
  const state = join(dir, 'state');
  /** Where etcdBackup keeps this cluster's snapshots (the state directory, under the cluster's name). */
  const backups = join(state, 'kha', 'real', 'backups');
  const tier = findRealBinaries();
  const etcdutl = join(tier.etcdDir, 'etcdutl');
  let kubectlBin = '';
  let version = '';
  let lab: Lab;
  let env: NodeJS.ProcessEnv;
  let cluster: ClusterSpec;
  let day2Etcd: EtcdCtl | undefined;
  const savedState = process.env.XDG_STATE_HOME;
  /** etcdctl for the day-2 tests, with k8scp-01's health-check certificate (there once the deploy is done). */
  const etcd2 = async () => (day2Etcd ??= await EtcdCtl.fromLab(lab, tier.etcdDir, join(dir, 'day2-pki'), 'k8scp-01'));

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
    version = lab.realKubeVersions().at(-1)!;
    kubectlBin = join(kubeBinDir(tier, version), 'kubectl');
    writeFileSync(file, lab.specYaml({ name: 'real', kubernetesVersion: version.split('.').slice(0, 2).join('.') }));
    env = cliEnv({ XDG_STATE_HOME: state, KHA_SERVER_PORT: String(await freePort()), KHA_UI_PORT: String(await freePort()) });
    cluster = loadClusterOrThrow(file);
    // The day-2 activities run in this process: the same state directory as the worker kha starts.
    process.env.XDG_STATE_HOME = state;
  });

  after(async () => {
    if (savedState === undefined) delete process.env.XDG_STATE_HOME;
    else process.env.XDG_STATE_HOME = savedState;
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

  it('dpkg has kubelet, kubeadm and kubectl at the built version -1.1, held, from the lab repository', async () => {
    const repo = `https://${lab.gateway}:5443/k8s/core:/stable:/v${minorOf(version)}/deb`;
    for (const h of lab.nodes) {
      const q = await lab.exec(h, 'dpkg-query -W kubelet kubeadm kubectl cri-tools');
      assert.equal(q.code, 0, q.stderr);
      assert.deepEqual(
        q.stdout.trim().split('\n').sort(),
        [`cri-tools\t${/\/v([\d.]+)\/crictl$/.exec(tier.crictl)![1]}-1.1`, `kubeadm\t${version}-1.1`, `kubectl\t${version}-1.1`, `kubelet\t${version}-1.1`],
        h.name,
      );
      const held = await lab.exec(h, 'apt-mark showhold');
      assert.deepEqual(held.stdout.trim().split('\n').sort(), ['kubeadm', 'kubectl', 'kubelet'], `${h.name} holds`);
      const policy = await lab.exec(h, 'apt-cache policy kubeadm');
      assert.equal(policy.code, 0, policy.stderr);
      assert.match(policy.stdout, new RegExp(`Installed: ${version.replace(/\./g, '\\.')}-1\\.1\\n`), policy.stdout);
      assert.ok(policy.stdout.includes(`500 ${repo}  Packages`), `${h.name}: ${policy.stdout}`);
      // No other source: this machine's Debian mirrors are hidden, so apt knows the lab repository and dpkg only.
      const all = await lab.exec(h, 'apt-cache policy');
      const sources = all.stdout.split('\n').filter((l) => /^\s+\d+ \S/.test(l)).map((l) => l.trim().split(/\s+/)[1]);
      assert.deepEqual([...new Set(sources)].sort(), [`${repo}`, '/var/lib/dpkg/status'].sort(), all.stdout);
    }
  });

  it("the repository keyring kha wrote is the lab's key", async () => {
    const want = dearmor(readFileSync(realPaths(lab.dir).releaseKey, 'utf8'));
    for (const h of lab.nodes) {
      const got = await lab.exec(h, 'base64 -w0 /etc/apt/keyrings/kubernetes-apt-keyring.gpg');
      assert.equal(got.code, 0, got.stderr);
      assert.ok(Buffer.from(got.stdout.trim(), 'base64').equals(want), `${h.name}: keyring differs from the lab's Release.key`);
    }
  });

  it('/usr/bin/kubelet is the built kubelet as a file of the kubelet package, its unit installed and enabled by it', async () => {
    const sum = createHash('sha256').update(readFileSync(join(kubeBinDir(tier, version), 'kubelet'))).digest('hex');
    for (const h of lab.nodes) {
      const st = await lab.exec(h, 'stat -c %F /usr/bin/kubelet; dpkg -S /usr/bin/kubelet; sha256sum /usr/bin/kubelet; dpkg -S /lib/systemd/system/kubelet.service; readlink /etc/systemd/system/multi-user.target.wants/kubelet.service');
      assert.equal(st.code, 0, st.stderr);
      const [type, owner, hash, unitOwner, wants] = st.stdout.trim().split('\n');
      assert.equal(type, 'regular file', h.name);
      assert.equal(owner, 'kubelet: /usr/bin/kubelet', h.name);
      assert.equal(hash?.split(/\s+/)[0], sum, `${h.name}: /usr/bin/kubelet is not the built kubelet`);
      assert.equal(unitOwner, 'kubelet: /lib/systemd/system/kubelet.service', h.name);
      // deb-systemd-helper in the package's postinst made this link (the sim's systemctl keeps records only).
      assert.equal(wants, '/lib/systemd/system/kubelet.service', h.name);
      const active = await lab.exec(h, 'systemctl is-enabled kubelet; systemctl is-active kubelet');
      assert.equal(active.stdout.trim(), 'enabled\nactive', h.name);
    }
  });

  it("each host's /var/lib/dpkg is its own: files this machine adds there stay out of the hosts, and the other way round", async () => {
    // A scratch file with a unique name stands for the machine's dpkg changing during a test (an apt run wrote
    // its journal to /var/lib/dpkg/updates, and a host's apt then said "dpkg was interrupted").
    const tag = `kha-lab-test-${randomUUID()}`;
    const machineSide = `/var/lib/dpkg/${tag}-machine`;
    writeFileSync(machineSide, 'written on this machine\n');
    try {
      for (const h of lab.nodes) {
        const r = await lab.exec(h, `test -e '${machineSide}' && echo visible || echo absent; echo host >'/var/lib/dpkg/${tag}-${h.name}'; stat -c %d /var/lib /var/lib/dpkg; apt-get check -qq; echo check=$?`);
        assert.equal(r.code, 0, r.stderr);
        const [seen, devLib, devDpkg, ...rest] = r.stdout.trim().split('\n');
        assert.equal(seen, 'absent', `${h.name} sees a file this machine wrote in its /var/lib/dpkg`);
        assert.notEqual(devDpkg, devLib, `${h.name}: /var/lib/dpkg is not a mount of its own`);
        assert.deepEqual(rest, ['check=0'], `${h.name}: apt-get check`);
        assert.equal(existsSync(`/var/lib/dpkg/${tag}-${h.name}`), false, `a file ${h.name} wrote reached this machine's /var/lib/dpkg`);
      }
      // The hosts' installs are theirs: this machine's status has no kubelet at the lab's version.
      assert.ok(!readFileSync('/var/lib/dpkg/status', 'utf8').includes(`Version: ${version}-1.1`), "the lab's packages reached this machine's dpkg status");
    } finally {
      rmSync(machineSide, { force: true });
    }
  });
  it('etcdMembers: every member by hex ID and exact peer URL, as the real etcdctl lists them', async () => {
    const { result } = await run(etcdMembers, { cluster });
    assert.equal(result.via, 'k8scp-01');
    const seen = await (await etcd2()).members();
    assert.ok(Array.isArray(seen), String(seen));
    const byName = (m: { name: string }, n: { name: string }) => m.name.localeCompare(n.name);
    assert.deepEqual(
      result.members.map((m) => ({ id: m.id, name: m.name, peerURLs: m.peerURLs, clientURLs: m.clientURLs, isLearner: m.isLearner })).sort(byName),
      seen.map((m) => ({ id: m.id, name: m.name, peerURLs: m.peerURLs, clientURLs: m.clientURLs, isLearner: m.isLearner })).sort(byName),
    );
    assert.deepEqual(result.members.map((m) => m.name).sort(), CONTROL_PLANES);
    assert.ok(result.members.every((m) => m.started && /^[0-9a-f]+$/.test(m.id)), JSON.stringify(result.members));
    for (const h of CONTROL_PLANES) {
      assert.equal(memberByPeerURL(result.members, `https://${lab.host(h).address}:2380`)?.name, h);
    }
    // k8scp-01 is .11: the address ending .1 is a prefix of it, and must match nothing.
    const prefix = lab.host('k8scp-01').address.replace(/1$/, '');
    assert.equal(memberByPeerURL(result.members, `https://${prefix}:2380`), undefined);
  });

  it('etcdBackup: a snapshot verified by etcdutl, 0600 in the state directory; results and heartbeats carry only its path, size, hash and revision', async () => {
    // A value only etcd holds: it must be in the snapshot and nowhere in what the activity reports.
    const secret = `kha-day2-${createHash('sha256').update(String(process.hrtime.bigint())).digest('hex').slice(0, 24)}`;
    const put = await (await etcd2()).run(['put', '/kha-test/backup-marker', secret]);
    assert.equal(put.code, 0, put.stderr);
    const t0 = Date.now();
    const { result, heartbeats } = await run(etcdBackup, { cluster, retain: 5 });
    process.stderr.write(`etcdBackup: ${Date.now() - t0} ms, ${result.sizeBytes} bytes, revision ${result.revision}, ${result.totalKeys} keys, ${heartbeats.length} heartbeats\n`);
    assert.equal(result.node, 'k8scp-01');
    assert.equal(result.path.startsWith(backups + '/'), true, result.path);
    assert.equal(statSync(result.path).mode & 0o777, 0o600);
    assert.equal(statSync(backups).mode & 0o777, 0o700);
    const data = readFileSync(result.path);
    assert.equal(data.length, result.sizeBytes);
    assert.equal(createHash('sha256').update(data).digest('hex'), result.sha256);
    assert.ok(data.includes(secret), 'the snapshot holds the value just written');
    // This machine's etcdutl reads the copy as etcd wrote it.
    const status = JSON.parse(execFileSync(etcdutl, ['snapshot', 'status', result.path, '-w', 'json'], { encoding: 'utf8' })) as { hash: number; revision: number; totalKey: number };
    assert.deepEqual({ hash: status.hash, revision: status.revision, totalKey: status.totalKey }, { hash: result.etcdHash, revision: result.revision, totalKey: result.totalKeys });
    assert.ok(result.revision > 0 && result.totalKeys > 0, JSON.stringify(result));
    assert.ok(heartbeats.length > 0, 'the backup sent no heartbeat');
    const reported = JSON.stringify({ result, heartbeats });
    assert.ok(!reported.includes(secret), 'a value from the snapshot reached the result or a heartbeat');
    assert.ok(reported.length < 4096, `result and heartbeats are ${reported.length} characters`);
    const left = await lab.exec('k8scp-01', `ls -A ${SNAPSHOT_DIR} 2>&1 || true`);
    assert.match(left.stdout, /No such file/, `the node keeps its copy: ${left.stdout}`);
  });

  it('etcdBackup keeps the newest `retain` snapshots and names the ones it deleted', async () => {
    const before = readdirSync(backups).sort();
    assert.ok(before.length >= 1, 'the previous test left a snapshot');
    const a = await run(etcdBackup, { cluster, retain: 2 });
    const b = await run(etcdBackup, { cluster, retain: 2 });
    const now = readdirSync(backups).sort();
    assert.deepEqual(now.map((f) => join(backups, f)), [a.result.path, b.result.path]);
    assert.deepEqual([...a.result.removed, ...b.result.removed].sort(), before.map((f) => join(backups, f)));
    for (const p of a.result.removed) assert.equal(existsSync(p), false, p);
  });

  it('certificateExpiry: kubeadm’s table of every control plane matches the certificates on its disk', async () => {
    const { result } = await run(certificateExpiry, { cluster });
    assert.deepEqual(result.nodes.map((n) => n.node), CONTROL_PLANES);
    for (const { node, certificates } of result.nodes) {
      let compared = 0;
      for (const row of certificates) {
        const path = row.name.endsWith('.conf') ? `/etc/kubernetes/${row.name}` : `/etc/kubernetes/pki/${row.name.replace(/^etcd-/, 'etcd/')}.crt`;
        const text = await lab.readFile(node, path).catch(() => undefined);
        if (row.missing) {
          assert.equal(text, undefined, `${node}: kubeadm says ${row.name} is missing, ${path} exists`);
          continue;
        }
        assert.ok(text, `${node}: ${path} for ${row.name}`);
        const pem = row.name.endsWith('.conf') ? Buffer.from(/client-certificate-data:\s*(\S+)/.exec(text)![1]!, 'base64') : Buffer.from(text);
        const real = new Date(new X509Certificate(pem).validTo).toISOString();
        assert.equal(row.expires, real, `${node}: ${row.name} (${path})`);
        compared++;
      }
      assert.deepEqual(certificates.filter((c) => c.kind === 'authority').map((c) => c.name).sort(), ['ca', 'etcd-ca', 'front-proxy-ca']);
      assert.ok(compared >= 12, `${node}: only ${compared} certificates compared`);
      assert.ok(certificates.every((c) => c.missing || c.residualSeconds > 300 * 86_400), `${node}: ${JSON.stringify(certificates)}`);
    }
  });

  it('etcdBackup passes over a control plane whose etcd member is not healthy', async () => {
    const etcd = await etcd2();
    const moved = await lab.exec('k8scp-03', 'mv /etc/kubernetes/manifests/etcd.yaml /root/etcd.yaml');
    assert.equal(moved.code, 0, moved.stderr);
    const url = `https://${lab.host('k8scp-03').address}:2379`;
    // The kubelet stops the static pod once its manifest is gone.
    for (let i = 0; i < 180 && (await etcd.healthy(url)); i++) await new Promise((res) => setTimeout(res, 1000));
    assert.equal(await etcd.healthy(url), false, 'etcd on k8scp-03 still answers after its manifest left');
    const { result } = await run(etcdBackup, { cluster, via: ['k8scp-03', 'k8scp-02'], retain: 5 });
    assert.equal(result.node, 'k8scp-02');
    assert.equal(statSync(result.path).mode & 0o777, 0o600);
    // The cluster as it was for what follows (the reset's watch starts from every member healthy).
    const back = await lab.exec('k8scp-03', 'mv /root/etcd.yaml /etc/kubernetes/manifests/etcd.yaml');
    assert.equal(back.code, 0, back.stderr);
    const t0 = Date.now();
    let sample = await sampleEtcd(etcd);
    while (sample.kind !== 'ok' && Date.now() - t0 < 180_000) {
      await new Promise((res) => setTimeout(res, 1000));
      sample = await sampleEtcd(etcd);
    }
    timings.etcdBack = Date.now() - t0;
    assert.deepEqual(sample, { ...sample, kind: 'ok', members: CONTROL_PLANES }, 'etcd on k8scp-03 did not come back healthy');
  });

  it('kha backup real: a snapshot 0600 that etcdutl reads, path, size and revision printed; no snapshot bytes in the workflow history', async () => {
    const secret = `kha-cli-backup-${createHash('sha256').update(String(process.hrtime.bigint())).digest('hex').slice(0, 24)}`;
    const put = await (await etcd2()).run(['put', '/kha-test/cli-backup-marker', secret]);
    assert.equal(put.code, 0, put.stderr);
    const r = await kha(['backup', 'real', '--retain', '2'], env, LONG);
    timings.cliBackup = r.ms;
    assert.equal(r.code, 0, r.stdout + r.stderr);
    const m = /^✔ real backed up from (k8scp-0\d): (\S+) \((\d+) bytes, sha256 ([0-9a-f]{64}), etcd revision (\d+), (\d+) keys\)/m.exec(r.stdout);
    assert.ok(m, r.stdout);
    const [, node, path, size, sha, revision, keys] = m;
    assert.equal(node, 'k8scp-01');
    assert.equal(path!.startsWith(backups + '/'), true, path);
    assert.equal(statSync(path!).mode & 0o777, 0o600);
    const data = readFileSync(path!);
    assert.equal(data.length, Number(size));
    assert.equal(createHash('sha256').update(data).digest('hex'), sha);
    assert.ok(data.includes(secret), 'the snapshot holds the value just written');
    const status = JSON.parse(execFileSync(etcdutl, ['snapshot', 'status', path!, '-w', 'json'], { encoding: 'utf8' })) as { revision: number; totalKey: number };
    assert.deepEqual({ revision: status.revision, totalKey: status.totalKey }, { revision: Number(revision), totalKey: Number(keys) });
    assert.equal(readdirSync(backups).filter((f) => f.endsWith('.db')).length, 2, 'retain 2 keeps two snapshots');
    // The whole history as the server stores it: no byte of the snapshot, and far smaller than it.
    const conn = await Connection.connect({ address: `127.0.0.1:${env.KHA_SERVER_PORT}` });
    try {
      const history = await new Client({ connection: conn }).workflow.getHandle('kha-backup-real').fetchHistory();
      // Every byte string in it (payloads, failures, heartbeats) and its text.
      const parts: Buffer[] = [];
      const walk = (v: unknown): void => {
        if (v instanceof Uint8Array) parts.push(Buffer.from(v));
        else if (v && typeof v === 'object') for (const x of Object.values(v)) walk(x);
        else if (typeof v === 'string') parts.push(Buffer.from(v));
      };
      walk(history);
      const raw = Buffer.concat(parts);
      assert.ok((history.events ?? []).some((e) => e.workflowExecutionCompletedEventAttributes), 'the backup workflow completed');
      assert.equal(raw.includes(secret), false, 'a value from the snapshot is in the backup workflow history');
      assert.equal(raw.includes(data.subarray(0, 4096)), false, 'the snapshot’s first page is in the history');
      assert.ok(raw.length < data.length, `history ${raw.length} bytes, snapshot ${data.length}`);
    } finally {
      await conn.close();
    }
  });

  it('kha certs real: a table of every control plane whose expiry times and days left are those of the certificates on disk', async () => {
    const r = await kha(['certs', 'real'], env, LONG);
    timings.cliCerts = r.ms;
    assert.equal(r.code, 0, r.stdout + r.stderr);
    const lines = r.stdout.split('\n');
    const header = lines.findIndex((l) => /^NODE +CERTIFICATE +EXPIRES +DAYS LEFT$/.test(l));
    assert.ok(header >= 0, r.stdout);
    const rows = lines.slice(header + 1).filter((l) => /^k8scp-0\d /.test(l)).map((l) => l.trim().split(/ {2,}/));
    assert.deepEqual([...new Set(rows.map((x) => x[0]))], CONTROL_PLANES);
    let compared = 0;
    for (const [node, cert, expires, days, mark] of rows) {
      const name = cert!.replace(/ \(CA\)$/, '');
      const path = name.endsWith('.conf') ? `/etc/kubernetes/${name}` : `/etc/kubernetes/pki/${name.replace(/^etcd-/, 'etcd/')}.crt`;
      const text = await lab.readFile(node!, path).catch(() => undefined);
      if (expires === '-') {
        assert.equal(text, undefined, `${node}: the table says ${name} is missing, ${path} exists`);
        continue;
      }
      assert.ok(text, `${node}: ${path} for ${name}`);
      const pem = name.endsWith('.conf') ? Buffer.from(/client-certificate-data:\s*(\S+)/.exec(text)![1]!, 'base64') : Buffer.from(text);
      const validTo = new Date(new X509Certificate(pem).validTo);
      assert.equal(expires, validTo.toISOString(), `${node}: ${name}`);
      const left = (validTo.getTime() - Date.now()) / 86_400_000;
      assert.ok(Math.abs(Number(days) - left) < 1.01, `${node}: ${name}: ${days} days left printed, ${left.toFixed(2)} real`);
      assert.equal(mark, undefined, `${node}: ${name} is marked: ${mark}`);
      compared++;
    }
    assert.ok(compared >= 36, `only ${compared} certificates compared`);
    assert.doesNotMatch(r.stderr, /warning: certificate/);
    assert.match(r.stdout, new RegExp(`^✔ real certificates: ${rows.length} on 3 control-plane node\\(s\\), 0 within 30 days of expiry$`, 'm'));
  });

  it('kha certs renew real: one control plane at a time, first last; each static pod restarted and the API server and etcd serving the new certificates; the saved kubeconfig renewed; etcd kept quorum and the VIP answers', async () => {
    const serial = async (node: string, path: string) => new X509Certificate(await lab.readFile(node, path)).serialNumber;
    const clientSerial = (text: string) => new X509Certificate(Buffer.from(/client-certificate-data:\s*(\S+)/.exec(text)![1]!, 'base64')).serialNumber;
    /** The serial of the certificate the node serves on `port` (etcd asks for a client certificate). */
    const served = (node: string, port: number) =>
      new Promise<string>((res, rej) => {
        const pki = join(dir, 'etcd-pki');
        const client = port === 2379 ? { cert: readFileSync(join(pki, 'healthcheck-client.crt')), key: readFileSync(join(pki, 'healthcheck-client.key')) } : {};
        const sock = tlsConnect({ host: lab.host(node).address, port, rejectUnauthorized: false, ...client }, () => {
          res(sock.getPeerCertificate().serialNumber);
          sock.end();
        });
        sock.on('error', rej);
      });
    await etcdctl(['endpoint', 'health']); // leaves k8scp-01's health-check client certificate in etcd-pki
    const before: Record<string, { api: string; etcd: string; admin: string }> = {};
    for (const n of CONTROL_PLANES) before[n] = { api: await serial(n, '/etc/kubernetes/pki/apiserver.crt'), etcd: await serial(n, '/etc/kubernetes/pki/etcd/server.crt'), admin: clientSerial(await lab.readFile(n, '/etc/kubernetes/admin.conf')) };
    const savedBefore = clientSerial(readFileSync(kubeconfig, 'utf8'));
    const etcd = await etcd2();
    const samples: EtcdSample[] = [];
    let vipFailures = 0;
    let vipChecks = 0;
    let done = false;
    const watcher = (async () => {
      while (!done) {
        samples.push(await sampleEtcd(etcd));
        vipChecks++;
        if (kubectl(['get', '--raw', '/livez']).code !== 0) vipFailures++;
        await new Promise((res) => setTimeout(res, 500));
      }
    })();
    const startNs = BigInt(Date.now()) * 1_000_000n;
    const r = await kha(['certs', 'renew', 'real', '--kubeconfig', kubeconfig], env, LONG).finally(() => {
      done = true;
    });
    await watcher;
    timings.cliRenew = r.ms;
    timings.renewVipFailedChecks = vipFailures;
    timings.renewVipChecks = vipChecks;
    assert.equal(r.code, 0, r.stdout + r.stderr);
    const order = [...r.stdout.matchAll(/^ {2}(k8scp-0\d): renewed; restarted (.+)$/gm)];
    assert.deepEqual(order.map((m) => m[1]), ['k8scp-03', 'k8scp-02', 'k8scp-01'], r.stdout);
    for (const m of order) assert.equal(m[2], 'etcd, kube-apiserver, kube-controller-manager, kube-scheduler, kube-vip');
    for (const n of CONTROL_PLANES) {
      const now = { api: await serial(n, '/etc/kubernetes/pki/apiserver.crt'), etcd: await serial(n, '/etc/kubernetes/pki/etcd/server.crt'), admin: clientSerial(await lab.readFile(n, '/etc/kubernetes/admin.conf')) };
      for (const k of ['api', 'etcd', 'admin'] as const) assert.notEqual(now[k], before[n]![k], `${n}: ${k} certificate not renewed`);
      assert.equal(await served(n, 6443), now.api, `${n}: the API server serves an old certificate`);
      assert.equal(await served(n, 2379), now.etcd, `${n}: etcd serves an old certificate`);
      // Every component runs in a container created after the renewal started: the kubelet started it again.
      for (const c of ['etcd', 'kube-apiserver', 'kube-controller-manager', 'kube-scheduler', 'kube-vip']) {
        const ps = await lab.exec(n, `crictl ps --name '^${c}$' --state running -o json`);
        const created = [...ps.stdout.matchAll(/"createdAt": *"(\d+)"/g)].map((m) => BigInt(m[1]!));
        assert.equal(created.length, 1, `${n}: ${c}: ${ps.stdout}${ps.stderr}`);
        assert.ok(created[0]! > startNs, `${n}: ${c} was not restarted`);
      }
    }
    const saved = readFileSync(kubeconfig, 'utf8');
    assert.equal(statSync(kubeconfig).mode & 0o777, 0o600);
    assert.notEqual(clientSerial(saved), savedBefore, 'the saved kubeconfig still holds the old client certificate');
    assert.equal(clientSerial(saved), clientSerial(await lab.readFile('k8scp-01', '/etc/kubernetes/admin.conf')));
    const nodes = kubectl(['get', 'nodes', '-o', 'name']);
    assert.equal(nodes.code, 0, nodes.stderr);
    assert.equal(nodes.stdout.trim().split('\n').length, 6);
    // One member restarts at a time: never two unhealthy, never none answering, the member set unchanged.
    const problems = samples.filter((x) => x.kind === 'unreachable' || (x.kind === 'unhealthy' && x.unhealthy.length > 1) || x.members.join(',') !== CONTROL_PLANES.join(','));
    assert.deepEqual(problems, [], describeSamples(samples));
    timings.renewEtcdUnhealthySamples = samples.filter((x) => x.kind === 'unhealthy').length;
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

  /** The reset's history: each control-plane node's activities all ended before the next one's first began. */
  async function resetOneAtATime(order: string[]): Promise<boolean> {
    const conn = await Connection.connect({ address: `127.0.0.1:${env.KHA_SERVER_PORT}` });
    try {
      const events = (await new Client({ connection: conn }).workflow.getHandle('kha-reset-real').fetchHistory()).events ?? [];
      const nodeOf = new Map<number, string>();
      const span = new Map<string, { first: number; last: number }>();
      for (const e of events) {
        const id = Number(e.eventId);
        const sch = e.activityTaskScheduledEventAttributes;
        if (sch) {
          const node = (JSON.parse(new TextDecoder().decode(sch.input?.payloads?.[0]?.data ?? new Uint8Array())) as { node?: string }).node ?? '';
          nodeOf.set(id, node);
          const sp = span.get(node);
          span.set(node, { first: sp?.first ?? id, last: Math.max(sp?.last ?? id, id) });
        }
        const closed = e.activityTaskCompletedEventAttributes ?? e.activityTaskFailedEventAttributes ?? e.activityTaskTimedOutEventAttributes ?? e.activityTaskCanceledEventAttributes;
        const node = closed ? nodeOf.get(Number(closed.scheduledEventId)) : undefined;
        if (node !== undefined) span.get(node)!.last = id;
      }
      return order.every((n, i) => i === 0 || (span.has(n) && span.has(order[i - 1]!) && span.get(order[i - 1]!)!.last < span.get(n)!.first));
    } finally {
      await conn.close();
    }
  }

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
    const problems = teardownProblems(samples, [CONTROL_PLANES, ['k8scp-01', 'k8scp-02'], ['k8scp-01']], { sequential: await resetOneAtATime(['k8scp-03', 'k8scp-02', 'k8scp-01']) });
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
