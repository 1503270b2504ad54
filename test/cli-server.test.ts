// `kha server` in the foreground: a real dev server with the Web UI and the record others reuse; Ctrl-C stops it.
import { after, describe, it } from 'node:test';
import assert from 'node:assert/strict';
import { spawn } from 'node:child_process';
import { existsSync, mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { cliEnv, freePort, kha, KHA_MAIN } from './cli-run';

describe('kha server', () => {
  const dir = mkdtempSync(join(tmpdir(), 'kha-cli-server-'));
  after(() => rmSync(dir, { recursive: true, force: true }));

  it('runs in the foreground with the Web UI, is reused by status, refuses a second one, stops on SIGINT', async () => {
    const [port, uiPort] = [await freePort(), await freePort()];
    const env = cliEnv({ XDG_STATE_HOME: join(dir, 'state') });
    const child = spawn(process.execPath, [KHA_MAIN, 'server', '--port', String(port), '--ui-port', String(uiPort)], { env, stdio: ['ignore', 'pipe', 'pipe'] });
    let out = '';
    child.stdout.on('data', (d: Buffer) => (out += d.toString()));
    child.stderr.on('data', (d: Buffer) => (out += d.toString()));
    const exited = new Promise<number | null>((res) => child.on('close', (c) => res(c)));
    try {
      for (let i = 0; i < 600 && !out.includes('Ctrl-C stops it'); i++) await new Promise((r) => setTimeout(r, 100));
      assert.match(out, new RegExp(`^kha server: Temporal 127\\.0\\.0\\.1:${port} \\(namespace default\\), Web UI http://127\\.0\\.0\\.1:${uiPort}, database .*/state/kha/temporal\\.sqlite`, 'm'));
      const ui = await fetch(`http://127.0.0.1:${uiPort}/namespaces/default/workflows`);
      assert.equal(ui.status, 200);
      const st = JSON.parse((await kha(['server', '--status', '--json'], env)).stdout) as { running: boolean; server: { mode: string; address: string } };
      assert.equal(st.running, true);
      assert.equal(st.server.mode, 'foreground');
      assert.equal(st.server.address, `127.0.0.1:${port}`);
      const second = await kha(['server'], env);
      assert.equal(second.code, 1);
      assert.match(second.stderr, /^kha server: already running \(pid \d+\) at 127\.0\.0\.1:\d+, Web UI .*; stop it with: kha server --stop/m);
    } finally {
      child.kill('SIGINT');
    }
    assert.equal(await exited, 0);
    assert.equal(existsSync(join(dir, 'state', 'kha', 'server.json')), false, 'the record goes with the server');
    assert.equal((await kha(['server', '--status'], env)).code, 1);
    const bad = await kha(['server', '--port', 'x'], env);
    assert.equal(bad.code, 2);
  });
});
