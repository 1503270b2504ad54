// The fast tier at scale: a deployment of 3 control-plane nodes and 100 workers with mock activities (no
// hosts): what a worker node costs in history events and bytes, and where 1,000 workers would be against
// Temporal's limits (51,200 events, 50 MB per workflow run) at that cost. One workflow run holds every node
// today (no child workflows per batch yet), so the cost per node is what has to stay low.
import { after, before, test } from 'node:test';
import assert from 'node:assert/strict';
import type { TestWorkflowEnvironment } from '@temporalio/testing';
import { mockCluster, startMockEnv } from './helpers/mock-hosts';
import { deployWorkflowId, type DeployResult } from '../src/workflows/definitions';
import type { ClusterSpec } from '../src/spec/types';

let mock: Awaited<ReturnType<typeof startMockEnv>> | undefined;
let env: TestWorkflowEnvironment;
const QUEUE = 'engine-scale';
const HISTORY_EVENTS_LIMIT = 51_200;
const HISTORY_BYTES_LIMIT = 50 * 1024 * 1024;

before(async () => {
  mock = await startMockEnv(QUEUE);
  env = mock.env;
});
after(async () => {
  await mock?.close();
});

// A /24 per node: 1,003 nodes need a pod subnet larger than the default /16.
const noGate = (y: string) =>
  y.replace('  policy:\n', '  networking:\n    podSubnet: 10.0.0.0/14\n  policy:\n    approveBeforeWorkers: false\n    workerJoinConcurrency: 100\n');

async function history(c: ClusterSpec): Promise<{ events: number; bytes: number; result: DeployResult }> {
  const h = await env.client.workflow.start('deployCluster', {
    taskQueue: QUEUE,
    workflowId: deployWorkflowId(c.name),
    args: [{ cluster: c, options: { kubeconfigPath: `/tmp/${c.name}.conf` } }],
  });
  const result = (await h.result()) as DeployResult;
  const hist = await h.fetchHistory();
  return { events: hist.events?.length ?? 0, bytes: JSON.stringify(hist).length, result };
}

const WORKERS = 100;

test(`history per worker node of a 3+${WORKERS} deployment, and 1,000 workers at that cost against the limits`, async () => {
  const base = await history(mockCluster('base', 3, 0, noGate));
  const big = await history(mockCluster('big', 3, WORKERS, noGate));
  assert.equal(big.result.nodesReady, 3 + WORKERS);
  const perWorker = (big.events - base.events) / WORKERS;
  const bytesPerWorker = (big.bytes - base.bytes) / WORKERS;
  const events1000 = base.events + 1000 * perWorker;
  const bytes1000 = base.bytes + 1000 * bytesPerWorker;
  process.stdout.write(
    `history: 3+0 ${base.events} events; 3+${WORKERS} ${big.events} events, ${(big.bytes / 1048576).toFixed(1)} MB; ` +
      `per worker node ${perWorker.toFixed(1)} events, ${(bytesPerWorker / 1024).toFixed(1)} KiB; ` +
      `3+1000 at that cost: ${Math.round(events1000)} events (${((events1000 / HISTORY_EVENTS_LIMIT) * 100).toFixed(0)} % of the limit), ` +
      `${(bytes1000 / 1048576).toFixed(1)} MB (${((bytes1000 / HISTORY_BYTES_LIMIT) * 100).toFixed(0)} %)\n`,
  );
  // Five activities per worker (preflight, host prep, runtime, packages, join): three events each, plus a share
  // of the workflow tasks. Search attributes change per phase, not per node, so they add nothing per node.
  assert.ok(perWorker <= 20, `${perWorker} events per worker node`);
  assert.ok(events1000 < HISTORY_EVENTS_LIMIT / 2, `${events1000} events for 1,000 workers`);
  assert.ok(bytes1000 < HISTORY_BYTES_LIMIT, `${bytes1000} bytes for 1,000 workers`);
});
