// kha remove's command line: what it refuses before any server or host is contacted when CLUSTER is a file
// (usage, a node the file lacks, a drain timeout out of range, a control-plane node without confirmation).
import { after, before, describe, test } from 'node:test';
import assert from 'node:assert/strict';
import { spawnSync } from 'node:child_process';
import { existsSync, mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { KHA_MAIN, cliEnv, freePort, kha } from './cli-run';

describe('kha remove: refusals before anything starts', () => {
  const dir = mkdtempSync(join(tmpdir(), 'kha-cli-remove-'));
  const file = join(dir, 'rm.yaml');
  const state = join(dir, 'state');
  let env: NodeJS.ProcessEnv;

  before(async () => {
    writeFileSync(
      file,
      [
        'apiVersion: kha.dev/v1alpha1',
        'kind: Cluster',
        'metadata: { name: rm }',
        'spec:',
        '  kubernetes: { version: "1.35" }',
        '  nodes:',
        '    - { name: cp-1, address: 198.19.0.2, role: control-plane }',
        '    - { name: w-1, address: 198.19.0.3, role: worker }',
        '  controlPlaneEndpoint: { vip: 198.19.0.10, interface: eth0 }',
        '',
      ].join('\n'),
    );
    env = cliEnv({ XDG_STATE_HOME: state, KHA_SERVER_PORT: String(await freePort()), KHA_UI_PORT: String(await freePort()) });
  });
  after(() => rmSync(dir, { recursive: true, force: true }));

  // None of these may start the embedded server (it would create its database in the state directory).
  const noServer = () => assert.equal(existsSync(join(state, 'kha', 'temporal.sqlite')), false, 'a server was started');

  test('a control-plane node without --yes and without a terminal is refused (exit 2)', async () => {
    const r = await kha(['remove', file, 'cp-1'], env);
    assert.equal(r.code, 2, r.stdout + r.stderr);
    assert.match(r.stderr, /refusing to remove control-plane node cp-1 of rm without confirmation: standard input is not a terminal; add --yes to confirm/);
    noServer();
  });

  test('on a terminal the node name is asked for; another answer removes nothing (exit 1)', () => {
    // script(1) gives the command a pseudo-terminal; what it reads there is this input.
    const r = spawnSync('script', ['-qec', `${process.execPath} ${KHA_MAIN} remove ${file} cp-1`, '/dev/null'], { env, input: 'cp-2\n', encoding: 'utf8', timeout: 60_000 });
    assert.equal(r.status, 1, r.stdout + r.stderr);
    assert.match(r.stdout, /This removes control-plane node cp-1 from rm: its etcd member, its Node, then kubeadm reset on the host\.\r?\nType the node name to confirm: /);
    assert.match(r.stdout, /kha remove: not confirmed \(expected "cp-1"\); nothing was done/);
    noServer();
  });

  test('a node the file lacks, a missing NODE and a drain timeout out of range are usage errors (exit 2)', async () => {
    const missing = await kha(['remove', file, 'w-9'], env);
    assert.equal(missing.code, 2, missing.stdout + missing.stderr);
    assert.match(missing.stderr, /w-9 is not a node of rm \(nodes: cp-1, w-1\); nothing was done/);
    const noNode = await kha(['remove', file], env);
    assert.equal(noNode.code, 2);
    assert.match(noNode.stderr, /expected CLUSTER NODE, got 1 argument\(s\)/);
    const zero = await kha(['remove', file, 'w-1', '--drain-timeout', '0'], env);
    assert.equal(zero.code, 2);
    assert.match(zero.stderr, /--drain-timeout 0: not a number of seconds from 1 to 86400/);
    noServer();
  });
});
