// Package sources: plain http only where the file says insecure: true, repository keys taken only with
// the pinned fingerprint. Validation through the real CLI; the rendered scripts on lab hosts (root).
import { after, before, describe, test } from 'node:test';
import assert from 'node:assert/strict';
import { spawnSync } from 'node:child_process';
import { mkdtempSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { parse, stringify } from 'yaml';
import { Lab } from '../src/lab/lab';
import { loadClusterText } from '../src/spec/load';
import type { ClusterSpec } from '../src/spec/types';
import { planFacts, renderPhase } from '../src/render';
import type { AnyPhaseName } from '../src/render/types';
import { DOCKER_KEY_FINGERPRINT, KUBERNETES_KEY_FINGERPRINT } from '../src/spec/sources';
import { subnet } from './helpers/subnet';

const work = mkdtempSync('/var/tmp/kha-lab-sources-');
let lab: Lab;

/** The lab's cluster file with a change applied to its parsed YAML. */
function specText(tweak: (spec: Record<string, any>) => void): string {
  const doc = parse(lab.specYaml({ name: 'sources' })) as { spec: Record<string, any> };
  tweak(doc.spec);
  return stringify(doc);
}

function cluster(tweak: (spec: Record<string, any>) => void = () => undefined): ClusterSpec {
  const r = loadClusterText(specText(tweak), 'sources.yaml');
  assert.ok(r.cluster, JSON.stringify(r.errors));
  return r.cluster;
}

function validate(text: string): { status: number | null; stderr: string; file: string } {
  const file = join(work, `v-${Math.random().toString(36).slice(2)}.yaml`);
  writeFileSync(file, text);
  const r = spawnSync(process.execPath, [join(__dirname, '../src/cli/main.js'), 'validate', file], { encoding: 'utf8' });
  return { status: r.status, stderr: r.stderr, file };
}

async function runPhase(c: ClusterSpec, host: string, phase: AnyPhaseName) {
  const s = renderPhase(c, host, phase, planFacts(c).facts).scripts[0]!;
  return lab.exec(host, 'bash -s', { input: s.content, timeoutMs: 300_000 });
}

async function keyringFingerprints(host: string, path: string): Promise<string> {
  const r = await lab.exec(host, `gpg --batch --show-keys --with-colons ${path} | awk -F: '$1 == "fpr" { print $10 }'`);
  return r.stdout.trim();
}

describe('package sources (lab of 2 hosts)', () => {
  before(async () => {
    lab = await Lab.up({ dir: join(work, 'lab'), controlPlanes: 1, workers: 1, subnetIndex: subnet(81), rebootDelayMs: 300 });
  });
  after(async () => {
    await lab?.down();
  });

  test('plain http repositories, package and manifest URLs are refused unless the file says insecure: true', () => {
    const cases: Array<{ tweak: (s: Record<string, any>) => void; field: string; flag: string }> = [
      { tweak: (s) => (s.packages = { repository: 'http://mirror.example/k8s' }), field: 'spec.packages.repository', flag: 'spec.packages.insecure' },
      {
        tweak: (s) => (s.containerRuntime = { containerd: { packageSource: 'docker', dockerRepository: 'http://mirror.example/docker' } }),
        field: 'spec.containerRuntime.containerd.dockerRepository',
        flag: 'spec.containerRuntime.containerd.insecure',
      },
      {
        tweak: (s) => (s.networking = { calico: { installMethod: 'manifest', manifestUrl: 'http://mirror.example/calico.yaml' } }),
        field: 'spec.networking.calico.manifestUrl',
        flag: 'spec.networking.calico.insecure',
      },
    ];
    for (const c of cases) {
      const bad = validate(specText(c.tweak));
      assert.equal(bad.status, 2, bad.stderr);
      assert.match(bad.stderr, new RegExp(`^${bad.file}:\\d+:\\d+: ${c.field.replace(/\./g, '\\.')}: plain http is refused: anyone on the path can replace what the nodes download from http://mirror\\.example/\\S+; use https, or set ${c.flag.replace(/\./g, '\\.')}: true for a mirror you trust$`, 'm'));
      const allowed = validate(specText((s) => {
        c.tweak(s);
        const block = c.flag.split('.').slice(1, -1).reduce((o: Record<string, any>, k) => o[k], s);
        block.insecure = true;
      }));
      assert.equal(allowed.status, 0, allowed.stderr);
    }
  });

  test('docker through cri-dockerd needs the package checksum', () => {
    const r = validate(specText((s) => (s.containerRuntime = { type: 'docker', criDockerd: { enabled: true } })));
    assert.equal(r.status, 2);
    assert.match(r.stderr, new RegExp(`^${r.file}:\\d+:\\d+: spec\\.containerRuntime\\.criDockerd: sha256 is required: the SHA-256 of the cri-dockerd \\.deb`, 'm'));
  });

  test('the Kubernetes repository key is taken only with the pinned fingerprint; a wrong keyring is replaced', async () => {
    const [cp, wk] = [lab.nodes[0]!.name, lab.nodes[1]!.name];
    const keyring = '/etc/apt/keyrings/kubernetes-apt-keyring.gpg';
    // A fingerprint that is not the one the repository serves: refused before anything is installed.
    const other = 'AAAA BBBB CCCC DDDD EEEE  FFFF 0000 1111 2222 3333';
    const refused = await runPhase(cluster((s) => (s.packages = { keyFingerprint: other })), wk, 'packages');
    assert.notEqual(refused.code, 0);
    assert.match(refused.stderr, new RegExp(`kha: error: the key at https://pkgs\\.k8s\\.io/core:/stable:/v1\\.35/deb/Release\\.key has fingerprint ${KUBERNETES_KEY_FINGERPRINT}, not the pinned AAAABBBBCCCCDDDDEEEEFFFF0000111122223333 \\(spec\\.packages\\.keyFingerprint\\); refusing it`));
    assert.equal((await lab.exec(wk, `test -e ${keyring} || echo absent; command -v kubeadm || echo no-kubeadm`)).stdout, 'absent\nno-kubeadm\n');

    // Some other key already in the keyring (an earlier, wrong download): the pinned one replaces it.
    const planted = await lab.exec(cp, `install -d /etc/apt/keyrings && curl -fsSL https://example.org/other/Release.key | gpg --dearmor > ${keyring}`);
    assert.equal(planted.code, 0, planted.stderr);
    assert.notEqual(await keyringFingerprints(cp, keyring), KUBERNETES_KEY_FINGERPRINT);
    const r = await runPhase(cluster(), cp, 'packages');
    assert.equal(r.code, 0, r.stderr.slice(-2000));
    assert.equal(await keyringFingerprints(cp, keyring), KUBERNETES_KEY_FINGERPRINT);
    assert.match((await lab.exec(cp, 'kubeadm version -o short')).stdout, /^v1\.35\.\d+$/m);
  });

  test("Docker's repository key is pinned the same way", async () => {
    const wk = lab.nodes[1]!.name;
    const docker = (fpr?: string) => cluster((s) => (s.containerRuntime = { containerd: { packageSource: 'docker', ...(fpr ? { keyFingerprint: fpr } : {}) } }));
    const refused = await runPhase(docker('1234567890123456789012345678901234567890'), wk, 'container-runtime');
    assert.notEqual(refused.code, 0);
    assert.match(refused.stderr, new RegExp(`the key at https://download\\.docker\\.com/linux/debian/gpg has fingerprint ${DOCKER_KEY_FINGERPRINT}, not the pinned 1234567890123456789012345678901234567890 \\(spec\\.containerRuntime\\.containerd\\.keyFingerprint\\)`));
    assert.equal((await lab.exec(wk, 'test -e /etc/apt/keyrings/docker.asc || echo absent')).stdout, 'absent\n');
    const r = await runPhase(docker(), wk, 'container-runtime');
    assert.equal(r.code, 0, r.stderr.slice(-2000));
    assert.equal(await keyringFingerprints(wk, '/etc/apt/keyrings/docker.asc'), DOCKER_KEY_FINGERPRINT);
    assert.match((await lab.exec(wk, "dpkg-query -W -f='${Version}' containerd.io")).stdout, /debian/);
  });
});
