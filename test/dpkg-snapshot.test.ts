// The lab's copy of this machine's dpkg database that every real-tier host mounts its own overlay over
// (src/lab/real/setup.ts): the lab repository's packages left out, and no copy taken in the middle of a dpkg run.
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { spawn } from 'node:child_process';
import { existsSync, mkdirSync, mkdtempSync, readdirSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { snapshotMachineDpkg } from '../src/lab/real/setup';

const stanza = (name: string, version: string) => `Package: ${name}\nStatus: install ok installed\nVersion: ${version}\n`;

function fakeDpkg(): { root: string; src: string; dest: string } {
  const root = mkdtempSync(join(tmpdir(), 'kha-dpkg-snap-'));
  const src = join(root, 'dpkg');
  for (const d of ['info', 'updates']) mkdirSync(join(src, d), { recursive: true });
  writeFileSync(join(src, 'status'), [stanza('bash', '5.2.15-2+b7'), stanza('kubectl', '1:1.33.0-00'), stanza('kubernetes-cni', '1.1.1-00'), stanza('curl', '7.88.1-10')].join('\n'));
  for (const f of ['bash.list', 'kubectl.list', 'kubectl.md5sums', 'kubernetes-cni:amd64.list', 'curl.list', 'kubectl-extra.list']) writeFileSync(join(src, 'info', f), f);
  return { root, src, dest: join(root, 'copy') };
}

test('snapshotMachineDpkg copies the database without the lab repository packages, leaving the source as it was', () => {
  const { root, src, dest } = fakeDpkg();
  try {
    const before = readFileSync(join(src, 'status'), 'utf8');
    snapshotMachineDpkg(dest, src);
    const status = readFileSync(join(dest, 'status'), 'utf8');
    assert.deepEqual([...status.matchAll(/^Package: (\S+)$/gm)].map((m) => m[1]), ['bash', 'curl']);
    assert.match(status, /^Version: 7\.88\.1-10$/m);
    assert.deepEqual(readdirSync(join(dest, 'info')).sort(), ['bash.list', 'curl.list', 'kubectl-extra.list']);
    assert.equal(readFileSync(join(src, 'status'), 'utf8'), before);
    assert.equal(readdirSync(join(src, 'info')).length, 6);
  } finally {
    rmSync(root, { recursive: true, force: true });
  }
});

test('snapshotMachineDpkg waits out a dpkg journal entry and refuses one that stays', async () => {
  const { root, src, dest } = fakeDpkg();
  try {
    // A dpkg run ends while the copy is retried: its journal entry goes away a moment later.
    writeFileSync(join(src, 'updates', '0001'), stanza('curl', '7.88.1-10+deb12u1'));
    const ended = new Promise((res) => spawn('sh', ['-c', 'sleep 1; rm -f "$1"', 'sh', join(src, 'updates', '0001')]).on('exit', res));
    snapshotMachineDpkg(dest, src);
    await ended;
    assert.deepEqual(readdirSync(join(dest, 'updates')), []);
    // One that never goes: a clear error naming it, and no half copy is used.
    writeFileSync(join(src, 'updates', '0002'), stanza('curl', '7.88.1-10+deb12u1'));
    assert.throws(() => snapshotMachineDpkg(dest, src), new RegExp(`this machine's dpkg stays mid-run \\(${src.replace(/[.]/g, '\\.')}/updates holds 0002\\)`));
    assert.equal(existsSync(dest), false, 'the refused copy is left behind');
    assert.equal(existsSync(join(src, 'updates', '0002')), true);
  } finally {
    rmSync(root, { recursive: true, force: true });
  }
});
