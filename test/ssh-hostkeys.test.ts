// Host key bookkeeping and the wire payload, checked against OpenSSH's own tools and a local bash.
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { execFileSync, spawn } from 'node:child_process';
import { mkdtempSync, readFileSync, rmSync, statSync, utimesSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { fingerprint, hostFieldMatches, knownHostsName, lockFile, parseKnownHosts, prepareHostKeyCheck, type HostKeyCheck } from '../src/ssh/hostkeys';
import { HostKeyMismatchError, HostKeyUnknownError } from '../src/ssh/errors';
import { exportLine, LineSplitter, Redactor, runPayload, Tail } from '../src/ssh/remote';

const dir = mkdtempSync(join(tmpdir(), 'kha-hostkeys-'));
process.on('exit', () => rmSync(dir, { recursive: true, force: true }));

function newKey(name: string, type = 'ed25519'): { blob: Buffer; line: string; fp: string } {
  const path = join(dir, name);
  execFileSync('ssh-keygen', ['-q', '-t', type, '-N', '', '-C', name, '-f', path]);
  const line = readFileSync(`${path}.pub`, 'utf8').trim();
  const fp = execFileSync('ssh-keygen', ['-l', '-E', 'sha256', '-f', `${path}.pub`], { encoding: 'utf8' }).split(' ')[1] ?? '';
  return { blob: Buffer.from(line.split(' ')[1] ?? '', 'base64'), line, fp };
}

function verify(check: HostKeyCheck, key: Buffer): { ok: boolean; err: Error | undefined } {
  const prepared = prepareHostKeyCheck(check);
  let ok = false;
  prepared.verify(key, (v) => (ok = v));
  return { ok, err: prepared.failure() };
}

const keyA = newKey('a');
const keyB = newKey('b');
const keyRsa = newKey('r', 'rsa');

test('fingerprints match ssh-keygen -l', () => {
  assert.equal(fingerprint(keyA.blob), keyA.fp);
  assert.equal(fingerprint(keyRsa.blob), keyRsa.fp);
});

test('hashed entries written by ssh-keygen -H match, for port 22 and [host]:port', () => {
  const file = join(dir, 'hashed');
  const [type, b64] = keyA.line.split(' ');
  writeFileSync(file, `10.1.2.3 ${type} ${b64}\n[10.1.2.4]:2222 ${type} ${b64}\n`);
  execFileSync('ssh-keygen', ['-q', '-H', '-f', file]);
  const entries = parseKnownHosts(readFileSync(file, 'utf8'));
  assert.equal(entries.length, 2);
  assert.ok(entries.every((e) => e.hosts.startsWith('|1|')));
  assert.ok(hostFieldMatches(entries[0]!.hosts, ['10.1.2.3']));
  assert.ok(!hostFieldMatches(entries[0]!.hosts, ['10.1.2.30']));
  assert.ok(hostFieldMatches(entries[1]!.hosts, [knownHostsName('10.1.2.4', 2222)]));
  assert.ok(!hostFieldMatches(entries[1]!.hosts, ['10.1.2.4']));
  assert.ok(verify({ host: 'n1', address: '10.1.2.4', port: 2222, policy: 'known-hosts-file', file }, keyA.blob).ok);
});

test('patterns: lists, wildcards, negation', () => {
  assert.ok(hostFieldMatches('k8scp-01,10.0.0.1', ['10.0.0.1']));
  assert.ok(hostFieldMatches('10.0.0.*', ['10.0.0.77']));
  assert.ok(hostFieldMatches('10.0.0.?', ['10.0.0.7']));
  assert.ok(!hostFieldMatches('10.0.0.?', ['10.0.0.77']));
  assert.ok(!hostFieldMatches('10.0.0.*,!10.0.0.5', ['10.0.0.5']));
  assert.ok(hostFieldMatches('10.0.0.*,!10.0.0.5', ['10.0.0.6']));
  assert.ok(!hostFieldMatches('[10.0.0.1]:2222', ['10.0.0.1']));
});

test('known-hosts-file: known key passes, unknown host and changed key are refused with both fingerprints', () => {
  const file = join(dir, 'kh1');
  const [type, b64] = keyA.line.split(' ');
  writeFileSync(file, `# comment\n\nnode1,10.0.0.1 ${type} ${b64}\n`);
  const check: HostKeyCheck = { host: 'node1', address: '10.0.0.1', port: 22, policy: 'known-hosts-file', file };
  assert.deepEqual(verify(check, keyA.blob), { ok: true, err: undefined });

  const changed = verify(check, keyB.blob);
  assert.equal(changed.ok, false);
  assert.ok(changed.err instanceof HostKeyMismatchError);
  assert.match(changed.err.message, /^node1: host key check: HOST KEY CHANGED for node1 \(10\.0\.0\.1\)/);
  assert.ok(changed.err.message.includes(keyA.fp) && changed.err.message.includes(keyB.fp), changed.err.message);
  assert.deepEqual(changed.err.expected, [keyA.fp]);
  assert.equal(changed.err.actual, keyB.fp);

  const unknown = verify({ ...check, host: 'node2', address: '10.0.0.2' }, keyA.blob);
  assert.equal(unknown.ok, false);
  assert.ok(unknown.err instanceof HostKeyUnknownError);
  assert.ok(unknown.err.message.includes('node2') && unknown.err.message.includes(keyA.fp));

  // A missing file is an unknown host, never an acceptance.
  const missing = verify({ ...check, file: join(dir, 'absent') }, keyA.blob);
  assert.ok(missing.err instanceof HostKeyUnknownError);
});

test('@revoked keys are refused even when also listed as known', () => {
  const file = join(dir, 'kh-revoked');
  const [type, b64] = keyA.line.split(' ');
  writeFileSync(file, `10.0.0.1 ${type} ${b64}\n@revoked * ${type} ${b64}\n`);
  const r = verify({ host: 'n', address: '10.0.0.1', port: 22, policy: 'known-hosts-file', file }, keyA.blob);
  assert.ok(r.err instanceof HostKeyMismatchError);
  assert.match(r.err.message, /revoked/);
});

test('accept-new records the first key, accepts it again and refuses a different one', () => {
  const file = join(dir, 'sub', 'known_hosts');
  const check: HostKeyCheck = { host: 'node3', address: '10.0.0.3', port: 2200, policy: 'accept-new', file };
  assert.ok(verify(check, keyA.blob).ok);
  const text = readFileSync(file, 'utf8');
  assert.equal(text, `[10.0.0.3]:2200 ssh-ed25519 ${keyA.blob.toString('base64')}\n`);
  // OpenSSH reads what we wrote.
  const found = execFileSync('ssh-keygen', ['-F', '[10.0.0.3]:2200', '-f', file], { encoding: 'utf8' });
  assert.match(found, /ssh-ed25519/);
  assert.ok(verify(check, keyA.blob).ok);
  const changed = verify(check, keyB.blob);
  assert.ok(changed.err instanceof HostKeyMismatchError);
  assert.ok(changed.err.message.includes(keyA.fp) && changed.err.message.includes(keyB.fp));
  assert.equal(readFileSync(file, 'utf8'), text, 'a refused key is not recorded');
});

test('accept-new with file: ~/... records in and checks against that file under HOME', () => {
  const home = join(dir, 'home-accept');
  const saved = process.env.HOME;
  process.env.HOME = home;
  try {
    const check: HostKeyCheck = { host: 'node5', address: '10.0.0.5', port: 22, policy: 'accept-new', file: '~/.ssh/kha_hosts' };
    assert.ok(verify(check, keyA.blob).ok);
    assert.equal(readFileSync(join(home, '.ssh', 'kha_hosts'), 'utf8'), `10.0.0.5 ssh-ed25519 ${keyA.blob.toString('base64')}\n`);
    assert.ok(verify(check, keyB.blob).err instanceof HostKeyMismatchError);
    assert.equal(prepareHostKeyCheck(check).file, join(home, '.ssh', 'kha_hosts'));
  } finally {
    process.env.HOME = saved;
  }
});

test('pinned: listed fingerprint passes, other key and empty pin list are refused', () => {
  const base: HostKeyCheck = { host: 'node4', address: '10.0.0.4', port: 22, policy: 'pinned', fingerprints: [keyA.fp] };
  assert.ok(verify(base, keyA.blob).ok);
  const bad = verify(base, keyB.blob);
  assert.ok(bad.err instanceof HostKeyMismatchError);
  assert.ok(bad.err.message.includes(keyA.fp) && bad.err.message.includes(keyB.fp));
  assert.ok(verify({ ...base, fingerprints: [] }, keyA.blob).err instanceof HostKeyUnknownError);
});

test('a recorded key type is offered first so the server presents it', () => {
  const file = join(dir, 'kh-rsa');
  const [type, b64] = keyRsa.line.split(' ');
  writeFileSync(file, `10.0.0.9 ${type} ${b64}\n`);
  const p = prepareHostKeyCheck({ host: 'n', address: '10.0.0.9', port: 22, policy: 'known-hosts-file', file });
  assert.deepEqual(p.preferredAlgorithms, ['rsa-sha2-512', 'rsa-sha2-256', 'ssh-rsa']);
});

test('env export lines survive bash exactly, one line each', () => {
  const values = ['plain', "it's \"quoted\" $HOME `id` \\ back", 'multi\nline\n', 'ünïcødé ✓', '', ' lead and trail '];
  for (const v of values) {
    const line = exportLine('V', v);
    assert.ok(!line.includes('\n'));
    const out = execFileSync('bash', ['-c', `${line}\nprintf '%s' "$V"`]);
    assert.equal(out.toString('utf8'), v);
  }
  assert.throws(() => exportLine('1BAD', 'x'), /invalid environment variable name/);
  assert.throws(() => exportLine('A;rm', 'x'), /invalid environment variable name/);
});

test('payload: env block, byte length, script', () => {
  const script = 'echo ✓\n';
  const p = runPayload(script, { A: 'b' }).toString('utf8');
  assert.equal(p, `export A=$'b'\n#script ${Buffer.byteLength(script)}\n${script}`);
});

test('line splitting across chunk borders, tails and redaction', () => {
  const lines: string[] = [];
  const s = new LineSplitter((l) => lines.push(l));
  const bytes = Buffer.from('one\r\ntw✓o\nthree');
  for (let i = 0; i < bytes.length; i++) s.write(bytes.subarray(i, i + 1));
  s.end();
  assert.deepEqual(lines, ['one', 'tw✓o', 'three']);

  const t = new Tail(2);
  for (const l of ['1', '2', '3', 'x'.repeat(5000)]) t.push(l);
  assert.equal(t.toString(), `3\n${'x'.repeat(1000)}...`);

  const r = new Redactor({ TOKEN: 'abcdef.0123456789abcdef', CERT: 'line-one\nline-two', SHORT: 'on' });
  assert.equal(r.apply('token abcdef.0123456789abcdef here'), 'token *** here');
  assert.equal(r.apply('line-two'), '***');
  assert.equal(r.apply('on and on'), 'on and on');
});

test('accept-new appends on a line of its own when the file lacks its last newline', () => {
  const file = join(dir, 'no-trailing-newline');
  writeFileSync(file, `10.0.0.20 ssh-ed25519 ${keyA.blob.toString('base64')}`);
  const c21: HostKeyCheck = { host: 'n21', address: '10.0.0.21', port: 22, policy: 'accept-new', file };
  assert.ok(verify(c21, keyB.blob).ok);
  assert.equal(readFileSync(file, 'utf8'), `10.0.0.20 ssh-ed25519 ${keyA.blob.toString('base64')}\n10.0.0.21 ssh-ed25519 ${keyB.blob.toString('base64')}\n`);
  // Both entries hold: neither host is back to first contact.
  assert.ok(verify({ ...c21, host: 'n20', address: '10.0.0.20' }, keyB.blob).err instanceof HostKeyMismatchError);
  assert.ok(verify(c21, keyA.blob).err instanceof HostKeyMismatchError);
});

test('accept-new under concurrent workers: one first key per host is recorded, a different key is refused', async () => {
  const file = join(dir, 'race', 'known_hosts');
  const go = join(dir, 'race-go');
  const hosts = 150;
  const workers = 8;
  const child = `
    const { prepareHostKeyCheck } = require(${JSON.stringify(join(__dirname, '..', 'src', 'ssh', 'hostkeys.js'))});
    const fs = require('node:fs');
    const [file, go, b64, n] = process.argv.slice(1);
    const key = Buffer.from(b64, 'base64');
    while (!fs.existsSync(go)) Atomics.wait(new Int32Array(new SharedArrayBuffer(4)), 0, 0, 1);
    const out = [];
    for (let i = 0; i < Number(n); i++) {
      const p = prepareHostKeyCheck({ host: 'h' + i, address: '10.9.0.' + i, port: 22, policy: 'accept-new', file });
      let ok = false;
      p.verify(key, (v) => (ok = v));
      out.push(ok ? 'ok' : p.failure().name);
    }
    process.stdout.write(JSON.stringify(out));
  `;
  const keys = [keyA, keyB];
  const runs = Array.from({ length: workers }, (_, w) => {
    const key = keys[w % 2]!;
    const p = spawn(process.execPath, ['-e', child, file, go, key.blob.toString('base64'), String(hosts)]);
    let stdout = '';
    let stderr = '';
    p.stdout.on('data', (d: Buffer) => (stdout += d.toString()));
    p.stderr.on('data', (d: Buffer) => (stderr += d.toString()));
    return new Promise<{ key: Buffer; results: string[] }>((resolve, reject) =>
      p.on('close', (code) => (code === 0 ? resolve({ key: key.blob, results: JSON.parse(stdout) as string[] }) : reject(new Error(stderr)))),
    );
  });
  // Let every child start and wait, then release them together.
  await new Promise((r) => setTimeout(r, 1500));
  writeFileSync(go, '');
  const done = await Promise.all(runs);
  const entries = parseKnownHosts(readFileSync(file, 'utf8'));
  for (let i = 0; i < hosts; i++) {
    const mine = entries.filter((e) => e.hosts === `10.9.0.${i}`);
    assert.equal(mine.length, 1, `host ${i} has ${mine.length} entries`);
    for (const d of done) {
      assert.equal(d.results[i], mine[0]!.key.equals(d.key) ? 'ok' : 'HostKeyMismatchError', `host ${i}`);
    }
  }
  assert.equal(entries.length, hosts);
});

test('a lock left by a process that died holding it is taken over', () => {
  const lock = join(dir, 'stale.lock');
  writeFileSync(lock, '99999\n');
  const old = new Date(Date.now() - 60_000);
  utimesSync(lock, old, old);
  const unlock = lockFile(lock);
  assert.equal(readFileSync(lock, 'utf8'), `${process.pid}\n`);
  unlock();
  assert.throws(() => statSync(lock));
});
