// Day-2 building blocks against a real 3-node control plane (lab real tier: real kubeadm, etcd, API servers),
// deployed once by `kha deploy` and shared by every test here: the etcd member list by ID and peer URL, the
// etcd backup copied to the worker's state directory, and kubeadm's certificate expiry check. The activities
// run in a mock activity context, which records every heartbeat they send.
import { after, before, describe, it } from 'node:test';
import assert from 'node:assert/strict';
import { execFileSync } from 'node:child_process';
import { createHash, X509Certificate } from 'node:crypto';
import { existsSync, mkdirSync, readdirSync, readFileSync, rmSync, statSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { MockActivityEnvironment } from '@temporalio/testing';
import { Lab } from '../src/lab/lab';
import { findRealBinaries } from '../src/lab/real/tier';
import { loadClusterOrThrow } from '../src/spec/load';
import type { ClusterSpec } from '../src/spec/types';
import { certificateExpiry, etcdBackup, etcdMembers } from '../src/activities/day2';
import { memberByPeerURL } from '../src/render/day2-etcd-members';
import { SNAPSHOT_DIR } from '../src/render/day2-etcd-backup';
import { cliEnv, freePort, kha } from './cli-run';
import { EtcdCtl } from './helpers/etcd';
import { subnet } from './helpers/subnet';

const SUBNET = subnet(51);
const LONG = 1_500_000;
const CONTROL_PLANES = ['k8scp-01', 'k8scp-02', 'k8scp-03'];

/** Runs an activity in a mock context; returns its result and every heartbeat it sent. */
async function run<A, R>(fn: (a: A) => Promise<R>, arg: A): Promise<{ result: R; heartbeats: unknown[] }> {
  const env = new MockActivityEnvironment();
  const heartbeats: unknown[] = [];
  env.on('heartbeat', (d: unknown) => heartbeats.push(d));
  const result = (await env.run(fn, arg)) as R;
  return { result, heartbeats };
}

describe('day-2 building blocks on a real 3-node control plane (lab real tier)', () => {
  const dir = join(tmpdir(), `kha-day2-${SUBNET}`);
  const file = join(dir, 'day2.yaml');
  const state = join(dir, 'state');
  const tier = findRealBinaries();
  const etcdutl = join(tier.etcdDir, 'etcdutl');
  let lab: Lab;
  let env: NodeJS.ProcessEnv;
  let cluster: ClusterSpec;
  let etcd: EtcdCtl;
  const savedState = process.env.XDG_STATE_HOME;

  before(async () => {
    await Lab.downDir(join(dir, 'lab'));
    rmSync(dir, { recursive: true, force: true });
    mkdirSync(dir, { recursive: true });
    lab = await Lab.up({ dir: join(dir, 'lab'), controlPlanes: 3, workers: 0, subnetIndex: SUBNET, rebootDelayMs: 500, kube: 'real' });
    const version = lab.realKubeVersions().at(-1)!;
    writeFileSync(file, lab.specYaml({ name: 'day2', kubernetesVersion: version.split('.').slice(0, 2).join('.') }));
    env = cliEnv({ XDG_STATE_HOME: state, KHA_SERVER_PORT: String(await freePort()), KHA_UI_PORT: String(await freePort()) });
    const r = await kha(['deploy', file, '--auto-approve'], env, LONG);
    assert.equal(r.code, 0, r.stdout + r.stderr);
    cluster = loadClusterOrThrow(file);
    // The activities run in this process: the same state directory as the worker kha started.
    process.env.XDG_STATE_HOME = state;
    etcd = await EtcdCtl.fromLab(lab, tier.etcdDir, join(dir, 'etcd-pki'), 'k8scp-01');
  });

  after(async () => {
    if (savedState === undefined) delete process.env.XDG_STATE_HOME;
    else process.env.XDG_STATE_HOME = savedState;
    await kha(['server', '--stop'], env).catch(() => undefined);
    await lab?.down();
    rmSync(dir, { recursive: true, force: true });
  });

  it('etcdMembers: every member by hex ID and exact peer URL, as the real etcdctl lists them', async () => {
    const { result } = await run(etcdMembers, { cluster });
    assert.equal(result.via, 'k8scp-01');
    const seen = await etcd.members();
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
    const put = await etcd.run(['put', '/kha-test/backup-marker', secret]);
    assert.equal(put.code, 0, put.stderr);
    const t0 = Date.now();
    const { result, heartbeats } = await run(etcdBackup, { cluster, retain: 5 });
    process.stderr.write(`etcdBackup: ${Date.now() - t0} ms, ${result.sizeBytes} bytes, revision ${result.revision}, ${result.totalKeys} keys, ${heartbeats.length} heartbeats\n`);
    assert.equal(result.node, 'k8scp-01');
    assert.equal(result.path.startsWith(join(state, 'kha', 'day2', 'backups') + '/'), true, result.path);
    assert.equal(statSync(result.path).mode & 0o777, 0o600);
    assert.equal(statSync(join(state, 'kha', 'day2', 'backups')).mode & 0o777, 0o700);
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
    const backups = join(state, 'kha', 'day2', 'backups');
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
    const moved = await lab.exec('k8scp-03', 'mv /etc/kubernetes/manifests/etcd.yaml /root/etcd.yaml');
    assert.equal(moved.code, 0, moved.stderr);
    const url = `https://${lab.host('k8scp-03').address}:2379`;
    // The kubelet stops the static pod once its manifest is gone.
    for (let i = 0; i < 180 && (await etcd.healthy(url)); i++) await new Promise((res) => setTimeout(res, 1000));
    assert.equal(await etcd.healthy(url), false, 'etcd on k8scp-03 still answers after its manifest left');
    const { result } = await run(etcdBackup, { cluster, via: ['k8scp-03', 'k8scp-02'], retain: 5 });
    assert.equal(result.node, 'k8scp-02');
    assert.equal(statSync(result.path).mode & 0o777, 0o600);
  });
});
