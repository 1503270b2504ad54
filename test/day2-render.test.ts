// The day-2 scripts (etcd snapshot, member list, certificate check, cluster state) pass shellcheck and bash -n, and their
// parsers take what etcdctl, etcdutl and kubeadm print and refuse what they do not.
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { spawnSync } from 'node:child_process';
import { mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { certsOutput, parseCertExpiration, renderCertsCheck, renderCertsRenew } from '../src/render/day2-certs';
import { memberByPeerURL, parseEtcdMembers, renderEtcdMemberList } from '../src/render/day2-etcd-members';
import { SNAPSHOT_PATH, parseSnapshotReport, renderEtcdSnapshot, renderEtcdSnapshotCleanup } from '../src/render/day2-etcd-backup';
import { parseClusterState, renderClusterState } from '../src/render/day2-cluster-state';
import { loadOrFail, ROOT } from './render-helpers';

const seed = loadOrFail(join(ROOT, 'examples', 'seed-cluster.yaml'));
const cp = seed.spec.nodes.find((n) => n.role === 'control-plane')!;

test('day-2 scripts pass shellcheck and bash -n, and start with set -euo pipefail', () => {
  const dir = mkdtempSync(join(tmpdir(), 'kha-day2-'));
  try {
    const scripts = [renderEtcdSnapshot(seed, cp), renderEtcdSnapshotCleanup(seed, cp), renderEtcdMemberList(seed, cp), renderCertsCheck(seed, cp), renderCertsRenew(seed, cp), renderClusterState(seed, cp)];
    const paths = scripts.map((s) => {
      assert.match(s.content, /^#!\/usr\/bin\/env bash\n(#.*\n)+set -euo pipefail\n/, s.name);
      assert.equal(s.sensitiveOutput, false, s.name);
      const p = join(dir, `${s.name}.sh`);
      writeFileSync(p, s.content);
      const n = spawnSync('bash', ['-n', p], { encoding: 'utf8' });
      assert.equal(n.status, 0, `bash -n ${s.name}: ${n.stderr}`);
      return p;
    });
    const sc = spawnSync('shellcheck', ['--severity=style', '--format=gcc', ...paths], { encoding: 'utf8' });
    assert.equal(sc.error, undefined, 'shellcheck must be installed');
    assert.equal(sc.stdout + sc.stderr, '', 'shellcheck findings');
  } finally {
    rmSync(dir, { recursive: true, force: true });
  }
});

test('parseEtcdMembers: hex IDs, an unstarted member, exact peer URLs; decimal IDs refused', () => {
  const json = JSON.stringify({
    header: { cluster_id: 'd1cfaf999eb97a2a' },
    members: [
      { ID: 'bdae9bbc11dd390d', name: 'cp-1', peerURLs: ['https://192.0.2.11:2380'], clientURLs: ['https://192.0.2.11:2379'] },
      { ID: '2a', peerURLs: ['https://192.0.2.1:2380'], isLearner: true },
    ],
  });
  const m = parseEtcdMembers(json);
  assert.deepEqual(m[1], { id: '2a', name: '', peerURLs: ['https://192.0.2.1:2380'], clientURLs: [], isLearner: true, started: false });
  assert.equal(m[0]!.started, true);
  assert.equal(memberByPeerURL(m, 'https://192.0.2.1:2380')?.id, '2a');
  assert.equal(memberByPeerURL(m, 'https://192.0.2.1:238'), undefined);
  assert.throws(() => parseEtcdMembers('{"members":[{"ID":13668033151171901709}]}'), /etcd member 0 has no hex ID/);
  assert.throws(() => parseEtcdMembers('Error: context deadline exceeded'), /not JSON/);
});

test('parseCertExpiration: rows of certificates and authorities after kubeadm’s own lines; a missing file has no date', () => {
  // kubeadm's own lines before the object are dropped by the script; parseCertExpiration skips them too.
  const json = JSON.stringify(
      {
        kind: 'CertificateExpirationInfo',
        apiVersion: 'output.kubeadm.k8s.io/v1alpha3',
        certificates: [
          { name: 'super-admin.conf', expirationDate: null, residualTime: 0, externallyManaged: false, missing: true },
          { name: 'apiserver', expirationDate: '2027-12-02T01:51:48Z', residualTime: 31535995, externallyManaged: false, caName: 'ca', missing: false },
        ],
        certificateAuthorities: [{ name: 'ca', expirationDate: '2036-11-29T01:51:48Z', residualTime: 315359989, externallyManaged: false, missing: false }],
      },
      null,
      4,
    );
  const out = `noise\nKHA-CERTS ${json.replace(/\n/g, '')}\n`;
  const rows = parseCertExpiration(certsOutput(out)!);
  assert.deepEqual(rows, [
    { name: 'super-admin.conf', kind: 'certificate', expires: null, residualSeconds: 0, externallyManaged: false, missing: true },
    { name: 'apiserver', kind: 'certificate', expires: '2027-12-02T01:51:48.000Z', residualSeconds: 31535995, authority: 'ca', externallyManaged: false, missing: false },
    { name: 'ca', kind: 'authority', expires: '2036-11-29T01:51:48.000Z', residualSeconds: 315359989, externallyManaged: false, missing: false },
  ]);
  assert.deepEqual(parseCertExpiration(`[check-expiration] Reading configuration...\n${json}`), rows);
  assert.equal(certsOutput('noise\n'), undefined);
  assert.throws(() => certsOutput('KHA-CERTS {"kind":'), /KHA-CERTS line is not JSON/);
  assert.throws(() => parseCertExpiration('{"kind":"Status"}'), /expected kind CertificateExpirationInfo/);
  assert.throws(() => parseCertExpiration('{"kind":"CertificateExpirationInfo","certificates":[]}'), /no certificateAuthorities array/);
  assert.throws(() => parseCertExpiration('CERTIFICATE   EXPIRES'), /printed no JSON object/);
});

test('parseSnapshotReport: the fixed path, a SHA-256 and etcdutl’s integers, or an error naming the field', () => {
  const ok = { path: SNAPSHOT_PATH, size: 20480, sha256: 'a'.repeat(64), status: { hash: 470549039, revision: 7, totalKey: 3, totalSize: 20480, version: '3.6.0' } };
  assert.deepEqual(parseSnapshotReport(JSON.stringify(ok)), ok);
  assert.throws(() => parseSnapshotReport(JSON.stringify({ ...ok, path: '/etc/passwd' })), /path "\/etc\/passwd" is not/);
  assert.throws(() => parseSnapshotReport(JSON.stringify({ ...ok, sha256: 'zz' })), /sha256 is not a SHA-256 digest/);
  assert.throws(() => parseSnapshotReport(JSON.stringify({ ...ok, status: { ...ok.status, revision: -1 } })), /status\.revision is not a non-negative integer/);
});

test('parseClusterState: a member\'s report with nodes, hex members and healthy endpoints; no member; malformed refused', () => {
  const report = {
    member: true,
    kubernetesVersion: 'v1.35.1',
    nodes: [{ name: 'cp-1', address: '192.0.2.11', ready: true, controlPlane: true, kubeletVersion: 'v1.35.1' }, { name: 'w-1', address: '192.0.2.21', ready: false, controlPlane: false, kubeletVersion: 'v1.35.1', unschedulable: true }],
    etcd: { header: { cluster_id: 'd1cfaf999eb97a2a' }, members: [{ ID: 'bdae9bbc11dd390d', name: 'cp-1', peerURLs: ['https://192.0.2.11:2380'], clientURLs: ['https://192.0.2.11:2379'] }] },
    healthyEndpoints: ['https://192.0.2.11:2379'],
    vipHolder: 'cp-1',
  };
  const s = parseClusterState(`noise\nKHA-CLUSTER-STATE ${JSON.stringify(report)}\n`, 'cp-1')!;
  assert.equal(s.via, 'cp-1');
  assert.deepEqual(s.nodes.map((n) => [n.name, n.ready, n.controlPlane, n.unschedulable]), [['cp-1', true, true, false], ['w-1', false, false, true]]);
  assert.deepEqual(s.members.map((m) => [m.id, m.started]), [['bdae9bbc11dd390d', true]]);
  assert.deepEqual([s.healthyEndpoints, s.vipHolder], [['https://192.0.2.11:2379'], 'cp-1']);
  assert.equal(parseClusterState('KHA-CLUSTER-STATE {"member":false}', 'cp-4'), undefined);
  assert.throws(() => parseClusterState('KHA-CLUSTER-STATE {"member":true,"nodes":[]}', 'cp-1'), /no Kubernetes version/);
  assert.throws(() => parseClusterState(`KHA-CLUSTER-STATE ${JSON.stringify({ ...report, etcd: { members: [{ ID: 1 }] } })}`, 'cp-1'), /no hex ID/);
  assert.throws(() => parseClusterState('nothing', 'cp-1'), /no KHA-CLUSTER-STATE line/);
});
