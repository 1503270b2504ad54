// kha upgrade's scripts: shellcheck and bash -n clean, and run under bash with the commands they call replaced by
// functions (dpkg-query, apt-get, apt-mark, kubectl, systemctl, kubeadm) that answer like a node before and after
// its upgrade: what they install, restart and report, and that a node already at the target changes nothing.
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { spawnSync } from 'node:child_process';
import { mkdtempSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { renderUncordon, renderUpgradeKubeadm, renderUpgradeKubelet, renderUpgradeRepository } from '../src/render/upgrade';
import { readResult } from '../src/render/result';
import { loadOrFail, ROOT } from './render-helpers';

const seed = loadOrFail(join(ROOT, 'examples', 'seed-cluster.yaml'));
const cp = seed.spec.nodes.find((n) => n.role === 'control-plane')!;
const worker = seed.spec.nodes.find((n) => n.role === 'worker')!;
const facts = { kubernetesVersion: 'v1.35.4', packageVersion: '1.35.4-1.1' };

test('upgrade scripts pass shellcheck and bash -n; kubeadm upgrade apply only on a control-plane node', () => {
  const dir = mkdtempSync(join(tmpdir(), 'kha-upgrade-'));
  try {
    const scripts = [renderUpgradeRepository(seed, cp, '1.35'), renderUpgradeKubeadm(seed, cp, facts, 'apply'), renderUpgradeKubeadm(seed, cp, facts, 'node'), renderUpgradeKubeadm(seed, worker, facts, 'node'), renderUpgradeKubelet(seed, worker, facts), renderUncordon(seed, cp, worker.name)];
    const paths = scripts.map((s, i) => {
      assert.match(s.content, /^#!\/usr\/bin\/env bash\n(#.*\n)+set -euo pipefail\n/, s.name);
      const p = join(dir, `${i}-${s.name}.sh`);
      writeFileSync(p, s.content);
      assert.equal(spawnSync('bash', ['-n', p]).status, 0, s.name);
      return p;
    });
    const sc = spawnSync('shellcheck', ['--severity=style', '--format=gcc', ...paths], { encoding: 'utf8' });
    assert.equal(sc.error, undefined, 'shellcheck must be installed');
    assert.equal(sc.stdout + sc.stderr, '', 'shellcheck findings');
    assert.match(scripts[1]!.content, /kubeadm upgrade plan "\$target" >&2/);
    assert.match(scripts[1]!.content, /kubeadm upgrade apply "\$target" --yes >&2/);
    assert.doesNotMatch(scripts[2]!.content, /upgrade apply/);
    assert.throws(() => renderUpgradeKubeadm(seed, worker, facts, 'apply'), /kubeadm upgrade apply runs on a control-plane node/);
    assert.throws(() => renderUpgradeKubelet(seed, worker, { ...facts, packageVersion: '1.35.4; rm -rf /' }), /not a package version/);
    assert.throws(() => renderUpgradeRepository(seed, cp, '1.35/../x'), /not a minor/);
  } finally {
    rmSync(dir, { recursive: true, force: true });
  }
});

/** Runs a script with `fns` (name -> bash body) in place of commands; returns stdout, stderr, status and the call log. */
function runWith(content: string, fns: Record<string, string>): { stdout: string; stderr: string; status: number | null; calls: string[] } {
  const dir = mkdtempSync(join(tmpdir(), 'kha-upgrade-run-'));
  try {
    const log = join(dir, 'calls');
    writeFileSync(log, '');
    const env: NodeJS.ProcessEnv = { PATH: process.env.PATH, CALLS: log, STATE: dir };
    for (const [name, body] of Object.entries(fns)) env[`BASH_FUNC_${name}%%`] = `() { echo "${name} $*" >> "$CALLS"; ${body}\n}`;
    const p = join(dir, 'script.sh');
    writeFileSync(p, content);
    const r = spawnSync('bash', [p], { env, encoding: 'utf8' });
    return { stdout: r.stdout, stderr: r.stderr, status: r.status, calls: readFileSync(log, 'utf8').split('\n').filter(Boolean) };
  } finally {
    rmSync(dir, { recursive: true, force: true });
  }
}

/** A node whose packages are at `installed` until apt-get installs (then at the target), its Node reporting the version it runs. */
function node(installed: string): Record<string, string> {
  return {
    'dpkg-query': `if [ -e "$STATE/installed" ]; then echo -n ${facts.packageVersion}; else echo -n ${installed}; fi`,
    'apt-get': 'if [ "$1" = install ]; then touch "$STATE/installed"; fi',
    'apt-mark': 'if [ "$1" = showhold ]; then printf "kubeadm\\nkubectl\\nkubelet\\n"; fi',
    systemctl: 'if [ "$1" = restart ]; then touch "$STATE/restarted"; fi',
    kubectl: `if [ -e "$STATE/restarted" ] || [ ${installed} = ${facts.packageVersion} ]; then echo -n ${facts.kubernetesVersion}; else echo -n v1.34.4; fi`,
  };
}

test('kubelet-upgrade: installs kubelet and kubectl at the target, restarts the kubelet until the Node reports it; at the target it does nothing', () => {
  const s = renderUpgradeKubelet(seed, worker, facts).content;
  const r = runWith(s, node('1.34.4-1.1'));
  assert.equal(r.status, 0, r.stderr);
  assert.ok(r.calls.includes(`apt-get install -y -q --allow-change-held-packages kubelet=${facts.packageVersion} kubectl=${facts.packageVersion}`), r.calls.join('\n'));
  assert.ok(r.calls.includes('systemctl restart kubelet'), r.calls.join('\n'));
  assert.deepEqual(readResult(r.stdout, 'STEP'), { changes: 2, already: false });
  assert.deepEqual(readResult(r.stdout, 'PACKAGES'), { kubeadm: facts.packageVersion, kubelet: facts.packageVersion, kubectl: facts.packageVersion });

  const again = runWith(s, node(facts.packageVersion));
  assert.equal(again.status, 0, again.stderr);
  assert.deepEqual(readResult(again.stdout, 'STEP'), { changes: 0, already: true });
  assert.equal(again.calls.filter((c) => c.startsWith('apt-get') || c.startsWith('systemctl')).length, 0, again.calls.join('\n'));
});

test('kubeadm-upgrade on a control-plane node at the target changes nothing; on a worker it runs kubeadm upgrade node', () => {
  const at = { ...node(facts.packageVersion), kubeadm: `if [ "$1" = version ]; then echo ${facts.kubernetesVersion}; fi`, grep: 'return 0', sed: `echo ${facts.kubernetesVersion}`, head: 'cat' };
  const r = runWith(renderUpgradeKubeadm(seed, cp, facts, 'apply').content, at);
  assert.equal(r.status, 0, r.stderr);
  assert.deepEqual(readResult(r.stdout, 'STEP'), { changes: 0, already: true });
  assert.equal(r.calls.filter((c) => c.startsWith('kubeadm upgrade')).length, 0, r.calls.join('\n'));

  const w = runWith(renderUpgradeKubeadm(seed, worker, facts, 'node').content, { ...node('1.34.4-1.1'), kubeadm: `if [ "$1" = version ]; then echo ${facts.kubernetesVersion}; fi` });
  assert.equal(w.status, 0, w.stderr);
  assert.ok(w.calls.includes(`apt-get install -y -q --allow-change-held-packages kubeadm=${facts.packageVersion}`), w.calls.join('\n'));
  assert.ok(w.calls.some((c) => /^kubeadm upgrade node/.test(c)), w.calls.join('\n'));
  assert.deepEqual(readResult(w.stdout, 'STEP'), { changes: 2, already: false });
});

test('uncordon: a cordoned Node is uncordoned, a schedulable one left alone', () => {
  const s = renderUncordon(seed, cp, worker.name).content;
  const cordoned = runWith(s, { kubectl: 'if [ "$2" = get ] || [ "$3" = get ]; then echo -n true; fi' });
  assert.equal(cordoned.status, 0, cordoned.stderr);
  assert.ok(cordoned.calls.some((c) => c.includes(`uncordon ${worker.name}`)), cordoned.calls.join('\n'));
  assert.deepEqual(readResult(cordoned.stdout, 'STEP'), { changes: 1, already: false });
  const free = runWith(s, { kubectl: 'echo -n' });
  assert.equal(free.status, 0, free.stderr);
  assert.equal(free.calls.filter((c) => c.includes('uncordon')).length, 0);
  assert.deepEqual(readResult(free.stdout, 'STEP'), { changes: 0, already: true });
});
