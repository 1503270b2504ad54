// `kha plan` as a user runs it: the printed order, and --out writing every script and file; the same for each
// other operation of the CLI table (--operation), from the phase lists its workflow runs.
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { spawnSync } from 'node:child_process';
import { existsSync, mkdtempSync, readdirSync, readFileSync, rmSync, statSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { planFacts, renderPhase } from '../src/render';
import { loadOrFail, ROOT } from './render-helpers';
import { OPERATION_KINDS } from '../src/cli/operations';
import { UPGRADE } from '../src/phases/upgrade';
import { renderUpgradeKubeadm, renderUpgradeKubelet, renderUpgradeRepository } from '../src/render/upgrade';
import { findNode } from '../src/spec/types';

const KHA = join(ROOT, 'dist', 'src', 'cli', 'main.js');
const seed = join(ROOT, 'examples', 'seed-cluster.yaml');

function kha(...args: string[]) {
  const r = spawnSync(process.execPath, [KHA, ...args], { encoding: 'utf8', cwd: ROOT });
  return { status: r.status, stdout: r.stdout, stderr: r.stderr };
}

test('kha plan prints the stages in order with their nodes and mode, and says deploy resolves the minor', () => {
  const r = kha('plan', seed);
  assert.equal(r.status, 0, r.stderr);
  const lines = r.stdout.split('\n');
  assert.match(r.stdout, /Kubernetes 1\.35: this plan uses v1\.35\.0 \(packages 1\.35\.0-1\.1\); deploy resolves 1\.35 to its newest patch on k8scp-01/);
  const stage = (title: string) => lines.find((l) => l.includes(title)) ?? '';
  assert.match(stage('Host preparation'), /parallel\s+k8scp-01 k8scp-02 k8scp-03 k8swn-01 k8swn-02 k8swn-03$/);
  assert.match(stage('kubeadm init'), /single node\s+k8scp-01$/);
  assert.match(stage('Control-plane joins'), /one at a time\s+k8scp-02 k8scp-03$/);
  assert.match(stage('Approval before workers'), /waits for approval/);
  assert.match(stage('Worker joins'), /parallel\s+k8swn-01 k8swn-02 k8swn-03$/);
  const order = ['Preflight', 'Host preparation', 'Container runtime', 'kube-vip on the first', 'kubeadm init', 'Calico', 'Control-plane joins', 'Approval before workers', 'Worker joins', 'Verification'];
  const at = order.map((t) => lines.findIndex((l) => l.includes(t)));
  assert.deepEqual([...at].sort((a, b) => a - b), at, 'stages in deployment order');
  assert.ok(at.every((i) => i >= 0));
  assert.match(r.stdout, /control-plane-join\/mint-credentials \(on a healthy control-plane node\)/);
});

test('kha plan --out writes every script (0755) and file for all 6 seed nodes', () => {
  const dir = mkdtempSync(join(tmpdir(), 'kha-plan-'));
  try {
    const r = kha('plan', seed, '--out', dir);
    assert.equal(r.status, 0, r.stderr);
    const nodes = readdirSync(dir).filter((d) => statSync(join(dir, d)).isDirectory()).sort();
    assert.deepEqual(nodes, ['k8scp-01', 'k8scp-02', 'k8scp-03', 'k8swn-01', 'k8swn-02', 'k8swn-03']);
    assert.deepEqual(readdirSync(join(dir, 'k8scp-01')).sort(), [
      '01-preflight', '02-host-prep', '03-container-runtime', '04-packages', '05-kube-vip', '06-kubeadm-init', '07-calico', '10-verify', '11-reset',
    ]);
    assert.deepEqual(readdirSync(join(dir, 'k8scp-02')).sort(), ['01-preflight', '02-host-prep', '03-container-runtime', '04-packages', '05-kube-vip', '08-control-plane-join', '11-reset']);
    assert.deepEqual(readdirSync(join(dir, 'k8swn-03')).sort(), ['01-preflight', '02-host-prep', '03-container-runtime', '04-packages', '09-worker-join', '11-reset']);
    const c = loadOrFail(seed);
    const facts = planFacts(c).facts;
    let scripts = 0;
    for (const node of nodes) {
      for (const phaseDir of readdirSync(join(dir, node))) {
        const phase = phaseDir.slice(3) as Parameters<typeof renderPhase>[2];
        const rendered = renderPhase(c, node, phase, facts);
        for (const s of rendered.scripts) {
          const p = join(dir, node, phaseDir, `${s.name}.sh`);
          assert.equal(readFileSync(p, 'utf8'), s.content, p);
          assert.equal(statSync(p).mode & 0o777, 0o755, p);
          scripts++;
        }
        for (const f of rendered.files) {
          const p = join(dir, node, phaseDir, 'files', `${f.path.slice(1)}${f.variant ? `.${f.variant}` : ''}`);
          assert.equal(readFileSync(p, 'utf8'), f.content, p);
        }
      }
    }
    assert.match(r.stdout, new RegExp(`Wrote ${scripts} scripts and \\d+ files for 6 nodes to `));
    assert.ok(existsSync(join(dir, 'k8scp-01', '06-kubeadm-init', 'files', 'etc', 'kubernetes', 'kha', 'kubeadm-init.yaml')));
    assert.ok(existsSync(join(dir, 'k8scp-01', '05-kube-vip', 'files', 'etc', 'kubernetes', 'manifests', 'kube-vip.yaml.super-admin')));
    assert.ok(existsSync(join(dir, 'k8swn-01', '03-container-runtime', 'files', 'etc', 'containerd', 'config.toml.containerd-2.x')));
    assert.equal(readFileSync(join(dir, 'plan.txt'), 'utf8'), r.stdout.slice(0, r.stdout.indexOf('\nWrote ')));
  } finally {
    rmSync(dir, { recursive: true, force: true });
  }
});

test('kha plan --node and --phase narrow the plan and the output', () => {
  const dir = mkdtempSync(join(tmpdir(), 'kha-plan-'));
  try {
    const r = kha('plan', seed, '--node', 'k8scp-02', '--phase', 'control-plane-join', '--out', dir);
    assert.equal(r.status, 0, r.stderr);
    assert.match(r.stdout, /Control-plane joins\s+one at a time\s+k8scp-02$/m);
    assert.doesNotMatch(r.stdout, /Host preparation|Worker joins/);
    assert.deepEqual(readdirSync(dir).sort(), ['k8scp-02', 'plan.txt']);
    assert.deepEqual(readdirSync(join(dir, 'k8scp-02')), ['08-control-plane-join']);
    assert.deepEqual(readdirSync(join(dir, 'k8scp-02', '08-control-plane-join')).sort(), ['etcd-check.sh', 'files', 'join.sh', 'label-node.sh', 'mint-credentials.sh']);
  } finally {
    rmSync(dir, { recursive: true, force: true });
  }
});

test('kha plan refuses bad arguments and invalid files with exit code 2', () => {
  const badNode = kha('plan', seed, '--node', 'nope');
  assert.equal(badNode.status, 2);
  assert.match(badNode.stderr, /no node named "nope".*\(nodes: k8scp-01, /);
  const badPhase = kha('plan', seed, '--phase', 'nope');
  assert.equal(badPhase.status, 2);
  assert.match(badPhase.stderr, /unknown phase "nope"/);
  const wrongNode = kha('plan', seed, '--node', 'k8swn-01', '--phase', 'kubeadm-init');
  assert.equal(wrongNode.status, 2);
  assert.match(wrongNode.stderr, /phase kubeadm-init does not run on k8swn-01/);
  assert.equal(kha('plan').status, 2);
  const dir = mkdtempSync(join(tmpdir(), 'kha-plan-'));
  try {
    const bad = join(dir, 'bad.yaml');
    writeFileSync(bad, readFileSync(seed, 'utf8').replace('interface: enp1s0                 #', 'interfaec: enp1s0                 #'));
    const r = kha('plan', bad, '--out', join(dir, 'out'));
    assert.equal(r.status, 2);
    assert.match(r.stderr, /bad\.yaml:\d+:\d+: /);
    assert.equal(existsSync(join(dir, 'out')), false, 'nothing written for an invalid file');
  } finally {
    rmSync(dir, { recursive: true, force: true });
  }
});

test('kha plan shows the VIP waits inside the switch script and the teardown in the order reset runs it', () => {
  const r = kha('plan', seed);
  assert.equal(r.status, 0, r.stderr);
  // The kube-vip switch waits for the VIP itself: no separate verify/vip-livez steps are planned.
  assert.doesNotMatch(r.stdout, /vip-livez/);
  const init = r.stdout.slice(r.stdout.indexOf('kubeadm init'), r.stdout.indexOf('Calico'));
  assert.match(init, /kubeadm-init\/init\n\s+kube-vip\/switch-admin-conf\n/);
  // kha reset: each node leaves the cluster first (from a healthy control-plane node), then is reset.
  const teardown = r.stdout.slice(r.stdout.indexOf('Teardown (kha reset)'));
  assert.match(teardown, /Reset workers\s+parallel\s+k8swn-01 k8swn-02 k8swn-03\n\s+reset\/remove-node \(on a healthy control-plane node\)\n\s+reset\/reset\n/);
  assert.match(teardown, /Reset control-plane nodes\s+one at a time\s+k8scp-03 k8scp-02 k8scp-01\n/);
  // A failed join's compensation runs the same scripts the other way round.
  assert.match(r.stdout, /Compensation of a failed join \(control-plane-join, worker-join\).*\n\s+reset\/reset\n\s+reset\/remove-node/);
});

/** Every script under `dir`, by path relative to it. */
function scriptsUnder(dir: string): string[] {
  const out: string[] = [];
  const walk = (d: string) => {
    for (const e of readdirSync(d, { withFileTypes: true })) {
      if (e.isDirectory()) walk(join(d, e.name));
      else if (e.name.endsWith('.sh')) out.push(join(d, e.name).slice(dir.length + 1));
    }
  };
  walk(dir);
  return out.sort();
}

test('kha plan --operation upgrade prints its phases from the list upgradeCluster runs, and --out writes the scripts its activities render', () => {
  const dir = mkdtempSync(join(tmpdir(), 'kha-plan-'));
  try {
    const r = kha('plan', seed, '--operation', 'upgrade', '--out', dir);
    assert.equal(r.status, 0, r.stderr);
    const lines = r.stdout.split('\n');
    assert.match(lines[0]!, /^Plan for cluster seed \(.*seed-cluster\.yaml\): upgrade \(kha upgrade\)$/);
    const titles = lines.filter((l) => /^ ?\d+\. /.test(l)).map((l) => l.replace(/^ ?\d+\. /, '').split(/\s{2,}/)[0]);
    assert.deepEqual(titles, UPGRADE.phases.map((p) => p.title));
    const at = (title: string) => lines.find((l) => l.includes(`. ${title}`)) ?? '';
    assert.match(at('Upgrade control plane'), /one at a time\s+k8scp-01 k8scp-02 k8scp-03$/);
    assert.match(at('Upgrade workers'), /parallel, at most 1 at a time\s+k8swn-01 k8swn-02 k8swn-03$/);
    assert.match(r.stdout, /remove\/drain \(on a healthy control-plane node\)\n\s+upgrade\/kubelet-upgrade/);
    assert.match(r.stdout, /· waits for approve-workers on every node: kubelets are never newer than the API servers/);
    assert.deepEqual(scriptsUnder(join(dir, 'k8scp-01')), [
      '01-upgrade-check/cluster-state.sh', '02-etcd-snapshot/etcd-snapshot-cleanup.sh', '02-etcd-snapshot/etcd-snapshot.sh', '03-repository/upgrade-repository.sh',
      '04-control-plane-upgrade/drain.sh', '04-control-plane-upgrade/kubeadm-upgrade.sh', '04-control-plane-upgrade/kubelet-upgrade.sh', '04-control-plane-upgrade/uncordon.sh',
      '07-upgrade-verify/cluster-state.sh',
    ]);
    assert.deepEqual(scriptsUnder(join(dir, 'k8swn-02')), ['03-repository/upgrade-repository.sh', '06-worker-upgrade/drain.sh', '06-worker-upgrade/kubeadm-upgrade.sh', '06-worker-upgrade/kubelet-upgrade.sh', '06-worker-upgrade/uncordon.sh']);
    // The same renderers the activities call: kubeadm upgrade apply on the first control-plane node only.
    const c = loadOrFail(seed);
    const facts = planFacts(c).facts;
    const read = (p: string) => readFileSync(join(dir, p), 'utf8');
    assert.equal(read('k8scp-01/04-control-plane-upgrade/kubeadm-upgrade.sh'), renderUpgradeKubeadm(c, findNode(c, 'k8scp-01'), facts, 'apply').content);
    assert.equal(read('k8scp-02/04-control-plane-upgrade/kubeadm-upgrade.sh'), renderUpgradeKubeadm(c, findNode(c, 'k8scp-02'), facts, 'node').content);
    assert.equal(read('k8swn-02/06-worker-upgrade/kubelet-upgrade.sh'), renderUpgradeKubelet(c, findNode(c, 'k8swn-02'), facts).content);
    assert.equal(read('k8swn-02/03-repository/upgrade-repository.sh'), renderUpgradeRepository(c, findNode(c, 'k8swn-02'), '1.35').content);
    assert.equal(read('plan.txt'), r.stdout.slice(0, r.stdout.indexOf('\nWrote ')));
  } finally {
    rmSync(dir, { recursive: true, force: true });
  }
});

test('kha plan --operation writes the scripts of every operation of the CLI table; the day-2 ones parse and pass shellcheck', () => {
  const dir = mkdtempSync(join(tmpdir(), 'kha-plan-'));
  try {
    const paths: string[] = [];
    for (const kind of OPERATION_KINDS) {
      const args = kind === 'remove' ? ['--node', 'k8scp-02'] : [];
      const out = join(dir, kind);
      const r = kha('plan', seed, '--operation', kind, ...args, '--out', out);
      assert.equal(r.status, 0, `${kind}: ${r.stderr}`);
      const scripts = scriptsUnder(out);
      assert.ok(scripts.length > 0, `${kind}: no script written`);
      assert.match(r.stdout, new RegExp(`Wrote ${scripts.length} scripts and \\d+ files for \\d+ nodes? to `), kind);
      // The deployment's renderers (deploy, reset, apply) are checked script by script in render.test.ts.
      if (!['deploy', 'reset', 'apply'].includes(kind)) paths.push(...scripts.map((s) => join(out, s)));
    }
    const distinct = new Map<string, string>();
    for (const p of paths) distinct.set(readFileSync(p, 'utf8'), p);
    for (const p of distinct.values()) {
      assert.match(readFileSync(p, 'utf8'), /^#!\/usr\/bin\/env bash\n(.*\n)*set -euo pipefail\n/, p);
      const n = spawnSync('bash', ['-n', p], { encoding: 'utf8' });
      assert.equal(n.status, 0, `bash -n ${p}: ${n.stderr}`);
    }
    const sc = spawnSync('shellcheck', ['--severity=style', '--format=gcc', ...distinct.values()], { encoding: 'utf8', maxBuffer: 64 << 20 });
    assert.equal(sc.error, undefined, 'shellcheck must be installed');
    assert.equal(sc.stdout + sc.stderr, '', 'shellcheck findings');
    // A worker's removal has no kube-vip or etcd member step; a control-plane node's has both.
    assert.deepEqual(readdirSync(join(dir, 'remove', 'k8scp-02')).sort(), ['01-remove-check', '02-drain', '03-kube-vip-remove', '04-etcd-member', '05-delete-node', '06-reset-host']);
    const worker = kha('plan', seed, '--operation', 'remove', '--node', 'k8swn-01');
    assert.equal(worker.status, 0, worker.stderr);
    assert.doesNotMatch(worker.stdout, /Remove kube-vip|Remove the etcd member|kube-vip-remove|etcd-remove-member/);
    assert.match(worker.stdout, /Drain\s+single node\s+k8swn-01\n\s+remove\/drain \(on a healthy control-plane node\)/);
  } finally {
    rmSync(dir, { recursive: true, force: true });
  }
});

test('kha plan --operation narrows to a node and a phase id, and refuses what it cannot plan with exit code 2', () => {
  const r = kha('plan', seed, '--operation', 'restore', '--node', 'k8swn-01');
  assert.equal(r.status, 0, r.stderr);
  assert.match(r.stdout, /Stand-ins for what the run learns: restore run RUN/);
  assert.deepEqual(r.stdout.split('\n').filter((l) => /^ ?\d+\. /.test(l)).map((l) => l.trim().split(/\s{2,}/)), [['9. Restart components', 'parallel', 'k8swn-01']]);
  // A node's plan: its phases only, no gate.
  const w = kha('plan', seed, '--operation', 'upgrade', '--node', 'k8swn-01');
  assert.equal(w.status, 0, w.stderr);
  assert.deepEqual(w.stdout.split('\n').filter((l) => /^ ?\d+\. /.test(l)).map((l) => l.trim().split(/\s{2,}/)[0]), ['3. Package repository', '6. Upgrade workers']);
  const one = kha('plan', seed, '--operation', 'reset', '--phase', 'reset-control-plane');
  assert.equal(one.status, 0, one.stderr);
  assert.match(one.stdout, /Reset control-plane nodes\s+one at a time\s+k8scp-03 k8scp-02 k8scp-01\n/);
  assert.doesNotMatch(one.stdout, /Reset workers/);
  const noNode = kha('plan', seed, '--operation', 'remove');
  assert.equal(noNode.status, 2);
  assert.match(noNode.stderr, /--operation remove needs --node NAME, the node to remove/);
  const unknown = kha('plan', seed, '--operation', 'upgrad');
  assert.equal(unknown.status, 2);
  assert.match(unknown.stderr, /unknown operation "upgrad".*upgrade/);
  const badPhase = kha('plan', seed, '--operation', 'backup', '--phase', 'host-prep');
  assert.equal(badPhase.status, 2);
  assert.match(badPhase.stderr, /unknown phase "host-prep" of backup \(phases: etcd-backup\)/);
  assert.match(kha('plan', '--help').stdout, new RegExp(`KIND: ${OPERATION_KINDS.join(', ')}\\.`));
});
