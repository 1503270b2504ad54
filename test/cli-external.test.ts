// The operator commands against an external Temporal (TEMPORAL_ADDRESS set): a real dev server from the test
// helper; kha must not start its embedded server nor a worker of its own, and must say when no worker polls.
import { after, before, describe, it } from 'node:test';
import assert from 'node:assert/strict';
import { existsSync, mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import type { TestWorkflowEnvironment } from '@temporalio/testing';
import type { Worker } from '@temporalio/worker';
import { startTemporal, startWorker } from './helpers/temporal';
import { cliEnv, jsonLines, kha, unreachableCluster } from './cli-run';

describe('kha operator commands on an external Temporal cluster', () => {
  const dir = mkdtempSync(join(tmpdir(), 'kha-cli-external-'));
  const file = unreachableCluster('ext', dir);
  const taskQueue = `kha-cli-ext-${process.pid}`;
  let tenv: TestWorkflowEnvironment;
  let env: NodeJS.ProcessEnv;
  let worker: Worker | undefined;
  let running: Promise<void> | undefined;

  before(async () => {
    tenv = await startTemporal();
    env = cliEnv({
      TEMPORAL_ADDRESS: tenv.address,
      TEMPORAL_NAMESPACE: tenv.namespace ?? 'default',
      TEMPORAL_UI_URL: 'http://ui.example.invalid:8080/',
      KHA_TASK_QUEUE: taskQueue,
      XDG_STATE_HOME: join(dir, 'state'),
    });
  });

  after(async () => {
    worker?.shutdown();
    await running;
    await tenv?.teardown();
    rmSync(dir, { recursive: true, force: true });
  });

  it('deploy --detach starts the workflow with its search attributes and warns that no worker polls', async () => {
    const r = await kha(['deploy', file, '--detach'], env);
    assert.equal(r.code, 0, r.stdout + r.stderr);
    assert.match(r.stdout, new RegExp(`^Temporal: ${tenv.address.replace(/[.]/g, '\\.')} \\(namespace default, task queue ${taskQueue}\\)`, 'm'));
    assert.match(r.stdout, /^started deployment kha-deploy-ext: ext, Kubernetes 1\.35, 1 control-plane \+ 1 worker node, endpoint 198\.18\.255\.10:6443$/m);
    assert.match(r.stdout, /^Web UI: http:\/\/ui\.example\.invalid:8080\/namespaces\/default\/workflows\/kha-deploy-ext\/\S+$/m);
    assert.match(r.stderr, new RegExp(`^warning: no worker polls task queue ${taskQueue} on .*: start one with: kha worker`, 'm'));
    assert.equal(existsSync(join(dir, 'state', 'kha', 'server.json')), false, 'no embedded server with TEMPORAL_ADDRESS');
    const d = await tenv.client.workflow.getHandle('kha-deploy-ext').describe();
    assert.equal(d.status.name, 'RUNNING');
    assert.equal(d.taskQueue, taskQueue);
    assert.equal(await d.staticSummary(), 'deploy ext: Kubernetes 1.35, 1 control-plane + 1 worker node, endpoint 198.18.255.10:6443');
    assert.match((await d.staticDetails()) ?? '', /\| cp-1 \| control-plane \| 198\.18\.255\.11 \|/);
  });

  it('status without a worker shows what the server knows: the search attributes set at start', async () => {
    const r = await kha(['status', 'ext'], env);
    assert.equal(r.code, 0, r.stderr);
    assert.match(r.stdout, new RegExp(`^no worker is running: no worker polls task queue ${taskQueue} on \\S+ \\(namespace default\\): start one with: kha worker`, 'm'));
    assert.match(r.stdout, /^search attributes: KhaCluster=ext KhaPhase=none KhaState=running$/m);
    assert.match(r.stdout, /^pending activities: none$/m);
  });

  it('approve refuses to wait forever when no worker polls', async () => {
    const r = await kha(['approve', 'ext'], env);
    assert.equal(r.code, 1);
    assert.match(r.stderr, /^kha approve: no worker polls task queue .*; the approve needs a running worker$/m);
  });

  it('with a worker running elsewhere, deploy attaches, follows and exits 11 at the decision', async () => {
    worker = await startWorker(tenv, taskQueue);
    running = worker.run();
    const r = await kha(['deploy', file, '--json'], env);
    assert.equal(r.code, 11, r.stdout + r.stderr);
    const ev = jsonLines(r.stdout);
    assert.ok(ev.some((e) => e.type === 'attached' && e.workflowId === 'kha-deploy-ext'));
    assert.ok(!ev.some((e) => e.type === 'started'));
    assert.ok(ev.some((e) => e.type === 'waiting-decision'));
    const s = await kha(['status', 'ext', '--json'], env);
    const o = JSON.parse(s.stdout) as { status: { state: string; phases: Array<{ phase: string; nodes: Array<{ node: string; state: string }> }> } };
    assert.equal(o.status.state, 'waiting-decision');
    assert.deepEqual(o.status.phases.find((p) => p.phase === 'preflight')!.nodes.map((n) => `${n.node}:${n.state}`).sort(), ['cp-1:waiting', 'worker-1:waiting']);
  });

  it('abort without --rollback is accepted and the command follows it to the end (exit 1)', async () => {
    const r = await kha(['abort', 'ext'], env);
    assert.equal(r.code, 1, r.stdout + r.stderr);
    assert.match(r.stdout, /^abort: aborting \(leaving nodes as they are\)$/m);
    assert.match(r.stderr, /^✖ deployment of ext aborted by the operator; nodes left as they are$/m);
    const d = await tenv.client.workflow.getHandle('kha-deploy-ext').describe();
    assert.equal(d.status.name, 'FAILED');
  });
});
