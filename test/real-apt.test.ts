// The packages phase on the lab's real tier with the real apt: hosts install kubeadm, kubelet and kubectl from the
// lab's signed repository (src/lab/real/apt-repo.ts) with Debian's apt-get, dpkg and apt-mark, through `kha deploy`.
// Then a repository signed with a key other than the pinned one: apt's own signature check stops the phase.
import { after, before, describe, it } from 'node:test';
import assert from 'node:assert/strict';
import { spawnSync } from 'node:child_process';
import { createHash, randomUUID } from 'node:crypto';
import { existsSync, mkdirSync, mkdtempSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { parse, stringify } from 'yaml';
import { Lab } from '../src/lab/lab';
import { signRelease } from '../src/lab/real/apt-repo';
import { realPaths } from '../src/lab/real/setup';
import { findRealBinaries, kubeBinDir } from '../src/lab/real/tier';
import { cliEnv, freePort, kha } from './cli-run';
import { subnet } from './helpers/subnet';

const SUBNET = subnet(47);
const LONG = 1_500_000;
const timings: Record<string, number> = {};

const minorOf = (v: string) => v.split('.').slice(0, 2).join('.');

async function startLab(dir: string, workers: number): Promise<{ lab: Lab; file: string; version: string; env: NodeJS.ProcessEnv }> {
  await Lab.downDir(join(dir, 'lab'));
  rmSync(dir, { recursive: true, force: true });
  mkdirSync(dir, { recursive: true });
  const t0 = Date.now();
  const lab = await Lab.up({ dir: join(dir, 'lab'), controlPlanes: 1, workers, subnetIndex: SUBNET, rebootDelayMs: 500, kube: 'real' });
  timings[`labUp${workers ? '1+1' : '1+0'}`] = Date.now() - t0;
  const version = lab.realKubeVersions().at(-1)!;
  const file = join(dir, 'real.yaml');
  // This machine's kernel has no IPVS (kube-proxy's default mode here fails "Ipvs not supported"): iptables.
  const spec = parse(lab.specYaml({ name: 'realapt', kubernetesVersion: minorOf(version) })) as { spec: { networking: Record<string, unknown> } };
  spec.spec.networking.kubeProxyMode = 'iptables';
  writeFileSync(file, stringify(spec));
  const env = cliEnv({ XDG_STATE_HOME: join(dir, 'state'), KHA_SERVER_PORT: String(await freePort()), KHA_UI_PORT: String(await freePort()) });
  return { lab, file, version, env };
}

async function stopLab(lab: Lab | undefined, env: NodeJS.ProcessEnv | undefined, dir: string): Promise<void> {
  if (env) await kha(['server', '--stop'], env).catch(() => undefined);
  await lab?.down();
  rmSync(dir, { recursive: true, force: true });
}

/** The armored key as binary OpenPGP, as `gpg --dearmor` writes it (what kha's packages script stores). */
function dearmor(armored: string): Buffer {
  const r = spawnSync('gpg', ['--batch', '--dearmor'], { input: armored });
  assert.equal(r.status, 0, r.stderr?.toString());
  return r.stdout;
}

describe('packages phase with the real apt on the lab real tier (1+1)', () => {
  const dir = join(tmpdir(), `kha-real-apt-${SUBNET}`);
  const tier = findRealBinaries();
  let lab: Lab;
  let file = '';
  let version = '';
  let env: NodeJS.ProcessEnv;

  before(async () => {
    ({ lab, file, version, env } = await startLab(dir, 1));
  });

  after(async () => {
    await stopLab(lab, env, dir);
    process.stderr.write(`real-apt timings (ms): ${JSON.stringify(timings)}\n`);
  });

  it('kha deploy --auto-approve ends with both nodes Ready', async () => {
    const r = await kha(['deploy', file, '--auto-approve', '--kubeconfig', join(dir, 'admin.conf')], env, LONG);
    timings.deploy = r.ms;
    assert.equal(r.code, 0, r.stdout + r.stderr);
    assert.match(r.stdout, /^✔ realapt deployed: Kubernetes v\d+\.\d+\.\d+, 2 nodes Ready/m);
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
});

describe('a lab repository signed by another key (1+0)', () => {
  const dir = join(tmpdir(), `kha-real-apt-${SUBNET}-badsig`);
  let lab: Lab;
  let env: NodeJS.ProcessEnv;
  let file = '';
  let version = '';
  let otherKeyId = '';

  before(async () => {
    ({ lab, file, version, env } = await startLab(dir, 0));
    // Release.key (and the pinned fingerprint) stay the lab's: only the repository's signature changes.
    const home = mkdtempSync(join(tmpdir(), 'kha-test-gpg-'));
    try {
      const g = (args: string[]) => spawnSync('gpg', ['--homedir', home, '--batch', ...args], { encoding: 'utf8' });
      assert.equal(g(['--passphrase', '', '--quick-gen-key', 'not the lab <other@kha.invalid>', 'ed25519', 'sign', '1d']).status, 0);
      otherKeyId = /^pub:(?:[^:]*:){3}([0-9A-F]{16}):/m.exec(g(['--with-colons', '--list-keys']).stdout)![1]!;
      signRelease(join(realPaths(lab.dir).repo, `v${minorOf(version)}`, 'deb'), home);
    } finally {
      spawnSync('gpgconf', ['--homedir', home, '--kill', 'gpg-agent']);
      rmSync(home, { recursive: true, force: true });
    }
  });

  after(async () => {
    await stopLab(lab, env, dir);
  });

  it("kha deploy fails in the packages phase with apt's NO_PUBKEY error, and nothing is installed", async () => {
    const r = await kha(['deploy', file, '--auto-approve', '--kubeconfig', join(dir, 'admin.conf')], env, LONG);
    timings.badSignatureDeploy = r.ms;
    const text = r.stdout + r.stderr;
    assert.notEqual(r.code, 0, text);
    assert.match(text, /packages/, text);
    assert.ok(text.includes(`NO_PUBKEY ${otherKeyId}`), text);
    const q = await lab.exec(lab.nodes[0]!, 'dpkg-query -W -f="${Status}" kubelet 2>/dev/null || true');
    assert.doesNotMatch(q.stdout, /install ok installed/);
  });
});
