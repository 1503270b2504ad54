// A deployment survives its worker being killed (SIGKILL) mid-activity at several points; kubeadm init runs
// once; the history holds no secret; one deployment per cluster; search attributes follow the deployment.
import { after, before, describe, test } from 'node:test';
import assert from 'node:assert/strict';
import { spawn, type ChildProcess } from 'node:child_process';
import { readFileSync } from 'node:fs';
import { join } from 'node:path';
import { WorkflowExecutionAlreadyStartedError, type WorkflowHandle } from '@temporalio/client';
import { startDeployEnv, type DeployEnv } from './helpers/deploy';
import { resultOrFail } from './helpers/workflow';
import { deployWorkflowId, statusQuery, type DeployResult } from '../src/workflows/definitions';
import type { SimModel } from '../src/lab/sim/model';
import { subnet } from './helpers/subnet';

let d: DeployEnv;
let workerLog = '';
const ROOT = join(__dirname, '..', '..');

function startWorkerProcess(taskQueue: string): ChildProcess {
  const p = spawn(process.execPath, [join(ROOT, 'bin', 'kha'), 'worker'], {
    env: { ...process.env, TEMPORAL_ADDRESS: d.env.address, TEMPORAL_NAMESPACE: 'default', KHA_TASK_QUEUE: taskQueue },
    stdio: ['ignore', 'ignore', 'pipe'],
  });
  // Kept for the failure message of a test that dies with the worker.
  p.stderr?.on('data', (b: Buffer) => {
    workerLog += b.toString();
  });
  return p;
}

/** Waits until an activity of this type has been picked up by a worker (state STARTED). */
async function waitStarted(handle: WorkflowHandle, activityType: string, ms = 180_000): Promise<void> {
  const end = Date.now() + ms;
  while (Date.now() < end) {
    const desc = await handle.describe();
    const pending = desc.raw.pendingActivities ?? [];
    // PendingActivityState 2 = STARTED: a worker runs it now.
    if (pending.some((a) => a.activityType?.name === activityType && Number(a.state) === 2)) return;
    await new Promise((r) => setTimeout(r, 200));
  }
  const s = await handle.query(statusQuery);
  throw new Error(`${activityType} never started; deployment ${s.state} in ${s.currentPhase}: ${JSON.stringify(s.pendingDecision ?? s.phases.find((p) => p.phase === s.currentPhase))}`);
}

function killed(p: ChildProcess): Promise<void> {
  return new Promise((resolve) => {
    if (p.exitCode !== null || p.signalCode !== null) return resolve();
    p.once('exit', () => resolve());
    p.kill('SIGKILL');
  });
}

describe('durability and secrecy of a deployment', () => {
  before(async () => {
    d = await startDeployEnv({ subnetIndex: subnet(43) });
  });
  after(async () => {
    await d?.close();
  });

  test('the worker is killed mid-activity three times; new workers finish the deployment and kubeadm init runs once', async () => {
    const cluster = d.cluster('durable', (c) => {
      c.spec.policy.approveBeforeWorkers = false;
      c.spec.policy.retry.maximumAttempts = 10;
    });
    // Slow hosts keep each activity running long enough to be killed in the middle.
    for (const h of d.lab.nodes) d.lab.setLatency(h.name, 300);
    const handle = await d.env.client.workflow.start('deployCluster', {
      taskQueue: 'durable',
      workflowId: deployWorkflowId(cluster.name),
      args: [{ cluster, options: { heartbeatTimeoutSeconds: 4 } }],
    });
    // One deployment per cluster: a second start is refused.
    await assert.rejects(
      d.env.client.workflow.start('deployCluster', { taskQueue: 'durable', workflowId: deployWorkflowId(cluster.name), args: [{ cluster }] }),
      WorkflowExecutionAlreadyStartedError,
    );
    let worker = startWorkerProcess('durable');
    try {
      for (const point of ['hostPrep', 'kubeadmInit', 'joinControlPlane']) {
        await waitStarted(handle, point);
        await new Promise((r) => setTimeout(r, 700));
        await killed(worker);
        worker = startWorkerProcess('durable');
      }
      const result = await resultOrFail<DeployResult>(handle);
      assert.equal(result.nodesReady, 6);
      assert.equal(result.etcdMembers, 3);
    } finally {
      await killed(worker);
    }
    const calls = readFileSync(join(d.lab.sharedDir, 'calls', 'k8scp-01.log'), 'utf8');
    assert.equal(calls.split('\n').filter((l) => / kubeadm init$/.test(l)).length, 1, calls);
    // Every kill left a timed-out attempt behind that a later attempt completed.
    const events = (await handle.fetchHistory()).events ?? [];
    const retried = events.filter((e) => (e.activityTaskStartedEventAttributes?.attempt ?? 1) > 1);
    assert.ok(retried.length >= 3, `activities retried after the kills: ${retried.length}`);
    for (const h of d.lab.nodes) d.lab.setLatency(h.name, 0);
  });

  test('the full history holds none of the lab’s tokens or certificate keys, nor anything shaped like one', async () => {
    const handle = d.env.client.workflow.getHandle(deployWorkflowId('durable'));
    // The worker's build id is a hash of the workflow bundle (Temporal's own field), not data of ours.
    const sdkFields = new Set(['workerVersion', 'buildId', 'binaryChecksum', 'workerDeploymentVersion', 'deploymentVersion']);
    const text = JSON.stringify(await handle.fetchHistory(), (k, v: unknown) => {
      if (sdkFields.has(k)) return undefined;
      // Payloads are bytes: decode them so the search sees their text.
      if (v && typeof v === 'object' && 'type' in v && (v as { type: string }).type === 'Buffer') return Buffer.from((v as unknown as { data: number[] }).data).toString('utf8');
      return v instanceof Uint8Array ? Buffer.from(v).toString('utf8') : v;
    });
    const m = JSON.parse(readFileSync(join(d.lab.sharedDir, 'model.json'), 'utf8')) as SimModel;
    const c = m.cluster!;
    assert.ok(c.tokens.length >= 4, 'the deployment minted tokens');
    for (const t of c.tokens) {
      assert.ok(!text.includes(t.secret), `token secret of ${t.id} in history`);
      assert.ok(!text.includes(`${t.id}.${t.secret}`));
    }
    if (c.certKey) assert.ok(!text.includes(c.certKey.key), 'certificate key in history');
    assert.ok(!text.includes(c.caCertPem.split('\n')[1]!), 'CA certificate in history');
    assert.doesNotMatch(text, /\b[a-z0-9]{6}\.[a-z0-9]{16}\b/, 'something shaped like a bootstrap token');
    assert.doesNotMatch(text, /\b[a-f0-9]{64}\b/, 'something shaped like a certificate key');
    assert.doesNotMatch(text, /BEGIN [A-Z ]*PRIVATE KEY/, 'a private key');
    assert.doesNotMatch(text, /client-key-data|client-certificate-data/, 'kubeconfig content');
  });

  test('search attributes find the deployment by cluster and state', async () => {
    let found: string[] = [];
    // Visibility is eventually consistent: give it a few seconds.
    for (let i = 0; i < 20 && found.length === 0; i++) {
      found = [];
      for await (const w of d.env.client.workflow.list({ query: `KhaCluster = "durable" AND KhaState = "done" AND KhaPhase = "none"` })) found.push(w.workflowId);
      if (!found.length) await new Promise((r) => setTimeout(r, 500));
    }
    assert.deepEqual(found, [deployWorkflowId('durable')]);
  });
});
