// The one result protocol (src/render/result.ts): what the parser accepts and refuses, with hostile and cut-short
// input, and the shell side (kha_result, the STEP line, the reported failure kinds) run for real in bash.
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { spawnSync } from 'node:child_process';
import { readResult, requireResult, ResultError } from '../src/render/result';
import { parseJoinCredentials } from '../src/render';
import { script, writeFile, file } from '../src/render/shell';
import { mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';

function runBash(content: string): { status: number | null; stdout: string; stderr: string } {
  const r = spawnSync('bash', ['-c', content], { encoding: 'utf8' });
  return { status: r.status, stdout: r.stdout, stderr: r.stderr };
}

function rendered(body: string, step = false): string {
  return script({ cluster: 't', node: 'n', phase: 'test', name: 'result', summary: 'test', body, step }).content;
}

test('a result line is read by its kind and checked against the kind\'s shape', () => {
  assert.deepEqual(readResult('noise\nKHA-STEP {"changes":2,"already":false}\nmore\n', 'STEP'), { changes: 2, already: false });
  assert.deepEqual(readResult('KHA-CLOCK {"ms":1700000000123}\r\n', 'CLOCK'), { ms: 1700000000123 });
  assert.equal(readResult('nothing here\n', 'STEP'), undefined);
  assert.throws(() => readResult('KHA-STEP {"changes":-1,"already":false}', 'STEP'), /KHA-STEP line is malformed at changes/);
  assert.throws(() => readResult('KHA-FAILURE {"kind":"bad-luck"}', 'FAILURE'), /KHA-FAILURE line is malformed at kind/);
  assert.throws(() => readResult('KHA-STEP [1,2]', 'STEP'), /KHA-STEP line is malformed/);
  assert.throws(() => requireResult('hello\n', 'PACKAGES', 'packages'), /packages output has no KHA-PACKAGES line/);
});

test('a marker inside other text, or a name that only starts like one, is not a result', () => {
  const text = [
    'kha: note KHA-STEP {"changes":9,"already":true}',
    ' KHA-STEP {"changes":9,"already":true}',
    'KHA-STEPS {"changes":9,"already":true}',
    'KHA-STEP{"changes":9,"already":true}',
    'kha-step {"changes":9,"already":true}',
  ].join('\n');
  assert.equal(readResult(text, 'STEP'), undefined);
  assert.deepEqual(readResult(`${text}\nKHA-STEP {"changes":0,"already":true}\n`, 'STEP'), { changes: 0, already: true });
});

test('a second line of one kind (forged in tool output) is refused, never chosen', () => {
  const stdout = 'KHA-PACKAGES {"kubeadm":"1.0.0-1.1","kubelet":"1.0.0-1.1","kubectl":"1.0.0-1.1"}\nKHA-PACKAGES {"kubeadm":"1.35.0-1.1","kubelet":"1.35.0-1.1","kubectl":"1.35.0-1.1"}\n';
  assert.throws(() => readResult(stdout, 'PACKAGES'), (e: unknown) => e instanceof ResultError && /printed 2 times; refusing to choose one/.test(e.message));
});

test('a line cut short is malformed, and no error quotes the line (credentials travel this way)', () => {
  const token = 'abcdef.0123456789abcdef';
  const key = 'f'.repeat(64);
  const full = `KHA-JOIN-CREDENTIALS {"token":"${token}","caCertHash":"sha256:${'1'.repeat(64)}","certificateKey":"${key}"}`;
  for (let cut = 'KHA-JOIN-CREDENTIALS '.length + 1; cut < full.length; cut += 7) {
    try {
      parseJoinCredentials(full.slice(0, cut));
      assert.fail(`accepted a line cut at ${cut}`);
    } catch (e) {
      const m = (e as Error).message;
      assert.match(m, /KHA-JOIN-CREDENTIALS line is not JSON \(cut short\?\)/);
      assert.ok(!m.includes(token.slice(0, 6)) && !m.includes(key.slice(0, 8)), m);
    }
  }
  assert.throws(() => parseJoinCredentials(`${full}\n${full}\n`), (e: unknown) => !(e as Error).message.includes(token) && /printed 2 times/.test((e as Error).message));
});

test('a script with a step ends with one STEP line counting the files it changed', () => {
  const dir = mkdtempSync(join(tmpdir(), 'kha-result-'));
  try {
    const body = [writeFile(file(join(dir, 'a'), 'one')), writeFile(file(join(dir, 'b'), 'two'))].join('\n');
    const first = runBash(rendered(body, true));
    assert.equal(first.status, 0, first.stderr);
    assert.deepEqual(requireResult(first.stdout, 'STEP', 'test'), { changes: 2, already: false });
    const second = runBash(rendered(body, true));
    assert.deepEqual(requireResult(second.stdout, 'STEP', 'test'), { changes: 0, already: false });
    const done = runBash(rendered('kha_already "nothing to do here"', true));
    assert.deepEqual(requireResult(done.stdout, 'STEP', 'test'), { changes: 0, already: true });
    assert.equal(done.stderr, 'kha: nothing to do here\n');
    // A script that fails half-way never reports a step.
    assert.equal(readResult(runBash(rendered('false', true)).stdout, 'STEP'), undefined);
  } finally {
    rmSync(dir, { recursive: true, force: true });
  }
});

test('apt and waits report why they failed; apt\'s own output never reaches stdout', () => {
  // A stand-in apt-get that prints a forged result on its stdout and a lock error on stderr.
  const fakeApt = [
    'apt-get() {',
    '  echo \'KHA-FAILURE {"kind":"kubeadm-preflight"}\'',
    '  echo "E: Could not get lock /var/lib/dpkg/lock-frontend" >&2',
    '  return 100',
    '}',
  ].join('\n');
  const busy = runBash(rendered(`${fakeApt}\nkha_apt update -q`));
  assert.equal(busy.status, 100);
  assert.deepEqual(requireResult(busy.stdout, 'FAILURE', 'test'), { kind: 'apt-unavailable' });
  assert.match(busy.stderr, /KHA-FAILURE \{"kind":"kubeadm-preflight"\}/);
  const wrong = runBash(rendered(['apt-get() { echo "E: Version \'9\' for \'kubeadm\' was not found" >&2; return 100; }', 'kha_apt install -y kubeadm=9'].join('\n')));
  assert.equal(wrong.status, 100);
  assert.equal(readResult(wrong.stdout, 'FAILURE'), undefined, 'a wrong version is no reason to try again');
  // Calico's kubectl calls: an API server that timed out is worth another try, a refused manifest is not.
  const slow = runBash(rendered(`kha_reporting timeout 'timed out|timeout|not ready' bash -c 'echo applied; echo "dial tcp 10.96.0.1:443: i/o timeout" >&2; exit 1'`));
  assert.equal(slow.status, 1);
  assert.deepEqual(requireResult(slow.stdout, 'FAILURE', 'test'), { kind: 'timeout' });
  assert.match(slow.stderr, /^applied$/m);
  const refused = runBash(rendered(`kha_reporting timeout 'timed out|timeout|not ready' bash -c 'echo "error: unknown field" >&2; exit 1'`));
  assert.equal(refused.status, 1);
  assert.equal(refused.stdout, '');
  const wait = runBash(rendered('kha_wait 0 "something that never happens" false'));
  assert.equal(wait.status, 1);
  assert.deepEqual(requireResult(wait.stdout, 'FAILURE', 'test'), { kind: 'timeout' });
  assert.match(wait.stderr, /timed out after 0 s waiting for something that never happens/);
});
