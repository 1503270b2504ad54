// Every bad cluster file under test/fixtures/specs/bad is rejected by the real CLI with exactly the
// stderr in its sibling .expected file and exit code 2.
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { readdirSync, readFileSync, existsSync } from 'node:fs';
import { join, resolve } from 'node:path';
import { spawnSync } from 'node:child_process';

const root = resolve(__dirname, '..', '..');
const dir = 'test/fixtures/specs/bad';
const files = readdirSync(join(root, dir)).filter((f) => f.endsWith('.yaml')).sort();

function kha(...args: string[]) {
  return spawnSync(process.execPath, [join(root, 'bin', 'kha'), ...args], { cwd: root, encoding: 'utf8' });
}

test('the corpus has at least 30 bad files, each with its .expected and nothing stray', () => {
  assert.ok(files.length >= 30, `only ${files.length} bad files`);
  for (const f of files) assert.ok(existsSync(join(root, dir, f.replace(/\.yaml$/, '.expected'))), `${f} has no .expected`);
  const expected = readdirSync(join(root, dir)).filter((f) => f.endsWith('.expected'));
  for (const e of expected) assert.ok(files.includes(e.replace(/\.expected$/, '.yaml')), `${e} has no .yaml`);
  // Some files must carry several errors, to show they are reported at once.
  const multi = expected.filter((e) => readFileSync(join(root, dir, e), 'utf8').trim().split('\n').length >= 3);
  assert.ok(multi.length >= 3, `only ${multi.length} multi-error files`);
});

for (const f of files) {
  test(`kha validate rejects ${f}`, () => {
    const rel = `${dir}/${f}`;
    const r = kha('validate', rel);
    const want = readFileSync(join(root, dir, f.replace(/\.yaml$/, '.expected')), 'utf8');
    assert.equal(r.stderr, want);
    assert.equal(r.stdout, '');
    assert.equal(r.status, 2);
  });
}
