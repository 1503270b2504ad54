// How long a new worker takes to resume a deployment after the old one was killed (SIGKILL) in the middle of
// an activity: from the new worker's spawn to the next activity completing, split into the worker's start-up
// and the wait for the killed attempt's heartbeat timeout. Two kills in one 3+3 deployment (during the
// parallel packages phase and during a control-plane join), lab latency as in the deploy bench.
//   node dist/bench/resume.js [--heartbeat-timeout-s 10]
import { rmSync } from 'node:fs';
import { join } from 'node:path';
import type { WorkflowHandle } from '@temporalio/client';
import { writeHostFaults } from '../src/lab/faults';
import { deployWorkflowId, type DeployResult } from '../src/workflows/definitions';
import { startDeployEnv } from '../test/helpers/deploy';
import { resultOrFail } from '../test/helpers/workflow';
import { labLatency } from './lib/critical-path';
import { activityTimings, eventMs } from './lib/history';
import { LAB_CLOCK_SKEW_MS, log, machine, machineLine, table, writeResult } from './lib/report';
import { startWorkerProcess, type WorkerProcess } from './lib/worker-process';
import { recordKubeconfigChoice } from '../src/activities/kubeconfig-target';
import { benchSubnet } from './lib/subnets';

const SUBNET = benchSubnet('resume');

/** Waits until an activity of this type runs on a worker (pending, state STARTED). */
async function waitStarted(handle: WorkflowHandle, activityType: string, ms = 300_000): Promise<void> {
  const end = Date.now() + ms;
  while (Date.now() < end) {
    const pending = (await handle.describe()).raw.pendingActivities ?? [];
    // PendingActivityState 2 = STARTED.
    if (pending.some((a) => a.activityType?.name === activityType && Number(a.state) === 2)) return;
    await new Promise((r) => setTimeout(r, 100));
  }
  throw new Error(`${activityType} never started`);
}

interface Kill {
  during: string;
  killedAtMs: number;
  spawnedMs: number;
  /** Spawn to "polling task queue": process start, workflow bundle, connection. */
  workerStartupMs: number;
  /** Of which: spawn to the workflow bundle built (no prebuilt bundle: webpack runs at every start). */
  bundleMs?: number;
  /** Spawn to the next activity completion in the history. */
  resumeMs: number;
  /** Kill to the first activity of the retried attempts starting again. */
  killToRetryStartMs: number;
  nextCompleted: string;
  /** Spawn to the first workflow task the new worker completed (history replayed, deployment moving on). */
  firstWorkflowTaskMs: number;
}

async function main(): Promise<void> {
  const i = process.argv.indexOf('--heartbeat-timeout-s');
  const heartbeatS = i > 0 ? Number(process.argv[i + 1]) : 10;
  const m = machine();
  log(machineLine(m));
  const d = await startDeployEnv({ subnetIndex: SUBNET });
  const kills: Array<Pick<Kill, 'during' | 'killedAtMs' | 'spawnedMs' | 'workerStartupMs' | 'bundleMs'>> = [];
  let out: Kill[] = [];
  let wallMs = 0;
  try {
    const cluster = d.cluster('resume', (c) => {
      c.spec.policy.approveBeforeWorkers = false;
      c.spec.policy.retry.maximumAttempts = 10;
    });
    for (const h of d.lab.nodes) writeHostFaults(d.lab.sharedDir, h.name, labLatency());
    const queue = 'bench-resume';
    let worker: WorkerProcess = startWorkerProcess(d.env.address, queue);
    await worker.ready;
    const t0 = Date.now();
    recordKubeconfigChoice(cluster.name, join(d.dir, 'admin.conf')); // outside the worker's state directory
    const handle = await d.env.client.workflow.start('deployCluster', {
      taskQueue: queue,
      workflowId: deployWorkflowId(cluster.name),
      args: [{ cluster, options: { heartbeatTimeoutSeconds: heartbeatS, kubeconfigPath: join(d.dir, 'admin.conf'), maxClockSkewMs: LAB_CLOCK_SKEW_MS } }],
    });
    try {
      for (const during of ['installPackages', 'joinControlPlane']) {
        await waitStarted(handle, during);
        // Well inside the activity: the kill lands mid-command.
        await new Promise((r) => setTimeout(r, 1500));
        await worker.kill('SIGKILL');
        const killedAtMs = Date.now();
        log(`killed the worker during ${during}; starting a new one`);
        worker = startWorkerProcess(d.env.address, queue);
        const ready = await worker.ready;
        kills.push({ during, killedAtMs, spawnedMs: worker.spawnedMs, workerStartupMs: ready - worker.spawnedMs, bundleMs: worker.bundledAfterMs() });
      }
      const result = await resultOrFail<DeployResult>(handle);
      wallMs = Date.now() - t0;
      if (result.nodesReady !== 6) throw new Error(`deployment ended with ${result.nodesReady} Ready nodes`);
    } finally {
      await worker.kill('SIGKILL');
    }
    const events = (await handle.fetchHistory()).events ?? [];
    const acts = activityTimings(events);
    const wfTasks = events.filter((e) => e.workflowTaskCompletedEventAttributes).map((e) => eventMs(e));
    out = kills.map((k) => {
      const next = acts.filter((a) => a.outcome === 'completed' && a.endedMs >= k.spawnedMs).sort((a, b) => a.endedMs - b.endedMs)[0]!;
      const retried = acts.filter((a) => a.attempt > 1 && a.startedMs >= k.killedAtMs).sort((a, b) => a.startedMs - b.startedMs)[0];
      return {
        during: k.during,
        killedAtMs: k.killedAtMs,
        spawnedMs: k.spawnedMs,
        workerStartupMs: k.workerStartupMs,
        bundleMs: k.bundleMs,
        resumeMs: Math.round(next.endedMs - k.spawnedMs),
        killToRetryStartMs: retried ? Math.round(retried.startedMs - k.killedAtMs) : NaN,
        nextCompleted: `${next.type} on ${next.node} (attempt ${next.attempt})`,
        firstWorkflowTaskMs: Math.round((wfTasks.find((t) => t >= k.spawnedMs) ?? NaN) - k.spawnedMs),
      };
    });
  } finally {
    await d.close();
    rmSync(d.dir, { recursive: true, force: true });
  }
  process.stdout.write(`\n${machineLine(m)}\nResume after SIGKILL of the worker mid-activity (3+3, heartbeat timeout ${heartbeatS} s; ms)\n`);
  process.stdout.write(
    table(
      ['killed during', 'worker start-up', 'of which bundling', 'kill to retry start', 'new worker to next activity done', 'first workflow task', 'next activity done'],
      out.map((k) => [k.during, k.workerStartupMs, k.bundleMs ?? '-', k.killToRetryStartMs, k.resumeMs, k.firstWorkflowTaskMs, k.nextCompleted]),
    ),
  );
  process.stdout.write(`deployment finished in ${Math.round(wallMs / 1000)} s with 2 kills\n`);
  const file = writeResult('resume', m, {
    what: "time for a new worker to resume a deployment after the old one was SIGKILLed mid-activity; a killed attempt is retried once its heartbeat timeout expires",
    heartbeatTimeoutSeconds: heartbeatS,
    deploymentWallMs: wallMs,
    kills: out,
  });
  process.stdout.write(`written to ${file}\n`);
}

main().catch((e: unknown) => {
  process.stderr.write(`bench resume: ${e instanceof Error ? (e.stack ?? e.message) : String(e)}\n`);
  process.exitCode = 1;
});
