// A lab of simulated hosts plus a real Temporal dev server and a kha worker: the setting of the
// end-to-end workflow tests. The spec comes from the lab (real file, loaded and validated like a user's).
import { mkdirSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import type { TestWorkflowEnvironment } from '@temporalio/testing';
import type { Worker } from '@temporalio/worker';
import { Lab } from '../../src/lab/lab';
import { loadClusterOrThrow } from '../../src/spec/load';
import { API_VERSION, ClusterFile, KIND } from '../../src/spec/schema';
import { normalise } from '../../src/spec/checks';
import type { ClusterSpec } from '../../src/spec/types';
import type { SimModel } from '../../src/lab/sim/model';
import { startTemporal, startWorker } from './temporal';
import { closeIdleSessions } from '../../src/activities/common';

export interface DeployEnv {
  lab: Lab;
  env: TestWorkflowEnvironment;
  dir: string;
  /** Loads the lab's spec, then lets the test adjust it (policy, names). */
  /** asGiven: the tweaked spec as it is, not as the loader would fill it (for inputs the worker must refuse). */
  cluster(name: string, tweak?: (c: ClusterSpec) => void, opts?: { asGiven?: boolean }): ClusterSpec;
  /** Replaces the lab with fresh hosts on the same subnet (clean disks, empty cluster model). */
  freshLab(): Promise<void>;
  /** Runs a worker on the task queue until fn resolves. */
  withWorker<T>(taskQueue: string, fn: (w: Worker) => Promise<T>): Promise<T>;
  close(): Promise<void>;
}

export async function startDeployEnv(opts: { controlPlanes?: number; workers?: number; subnetIndex: number; rebootDelayMs?: number }): Promise<DeployEnv> {
  // One fixed directory per subnet: a run killed half-way is cleaned up by the next one.
  const dir = join(tmpdir(), `kha-e2e-${opts.subnetIndex}`);
  await Lab.downDir(join(dir, 'lab'));
  rmSync(dir, { recursive: true, force: true });
  mkdirSync(dir, { recursive: true });
  const up = () =>
    Lab.up({
      dir: join(dir, 'lab'),
      controlPlanes: opts.controlPlanes ?? 3,
      workers: opts.workers ?? 3,
      subnetIndex: opts.subnetIndex,
      rebootDelayMs: opts.rebootDelayMs ?? 500,
    });
  const lab = await up();
  let env: TestWorkflowEnvironment;
  try {
    env = await startTemporal();
  } catch (e) {
    await lab.down();
    throw e;
  }
  const self: DeployEnv = {
    lab,
    env,
    dir,
    async freshLab() {
      await self.lab.down();
      self.lab = await up();
    },
    cluster(name, tweak, opts) {
      const file = join(dir, `${name}.yaml`);
      writeFileSync(file, self.lab.specYaml({ name }));
      const c = loadClusterOrThrow(file);
      // Fast retries keep the suite short; the policy itself is what the spec says.
      c.spec.policy.retry.initialIntervalSeconds = 0.2;
      c.spec.policy.retry.maximumIntervalSeconds = 1;
      c.spec.policy.compensation.rebootTimeoutSeconds = 60;
      tweak?.(c);
      if (opts?.asGiven) return c;
      // What the loader makes of a file that says the tweaked values: defaults filled, normal forms (the worker
      // refuses anything else).
      const parsed = ClusterFile.parse({ apiVersion: API_VERSION, kind: KIND, metadata: { name: c.name }, spec: c.spec });
      c.spec = normalise(parsed).spec;
      return c;
    },
    async withWorker(taskQueue, fn) {
      const worker = await startWorker(env, taskQueue);
      return worker.runUntil(() => fn(worker));
    },
    async close() {
      closeIdleSessions();
      await env.teardown().catch(() => undefined);
      await self.lab.down();
    },
  };
  return self;
}

/** The lab's simulated cluster as the tools last wrote it. */
export function labModel(lab: Lab): SimModel {
  return JSON.parse(readFileSync(join(lab.sharedDir, 'model.json'), 'utf8')) as SimModel;
}
