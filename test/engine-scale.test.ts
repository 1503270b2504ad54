// The fast tier at scale, with mock activities (no hosts). First what a worker node costs in one history (3+100
// runs in one workflow); then 3+1,000, which runs its workers in child workflows of 100 (deploy-workers.ts):
// it completes with two workers that fail in two batches, wait for a decision and are retried through the
// deployment's id while the other batches finish, and every history stays under a fifth of Temporal's limits
// (51,200 events, 50 MB per workflow run) and replays against the current workflow code; a poll of its status
// (the query and the Web UI details) stays under 16 KiB.
import { after, before, test } from 'node:test';
import assert from 'node:assert/strict';
import { join } from 'node:path';
import { Worker } from '@temporalio/worker';
import type { TestWorkflowEnvironment } from '@temporalio/testing';
import type { WorkflowHandle } from '@temporalio/client';
import { temporal } from '@temporalio/proto';
import { mockCluster, startMockEnv, type MockHosts } from './helpers/mock-hosts';
import { ROOT } from './render-helpers';
import { decisionUpdate, deployWorkflowId, statusQuery, workerBatchWorkflowId, type DeployResult, type DeploymentStatus, type StatusRequest, type StepState } from '../src/workflows/definitions';
import { countOf } from '../src/workflows/status-view';
import type { ClusterSpec } from '../src/spec/types';

let mock: Awaited<ReturnType<typeof startMockEnv>> | undefined;
let env: TestWorkflowEnvironment;
let hosts: MockHosts;
const QUEUE = 'engine-scale';
const HISTORY_EVENTS_LIMIT = 51_200;
const HISTORY_BYTES_LIMIT = 50 * 1024 * 1024;

before(async () => {
  mock = await startMockEnv(QUEUE);
  ({ env, hosts } = mock);
});
after(async () => {
  await mock?.close();
});

// A /24 per node: 1,003 nodes need a pod subnet larger than the default /16.
const noGate = (y: string) =>
  y.replace('  policy:\n', '  networking:\n    podSubnet: 10.0.0.0/14\n  policy:\n    approveBeforeWorkers: false\n    workerJoinConcurrency: 100\n');

function start(c: ClusterSpec, options: Record<string, unknown> = {}): Promise<WorkflowHandle> {
  return env.client.workflow.start('deployCluster', {
    taskQueue: QUEUE,
    workflowId: deployWorkflowId(c.name),
    args: [{ cluster: c, options: { kubeconfigPath: `/tmp/${c.name}.conf`, ...options } }],
  });
}
type History = temporal.api.history.v1.IHistory;
/** Events and encoded bytes of a run's history (what Temporal's limits count). */
async function size(h: Pick<WorkflowHandle, 'fetchHistory'>): Promise<{ events: number; bytes: number; history: History }> {
  const history = await h.fetchHistory();
  return { events: history.events?.length ?? 0, bytes: temporal.api.history.v1.History.encode(history).finish().length, history };
}
async function history(c: ClusterSpec): Promise<{ events: number; bytes: number; result: DeployResult }> {
  const h = await start(c);
  const result = (await h.result()) as DeployResult;
  return { ...(await size(h)), result };
}
const mb = (b: number) => (b / 1048576).toFixed(2);

test('history per worker node of a 3+100 deployment in one workflow', async () => {
  hosts.reset();
  const base = await history(mockCluster('base', 3, 0, noGate));
  const big = await history(mockCluster('big', 3, 100, noGate));
  assert.equal(big.result.nodesReady, 103);
  const perWorker = (big.events - base.events) / 100;
  const bytesPerWorker = (big.bytes - base.bytes) / 100;
  process.stdout.write(
    `history: 3+0 ${base.events} events, ${(base.bytes / 1024).toFixed(0)} KiB; 3+100 ${big.events} events, ${mb(big.bytes)} MB; ` +
      `per worker node ${perWorker.toFixed(1)} events, ${(bytesPerWorker / 1024).toFixed(1)} KiB\n`,
  );
  // Five activities per worker (preflight, host prep, runtime, packages, join): three events each, plus a share
  // of the workflow tasks. Search attributes change per phase, not per node, so they add nothing per node.
  assert.ok(perWorker <= 20, `${perWorker} events per worker node`);
  // 100 workers (a batch) stay far below the warning of 10,240 events and 10 MB.
  assert.ok(big.events < 10_240 / 4 && big.bytes < (10 * 1048576) / 4, `${big.events} events, ${big.bytes} bytes`);
});

const row = (s: DeploymentStatus, phase: string, node: string) => s.phases.find((p) => p.phase === phase)?.nodes.find((n) => n.node === node);
const count = (s: DeploymentStatus, phase: string, state: StepState) => countOf(s.phases.find((p) => p.phase === phase)!, state);
/** What a poll of the status costs: the query's answer and the Web UI's current details, as JSON bytes. */
async function pollBytes(h: WorkflowHandle): Promise<{ query: number; details: number }> {
  const s = await h.query(statusQuery);
  const meta = await h.query<{ currentDetails?: string }>('__temporal_workflow_metadata');
  return { query: Buffer.byteLength(JSON.stringify(s)), details: Buffer.byteLength(JSON.stringify(meta.currentDetails ?? '')) };
}
/** A poll of 1,003 nodes stays this small: the row-per-node answer was about 700 KB. */
const POLL_BYTES_LIMIT = 16 * 1024;

/**
 * Polls the status until `pred` holds (no time limit of its own: the test runner's timeout is the bound). On a
 * loaded machine a query can time out before the worker answers it: that is asked again, not a failure.
 */
async function until(h: WorkflowHandle, what: string, pred: (s: DeploymentStatus) => boolean, req: StatusRequest = {}): Promise<DeploymentStatus> {
  let failures = 0;
  for (;;) {
    await new Promise((r) => setTimeout(r, 3000));
    const s = await h.query(statusQuery, req).catch((err: unknown) => {
      if (++failures > 20) throw err;
      return undefined;
    });
    if (!s) continue;
    if (pred(s)) return s;
    if (s.state === 'done' || s.state === 'aborted') throw new Error(`${what}: never true; the run is ${s.state}`);
  }
}

test('3+1,000 workers: batches of 100 in child workflows, a decision retried through the deployment, every history under a fifth of the limits', { timeout: 1_200_000 }, async () => {
  hosts.reset();
  const t0 = Date.now();
  const c = mockCluster('huge', 3, 1000, noGate);
  const names = c.spec.nodes.map((n) => n.name);
  // w-250 is in the third batch, w-777 in the eighth.
  hosts.failNext('hostPrep', 'w-250');
  hosts.failNext('containerRuntime', 'w-777');
  const h = await start(c, { batchReportSeconds: 5 });
  // The status summarises phases this large: counts per state, the two waiting rows, and the rows asked for.
  const waiting = await until(
    h,
    'w-250 and w-777 wait while every other node is done',
    (s) => s.state === 'waiting-decision' && /w-250 \(host-prep\)/.test(s.waitingFor ?? '') && /w-777 \(container-runtime\)/.test(s.waitingFor ?? '') &&
      count(s, 'worker-join', 'done') === 998 && count(s, 'packages', 'done') === 1001,
    { nodes: ['w-250', 'w-777'] },
  );
  process.stdout.write(`3+1000: w-250 and w-777 wait, every other node done after ${((Date.now() - t0) / 1000).toFixed(0)} s\n`);
  const whileWaiting = await pollBytes(h);
  const compact = await h.query(statusQuery);
  const hostPrep = compact.phases.find((p) => p.phase === 'host-prep')!;
  assert.deepEqual(hostPrep.nodes.map((n) => [n.node, n.state]), [['w-250', 'waiting']]);
  assert.deepEqual(hostPrep.summary, { total: 1003, counts: { done: 1002, waiting: 1 }, omitted: { done: 1002 } });
  assert.deepEqual(compact.phases.find((p) => p.phase === 'worker-join')!.nodes, []);
  assert.equal(compact.phases.find((p) => p.phase === 'control-plane-join')!.nodes.length, 2, 'a small phase keeps its rows');
  assert.equal(row(waiting, 'host-prep', 'w-250')?.state, 'waiting');
  assert.equal(row(waiting, 'worker-join', 'w-250')?.state, 'pending');
  assert.equal(row(waiting, 'container-runtime', 'w-777')?.state, 'waiting');
  assert.equal(row(waiting, 'verify', 'cluster')?.state, 'pending');
  hosts.clear('hostPrep', 'w-250');
  hosts.clear('containerRuntime', 'w-777');
  // kha retry huge --all: an Update to the deployment, which forwards it to the two batches.
  assert.match(await h.executeUpdate(decisionUpdate, { args: [{ action: 'retry', all: true }] }), /^retry 2 nodes: (w-250, w-777|w-777, w-250)$/);
  const result = (await h.result()) as DeployResult;
  const seconds = (Date.now() - t0) / 1000;
  assert.equal(result.nodesReady, 1003);
  assert.deepEqual(result.skippedNodes, []);
  assert.equal(hosts.ran('hostPrep', 'w-250'), 2);
  assert.equal(hosts.ran('joinWorker'), 1000);

  // The deployment's full status (asked for) shows every node at the end of its pipeline.
  const atEnd = await pollBytes(h);
  const fullBytes = Buffer.byteLength(JSON.stringify(await h.query(statusQuery, { full: true })));
  process.stdout.write(
    `3+1000 status poll: ${(whileWaiting.query / 1024).toFixed(1)} KiB while two wait, ${(atEnd.query / 1024).toFixed(1)} KiB at the end (full: ${(fullBytes / 1024).toFixed(0)} KiB); ` +
      `Web UI details ${(whileWaiting.details / 1024).toFixed(1)} / ${(atEnd.details / 1024).toFixed(1)} KiB\n`,
  );
  for (const [what, b] of [['while waiting', whileWaiting], ['at the end', atEnd]] as const) {
    assert.ok(b.query < POLL_BYTES_LIMIT, `status query ${what}: ${b.query} bytes`);
    assert.ok(b.details < POLL_BYTES_LIMIT, `Web UI details ${what}: ${b.details} bytes`);
  }
  assert.equal(count(await h.query(statusQuery), 'worker-join', 'done'), 1000);
  const s = await h.query(statusQuery, { full: true });
  assert.equal(s.state, 'done');
  const done = new Set<string>();
  for (const p of s.phases) for (const r of p.nodes) if (r.state === 'done') done.add(r.node);
  assert.equal(names.filter((n) => done.has(n)).length, 1003);
  for (const n of names) assert.equal(row(s, n.startsWith('w-') ? 'worker-join' : 'packages', n)?.state, 'done', n);
  assert.equal(row(s, 'host-prep', 'w-250')?.attempts, 2);

  // Each history under a fifth of the limits (10,240 events, 10 MB), and every one replays.
  const parent = await size(h);
  const children = await Promise.all(Array.from({ length: 10 }, (_, i) => size(env.client.workflow.getHandle(workerBatchWorkflowId('huge', i)))));
  const maxChild = children.reduce((m, x) => (x.events > m.events ? x : m));
  process.stdout.write(
    `3+1000 in ${seconds.toFixed(0)} s: deployment ${parent.events} events, ${mb(parent.bytes)} MB; 10 batches of 100: ` +
      `${children.map((x) => x.events).join('/')} events, largest ${mb(Math.max(...children.map((x) => x.bytes)))} MB; ` +
      `largest against the limits: ${((maxChild.events / HISTORY_EVENTS_LIMIT) * 100).toFixed(1)} % of the events\n`,
  );
  for (const [what, x] of [['deployment', parent] as const, ...children.map((x, i) => [`batch ${i + 1}`, x] as const)]) {
    assert.ok(x.events < HISTORY_EVENTS_LIMIT / 5, `${what}: ${x.events} events`);
    assert.ok(x.bytes < HISTORY_BYTES_LIMIT / 5, `${what}: ${x.bytes} bytes`);
  }
  const bundle = { codePath: join(ROOT, 'dist', 'workflow-bundle.js') };
  await Worker.runReplayHistory({ workflowBundle: bundle }, parent.history, deployWorkflowId('huge'));
  for (const [i, x] of children.entries()) await Worker.runReplayHistory({ workflowBundle: bundle }, x.history, workerBatchWorkflowId('huge', i));
});
