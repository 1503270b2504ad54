// The packages phase on the lab's real tier with the real apt, given a repository signed with a key other than the
// pinned one: apt's own signature check stops the phase. What a successful packages phase installs is checked on
// the cluster test/real-tier.test.ts deploys (one real deploy serves both).
import { after, before, describe, it } from 'node:test';
import assert from 'node:assert/strict';
import { spawnSync } from 'node:child_process';
import { mkdirSync, mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { parse, stringify } from 'yaml';
import { Lab } from '../src/lab/lab';
import { signRelease } from '../src/lab/real/apt-repo';
import { realPaths } from '../src/lab/real/setup';
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
    process.stderr.write(`real-apt timings (ms): ${JSON.stringify(timings)}\n`);
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
