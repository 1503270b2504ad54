// The shell pieces run for real: file writing through quoted heredocs (idempotent, exact bytes,
// modes), redaction, waiting, the join script's refusal of bad credentials, and the preflight
// script on this machine against a local package index.
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { spawn, spawnSync } from 'node:child_process';
import { mkdtempSync, readFileSync, rmSync, statSync, chmodSync } from 'node:fs';
import { createServer, type Server } from 'node:http';
import { createServer as createTcpServer } from 'node:net';
import { availableParallelism, tmpdir, totalmem } from 'node:os';
import { join } from 'node:path';
import { loadClusterText } from '../src/spec/load';
import { parseFacts, parseJoinCredentials, planFacts, renderPhase, resolveKubernetesVersion } from '../src/render';
import { file, libraryFor, script, writeFile } from '../src/render/shell';
import { ROOT } from './render-helpers';

function runBash(content: string, env: Record<string, string> = {}): { status: number | null; stdout: string; stderr: string } {
  const r = spawnSync('bash', ['-c', content], { encoding: 'utf8', env: { ...process.env, ...env } });
  return { status: r.status, stdout: r.stdout, stderr: r.stderr };
}

function runBashAsync(content: string, env: Record<string, string>): Promise<{ status: number | null; stdout: string; stderr: string }> {
  return new Promise((resolve, reject) => {
    const p = spawn('bash', ['-c', content], { env: { ...process.env, ...env } });
    let stdout = '';
    let stderr = '';
    p.stdout.on('data', (d: Buffer) => (stdout += d.toString()));
    p.stderr.on('data', (d: Buffer) => (stderr += d.toString()));
    p.on('error', reject);
    p.on('close', (status) => resolve({ status, stdout, stderr }));
  });
}

test('a file block writes exact bytes through a quoted heredoc, once, and restores its mode', () => {
  const dir = mkdtempSync(join(tmpdir(), 'kha-shell-'));
  try {
    const path = join(dir, 'sub', 'tricky.conf');
    const content = "a $HOME `id` $(date) \\n 'single' \"double\"\nKHA_EOF\n\ttab ${x}\nlast";
    const f = file(path, content, 0o600);
    const s = script({ cluster: 't', node: 'n', phase: 'test', name: 'write', summary: 'test', body: `${writeFile(f)}\necho "changed=$KHA_CHANGED"` });
    const first = runBash(s.content);
    assert.equal(first.status, 0, first.stderr);
    assert.equal(first.stdout, 'changed=1\n');
    assert.match(first.stderr, /kha: wrote .*tricky\.conf/);
    assert.equal(readFileSync(path, 'utf8'), `${content}\n`);
    assert.equal(statSync(path).mode & 0o777, 0o600);
    const second = runBash(s.content);
    assert.equal(second.status, 0);
    assert.equal(second.stdout, 'changed=0\n');
    assert.equal(second.stderr, '');
    chmodSync(path, 0o644);
    const third = runBash(s.content);
    assert.equal(third.stdout, 'changed=1\n');
    assert.equal(statSync(path).mode & 0o777, 0o600);
    // Nothing but the file itself is left in the directory (no temp files).
    assert.deepEqual(spawnSync('ls', ['-A', join(dir, 'sub')], { encoding: 'utf8' }).stdout, 'tricky.conf\n');
  } finally {
    rmSync(dir, { recursive: true, force: true });
  }
});

test('scripts carry only the library functions they call, with dependencies', () => {
  const lib = libraryFor('kha_wait 5 "x" true');
  assert.match(lib, /^kha_die\(\) \{/m);
  assert.match(lib, /^kha_wait\(\) \{/m);
  assert.doesNotMatch(lib, /kha_write_file|kha_redact/);
  assert.match(libraryFor('if kha_changed; then :; fi'), /kha_write_file\(\) \{/);
});

test('kha_redact masks tokens and keys; kha_wait gives up with a clear message', () => {
  const token = 'abcdef.0123456789abcdef';
  const key = 'a'.repeat(64);
  const r = runBash(`${libraryFor('kha_redact')}\nprintf 'kubeadm join x --token ${token} --certificate-key ${key}\\n' | kha_redact`);
  assert.equal(r.stdout, 'kubeadm join x --token <redacted> --certificate-key <redacted>\n');
  const w = runBash(`${libraryFor('kha_wait')}\nkha_wait 1 "the thing" false`);
  assert.equal(w.status, 1);
  assert.equal(w.stderr, 'kha: error: timed out after 1 s waiting for the thing\n');
});

test('the join script refuses missing or malformed credentials before touching anything', () => {
  const text = readFileSync(join(ROOT, 'examples', 'seed-cluster.yaml'), 'utf8');
  const c = loadClusterText(text, 'seed-cluster.yaml').cluster!;
  const facts = planFacts(c).facts;
  const cp = renderPhase(c, 'k8scp-02', 'control-plane-join', facts).scripts.find((s) => s.name === 'join')!;
  const none = runBash(cp.content, { KHA_JOIN_TOKEN: '', KHA_CA_CERT_HASH: '', KHA_CERTIFICATE_KEY: '' });
  assert.equal(none.status, 1);
  assert.equal(none.stderr, 'kha: error: KHA_JOIN_TOKEN is missing or malformed\n');
  const injected = runBash(cp.content, {
    KHA_JOIN_TOKEN: 'abcdef.0123456789abcdef',
    KHA_CA_CERT_HASH: `sha256:${'b'.repeat(64)}`,
    KHA_CERTIFICATE_KEY: `${'c'.repeat(64)}"\ncontrolPlane: {}`,
  });
  assert.equal(injected.status, 1);
  assert.equal(injected.stderr, 'kha: error: KHA_CERTIFICATE_KEY is missing or malformed\n');
  const worker = renderPhase(c, 'k8swn-01', 'worker-join', facts).scripts.find((s) => s.name === 'join')!;
  const badHash = runBash(worker.content, { KHA_JOIN_TOKEN: 'abcdef.0123456789abcdef', KHA_CA_CERT_HASH: 'sha256:xyz' });
  assert.equal(badHash.stderr, 'kha: error: KHA_CA_CERT_HASH is missing or malformed\n');
});

test('parseJoinCredentials reads the one line and never echoes values in its errors', () => {
  const token = 'abcdef.0123456789abcdef';
  const hash = `sha256:${'1'.repeat(64)}`;
  const key = 'f'.repeat(64);
  const line = `noise\nKHA-JOIN-CREDENTIALS {"token":"${token}","caCertHash":"${hash}","certificateKey":"${key}"}\n`;
  assert.deepEqual(parseJoinCredentials(line), { token, caCertHash: hash, certificateKey: key });
  assert.deepEqual(parseJoinCredentials(`KHA-JOIN-CREDENTIALS {"token":"${token}","caCertHash":"${hash}","certificateKey":""}`), { token, caCertHash: hash });
  assert.throws(() => parseJoinCredentials('nothing here'), /no KHA-JOIN-CREDENTIALS line/);
  for (const bad of [`{"token":"${token}x","caCertHash":"${hash}"}`, `{"token":"${token}","caCertHash":"${hash}","certificateKey":"${key}0"}`]) {
    try {
      parseJoinCredentials(`KHA-JOIN-CREDENTIALS ${bad}`);
      assert.fail('accepted a malformed credential');
    } catch (e) {
      const m = (e as Error).message;
      assert.match(m, /malformed/);
      assert.ok(!m.includes(token) && !m.includes(key), m);
    }
  }
});

test('resolveKubernetesVersion: newest patch of a minor by number, or exactly the patch', () => {
  const av = ['1.35.0-1.1', '1.35.9-1.1', '1.35.10-1.1', '1.34.3-1.1', 'junk'];
  assert.deepEqual(resolveKubernetesVersion('1.35', av), { kubernetesVersion: 'v1.35.10', packageVersion: '1.35.10-1.1' });
  assert.deepEqual(resolveKubernetesVersion('v1.35.9', av), { kubernetesVersion: 'v1.35.9', packageVersion: '1.35.9-1.1' });
  assert.throws(() => resolveKubernetesVersion('1.36', av), /no kubeadm package for Kubernetes 1\.36/);
});

test('parseFacts rejects output without a well-formed facts line', () => {
  assert.throws(() => parseFacts('hello\n'), /no KHA-FACTS line/);
  assert.throws(() => parseFacts('KHA-FACTS {oops\n'), /not JSON/);
  assert.throws(() => parseFacts('KHA-FACTS {"hostname":"x"}\n'), /preflight facts: macs/);
});

test('the preflight script reports this machine: identity, size, ports in use, and the repository versions on request', async () => {
  const index = [
    'Package: kubeadm', 'Version: 1.35.0-1.1', '',
    'Package: kubelet', 'Version: 1.35.9-1.1', '',
    'Package: kubeadm', 'Version: 1.35.2-1.1', '',
  ].join('\n');
  let requested = '';
  const http: Server = createServer((req, res) => {
    requested = req.url ?? '';
    if (req.url === '/repo/core/v1.35/deb/Packages') res.end(index);
    else {
      res.statusCode = 404;
      res.end();
    }
  });
  await new Promise<void>((r) => http.listen(0, '127.0.0.1', r));
  const port = (http.address() as { port: number }).port;
  // Something listens on a port kubeadm needs, so preflight must report it.
  const busy = createTcpServer();
  const busyOk = await new Promise<boolean>((r) => {
    busy.once('error', () => r(false));
    busy.listen(10250, '127.0.0.1', () => r(true));
  });
  try {
    const yaml = readFileSync(join(ROOT, 'test', 'golden', 'specs', 'seed-like.yaml'), 'utf8').replace(
      /  images:/,
      `  packages:\n    repository: http://127.0.0.1:${port}/repo/core\n    insecure: true\n  images:`,
    );
    const loaded = loadClusterText(yaml, 'seed-like.yaml');
    assert.ok(loaded.cluster, JSON.stringify(loaded.errors));
    const c = loaded.cluster;
    const pre = renderPhase(c, 'k8swn-01', 'preflight', planFacts(c).facts).scripts[0]!;
    const t0 = Date.now();
    const r = await runBashAsync(pre.content, { KHA_LIST_VERSIONS: '1' });
    const t1 = Date.now();
    assert.equal(r.status, 0, r.stderr);
    assert.equal(r.stdout.split('\n').filter(Boolean).length, 1, 'exactly one output line');
    const f = parseFacts(r.stdout);
    assert.equal(f.hostname, readFileSync('/proc/sys/kernel/hostname', 'utf8').trim());
    assert.equal(f.machineId, readFileSync('/etc/machine-id', 'utf8').trim());
    assert.equal(f.bootId, readFileSync('/proc/sys/kernel/random/boot_id', 'utf8').trim());
    assert.equal(f.cpus, availableParallelism());
    assert.ok(Math.abs(f.memoryMb - Math.floor(totalmem() / 1048576)) <= 1, `memory ${f.memoryMb}`);
    assert.ok(f.timeMs >= t0 - 5 && f.timeMs <= t1 + 5, 'time within the run');
    assert.equal(f.root, process.getuid?.() === 0);
    assert.equal(f.os.id, /^ID=(.*)$/m.exec(readFileSync('/etc/os-release', 'utf8'))![1]!.replace(/"/g, ''));
    assert.deepEqual(f.requiredPorts, [10250]);
    if (busyOk) assert.deepEqual(f.portsInUse, [10250]);
    assert.ok(f.interfaces.every((i) => i.name !== 'lo'));
    assert.equal(f.state.adminConf, false);
    assert.equal(requested, '/repo/core/v1.35/deb/Packages');
    assert.deepEqual(f.availableVersions, { versions: ['1.35.0-1.1', '1.35.2-1.1'], error: '' });
    assert.deepEqual(resolveKubernetesVersion(c.spec.kubernetes.version, f.availableVersions.versions).kubernetesVersion, 'v1.35.2');
    // Without the request, no repository access and no versions.
    requested = '';
    const plain = await runBashAsync(pre.content, {});
    assert.equal(parseFacts(plain.stdout).availableVersions, undefined);
    assert.equal(requested, '');
  } finally {
    busy.close();
    http.close();
  }
});

test('a crafted spec cannot run commands: the join config heredoc is quoted and script comments stay comments', () => {
  const dir = mkdtempSync(join(tmpdir(), 'kha-shell-'));
  try {
    const marker = join(dir, 'pwned');
    const cluster = loadClusterText(readFileSync(join(ROOT, 'examples', 'seed-cluster.yaml'), 'utf8'), 'seed.yaml').cluster!;
    // What a workflow started without the CLI could carry: values the schema would refuse.
    const evil = `k8scp-02$(touch ${marker})`;
    cluster.spec.nodes[1]!.name = evil;
    cluster.name = `seed\ntouch ${marker}`;
    const join_ = renderPhase(cluster, evil, 'control-plane-join', planFacts(cluster).facts).scripts.find((s) => s.name === 'join')!;
    assert.doesNotMatch(join_.content, /^touch /m, 'a line break in the cluster name ended the header comment');
    const body = join_.content.split('\n');
    // From the heredoc's first line to the line before kubeadm join: the part that writes the config.
    const from = body.findIndex((l) => l.includes('<<') && l.includes('KHA_JOIN_EOF'));
    const to = body.findIndex((l) => l.includes('kha_once kubeadm-join')) - 1;
    assert.ok(from > 0 && to > from, 'join config block not found');
    const out = join(dir, 'join.yaml');
    const token = 'abcdef.0123456789abcdef';
    const hash = `sha256:${'a'.repeat(64)}`;
    const key = 'b'.repeat(64);
    const header = body.slice(0, 3).join('\n');
    const r = runBash(`${header}\njoin_config=${JSON.stringify(out)}\n${body.slice(from, to + 1).join('\n')}`, {
      KHA_JOIN_TOKEN: token,
      KHA_CA_CERT_HASH: hash,
      KHA_CERTIFICATE_KEY: key,
    });
    assert.equal(r.status, 0, r.stderr);
    assert.throws(() => statSync(marker), 'a command in the spec ran');
    const text = readFileSync(out, 'utf8');
    assert.ok(text.includes(`name: k8scp-02$(touch ${marker})`) || text.includes(`name: "k8scp-02$(touch ${marker})"`), text);
    assert.match(text, new RegExp(`token: "${token.replace('.', '\\.')}"`));
    assert.ok(text.includes(`- "${hash}"`) && text.includes(`certificateKey: "${key}"`), text);
    assert.doesNotMatch(text, /\$\{KHA_/);
  } finally {
    rmSync(dir, { recursive: true, force: true });
  }
});
