// The operator commands on the embedded server (TEMPORAL_ADDRESS unset): kha starts a real Temporal dev server
// under XDG_STATE_HOME, runs a worker in its own process while it follows, and every answer goes through the
// real workflow. The cluster's nodes cannot be logged in to, so the deployment stops in preflight and waits
// for an operator decision: that exercises start, attach, the decision exit code, rejected and accepted
// Updates, status with and without a worker, abort, redeploy and reset.
import { after, before, describe, it } from 'node:test';
import assert from 'node:assert/strict';
import { existsSync, mkdtempSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { Client, Connection } from '@temporalio/client';
import { cliEnv, freePort, jsonLines, kha, KHA_MAIN, runIn, unreachableCluster } from './cli-run';

describe('kha operator commands on the embedded server', () => {
  const dir = mkdtempSync(join(tmpdir(), 'kha-cli-embedded-'));
  const file = unreachableCluster('lo', dir);
  let env: NodeJS.ProcessEnv;
  let port = 0;
  let firstRunId = '';

  before(async () => {
    port = await freePort();
    env = cliEnv({ XDG_STATE_HOME: join(dir, 'state'), KHA_SERVER_PORT: String(port), KHA_UI_PORT: String(await freePort()) });
  });

  after(async () => {
    await kha(['server', '--stop'], env).catch(() => undefined);
    rmSync(dir, { recursive: true, force: true });
  });

  it('reports no server before anything started, and commands other than deploy/reset do not start one', async () => {
    const st = await kha(['server', '--status'], env);
    assert.equal(st.code, 1);
    assert.match(st.stdout, /^not running: no embedded server recorded in .*state\/kha/m);
    const s = await kha(['status', 'lo'], env);
    assert.equal(s.code, 1);
    assert.match(s.stderr, /kha status: no Temporal server: TEMPORAL_ADDRESS is unset and the embedded server is not running/);
    const ap = await kha(['approve', 'lo'], env);
    assert.equal(ap.code, 1);
    assert.equal(existsSync(join(dir, 'state', 'kha', 'server.json')), false);
  });

  it('rejects an invalid file with file:line:col messages and exit 2, contacting nothing', async () => {
    const bad = join(dir, 'bad.yaml');
    writeFileSync(bad, readFileSync(file, 'utf8').replace('role: worker', 'role: wroker'));
    const r = await kha(['deploy', bad], env);
    assert.equal(r.code, 2);
    assert.match(r.stderr, new RegExp(`^${bad.replace(/[.*+?^${}()|[\]\\/]/g, '\\$&')}:13:\\d+: spec\\.nodes\\[1\\]\\.role: `, 'm'));
    assert.match(r.stderr, /nothing was contacted/);
    assert.equal(r.stdout, '');
    assert.equal(existsSync(join(dir, 'state', 'kha', 'server.json')), false, 'no server was started');
    const usage = await kha(['deploy', file, '--bogus'], env);
    assert.equal(usage.code, 2);
    assert.match(usage.stderr, /unknown option "--bogus"/);
  });

  it('deploy starts the server and the workflow, and exits 11 naming node, phase and next step', async () => {
    const r = await kha(['deploy', file, '--json'], env);
    assert.equal(r.code, 11, r.stdout + r.stderr);
    const ev = jsonLines(r.stdout);
    const server = ev.find((e) => e.type === 'server')!;
    assert.equal(server.started, true);
    assert.equal(server.address, `127.0.0.1:${port}`);
    const started = ev.find((e) => e.type === 'started')!;
    assert.equal(started.workflowId, 'kha-deploy-lo');
    firstRunId = String(started.runId);
    const ui = ev.find((e) => e.type === 'web-ui')!;
    assert.equal(ui.url, `${String(server.uiUrl)}/namespaces/default/workflows/kha-deploy-lo/${firstRunId}`);
    // Progress events: the preflight phase ran and both nodes wait.
    assert.ok(ev.some((e) => e.type === 'phase' && e.phase === 'preflight' && e.state === 'running'));
    assert.ok(ev.some((e) => e.type === 'node' && e.phase === 'preflight' && e.node === 'cp-1' && e.state === 'waiting'));
    const err = ev.find((e) => e.type === 'error' && typeof e.message === 'string' && e.message.includes('failed in phase preflight'))!;
    assert.match(String(err.message), /✖ (cp-1|worker-1)\b.* failed in phase preflight after 1 attempt: /);
    assert.match(String(err.message), /kha retry lo --node cp-1/);
    assert.match(String(err.message), /kha abort lo --rollback/);
    assert.ok(ev.some((e) => e.type === 'waiting-decision'));

    const st = await kha(['server', '--status', '--json'], env);
    assert.equal(st.code, 0);
    const s = JSON.parse(st.stdout) as { running: boolean; server: { address: string; pid: number; dbFile: string } };
    assert.equal(s.running, true);
    assert.ok(existsSync(s.server.dbFile), 'the database is a file under the state directory');
  });

  it('the server has the search attributes, and the workflow carries them', async () => {
    const conn = await Connection.connect({ address: `127.0.0.1:${port}` });
    try {
      const sa = await conn.operatorService.listSearchAttributes({ namespace: 'default' });
      for (const k of ['KhaCluster', 'KhaPhase', 'KhaState']) assert.ok(k in (sa.customAttributes ?? {}), k);
      const client = new Client({ connection: conn });
      const ids: string[] = [];
      for await (const w of client.workflow.list({ query: `KhaCluster = "lo" AND KhaState = "waiting-decision"` })) ids.push(w.runId);
      assert.deepEqual(ids, [firstRunId]);
    } finally {
      await conn.close();
    }
  });

  it('a second deploy attaches to the running one instead of starting another', async () => {
    const r = await kha(['deploy', file], env);
    assert.equal(r.code, 11, r.stdout + r.stderr);
    assert.match(r.stdout, /^using the embedded Temporal server at 127\.0\.0\.1:\d+/m);
    assert.match(r.stdout, new RegExp(`^already running: attaching to deployment kha-deploy-lo`, 'm'));
    assert.match(r.stdout, new RegExp(`/workflows/kha-deploy-lo/${firstRunId}$`, 'm'));
    assert.doesNotMatch(r.stdout, /^started deployment/m);
    // Plain output (not a TTY): one line per change.
    assert.match(r.stdout, /^preflight cp-1: waiting \(last error: /m);
  });

  it('on a terminal the progress is a coloured table drawn with line clears (Live)', async () => {
    // script(1) gives the command a pseudo-terminal; -e passes its exit status through.
    const cmd = `${process.execPath} ${KHA_MAIN} deploy ${file}`;
    const r = await runIn(['script', '-qec', cmd, '/dev/null'], env);
    assert.equal(r.code, 11, r.stdout);
    assert.match(r.stdout, /\x1b\[2K\x1b\[36m {2}▶ Preflight checks +running/, 'a running phase in cyan');
    assert.match(r.stdout, /\x1b\[2K\x1b\[33m {6}⏸ cp-1 +waiting/, 'a waiting node in yellow');
    assert.match(r.stdout, /failed in phase preflight/);
  });

  it('approve is rejected with the validator reason while nothing waits for approval', async () => {
    const r = await kha(['approve', 'lo'], env);
    assert.equal(r.code, 1);
    assert.match(r.stderr, /^kha approve: rejected: nothing waits for approval: the deployment is waiting-decision in phase preflight$/m);
  });

  it('skip of a control-plane node and retry without --node are rejected with reasons', async () => {
    const s = await kha(['skip', 'lo', 'cp-1'], env);
    assert.equal(s.code, 1);
    assert.match(s.stderr, /kha skip: rejected: skip is not allowed for cp-1 \(control-plane, phase preflight\)/);
    const r = await kha(['retry', 'lo'], env);
    assert.equal(r.code, 1);
    assert.match(r.stderr, /kha retry: rejected: decisions are pending for .*: name the node/);
    const u = await kha(['skip', 'lo'], env);
    assert.equal(u.code, 2);
    // A batch skips workers only, and none may be skipped in preflight.
    const all = await kha(['skip', 'lo', '--all'], env);
    assert.equal(all.code, 1, all.stdout + all.stderr);
    assert.match(all.stderr, /kha skip: rejected: skip is not allowed for any waiting node \(.*cp-1: control-plane, phase preflight/);
    const both = await kha(['retry', 'lo', '--all', '--node', 'cp-1'], env);
    assert.equal(both.code, 2);
    assert.match(both.stderr, /--node and --all exclude each other/);
  });

  it('retry --node runs the step again and stops again at the decision (exit 11)', async () => {
    const r = await kha(['retry', 'lo', '--node', 'cp-1', '--json'], env);
    assert.equal(r.code, 11, r.stdout + r.stderr);
    const ev = jsonLines(r.stdout);
    assert.ok(ev.some((e) => e.type === 'accepted' && e.result === 'retry cp-1'));
    assert.ok(ev.some((e) => e.type === 'node' && e.node === 'cp-1' && e.attempts === 2 && e.state === 'waiting'), r.stdout);
  });

  it('status without a worker says so and shows what the server knows', async () => {
    const r = await kha(['status', 'lo'], env);
    assert.equal(r.code, 0, r.stderr);
    assert.match(r.stdout, /^no worker answered the status query within 5 s/m);
    assert.match(r.stdout, /^kha-deploy-lo: RUNNING \(started /m);
    assert.match(r.stdout, /^search attributes: KhaCluster=lo KhaPhase=preflight KhaState=waiting-decision$/m);
    const j = await kha(['status', 'lo', '--json'], env);
    const o = JSON.parse(j.stdout) as { worker: boolean; server: { status: string; searchAttributes: Record<string, string> } };
    assert.equal(o.worker, false);
    assert.equal(o.server.status, 'RUNNING');
    assert.equal(o.server.searchAttributes.state, 'waiting-decision');
    const none = await kha(['status', 'nosuch'], env);
    assert.equal(none.code, 1);
    assert.match(none.stderr, /no deployment of nosuch on 127\.0\.0\.1:\d+/);
  });

  it('reset refuses without a terminal or --yes (exit 2), and while the deployment runs (exit 1)', async () => {
    const r = await kha(['reset', file], env);
    assert.equal(r.code, 2);
    assert.match(r.stderr, /refusing to reset cluster lo \(cp-1, worker-1\) without confirmation/);
    const y = await kha(['reset', file, '--yes'], env);
    assert.equal(y.code, 1);
    assert.match(y.stderr, /the deployment of lo is running \(kha-deploy-lo\).*kha abort lo/);
  });

  it('abort --rollback ends the deployment (exit 1) and status shows it failed', async () => {
    const r = await kha(['abort', 'lo', '--rollback'], env);
    assert.equal(r.code, 1, r.stdout + r.stderr);
    assert.match(r.stdout, /^abort: aborting \(rolling back touched nodes\)$/m);
    assert.match(r.stderr, /^✖ deployment of lo aborted by the operator; rolled back 0 node\(s\)$/m);
    const again = await kha(['approve', 'lo'], env);
    assert.equal(again.code, 1);
    assert.match(again.stderr, /the deployment of lo is not running \(failed at /);
  });

  it('deploy after an aborted run says so and starts a new run; --detach leaves it to the background worker', async () => {
    const r = await kha(['deploy', file, '--detach'], env);
    assert.equal(r.code, 0, r.stdout + r.stderr);
    assert.match(r.stdout, /^the last deployment of lo ended failed at .*; starting a new one$/m);
    const runId = /^started deployment kha-deploy-lo: .*\nWeb UI: .*\/kha-deploy-lo\/(\S+)$/m.exec(r.stdout)?.[1];
    assert.ok(runId && runId !== firstRunId, r.stdout);
    assert.match(r.stdout, /^detached; follow it with: kha status lo$/m);
    // The background worker runs it: status gets an answer to its query and shows the table.
    let table = '';
    for (let i = 0; i < 40 && !/⏸ cp-1/.test(table); i++) {
      table = (await kha(['status', 'lo'], env)).stdout;
      if (!/⏸ cp-1/.test(table)) await new Promise((res) => setTimeout(res, 500));
    }
    assert.match(table, /^cluster lo · waiting-decision · phase preflight/m);
    assert.match(table, /^ {6}⏸ cp-1 +waiting .*last error: /m);
    assert.match(table, /^✖ (cp-1|worker-1).* failed in phase preflight/m);
    const st = JSON.parse((await kha(['server', '--status', '--json'], env)).stdout) as { worker?: { running: boolean } };
    assert.equal(st.worker?.running, true);
    const ab = await kha(['abort', 'lo', '--detach'], env);
    assert.equal(ab.code, 0, ab.stderr);
  });

  it('reset --yes runs the teardown workers first and names each failed node (exit 1)', async () => {
    // Wait for the aborted deployment to be closed.
    for (let i = 0; i < 40; i++) {
      const s = JSON.parse((await kha(['status', 'lo', '--json'], env)).stdout) as { execution: string };
      if (s.execution !== 'RUNNING') break;
      await new Promise((res) => setTimeout(res, 500));
    }
    const r = await kha(['reset', file, '--yes', '--json'], env);
    assert.equal(r.code, 1, r.stdout + r.stderr);
    const ev = jsonLines(r.stdout);
    // Workers first: the control-plane node's reset starts after the worker's ended.
    const last = (phase: string, node: string) => ev.filter((e) => e.type === 'node' && e.phase === phase && e.node === node).pop()!;
    const w = last('reset-workers', 'worker-1');
    const cp = last('reset-control-plane', 'cp-1');
    assert.equal(w.state, 'failed');
    assert.equal(cp.state, 'failed');
    assert.ok(Date.parse(String(cp.startedAt)) >= Date.parse(String(w.endedAt)), JSON.stringify([w, cp]));
    const errs = ev.filter((e) => e.type === 'error').map((e) => String(e.message));
    assert.ok(errs.some((m) => /^✖ worker-1 failed in phase reset-workers: /.test(m)), errs.join('\n'));
    assert.ok(errs.some((m) => /^✖ cp-1 failed in phase reset-control-plane: /.test(m)), errs.join('\n'));
    assert.ok(errs.some((m) => /^next step: fix the host\(s\) /.test(m)));
  });

  it('the decision commands and status look at every operation of the CLI table, the reset included', async () => {
    const r = await kha(['retry', 'lo'], env);
    assert.equal(r.code, 1);
    assert.match(r.stderr, /the deployment of lo is not running \(failed at [^)]*\); the reset of lo is not running \(completed at [^)]*\): nothing to retry; see kha status lo/);
    const s = await kha(['status', 'lo', '--reset', '--json'], env);
    assert.equal(s.code, 0, s.stderr);
    assert.equal((JSON.parse(s.stdout) as { workflowId: string }).workflowId, 'kha-reset-lo');
  });

  it('server --stop stops the server and the background worker', async () => {
    const r = await kha(['server', '--stop'], env);
    assert.equal(r.code, 0);
    assert.match(r.stdout, /^stopped worker \(pid \d+\) and server \(pid \d+\)$/m);
    const st = await kha(['server', '--status'], env);
    assert.equal(st.code, 1);
  });
});
