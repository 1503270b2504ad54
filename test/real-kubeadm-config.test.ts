// Every kubeadm configuration kha renders (init for the first control plane, join for the other control planes
// and the workers), for every example and render fixture, checked by the real `kubeadm config validate` of each
// Kubernetes minor the real tier built (scripts/kube-build.sh). A file whose own version is one of those minors
// is checked as written; every file is also rendered for each built patch, so the v1beta4 shape is checked
// against the oldest and the newest built kubeadm.
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { spawnSync } from 'node:child_process';
import { mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { basename, join } from 'node:path';
import { kubeadmInitConfig } from '../src/render/kubeadm';
import { joinConfigTemplate } from '../src/render/join';
import { kubeMinor } from '../src/spec/types';
import type { ClusterSpec } from '../src/spec/types';
import type { RenderFacts } from '../src/render/types';
import { findRealBinaries, kubeBinDir } from '../src/lab/real/tier';
import { allSpecFiles, loadOrFail } from './render-helpers';

const tier = findRealBinaries();
const work = mkdtempSync(join(tmpdir(), 'kha-kubeadm-validate-'));
process.on('exit', () => rmSync(work, { recursive: true, force: true }));

// Values of the right shape where the join script puts the secrets it mints.
const JOIN_VALUES: Record<string, string> = {
  KHA_JOIN_TOKEN: 'abcdef.0123456789abcdef',
  KHA_CA_CERT_HASH: `sha256:${'a'.repeat(64)}`,
  KHA_CERTIFICATE_KEY: 'b'.repeat(64),
};

function configs(c: ClusterSpec, facts: RenderFacts): Array<[string, string]> {
  const cps = c.spec.nodes.filter((n) => n.role === 'control-plane');
  const worker = c.spec.nodes.find((n) => n.role === 'worker');
  const out: Array<[string, string]> = [['init', kubeadmInitConfig(c, cps[0]!, facts)]];
  const fill = (t: string) => t.replace(/\$\{([A-Z_]+)\}/g, (_m, k: string) => JOIN_VALUES[k] ?? `\${${k}}`);
  if (cps[1]) out.push(['join control-plane', fill(joinConfigTemplate(c, cps[1], facts))]);
  if (worker) out.push(['join worker', fill(joinConfigTemplate(c, worker, facts))]);
  return out;
}

function validate(version: string, text: string, label: string): void {
  const file = join(work, `${label.replace(/[^a-z0-9.-]+/gi, '_')}.yaml`);
  writeFileSync(file, text);
  const r = spawnSync(join(kubeBinDir(tier, version), 'kubeadm'), ['config', 'validate', '--config', file], { encoding: 'utf8' });
  assert.equal(r.status, 0, `kubeadm v${version} config validate refused ${label}:\n${r.stderr}\n--- config ---\n${text}`);
  assert.match(r.stdout, /^ok\s*$/m, `${label}: ${r.stdout}`);
}

const files = allSpecFiles();

test('the real tier built at least two Kubernetes minors for these checks', () => {
  assert.ok(new Set(tier.kubeVersions.map(kubeMinor)).size >= 2, `built: ${tier.kubeVersions.join(', ')}`);
});

for (const f of files) {
  test(`${basename(f)}: every kubeadm config kha renders validates with real kubeadm`, () => {
    const c = loadOrFail(f);
    const own = tier.kubeVersions.filter((v) => kubeMinor(v) === kubeMinor(c.spec.kubernetes.version));
    const asWritten = c.spec.kubernetes.version.split('.').length === 3 ? own.filter((v) => v === c.spec.kubernetes.version.replace(/^v/, '')) : own.slice(-1);
    const targets = new Set([...asWritten, tier.kubeVersions[0]!, tier.kubeVersions.at(-1)!]);
    for (const v of targets) {
      const facts: RenderFacts = { kubernetesVersion: `v${v}`, packageVersion: `${v}-1.1` };
      for (const [kind, text] of configs(c, facts)) validate(v, text, `${basename(f)} ${kind} v${v}`);
    }
    const written = c.spec.kubernetes.version.replace(/^v/, '');
    if (!own.length && written.split('.').length === 3) {
      // Older than any built kubeadm (a v1beta3 file below 1.31): the oldest built one still reads v1beta3 but
      // refuses to deploy that version, so only the version line is moved to it.
      const oldest = tier.kubeVersions[0]!;
      for (const [kind, text] of configs(c, { kubernetesVersion: `v${written}`, packageVersion: `${written}-1.1` })) {
        validate(oldest, text.replace(`kubernetesVersion: v${written}`, `kubernetesVersion: v${oldest}`), `${basename(f)} ${kind} as written (v${written})`);
      }
    }
  });
}
