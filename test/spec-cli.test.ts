// kha validate on the examples, its usage errors, and kha schema as editors consume it.
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { mkdtempSync, readFileSync, readdirSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join, resolve } from 'node:path';
import { spawnSync } from 'node:child_process';
import { parse } from 'yaml';

const root = resolve(__dirname, '..', '..');

function kha(...args: string[]) {
  return spawnSync(process.execPath, [join(root, 'bin', 'kha'), ...args], { cwd: root, encoding: 'utf8' });
}

test('the examples pass kha validate with exit 0 and a one-line summary', () => {
  const seed = kha('validate', 'examples/seed-cluster.yaml');
  assert.equal(seed.status, 0);
  assert.equal(seed.stdout, 'examples/seed-cluster.yaml: valid: cluster seed, Kubernetes 1.35, 3 control-plane + 3 worker nodes\n');
  assert.equal(
    seed.stderr,
    "examples/seed-cluster.yaml:90:20: spec.networking.kubeProxyMode: warning: kube-proxy's IPVS mode is deprecated since Kubernetes 1.35; consider nftables\n",
  );
  const all = kha('validate', 'examples/minimal.yaml', 'examples/iptables-1.30.yaml');
  assert.equal(all.status, 0);
  assert.equal(
    all.stdout,
    'examples/minimal.yaml: valid: cluster minimal, Kubernetes 1.35, 3 control-plane + 1 worker node\n' +
      'examples/iptables-1.30.yaml: valid: cluster legacy, Kubernetes 1.30.14, 3 control-plane + 2 worker nodes\n',
  );
});

test('kha validate: usage errors exit 2, a bad file among good ones fails the run', () => {
  const none = kha('validate');
  assert.equal(none.status, 2);
  assert.match(none.stderr, /^usage: kha validate FILE/);
  const opt = kha('validate', '--strict', 'examples/minimal.yaml');
  assert.equal(opt.status, 2);
  assert.match(opt.stderr, /^kha validate: unknown option "--strict"/);
  const missing = kha('validate', 'examples/minimal.yaml', 'examples/nope.yaml');
  assert.equal(missing.status, 2);
  assert.match(missing.stdout, /^examples\/minimal.yaml: valid:/);
  assert.match(missing.stderr, /^examples\/nope.yaml: \(file\): no such file$/m);
});

type Schema = Record<string, unknown>;

/** The subset of JSON Schema that `kha schema` emits, enough to check what an editor would flag. */
function violations(s: Schema, v: unknown, at = ''): string[] {
  const out: string[] = [];
  const t = s.type as string | undefined;
  const kind = Array.isArray(v) ? 'array' : v === null ? 'null' : Number.isInteger(v) ? 'integer' : typeof v;
  if (t && !(t === kind || (t === 'number' && kind === 'integer'))) return [`${at}: ${kind} is not ${t}`];
  if ('const' in s && s.const !== v) out.push(`${at}: not ${String(s.const)}`);
  if (Array.isArray(s.enum) && !s.enum.includes(v)) out.push(`${at}: not in enum`);
  if (typeof v === 'string' && typeof s.pattern === 'string' && !new RegExp(s.pattern, 'u').test(v)) out.push(`${at}: pattern`);
  if (typeof v === 'number' && typeof s.minimum === 'number' && v < s.minimum) out.push(`${at}: minimum`);
  if (typeof v === 'number' && typeof s.maximum === 'number' && v > s.maximum) out.push(`${at}: maximum`);
  if (Array.isArray(v)) {
    if (typeof s.minItems === 'number' && v.length < s.minItems) out.push(`${at}: minItems`);
    if (s.items) v.forEach((x, i) => out.push(...violations(s.items as Schema, x, `${at}[${i}]`)));
  }
  if (kind === 'object') {
    const o = v as Record<string, unknown>;
    const props = (s.properties ?? {}) as Record<string, Schema>;
    for (const r of (s.required ?? []) as string[]) if (!(r in o)) out.push(`${at}.${r}: required`);
    for (const [k, x] of Object.entries(o)) {
      if (s.propertyNames) out.push(...violations(s.propertyNames as Schema, k, `${at}.${k} (name)`));
      if (props[k]) out.push(...violations(props[k]!, x, `${at}.${k}`));
      else if (s.additionalProperties === false) out.push(`${at}.${k}: additional property`);
      else if (typeof s.additionalProperties === 'object') out.push(...violations(s.additionalProperties as Schema, x, `${at}.${k}`));
    }
  }
  return out;
}

test('kha schema prints a draft 2020-12 JSON Schema that refuses unknown fields', () => {
  const r = kha('schema');
  assert.equal(r.status, 0);
  const s = JSON.parse(r.stdout) as Schema;
  assert.equal(s.$schema, 'https://json-schema.org/draft/2020-12/schema');
  assert.equal(s.$id, 'https://kha.dev/schemas/cluster-v1alpha1.json');
  assert.equal(s.title, 'kha cluster file');
  const spec = (s.properties as Record<string, Schema>).spec!;
  const specProps = spec.properties as Record<string, Schema>;
  const nodeItems = specProps.nodes!.items as Schema;
  assert.equal(nodeItems.additionalProperties, false);
  assert.deepEqual(nodeItems.required, ['name', 'address', 'role']);
  assert.equal(spec.additionalProperties, false);
  // Input side: fields with defaults are optional, and the defaults are shown.
  assert.deepEqual(spec.required, ['kubernetes', 'nodes', 'controlPlaneEndpoint']);
  const net = specProps.networking!.properties as Record<string, Schema>;
  assert.equal(net.kubeProxyMode!.default, 'ipvs');
  // The committed copy next to the examples (their yaml-language-server modeline) is current.
  assert.equal(readFileSync(join(root, 'examples', 'cluster.schema.json'), 'utf8'), r.stdout);
  assert.equal(kha('schema', 'extra').status, 2);
});

test('the JSON Schema accepts every example and flags what the loader flags for editors', () => {
  const s = JSON.parse(kha('schema').stdout) as Schema;
  for (const f of readdirSync(join(root, 'examples')).filter((x) => x.endsWith('.yaml'))) {
    assert.deepEqual(violations(s, parse(readFileSync(join(root, 'examples', f), 'utf8'))), [], f);
  }
  const bad = (name: string) => violations(s, parse(readFileSync(join(root, 'test/fixtures/specs/bad', name), 'utf8')));
  assert.deepEqual(bad('unknown-field-typo.yaml'), ['.spec.nodes[1].address: required', '.spec.nodes[1].adress: additional property']);
  assert.deepEqual(bad('node-name-injection.yaml'), ['.spec.nodes[0].name: pattern', '.spec.nodes[3].name: pattern']);
  assert.deepEqual(bad('version-as-number.yaml'), ['.spec.kubernetes.version: number is not string']);
  assert.deepEqual(bad('bad-labels.yaml'), ['.spec.nodes[3].labels.team name (name): pattern', '.spec.nodes[3].taints[0].effect: not in enum']);
});

/** Hostile inputs: each must end in exit 2 with a file:line:col message (the timeout only keeps a hang from hanging the suite). */
function validateHostile(name: string, text: string | undefined) {
  const dir = mkdtempSync(join(tmpdir(), 'kha-hostile-'));
  const file = text === undefined ? name : join(dir, name);
  if (text !== undefined) writeFileSync(file, text);
  const r = spawnSync(process.execPath, [join(root, 'bin', 'kha'), 'validate', file], { cwd: root, encoding: 'utf8', timeout: 60_000 });
  rmSync(dir, { recursive: true, force: true });
  return { ...r, file };
}

const HEAD = 'apiVersion: kha.dev/v1alpha1\nkind: Cluster\nmetadata:\n  name: t\nspec:\n  kubernetes:\n    version: "1.35"\n';

test('an alias bomb is refused with exit 2 at the alias that breaks the budget', () => {
  let bomb = HEAD + '  nodes:\n    - name: &a0 [x, x, x, x, x, x, x, x, x, x]\n';
  for (let i = 1; i < 9; i++) bomb += `    - name: &a${i} [${Array(10).fill(`*a${i - 1}`).join(', ')}]\n`;
  const r = validateHostile('bomb.yaml', bomb);
  assert.equal(r.status, 2, r.stderr);
  assert.match(r.stderr, new RegExp(`^${r.file.replace(/[.*+?^${}()|[\]\\/]/g, '\\$&')}:\\d+:\\d+: \\(yaml\\): alias \\*a\\d takes the document past 50000 repeated values`, 'm'));
  assert.doesNotMatch(r.stderr, /Excessive alias count/);
});

test('a << merge chain is refused with exit 2 and a position', () => {
  let chain = HEAD + '  nodes:\n    - labels: &m0 { k0: a }\n';
  for (let i = 1; i < 400; i++) chain += `    - labels: &m${i} { <<: *m${i - 1}, k${i}: a }\n`;
  const r = validateHostile('chain.yaml', chain);
  assert.equal(r.status, 2, r.stderr);
  assert.match(r.stderr, /chain\.yaml:\d+:\d+: \(yaml\): (alias \*m\d+|<< \(merge\)) takes the document past 50000 repeated values/);
  const loop = validateHostile('loop.yaml', HEAD + '  nodes: &n\n    - { name: a, labels: { <<: *n } }\n');
  assert.equal(loop.status, 2, loop.stderr);
  assert.match(loop.stderr, /loop\.yaml:9:32: \(yaml\): alias \*n is inside the value it refers to \(a loop\)/);
  const missing = validateHostile('missing.yaml', HEAD + '  nodes: *nope\n');
  assert.equal(missing.status, 2, missing.stderr);
  assert.match(missing.stderr, /missing\.yaml:8:10: \(yaml\): alias \*nope has no anchor &nope before it/);
});

test('/dev/zero and an oversized file are refused with exit 2 and a position, not read forever', () => {
  const zero = validateHostile('/dev/zero', undefined);
  assert.equal(zero.status, 2, zero.stderr);
  assert.equal(zero.stderr, '/dev/zero:1:1: (file): holds a NUL byte: this is not a text file\n');
  const big = validateHostile('big.yaml', HEAD + '#' + 'x'.repeat(300 * 1024) + '\n');
  assert.equal(big.status, 2, big.stderr);
  assert.match(big.stderr, /big\.yaml:8:\d+: \(file\): the file goes on past 262144 bytes/);
});
