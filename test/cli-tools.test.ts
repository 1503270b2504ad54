// The shell-facing commands without lab hosts: kha --version, kha help COMMAND for every command, "did you mean"
// for mistyped commands and options, kha completion bash|zsh (sourced and called as the shells call it, with
// cluster and node names from a real embedded server), kha kubeconfig (print and merge), and kha doctor's
// Temporal checks against the embedded server, a bare dev server and no server.
import { after, before, describe, it } from 'node:test';
import assert from 'node:assert/strict';
import { spawn, spawnSync, type ChildProcess } from 'node:child_process';
import { mkdirSync, mkdtempSync, readFileSync, rmSync, statSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { parse } from 'yaml';
import { probeServer } from '../src/server/embedded';
import { findTemporalCli } from '../src/temporal/cli-path';
import { cliEnv, freePort, kha, unreachableCluster } from './cli-run';

const ROOT = join(__dirname, '..', '..');
const BIN_KHA = join(ROOT, 'bin', 'kha');
const COMMANDS = ['validate', 'plan', 'schema', 'deploy', 'status', 'approve', 'retry', 'skip', 'abort', 'reset', 'apply', 'backup', 'remove', 'certs', 'schedule', 'server', 'worker', 'demo', 'lab', 'doctor', 'kubeconfig', 'completion', 'help'];
const sq = (s: string) => `'${s.replace(/'/g, `'\\''`)}'`;

/** COMPREPLY of the completion function for the words (the last one is being completed), as the shell sets them. */
function complete(shell: 'bash' | 'zsh', script: string, words: string[], env: NodeJS.ProcessEnv): string[] {
  const call = `source ${sq(script)}; COMP_WORDS=(${words.map(sq).join(' ')}); COMP_CWORD=${words.length - 1}; COMPREPLY=(); _kha_complete; printf '%s\\n' "\${COMPREPLY[@]}"`;
  const r = spawnSync(shell, shell === 'bash' ? ['--norc', '--noprofile', '-c', call] : ['-f', '-c', call], { env, encoding: 'utf8' });
  assert.equal(r.status, 0, r.stderr);
  assert.equal(r.stderr, '', `${shell} printed errors`);
  return r.stdout.split('\n').filter(Boolean);
}

describe('kha --version, help and suggestions', () => {
  const env = cliEnv({});

  it('--version names kha, the Temporal SDK and the Temporal CLI found', async () => {
    const r = await kha(['--version'], cliEnv({ TEMPORAL_CLI_PATH: findTemporalCli()! }));
    assert.equal(r.code, 0, r.stderr);
    const pkg = JSON.parse(readFileSync(join(ROOT, 'package.json'), 'utf8')) as { version: string };
    const sdk = JSON.parse(readFileSync(join(ROOT, 'node_modules', '@temporalio', 'client', 'package.json'), 'utf8')) as { version: string };
    const lines = r.stdout.trimEnd().split('\n');
    assert.equal(lines[0], `kha ${pkg.version}`);
    assert.equal(lines[1], `Temporal TypeScript SDK ${sdk.version}`);
    assert.match(lines[2]!, new RegExp(`^Temporal CLI temporal version \\S+ \\(Server 1\\.29\\.1, .*\\) at ${findTemporalCli()!.replace(/[.*+?^${}()|[\]\\/]/g, '\\$&')}$`));
    assert.equal(lines.length, 3);
  });

  it('--version without a Temporal CLI says none was found, and builds nothing', async () => {
    const home = mkdtempSync(join(tmpdir(), 'kha-version-'));
    const r = await kha(['-V'], cliEnv({ TEMPORAL_CLI_PATH: '/nonexistent/temporal', HOME: home, PATH: '/usr/bin:/bin' }));
    rmSync(home, { recursive: true, force: true });
    assert.equal(r.code, 0, r.stderr);
    assert.match(r.stdout, /^Temporal CLI: none found \(no Temporal CLI at the pinned release in TEMPORAL_CLI_PATH, PATH or ~\/go\/bin.*\)$/m);
    assert.doesNotMatch(r.stdout + r.stderr, /building/);
  });

  it('kha help COMMAND prints the same usage as COMMAND --help, for every command', async () => {
    const overview = await kha(['help'], env);
    assert.equal(overview.code, 0);
    for (const c of COMMANDS) assert.match(overview.stdout, new RegExp(`^  ${c} +\\S`, 'm'), `${c} missing from kha help`);
    for (const c of COMMANDS) {
      const h = await kha(['help', c], env);
      assert.equal(h.code, 0, `kha help ${c}: ${h.stderr}`);
      assert.match(h.stdout, c === 'demo' ? /^usage: npm run demo/ : new RegExp(`^usage:\\s+kha ${c}\\b`, 'm'), `kha help ${c}`);
      if (c !== 'help' && c !== 'lab') assert.equal((await kha([c, '--help'], env)).stdout, h.stdout, `kha ${c} --help differs from kha help ${c}`);
    }
  });

  it('mistyped commands, options and subcommands exit 2 and name the nearest one', async () => {
    const cases: Array<[string[], RegExp]> = [
      [['stauts', 'x'], /^kha: unknown command "stauts" \(did you mean status\?\)$/m],
      [['--verison'], /^kha: unknown option "--verison" \(did you mean --version\?\)$/m],
      [['help', 'aprove'], /^kha help: unknown command "aprove" \(did you mean approve\?\)$/m],
      [['deploy', 'x.yaml', '--detatch'], /^kha deploy: unknown option "--detatch" \(did you mean --detach\?\)$/m],
      [['abort', 'x', '--rolback'], /^kha abort: unknown option "--rolback" \(did you mean --rollback\?\)$/m],
      [['plan', 'x.yaml', '--phse', 'verify'], /^kha plan: unknown option "--phse" \(did you mean --phase\?\)$/m],
      [['lab', 'up', '--node', '3+3'], /^kha lab: unexpected argument "--node" \(did you mean --nodes\?\)$/m],
      [['lab', 'stats'], /^kha lab: unknown subcommand "stats" \(did you mean status\?\)$/m],
      [['server', '--stp'], /^kha server: unknown option "--stp" \(did you mean --stop\?\)$/m],
      [['completion', 'zhs'], /^kha completion: unknown shell "zhs" \(did you mean zsh\?\)$/m],
      [['kubeconfig', 'x', '--marge'], /^kha kubeconfig: unknown option "--marge" \(did you mean --merge\?\)$/m],
      [['worker', '--task-queu', 'q'], /^kha worker: unknown option "--task-queu" \(did you mean --task-queue\?\)$/m],
    ];
    for (const [args, re] of cases) {
      const r = await kha(args, env);
      assert.equal(r.code, 2, `kha ${args.join(' ')}: ${r.stderr}`);
      assert.match(r.stderr, re);
    }
    const far = await kha(['deploy', 'x.yaml', '--zzzzzz'], env);
    assert.match(far.stderr, /^kha deploy: unknown option "--zzzzzz"$/m, 'no suggestion for a name unlike any option');
  });
});

describe('kha completion bash|zsh and the names asked of the server', () => {
  const dir = mkdtempSync(join(tmpdir(), 'kha-completion-'));
  const bashFile = join(dir, 'kha.bash');
  const zshFile = join(dir, 'kha.zsh');
  let env: NodeJS.ProcessEnv;

  before(async () => {
    // The names, not TAB-time latency, are under test: a loaded machine may take longer than 3 s to connect.
    env = cliEnv({ XDG_STATE_HOME: join(dir, 'state'), KHA_SERVER_PORT: String(await freePort()), KHA_UI_PORT: String(await freePort()), ZDOTDIR: dir, HOME: dir, KHA_COMPLETION_TIMEOUT_MS: '60000' });
    for (const [shell, file] of [['bash', bashFile], ['zsh', zshFile]] as const) {
      const r = await kha(['completion', shell], env);
      assert.equal(r.code, 0, r.stderr);
      writeFileSync(file, r.stdout);
    }
  });

  after(async () => {
    await kha(['server', '--stop'], env).catch(() => undefined);
    rmSync(dir, { recursive: true, force: true });
  });

  it('bash: commands, options per command and subcommand, option values, fixed words', () => {
    const c = (...w: string[]) => complete('bash', bashFile, [BIN_KHA, ...w], env);
    assert.deepEqual(c('de'), ['deploy', 'demo']);
    assert.deepEqual(c('ku'), ['kubeconfig']);
    assert.deepEqual(c('deploy', '--a'), ['--auto-approve', '--again']);
    assert.deepEqual(c('deploy', 'f.yaml', '--kubeconfig', 'x', '--d'), ['--detach']);
    assert.deepEqual(c('abort', 'demo', '--'), ['--help', '--rollback', '--yes', '--detach', '--json']);
    assert.deepEqual(c('lab', ''), ['up', 'down', 'status']);
    assert.deepEqual(c('lab', 'up', '--n'), ['--nodes']);
    assert.deepEqual(c('lab', 'status', '--'), ['--help', '--dir', '--json']);
    assert.deepEqual(c('lab', 'up', '--user', 'kh'), ['kha', 'khapw']);
    assert.deepEqual(c('completion', ''), ['bash', 'zsh']);
    assert.deepEqual(c('help', 'st'), ['status']);
    assert.deepEqual(c('kubeconfig', 'x', '--'), ['--help', '--merge', '--force', '--file']);
    // Files are left to the shell's own completion (complete -o default): no words offered.
    assert.deepEqual(c('validate', 'exa'), []);
    assert.deepEqual(c('nonsense', ''), []);
  });

  it('zsh: the script parses (zsh -n) and the same function runs under bashcompinit', () => {
    const n = spawnSync('zsh', ['-n', zshFile], { encoding: 'utf8' });
    assert.equal(n.status, 0, n.stderr);
    const head = readFileSync(zshFile, 'utf8').split('\n').slice(0, 3).join('\n');
    assert.match(head, /bashcompinit/);
    // zsh's compadd filters by the typed prefix later; the function offers the command's words.
    const z = (...w: string[]) => complete('zsh', zshFile, [BIN_KHA, ...w], env);
    assert.ok(z('de').includes('deploy'));
    assert.deepEqual(z('deploy', '--d'), ['--help', '--detach', '--json', '--auto-approve', '--kubeconfig', '--again']);
    assert.deepEqual(z('lab', 'up', '--user', ''), ['root', 'kha', 'khapw']);
    assert.deepEqual(z('lab', ''), ['up', 'down', 'status']);
  });

  it('cluster names and node names come from the server: nothing when none runs, then the waiting deployment', async () => {
    const c = (...w: string[]) => complete('bash', bashFile, [BIN_KHA, ...w], env);
    assert.deepEqual(c('approve', ''), [], 'no server: no names, no error');
    const file = unreachableCluster('tabby', dir);
    const d = await kha(['deploy', file, '--detach'], env);
    assert.equal(d.code, 0, d.stdout + d.stderr);
    assert.deepEqual(c('approve', ''), ['tabby']);
    assert.deepEqual(c('status', 'ta'), ['tabby']);
    // Node names are those of a deployment waiting for a decision: the background worker gets it there first.
    for (let i = 0; i < 120 && c('skip', 'tabby', '').length === 0; i++) await new Promise((r) => setTimeout(r, 500));
    assert.deepEqual(c('skip', 'tabby', ''), ['cp-1', 'worker-1']);
    assert.deepEqual(c('retry', 'tabby', '--node', 'w'), ['worker-1']);
    assert.deepEqual(c('skip', 'nosuch', ''), []);
    assert.deepEqual(complete('zsh', zshFile, [BIN_KHA, 'skip', 'tabby', ''], env), ['cp-1', 'worker-1']);
    const direct = await kha(['completion', '__nodes', 'tabby'], env);
    assert.equal(direct.stdout, 'cp-1\nworker-1\n');
  });

  it('kha doctor without a file checks the running embedded server and its search attributes: exit 0', async () => {
    const r = await kha(['doctor'], env);
    assert.equal(r.code, 0, r.stdout + r.stderr);
    assert.match(r.stdout, /^ok {4}Temporal: embedded server at 127\.0\.0\.1:\d+ answers \(namespace default\)$/m);
    assert.match(r.stdout, /^ok {4}search attributes: KhaCluster, KhaPhase, KhaState registered$/m);
    assert.match(r.stdout, /^all 2 checks passed: ready to deploy$/m);
  });
});

describe('kha doctor: Temporal checks against a bare server and no server', () => {
  const dir = mkdtempSync(join(tmpdir(), 'kha-doctor-temporal-'));
  let server: ChildProcess | undefined;
  let port = 0;

  before(async () => {
    port = await freePort();
    // A dev server without kha's search attributes, started by this test.
    server = spawn(findTemporalCli()!, ['server', 'start-dev', '--headless', '--ip', '127.0.0.1', '--port', String(port), '--log-level', 'error'], { stdio: 'ignore' });
    for (let i = 0; i < 300 && !(await probeServer(`127.0.0.1:${port}`)); i++) await new Promise((r) => setTimeout(r, 200));
  });

  after(() => {
    server?.kill('SIGTERM');
    rmSync(dir, { recursive: true, force: true });
  });

  it('TEMPORAL_ADDRESS without the search attributes or a worker: both fail with the command to run, exit 1', async () => {
    const r = await kha(['doctor'], cliEnv({ TEMPORAL_ADDRESS: `127.0.0.1:${port}`, XDG_STATE_HOME: join(dir, 'state') }));
    assert.equal(r.code, 1, r.stdout + r.stderr);
    assert.match(r.stdout, new RegExp(`^ok {4}Temporal: 127\\.0\\.0\\.1:${port} answers \\(namespace default\\)$`, 'm'));
    assert.match(
      r.stdout,
      /^FAIL {2}search attributes: KhaCluster, KhaPhase, KhaState not registered on namespace default; temporal operator search-attribute create --namespace default --name KhaCluster --type Keyword --name KhaPhase --type Keyword --name KhaState --type Keyword$/m,
    );
    assert.match(r.stdout, /^FAIL {2}worker: no kha worker polls task queue kha; start one with: kha worker/m);
    assert.match(r.stdout, /^2 of 3 checks failed$/m);
  });

  it('TEMPORAL_ADDRESS where nothing listens: the Temporal line fails, exit 1', async () => {
    const r = await kha(['doctor'], cliEnv({ TEMPORAL_ADDRESS: `127.0.0.1:${await freePort()}` }));
    assert.equal(r.code, 1, r.stdout + r.stderr);
    assert.match(r.stdout, /^FAIL {2}Temporal: cannot reach 127\.0\.0\.1:\d+ \(TEMPORAL_ADDRESS, namespace default\): .*; check TEMPORAL_ADDRESS, TEMPORAL_NAMESPACE and the TLS or API key settings$/m);
  });

  it('no server yet: the embedded one can start with the CLI found; nothing is started', async () => {
    const state = join(dir, 'fresh');
    const r = await kha(['doctor'], cliEnv({ XDG_STATE_HOME: state, TEMPORAL_CLI_PATH: findTemporalCli()! }));
    assert.equal(r.code, 0, r.stdout + r.stderr);
    assert.match(r.stdout, /^ok {4}Temporal: embedded server not running; kha deploy starts it with \S+temporal \(state in .*fresh\/kha\)$/m);
    assert.match(r.stdout, /^ok {4}search attributes: KhaCluster, KhaPhase, KhaState are registered when the embedded server starts$/m);
    const st = await kha(['server', '--status'], cliEnv({ XDG_STATE_HOME: state }));
    assert.equal(st.code, 1, 'doctor started no server');
  });

  it('usage errors exit 2', async () => {
    const r = await kha(['doctor', '--jsn'], cliEnv({}));
    assert.equal(r.code, 2);
    assert.match(r.stderr, /^kha doctor: unknown option "--jsn"/);
    const bad = join(dir, 'bad.yaml');
    writeFileSync(bad, 'apiVersion: kha.dev/v1alpha1\nkind: Cluster\nmetadata: { name: x }\nspec: { nodes: [] }\n');
    const b = await kha(['doctor', bad], cliEnv({}));
    assert.equal(b.code, 2);
    assert.match(b.stderr, new RegExp(`^${bad.replace(/[.*+?^${}()|[\]\\/]/g, '\\$&')}:\\d+:\\d+: spec`, 'm'));
    assert.equal(b.stdout, '');
  });
});

describe('kha kubeconfig: print, merge under a context named after the cluster, never overwrite silently', () => {
  const dir = mkdtempSync(join(tmpdir(), 'kha-kubeconfig-'));
  const home = join(dir, 'home');
  const state = join(dir, 'state');
  const saved = join(state, 'kha', 'prod', 'admin.conf');
  const target = join(home, '.kube', 'config');
  const admin = (server: string) => `apiVersion: v1
kind: Config
clusters:
  - name: kubernetes
    cluster:
      certificate-authority-data: Q0E=
      server: ${server}
contexts:
  - name: kubernetes-admin@kubernetes
    context: { cluster: kubernetes, user: kubernetes-admin }
current-context: kubernetes-admin@kubernetes
users:
  - name: kubernetes-admin
    user:
      client-certificate-data: Q0VSVA==
      client-key-data: S0VZ
`;
  const env = () => cliEnv({ HOME: home, XDG_STATE_HOME: state, KUBECONFIG: '' });
  type Cfg = { clusters: Array<{ name: string; cluster: { server: string } }>; contexts: Array<{ name: string; context: { cluster: string; user: string } }>; users: Array<{ name: string }>; 'current-context': string };

  before(() => {
    mkdirSync(join(state, 'kha', 'prod'), { recursive: true });
    writeFileSync(saved, admin('https://prod-api:6443'), { mode: 0o600 });
    mkdirSync(join(home, '.kube'), { recursive: true });
    writeFileSync(target, 'apiVersion: v1\nkind: Config\nclusters:\n  - name: other\n    cluster: { server: "https://other:6443" }\ncontexts:\n  - name: other\n    context: { cluster: other, user: other }\ncurrent-context: other\nusers:\n  - name: other\n    user: { token: abc }\n');
  });

  after(() => rmSync(dir, { recursive: true, force: true }));

  it('prints the saved kubeconfig as it is, exit 0; an unknown cluster exits 1 saying where it looked', async () => {
    const r = await kha(['kubeconfig', 'prod'], env());
    assert.equal(r.code, 0, r.stderr);
    assert.equal(r.stdout, readFileSync(saved, 'utf8'));
    const none = await kha(['kubeconfig', 'nope'], env());
    assert.equal(none.code, 1);
    assert.match(none.stderr, /^kha kubeconfig: no admin kubeconfig saved for nope \(looked at .*state\/kha\/nope\/admin\.conf and for a completed deployment on the server\)/);
    const usage = await kha(['kubeconfig'], env());
    assert.equal(usage.code, 2);
  });

  it('--merge adds cluster, user and context "prod" next to the others, keeps the current context, mode 0600', async () => {
    const r = await kha(['kubeconfig', 'prod', '--merge'], env());
    assert.equal(r.code, 0, r.stderr);
    assert.equal(r.stdout, `${target}: added cluster prod, added user prod-admin, added context prod (from ${saved})\nswitch to it with: kubectl config use-context prod\n`);
    const cfg = parse(readFileSync(target, 'utf8')) as Cfg;
    assert.deepEqual(cfg.contexts.map((c) => c.name), ['other', 'prod']);
    assert.deepEqual(cfg.contexts[1]!.context, { cluster: 'prod', user: 'prod-admin' });
    assert.equal(cfg.clusters.find((c) => c.name === 'prod')!.cluster.server, 'https://prod-api:6443');
    assert.deepEqual(cfg.users.map((u) => u.name), ['other', 'prod-admin']);
    assert.equal(cfg['current-context'], 'other');
    assert.equal(statSync(target).mode & 0o777, 0o600);
    const again = await kha(['kubeconfig', 'prod', '--merge'], env());
    assert.equal(again.code, 0);
    assert.match(again.stdout, /: context prod is up to date$/m);
  });

  it('a different cluster of the same name is refused (exit 1, file unchanged) unless --force', async () => {
    writeFileSync(saved, admin('https://new-prod-api:6443'), { mode: 0o600 });
    const before = readFileSync(target, 'utf8');
    const r = await kha(['kubeconfig', 'prod', '--merge'], env());
    assert.equal(r.code, 1);
    assert.match(r.stderr, /already has a different cluster prod; nothing was changed \(--force replaces them\)$/m);
    assert.equal(readFileSync(target, 'utf8'), before);
    const f = await kha(['kubeconfig', 'prod', '--merge', '--force'], env());
    assert.equal(f.code, 0, f.stderr);
    assert.match(f.stdout, /: replaced cluster prod \(from /);
    const cfg = parse(readFileSync(target, 'utf8')) as Cfg;
    assert.equal(cfg.clusters.find((c) => c.name === 'prod')!.cluster.server, 'https://new-prod-api:6443');
    assert.equal(cfg.clusters.length, 2);
  });

  it('into an empty HOME: creates ~/.kube/config with context prod as the current one', async () => {
    const empty = join(dir, 'empty-home');
    const r = await kha(['kubeconfig', 'prod', '--merge'], cliEnv({ HOME: empty, XDG_STATE_HOME: state, KUBECONFIG: '' }));
    assert.equal(r.code, 0, r.stderr);
    const cfg = parse(readFileSync(join(empty, '.kube', 'config'), 'utf8')) as Cfg & { kind: string };
    assert.equal(cfg.kind, 'Config');
    assert.equal(cfg['current-context'], 'prod');
    assert.equal(statSync(join(empty, '.kube')).mode & 0o777, 0o700);
  });
});
