// kha as an installed tool: `npm pack` (its prepack builds), `npm install -g ./kha-<version>.tgz --offline` into a
// temporary prefix (dependencies from the npm cache, no network), then the installed `kha` from PATH: --version,
// validate, plan, and a lab deployment (1+1 hosts, subnet 86) whose sim client the first `kha lab up` builds,
// followed by doctor, completion names and kubeconfig through the same command.
import { after, before, describe, it } from 'node:test';
import assert from 'node:assert/strict';
import { spawnSync } from 'node:child_process';
import { existsSync, mkdirSync, readFileSync, rmSync, statSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { dirname, join } from 'node:path';
import { parse } from 'yaml';
import { Lab } from '../src/lab/lab';
import { findTemporalCli } from '../src/temporal/cli-path';
import { cliEnv, freePort, runIn } from './cli-run';
import { subnet } from './helpers/subnet';

const ROOT = join(__dirname, '..', '..');
const LONG = 300_000;

describe('npm pack, npm install -g --offline, and the installed kha', () => {
  const dir = join(tmpdir(), `kha-install-${subnet(86)}`);
  const prefix = join(dir, 'prefix');
  const installed = join(prefix, 'lib', 'node_modules', 'kha');
  const labDir = join(dir, 'lab');
  const file = join(dir, 'lab.yaml');
  const version = (JSON.parse(readFileSync(join(ROOT, 'package.json'), 'utf8')) as { version: string }).version;
  const tarball = join(dir, `kha-${version}.tgz`);
  let env: NodeJS.ProcessEnv;
  const kha = (args: string[], ms = 120_000) => runIn(['kha', ...args], env, ms);

  before(async () => {
    await Lab.downDir(labDir);
    rmSync(dir, { recursive: true, force: true });
    mkdirSync(join(dir, 'home'), { recursive: true });
    // Only the installed prefix and the system directories: no clone's bin/ on the way.
    env = cliEnv({
      PATH: `${join(prefix, 'bin')}:${dirname(process.execPath)}:/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin`,
      HOME: join(dir, 'home'),
      XDG_STATE_HOME: join(dir, 'state'),
      KUBECONFIG: '',
      KHA_SERVER_PORT: String(await freePort()),
      KHA_UI_PORT: String(await freePort()),
      TEMPORAL_CLI_PATH: findTemporalCli()!,
    });
  });

  after(async () => {
    if (existsSync(join(prefix, 'bin', 'kha'))) await kha(['server', '--stop']).catch(() => undefined);
    await Lab.downDir(labDir).catch(() => undefined);
    rmSync(dir, { recursive: true, force: true });
  });

  it('npm pack builds and packs compiled code, the workflow bundle, temporal-cli.sh and the C source, nothing else', () => {
    const r = spawnSync('npm', ['pack', '--pack-destination', dir], { cwd: ROOT, encoding: 'utf8', env: { ...process.env, npm_config_loglevel: 'error' } });
    assert.equal(r.status, 0, r.stdout + r.stderr);
    const files = spawnSync('tar', ['-tzf', tarball], { encoding: 'utf8' }).stdout.split('\n').filter(Boolean);
    for (const f of ['bin/kha', 'package.json', 'README.md', 'dist/src/cli/main.js', 'dist/src/lab/sim/server.js', 'dist/workflow-bundle.js', 'scripts/temporal-cli.sh', 'src/lab/sim/client/client.c', 'examples/minimal.yaml']) {
      assert.ok(files.includes(`package/${f}`), `${f} is not in the tarball`);
    }
    const extra = files.filter((f) => /^package\/(dist\/(test|bench|bin)\/|src\/(?!lab\/sim\/client\/client\.c$)|test\/|node_modules\/)|\.(map|ts)$/.test(f));
    assert.deepEqual(extra, []);
  });

  it('npm install -g --offline installs it from the tarball and the npm cache; kha is then on the PATH', () => {
    // The user's own npm settings and cache (this HOME is the test's); --offline: the cache or nothing.
    const r = spawnSync('npm', ['install', '-g', tarball, '--prefix', prefix, '--offline', '--no-audit', '--no-fund'], { encoding: 'utf8', env: { ...process.env, npm_config_loglevel: 'error' } });
    assert.equal(r.status, 0, `${r.stdout}${r.stderr}\n(bash scripts/setup.sh fills the npm cache this install reads)`);
    const which = spawnSync('bash', ['-c', 'command -v kha'], { encoding: 'utf8', env });
    assert.equal(which.stdout.trim(), join(prefix, 'bin', 'kha'));
    assert.equal(existsSync(join(installed, 'dist', 'bin', 'kha-sim-client')), false, 'the client binary is not shipped');
  });

  it('the installed kha: --version, validate and plan of the shipped examples', async () => {
    const v = await kha(['--version']);
    assert.equal(v.code, 0, v.stderr);
    assert.match(v.stdout, new RegExp(`^kha ${version.replace(/\./g, '\\.')}\\nTemporal TypeScript SDK \\d+\\.\\d+\\.\\d+\\nTemporal CLI temporal version `));
    const example = join(installed, 'examples', 'minimal.yaml');
    const val = await kha(['validate', example]);
    assert.equal(val.code, 0, val.stderr);
    assert.equal(val.stdout, `${example}: valid: cluster minimal, Kubernetes 1.35, 3 control-plane + 1 worker node\n`);
    const plan = await kha(['plan', example, '--out', join(dir, 'plan')]);
    assert.equal(plan.code, 0, plan.stderr);
    assert.match(plan.stdout, new RegExp(`^Plan for cluster minimal \\(${example.replace(/[.*+?^${}()|[\]\\/]/g, '\\$&')}\\)$`, 'm'));
    assert.match(plan.stdout, /^Wrote \d+ scripts and \d+ files for 4 nodes to /m);
  });

  it('a lab deployment through the installed command: lab up builds the sim client, doctor, deploy, kubeconfig', async () => {
    const up = await kha(['lab', 'up', '--nodes', '1+1', '--subnet', String(subnet(86)), '--dir', labDir, '--out', file], LONG);
    assert.equal(up.code, 0, up.stdout + up.stderr);
    const client = join(installed, 'dist', 'bin', 'kha-sim-client');
    assert.match(up.stderr, new RegExp(`^kha lab: built the sim client ${client.replace(/[.*+?^${}()|[\]\\/]/g, '\\$&')}$`, 'm'));
    assert.ok(statSync(client).mode & 0o100, 'the client is executable');
    const doc = await kha(['doctor', file]);
    assert.equal(doc.code, 0, doc.stdout + doc.stderr);
    assert.match(doc.stdout, /^all \d+ checks passed: ready to deploy$/m);
    const d = await kha(['deploy', file, '--auto-approve'], LONG);
    assert.equal(d.code, 0, d.stdout + d.stderr);
    assert.match(d.stdout, /^✔ lab deployed: Kubernetes v1\.35\.\d+, 2 nodes Ready, 1 etcd members; admin kubeconfig: /m);
    const names = await kha(['completion', '__clusters']);
    assert.equal(names.stdout, 'lab\n');
    const kc = await kha(['kubeconfig', 'lab']);
    assert.equal(kc.code, 0, kc.stderr);
    assert.match(kc.stdout, /^\s+server: https:\/\/k8s-api\.lab\.internal:6443$/m);
    const m = await kha(['kubeconfig', 'lab', '--merge']);
    assert.equal(m.code, 0, m.stderr);
    const cfg = parse(readFileSync(join(dir, 'home', '.kube', 'config'), 'utf8')) as { 'current-context': string; contexts: Array<{ name: string }> };
    assert.equal(cfg['current-context'], 'lab');
    assert.deepEqual(cfg.contexts.map((c) => c.name), ['lab']);
    const down = await kha(['lab', 'down', '--dir', labDir], LONG);
    assert.equal(down.code, 0, down.stdout + down.stderr);
  });
});
