// kha restore on the lab's real tier (real kubeadm, kubelet, etcd, API servers, kube-vip stand-in, containerd):
// 3 control-plane nodes deployed with kha deploy, a ConfigMap made before kha backup and one after; a restore
// without --confirm and without a terminal is refused (exit 2) with nothing changed on the hosts; kha restore
// --confirm brings back the snapshot: the later ConfigMap is gone, the earlier one is there, the real etcdctl
// lists 3 started voting members, all healthy, the API answers through the VIP, the old data stays on every node,
// and no chunk of the snapshot's bytes is in the backup's or the restore's workflow history. Then kha schedule
// backup on the same cluster: Temporal's trigger starts a run whose snapshot etcdutl verifies (0600, retention
// kept, none of its bytes in that run's history), and kha schedule delete removes the schedule.
import { after, before, describe, it } from 'node:test';
import assert from 'node:assert/strict';
import { execFileSync, spawnSync } from 'node:child_process';
import { mkdirSync, readdirSync, readFileSync, rmSync, statSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { basename, join } from 'node:path';
import { Client, Connection } from '@temporalio/client';
import type { BackupResult } from '../src/workflows/backup-cluster';
import { Lab } from '../src/lab/lab';
import { findRealBinaries, kubeBinDir } from '../src/lab/real/tier';
import { findTemporalCli } from '../src/temporal/cli-path';
import { cliEnv, freePort, kha } from './cli-run';
import { subnet } from './helpers/subnet';
import { EtcdCtl } from './helpers/etcd';

const SUBNET = subnet(114);
const LONG = 1_500_000;
const NAME = 'rsreal';
const CPS = ['k8scp-01', 'k8scp-02', 'k8scp-03'];
const timings: Record<string, number> = {};

describe('kha restore on real Kubernetes components (lab real tier, 3+0)', () => {
  const dir = join(tmpdir(), `kha-real-restore-${SUBNET}`);
  const file = join(dir, `${NAME}.yaml`);
  const kubeconfig = join(dir, 'admin.conf');
  const tier = findRealBinaries();
  let kubectlBin = '';
  let lab: Lab;
  let env: NodeJS.ProcessEnv;
  let port = 0;
  let etcd: EtcdCtl;
  let snapshot = '';

  const kubectl = (args: string[]) => {
    const r = spawnSync(kubectlBin, ['--kubeconfig', kubeconfig, '--server', `https://${lab.vip}:6443`, '--request-timeout=10s', ...args], { encoding: 'utf8' });
    return { code: r.status, stdout: r.stdout, stderr: r.stderr };
  };
  const configMaps = () => {
    const r = kubectl(['get', 'configmaps', '-n', 'default', '-l', 'kha-test=restore', '-o', 'jsonpath={.items[*].metadata.name}']);
    assert.equal(r.code, 0, r.stderr);
    return r.stdout.trim().split(/\s+/).filter(Boolean).sort();
  };
  const makeConfigMap = (name: string) => {
    const made = kubectl(['create', 'configmap', name, '-n', 'default', '--from-literal=made=yes']);
    assert.equal(made.code, 0, made.stderr);
    assert.equal(kubectl(['label', 'configmap', name, '-n', 'default', 'kha-test=restore']).code, 0);
  };
  /** What a restore changes on a host: the manifests in place, no kha-restore directories, the data where it was. */
  const hostState = async (h: string) => (await lab.exec(h, 'ls /etc/kubernetes/manifests; ls -d /etc/kubernetes/kha-restore /var/lib/kha/restore /var/lib/etcd.kha-* 2>/dev/null || true; stat -c %i /var/lib/etcd')).stdout;
  const history = (id: string) => {
    const r = spawnSync(findTemporalCli() ?? process.env.TEMPORAL_CLI_PATH ?? 'temporal', ['workflow', 'show', '--workflow-id', id, '--address', `127.0.0.1:${port}`, '--output', 'json'], { encoding: 'utf8', maxBuffer: 256 * 1024 * 1024 });
    assert.equal(r.status, 0, r.stderr);
    return r.stdout;
  };

  /** No chunk of the file's bytes is in any of the workflows' histories. */
  const notInHistory = (file: string, ids: string[]) => {
    const data = readFileSync(file);
    // A window of varied bytes (a bbolt file has long runs of zeros, whose base64 is in any history).
    let mid = Math.floor(data.length / 2);
    while (mid + 64 < data.length && new Set(data.subarray(mid, mid + 60)).size < 30) mid += 61;
    assert.ok(mid + 64 < data.length, 'no varied 60 bytes in the snapshot');
    // Three alignments: base64 of a payload that contains the bytes holds one of these whatever the offset.
    const chunks = [0, 1, 2].map((o) => data.subarray(mid + o, mid + o + 60).toString('base64').slice(4, -4));
    chunks.push(data.subarray(mid, mid + 32).toString('hex'));
    for (const id of ids) {
      const h = history(id);
      assert.ok(h.length > 1000, `${id}: no history`);
      for (const c of chunks) assert.equal(h.includes(c), false, `${id}: a chunk of the snapshot is in the history`);
    }
  };

  before(async () => {
    await Lab.downDir(join(dir, 'lab'));
    rmSync(dir, { recursive: true, force: true });
    mkdirSync(dir, { recursive: true });
    const t0 = Date.now();
    lab = await Lab.up({ dir: join(dir, 'lab'), controlPlanes: 3, workers: 0, subnetIndex: SUBNET, rebootDelayMs: 500, kube: 'real' });
    timings.labUp = Date.now() - t0;
    const version = lab.realKubeVersions().at(-1)!;
    kubectlBin = join(kubeBinDir(tier, version), 'kubectl');
    writeFileSync(file, lab.specYaml({ name: NAME, kubernetesVersion: version.split('.').slice(0, 2).join('.') }));
    port = await freePort();
    env = cliEnv({ XDG_STATE_HOME: join(dir, 'state'), KHA_SERVER_PORT: String(port), KHA_UI_PORT: String(await freePort()) });
  });

  after(async () => {
    await kha(['server', '--stop'], env).catch(() => undefined);
    await lab?.down();
    rmSync(dir, { recursive: true, force: true });
    process.stderr.write(`real-restore timings (ms): ${JSON.stringify(timings)}\n`);
  });

  it('kha deploy --auto-approve, a ConfigMap, kha backup, another ConfigMap', async () => {
    const r = await kha(['deploy', file, '--auto-approve', '--kubeconfig', kubeconfig], env, LONG);
    timings.deploy = r.ms;
    assert.equal(r.code, 0, r.stdout + r.stderr);
    assert.match(r.stdout, /3 nodes Ready, 3 etcd members/);
    etcd = await EtcdCtl.fromLab(lab, tier.etcdDir, join(dir, 'etcd-pki'), 'k8scp-01');
    makeConfigMap('kha-before');
    const b = await kha(['backup', NAME], env, LONG);
    timings.backup = b.ms;
    assert.equal(b.code, 0, b.stdout + b.stderr);
    const backups = join(dir, 'state', 'kha', NAME, 'backups');
    const files = readdirSync(backups).filter((f) => f.endsWith('.db'));
    assert.equal(files.length, 1, files.join(', '));
    snapshot = files[0]!;
    makeConfigMap('kha-after');
    assert.deepEqual(configMaps(), ['kha-after', 'kha-before']);
  });

  it('without --confirm and without a terminal: exit 2, nothing changed on the hosts', async () => {
    const before = await Promise.all(CPS.map(hostState));
    const r = await kha(['restore', NAME, snapshot], env);
    assert.equal(r.code, 2, r.stdout + r.stderr);
    assert.match(r.stderr, new RegExp(`refusing to restore ${NAME} without confirmation: standard input is not a terminal; add --confirm ${NAME}`));
    const wrong = await kha(['restore', NAME, snapshot, '--confirm', 'other'], env);
    assert.equal(wrong.code, 2, wrong.stdout + wrong.stderr);
    assert.deepEqual(await Promise.all(CPS.map(hostState)), before);
    for (const s of before) assert.match(s, /^etcd\.yaml\nkube-apiserver\.yaml\n/m);
    assert.deepEqual(configMaps(), ['kha-after', 'kha-before']);
  });

  it('a snapshot outside the backups directory is refused as InvalidSpec before any host changes', async () => {
    const outside = join(dir, 'etcd-20260101T000000.000Z-k8scp-01.db');
    writeFileSync(outside, readFileSync(join(dir, 'state', 'kha', NAME, 'backups', snapshot)));
    const before = await Promise.all(CPS.map(hostState));
    const r = await kha(['restore', NAME, outside, '--confirm', NAME], env, LONG);
    assert.equal(r.code, 1, r.stdout + r.stderr);
    assert.match(r.stdout + r.stderr, /not a snapshot kha backup took of rsreal; kha restore reads only/);
    assert.deepEqual(await Promise.all(CPS.map(hostState)), before);
  });

  it('kha restore --confirm: the ConfigMap made after the backup is gone, 3 started voting members all healthy, the API answers through the VIP', async () => {
    const r = await kha(['restore', NAME, snapshot, '--confirm', NAME], env, LONG);
    timings.restore = r.ms;
    assert.equal(r.code, 0, r.stdout + r.stderr);
    assert.match(r.stdout, new RegExp(`✔ ${NAME} restored from \\S+${snapshot.replace(/\./g, '\\.')} \\(sha256 [0-9a-f]{64}, etcd revision \\d+\\): 3 etcd members started and healthy`));
    assert.deepEqual(configMaps(), ['kha-before']);
    const members = await etcd.members();
    assert.ok(Array.isArray(members), String(members));
    assert.deepEqual(members.map((m) => `${m.name} ${m.status} learner=${m.isLearner}`).sort(), CPS.map((n) => `${n} started learner=false`));
    for (const u of etcd.endpoints) assert.ok(await etcd.healthy(u), `${u} is not healthy`);
    const livez = kubectl(['get', '--raw', '/livez']);
    assert.equal(livez.code, 0, livez.stderr);
    assert.equal(livez.stdout.trim(), 'ok');
    const nodes = kubectl(['get', 'nodes', '-o', 'jsonpath={.items[*].metadata.name}']);
    assert.deepEqual(nodes.stdout.trim().split(/\s+/).sort(), CPS);
    // The old data and the moved manifests stay on every node; the copy of the snapshot is 0600.
    for (const h of CPS) {
      const s = (await lab.exec(h, 'ls -d /var/lib/etcd.kha-restore-*/member; ls /etc/kubernetes/kha-restore/*/ | wc -l; stat -c %a /var/lib/kha/restore/*/snapshot.db; ls /etc/kubernetes/manifests')).stdout;
      assert.match(s, /^\/var\/lib\/etcd\.kha-restore-\d{8}T\d{6}Z-[0-9a-f]{8}\/member\n0\n600\n/, `${h}: ${s}`);
      assert.match(s, /etcd\.yaml\nkube-apiserver\.yaml/);
    }
  });

  it('no chunk of the snapshot is in the backup or restore workflow history', () => {
    notInHistory(join(dir, 'state', 'kha', NAME, 'backups', snapshot), [`kha-backup-${NAME}`, `kha-restore-${NAME}`]);
  });

  it('kha schedule backup: a run Temporal triggers takes a snapshot etcdutl verifies, 0600, retention kept, none of it in the run\'s history; kha schedule delete', async () => {
    const backups = join(dir, 'state', 'kha', NAME, 'backups');
    const id = `kha-schedule-backup-${NAME}`;
    const made = await kha(['schedule', 'backup', NAME, '--every', '1d', '--retain', '1'], env, LONG);
    assert.equal(made.code, 0, made.stdout + made.stderr);
    assert.match(made.stdout, new RegExp(`^created schedule ${id}: backup of ${NAME} every 1d, next run \\d{4}-\\d\\d-\\d\\dT00:00:00`, 'm'));
    const listed = await kha(['schedule', 'list', NAME], env);
    assert.equal(listed.code, 0, listed.stdout + listed.stderr);
    assert.match(listed.stdout, new RegExp(`^${id}\\s+backup\\s+1d\\s+\\S+\\s+-\\s+none yet$`, 'm'));
    const connection = await Connection.connect({ address: `127.0.0.1:${port}` });
    try {
      const client = new Client({ connection });
      const h = client.schedule.getHandle(id);
      await h.trigger();
      let run: { workflowId: string; firstExecutionRunId: string } | undefined;
      for (let i = 0; !run; i++) {
        run = (await h.describe()).info.recentActions.at(-1)?.action.workflow;
        assert.ok(run || i < 600, `schedule ${id} took no action after its trigger`);
        if (!run) await new Promise((r) => setTimeout(r, 100));
      }
      assert.match(run.workflowId, new RegExp(`^${id}-\\d{4}-`));
      const t0 = Date.now();
      // The embedded server's background worker (started by kha schedule) runs it.
      const r = (await client.workflow.getHandle(run.workflowId, run.firstExecutionRunId).result()) as BackupResult;
      timings.scheduledBackup = Date.now() - t0;
      assert.equal(r.cluster, NAME);
      assert.ok(CPS.includes(r.node), r.node);
      // Retention 1: the snapshot of kha backup is gone, the new one is the only file.
      assert.deepEqual(readdirSync(backups).filter((f) => f.endsWith('.db')), [basename(r.path)]);
      assert.deepEqual(r.removed, [join(backups, snapshot)]);
      assert.equal(statSync(r.path).mode & 0o777, 0o600);
      const status = JSON.parse(execFileSync(join(tier.etcdDir, 'etcdutl'), ['snapshot', 'status', r.path, '-w', 'json'], { encoding: 'utf8' })) as { revision: number; totalKey: number };
      assert.equal(status.revision, r.revision);
      assert.equal(status.totalKey, r.totalKeys);
      notInHistory(r.path, [run.workflowId]);
    } finally {
      await connection.close();
    }
    const del = await kha(['schedule', 'delete', NAME, 'backup'], env);
    assert.equal(del.code, 0, del.stdout + del.stderr);
    assert.match(del.stdout, new RegExp(`^deleted schedule ${id}`, 'm'));
    const none = await kha(['schedule', 'list', NAME], env);
    assert.match(none.stdout, new RegExp(`^no kha schedules of ${NAME} on `, 'm'));
  });
});
