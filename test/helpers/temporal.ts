// Starts a real Temporal dev server (the pinned CLI found or built by scripts/temporal-cli.sh) with kha's
// search attributes registered, and a kha worker on it.
import { TestWorkflowEnvironment } from '@temporalio/testing';
import type { Worker, WorkerOptions } from '@temporalio/worker';
import { findTemporalCli } from '../../src/temporal/cli-path';
import { SEARCH_ATTRIBUTES } from '../../src/workflows/definitions';
import { createKhaWorker } from '../../src/worker/worker';

export async function startTemporal(opts: { ui?: boolean; uiPort?: number } = {}): Promise<TestWorkflowEnvironment> {
  const path = findTemporalCli();
  return TestWorkflowEnvironment.createLocal({
    server: {
      executable: path ? { type: 'existing-path', path } : undefined,
      searchAttributes: SEARCH_ATTRIBUTES,
      ui: opts.ui ?? false,
      uiPort: opts.uiPort,
      extraArgs: ['--log-level', 'error'],
    },
  });
}

export async function startWorker(env: TestWorkflowEnvironment, taskQueue: string, overrides?: Partial<WorkerOptions>): Promise<Worker> {
  return createKhaWorker({ connection: env.nativeConnection, namespace: env.namespace ?? 'default', taskQueue, overrides });
}
