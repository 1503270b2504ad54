// Builds a kha worker: the workflows (bundled from src/workflows) and every activity, on the kha task queue.
import { existsSync } from 'node:fs';
import { join } from 'node:path';
import { NativeConnection, Worker, type WorkerOptions } from '@temporalio/worker';
import * as activities from '../activities';
import { TASK_QUEUE } from '../workflows/definitions';

export interface KhaWorkerOptions {
  connection: NativeConnection;
  namespace?: string;
  taskQueue?: string;
  /** Extra options for tests (e.g. a shared prebuilt bundle, shutdown grace). */
  overrides?: Partial<WorkerOptions>;
}

/** A prebuilt bundle (scripts/bundle-workflows) saves seconds per worker start; fall back to bundling now. */
function workflowSource(): Pick<WorkerOptions, 'workflowBundle' | 'workflowsPath'> {
  const prebuilt = join(__dirname, '..', '..', 'workflow-bundle.js');
  if (existsSync(prebuilt)) return { workflowBundle: { codePath: prebuilt } };
  return { workflowsPath: require.resolve('../workflows') };
}

export async function createKhaWorker(o: KhaWorkerOptions): Promise<Worker> {
  return Worker.create({
    connection: o.connection,
    namespace: o.namespace ?? 'default',
    taskQueue: o.taskQueue ?? TASK_QUEUE,
    activities,
    ...workflowSource(),
    shutdownGraceTime: '10s',
    ...o.overrides,
  });
}
