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

/**
 * Workflow tasks in progress at once. Workflow code runs on one thread: with the default of 40, a deployment's
 * batches (child workflows) each wait for the others' activations and, on a busy machine, pass the 10 s workflow
 * task timeout, are replayed from their history and time out again. Fewer at once finish one by one.
 */
export const MAX_CONCURRENT_WORKFLOW_TASKS = 4;

export async function createKhaWorker(o: KhaWorkerOptions): Promise<Worker> {
  return Worker.create({
    connection: o.connection,
    namespace: o.namespace ?? 'default',
    taskQueue: o.taskQueue ?? TASK_QUEUE,
    activities,
    ...workflowSource(),
    shutdownGraceTime: '10s',
    maxConcurrentWorkflowTaskExecutions: MAX_CONCURRENT_WORKFLOW_TASKS,
    ...o.overrides,
  });
}
