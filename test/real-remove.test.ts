// kha remove on the lab's real tier (real kubeadm, kubelet, etcd, API servers, kube-vip stand-in, containerd):
// 3 control-plane nodes + 1 worker deployed once with kha deploy, then, in order: the worker removed (its drain
// first held by a PodDisruptionBudget until the timeout asks the operator, who skips the drain); a removal that
// would leave etcd without quorum refused before any change; a control-plane node that does not lead etcd
// removed with --force while its link is down; and the first control-plane node, the etcd leader, removed
// (leadership moved, its member removed by ID, its data gone), after which the VIP still answers and kha backup
// and kha certs start from the next control plane, the only one kha recorded as left (and etcdBackup passes
// over the one whose link is down). Checked with the real kubectl over the VIP and the real etcdctl.
import { after, before, describe, it } from 'node:test';
import assert from 'node:assert/strict';
import { spawnSync } from 'node:child_process';
import { mkdirSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { MockActivityEnvironment } from '@temporalio/testing';
import { Lab } from '../src/lab/lab';
import { etcdBackup } from '../src/activities/day2';
import { loadClusterOrThrow } from '../src/spec/load';
import { findRealBinaries, kubeBinDir } from '../src/lab/real/tier';
import { cliEnv, freePort, kha } from './cli-run';
import { subnet } from './helpers/subnet';
import { EtcdCtl } from './helpers/etcd';
import { sleep } from '../src/util/sleep';

const SUBNET = subnet(113);
const LONG = 1_500_000;
const NAME = 'rmreal';
const CPS = ['k8scp-01', 'k8scp-02', 'k8scp-03'];
const WORKER = 'k8swn-01';
const timings: Record<string, number> = {};


describe('kha remove on real Kubernetes components (lab real tier, 3+1)', () => {
  const dir = join(tmpdir(), `kha-real-remove-${SUBNET}`);
  const file = join(dir, `${NAME}.yaml`);
  const kubeconfig = join(dir, 'admin.conf');
  const tier = findRealBinaries();
  let kubectlBin = '';
  let kubeadmBin = '';
  let version = '';
  let lab: Lab;
  let env: NodeJS.ProcessEnv;
  let etcd: EtcdCtl;
  /** Member IDs by name as etcd listed them after the deploy. */
  const ids = new Map<string, string>();

  const kubectl = (args: string[], input?: string) => {
    const r = spawnSync(kubectlBin, ['--kubeconfig', kubeconfig, '--server', `https://${lab.vip}:6443`, '--request-timeout=10s', ...args], { encoding: 'utf8', input });
    return { code: r.status, stdout: r.stdout, stderr: r.stderr };
  };
  const nodeNames = () => {
    const r = kubectl(['get', 'nodes', '-o', 'jsonpath={.items[*].metadata.name}']);
    assert.equal(r.code, 0, r.stderr);
    return r.stdout.trim().split(/\s+/).filter(Boolean).sort();
  };
  const url = (h: string) => `https://${lab.host(h).address}:2379`;
  const members = async (from: string[]) => {
    const m = await etcd.members(from.map(url));
    assert.ok(Array.isArray(m), `no member list: ${String(m)}`);
    return m;
  };
  /** The member that leads, as the members still listed report it (hex IDs from endpoint status). */
  const leader = async (among: string[]): Promise<string | undefined> => {
    for (const h of among) {
      const r = await etcd.run(['endpoint', 'status', '-w', 'fields'], [url(h)]);
      const f = (k: string) => new RegExp(`^"${k}" : (\\d+)$`, 'm').exec(r.stdout)?.[1];
      if (r.code === 0 && f('Leader') && f('Leader') === f('MemberID')) return h;
    }
    return undefined;
  };
  const moveLeaderTo = async (to: string, among: string[]) => {
    const from = await leader(among);
    assert.ok(from, 'no etcd leader');
    if (from === to) return;
    const r = await etcd.run(['move-leader', ids.get(to)!], [url(from)]);
    assert.equal(r.code, 0, r.stdout + r.stderr);
    for (let i = 0; i < 60 && (await leader(among)) !== to; i++) await sleep(500);
    assert.equal(await leader(among), to);
  };
  /** What kubeadm reset and kha's cleanup leave: no file under /etc/kubernetes, no kubelet, no container. */
  const assertResetHost = async (h: string) => {
    const r = await lab.exec(h, 'find /etc/kubernetes -type f; echo "kubelet=$(systemctl is-active kubelet || true)"; echo "containers=$(crictl ps -q 2>/dev/null | wc -l)"; ls -A /var/lib/etcd 2>/dev/null || true');
    assert.equal(r.stdout.trim(), 'kubelet=inactive\ncontainers=0', `${h}: ${r.stdout}${r.stderr}`);
  };

  before(async () => {
    await Lab.downDir(join(dir, 'lab'));
    rmSync(dir, { recursive: true, force: true });
    mkdirSync(dir, { recursive: true });
    const t0 = Date.now();
    lab = await Lab.up({ dir: join(dir, 'lab'), controlPlanes: 3, workers: 1, subnetIndex: SUBNET, rebootDelayMs: 500, kube: 'real' });
    timings.labUp = Date.now() - t0;
    version = lab.realKubeVersions().at(-1)!;
    kubectlBin = join(kubeBinDir(tier, version), 'kubectl');
    kubeadmBin = join(kubeBinDir(tier, version), 'kubeadm');
    writeFileSync(file, lab.specYaml({ name: NAME, kubernetesVersion: version.split('.').slice(0, 2).join('.') }));
    env = cliEnv({ XDG_STATE_HOME: join(dir, 'state'), KHA_SERVER_PORT: String(await freePort()), KHA_UI_PORT: String(await freePort()) });
  });

  after(async () => {
    await kha(['server', '--stop'], env).catch(() => undefined);
    await lab?.down();
    rmSync(dir, { recursive: true, force: true });
    process.stderr.write(`real-remove timings (ms): ${JSON.stringify(timings)}\n`);
  });

  it('kha deploy --auto-approve: 4 nodes Ready, 3 etcd members', async () => {
    const r = await kha(['deploy', file, '--auto-approve', '--kubeconfig', kubeconfig], env, LONG);
    timings.deploy = r.ms;
    assert.equal(r.code, 0, r.stdout + r.stderr);
    assert.match(r.stdout, /4 nodes Ready, 3 etcd members/);
    etcd = await EtcdCtl.fromLab(lab, tier.etcdDir, join(dir, 'etcd-pki'), 'k8scp-01');
    for (const m of await members(CPS)) ids.set(m.name, m.id);
    assert.deepEqual([...ids.keys()].sort(), CPS);
  });

  it('the worker: a PodDisruptionBudget holds the drain until its timeout asks the operator; kha skip goes on; Node gone, host reset', async () => {
    const pause = spawnSync(kubeadmBin, ['config', 'images', 'list', '--kubernetes-version', `v${version}`], { encoding: 'utf8' }).stdout.split('\n').find((l) => /\/pause:/.test(l))!.trim();
    const manifest = [
      'apiVersion: apps/v1',
      'kind: Deployment',
      'metadata: { name: kha-pdb, namespace: default }',
      'spec:',
      '  replicas: 1',
      '  selector: { matchLabels: { app: kha-pdb } }',
      '  template:',
      '    metadata: { labels: { app: kha-pdb } }',
      '    spec:',
      `      nodeSelector: { kubernetes.io/hostname: ${WORKER} }`,
      `      containers: [{ name: pause, image: "${pause}", imagePullPolicy: IfNotPresent }]`,
      '---',
      'apiVersion: policy/v1',
      'kind: PodDisruptionBudget',
      'metadata: { name: kha-pdb, namespace: default }',
      'spec: { minAvailable: 1, selector: { matchLabels: { app: kha-pdb } } }',
      '',
    ].join('\n');
    const applied = kubectl(['apply', '-f', '-'], manifest);
    assert.equal(applied.code, 0, applied.stderr);
    const running = () => kubectl(['get', 'pods', '-l', 'app=kha-pdb', '-o', 'jsonpath={range .items[*]}{.spec.nodeName} {.status.phase}{"\\n"}{end}']).stdout.trim();
    for (let i = 0; i < 180 && running() !== `${WORKER} Running`; i++) await sleep(1000);
    assert.equal(running(), `${WORKER} Running`);

    const held = await kha(['remove', NAME, WORKER, '--drain-timeout', '20'], env, LONG);
    timings.workerDrainHeld = held.ms;
    assert.equal(held.code, 11, held.stdout + held.stderr);
    assert.match(held.stderr, /DrainTimeout: drain of k8swn-01 did not finish within 20 s \(a PodDisruptionBudget may forbid an eviction\)/);
    // The budget held: the pod still runs where it ran, the node is cordoned, nothing after the drain ran.
    assert.equal(running(), `${WORKER} Running`);
    assert.equal(kubectl(['get', 'node', WORKER, '-o', 'jsonpath={.spec.unschedulable}']).stdout, 'true');
    assert.deepEqual(nodeNames(), [...CPS, WORKER].sort());

    const r = await kha(['skip', NAME, WORKER], env, LONG);
    timings.workerRemove = r.ms;
    assert.equal(r.code, 0, r.stdout + r.stderr);
    assert.match(r.stdout, /^skipped drain: skipped by operator after: DrainTimeout: drain of k8swn-01/m);
    assert.match(r.stdout, /^✔ k8swn-01 removed from rmreal: Node deleted, host reset; skipped: drain$/m);
    assert.match(r.stdout, /^next step: delete k8swn-01 from the cluster file/m);
    assert.deepEqual(nodeNames(), CPS);
    await assertResetHost(WORKER);
    assert.deepEqual((await members(CPS)).map((m) => m.id).sort(), [...ids.values()].sort());
  });

  it('a removal that would leave etcd without quorum is refused before any change', async () => {
    const stopped = await lab.exec('k8scp-03', 'mv /etc/kubernetes/manifests/etcd.yaml /root/etcd.yaml');
    assert.equal(stopped.code, 0, stopped.stderr);
    for (let i = 0; i < 180 && (await etcd.healthy(url('k8scp-03'))); i++) await sleep(1000);
    assert.equal(await etcd.healthy(url('k8scp-03')), false);
    const r = await kha(['remove', NAME, 'k8scp-02', '--yes'], env, LONG);
    assert.equal(r.code, 1, r.stdout + r.stderr);
    assert.match(
      r.stderr,
      /^✖ removal of k8scp-02 from rmreal refused: removing k8scp-02 would leave 2 etcd members with 1 healthy \(k8scp-01; not healthy: k8scp-03\), and 2 members need 2 for a quorum; nothing was changed/m,
    );
    // Nothing changed: the same members, the Node there and schedulable, its kube-vip manifest in place.
    assert.deepEqual((await members(['k8scp-01', 'k8scp-02'])).map((m) => m.id).sort(), [...ids.values()].sort());
    assert.deepEqual(nodeNames(), CPS);
    assert.equal(kubectl(['get', 'node', 'k8scp-02', '-o', 'jsonpath={.spec.unschedulable}']).stdout, '');
    assert.equal((await lab.exec('k8scp-02', 'test -f /etc/kubernetes/manifests/kube-vip.yaml')).code, 0);
    const back = await lab.exec('k8scp-03', 'mv /root/etcd.yaml /etc/kubernetes/manifests/etcd.yaml');
    assert.equal(back.code, 0, back.stderr);
    for (let i = 0; i < 180 && !(await etcd.healthy(url('k8scp-03'))); i++) await sleep(1000);
    assert.equal(await etcd.healthy(url('k8scp-03')), true, 'etcd on k8scp-03 did not come back');
  });

  it('--force on a control-plane node whose link is down (not the etcd leader): its member removed by ID from a healthy member, Node deleted, skipped steps named', async () => {
    await moveLeaderTo('k8scp-01', CPS);
    // Down for longer than the rest of the file: back on the network its kubelet would register the Node again.
    await lab.setUnreachable('k8scp-03', LONG);
    const r = await kha(['remove', NAME, 'k8scp-03', '--force', '--yes'], env, LONG);
    timings.forceRemove = r.ms;
    assert.equal(r.code, 0, r.stdout + r.stderr);
    for (const step of ['drain', 'kube-vip-remove', 'reset-host']) assert.match(r.stdout, new RegExp(`^skipped ${step}: --force: k8scp-03 does not answer SSH, so `, 'm'));
    assert.match(r.stdout, new RegExp(`^✔ k8scp-03 removed from rmreal: etcd member ${ids.get('k8scp-03')} removed, Node deleted; skipped: drain, kube-vip-remove, reset-host$`, 'm'));
    const left = await members(['k8scp-01', 'k8scp-02']);
    assert.deepEqual(left.map((m) => m.id).sort(), [ids.get('k8scp-01'), ids.get('k8scp-02')].sort());
    for (const h of ['k8scp-01', 'k8scp-02']) assert.equal(await etcd.healthy(url(h)), true, `${h} answers no quorum read`);
    assert.deepEqual(nodeNames(), ['k8scp-01', 'k8scp-02']);
    // kha recorded the removal: by name, k8scp-03 is no node of the cluster any more.
    const again = await kha(['remove', NAME, 'k8scp-03', '--force', '--yes'], env, LONG);
    assert.equal(again.code, 2, again.stdout + again.stderr);
    assert.match(again.stderr, /k8scp-03 is not a node of rmreal \(nodes: k8scp-01, k8scp-02\); nothing was done/);
  });

  it('the first control-plane node, the etcd leader: leadership moved, member removed by ID, data gone, host reset; the VIP answers, and kha backup and kha certs by name start from k8scp-02, the only node recorded as left', async () => {
    assert.equal(await leader(['k8scp-01', 'k8scp-02']), 'k8scp-01');
    const r = await kha(['remove', NAME, 'k8scp-01', '--yes'], env, LONG);
    timings.leaderRemove = r.ms;
    assert.equal(r.code, 0, r.stdout + r.stderr);
    assert.match(r.stdout, new RegExp(`^✔ k8scp-01 removed from rmreal: etcd member ${ids.get('k8scp-01')} removed \\(leadership moved to k8scp-02\\), Node deleted, host reset$`, 'm'));
    assert.match(r.stdout, /k8scp-02 is now the first control-plane node operations start from/);
    const left = await members(['k8scp-02']);
    assert.deepEqual(left.map((m) => ({ id: m.id, name: m.name })), [{ id: ids.get('k8scp-02'), name: 'k8scp-02' }]);
    assert.equal(await leader(['k8scp-02']), 'k8scp-02');
    assert.equal(await etcd.healthy(url('k8scp-02')), true);
    await assertResetHost('k8scp-01');
    assert.equal((await lab.exec('k8scp-01', 'test -e /var/lib/etcd/member')).code, 1, 'the removed member keeps its data directory');
    const t0 = Date.now();
    let livez = kubectl(['get', '--raw', '/livez']);
    while ((livez.code !== 0 || livez.stdout.trim() !== 'ok') && Date.now() - t0 < 120_000) {
      await sleep(1000);
      livez = kubectl(['get', '--raw', '/livez']);
    }
    timings.vipBack = Date.now() - t0;
    assert.equal(livez.stdout.trim(), 'ok', `the VIP does not answer /livez: ${livez.stderr}`);
    assert.deepEqual(nodeNames(), ['k8scp-02']);
    // By name, the day-2 commands take the nodes kha recorded after this removal: k8scp-02 is the first (and only)
    // control-plane node, so the backup and the certificate check start there and touch no removed node.
    const b = await kha(['backup', NAME], env, LONG);
    assert.equal(b.code, 0, b.stdout + b.stderr);
    assert.match(b.stdout, /^rmreal: the nodes kha recorded after the removal of k8scp-01 \(kha-remove-rmreal, completed \S+\): control-plane k8scp-02$/m);
    assert.match(b.stdout, /^✔ rmreal backed up from k8scp-02: /m);
    const certs = await kha(['certs', NAME], env, LONG);
    timings.certsAfter = certs.ms;
    assert.equal(certs.code, 0, certs.stdout + certs.stderr);
    const checked = [...new Set(certs.stdout.split('\n').filter((l) => /^k8scp-\d+\s+\S+\s+\d{4}-/.test(l)).map((l) => l.split(/\s+/)[0]))];
    assert.deepEqual(checked, ['k8scp-02']);
    assert.match(certs.stdout, /^✔ rmreal certificates: \d+ on 1 control-plane node\(s\)/m);
    // A control plane that does not answer at all (k8scp-03, its link still down) is passed over the same way.
    const saved = process.env.XDG_STATE_HOME;
    process.env.XDG_STATE_HOME = join(dir, 'state');
    try {
      const snap = (await new MockActivityEnvironment().run(etcdBackup, { cluster: loadClusterOrThrow(file), via: ['k8scp-03', 'k8scp-02'] })) as Awaited<ReturnType<typeof etcdBackup>>;
      assert.equal(snap.node, 'k8scp-02');
    } finally {
      if (saved === undefined) delete process.env.XDG_STATE_HOME;
      else process.env.XDG_STATE_HOME = saved;
    }
  });
});
