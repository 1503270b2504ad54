// `kha worker`: a long-running worker against TEMPORAL_ADDRESS (self-hosted or Temporal Cloud).
// SIGINT/SIGTERM stop polling, let running activities finish within the grace time, then exit.
import { NativeConnection, Runtime } from '@temporalio/worker';
import { connectionOptions, settingsFromEnv } from '../temporal/connection';
import { createKhaWorker } from './worker';
import { TASK_QUEUE } from '../workflows/definitions';
import { closeIdleSessions } from '../activities/common';

export async function run(argv: string[]): Promise<number> {
  const tqIdx = argv.indexOf('--task-queue');
  const taskQueue = tqIdx >= 0 ? argv[tqIdx + 1] : process.env.KHA_TASK_QUEUE || TASK_QUEUE;
  const settings = settingsFromEnv();
  if (!settings) {
    process.stderr.write('kha worker: TEMPORAL_ADDRESS is not set (host:port of the Temporal frontend); without it, kha deploy runs a worker in-process on the embedded server\n');
    return 2;
  }
  Runtime.install({ shutdownSignals: ['SIGINT', 'SIGTERM'] });
  const connection = await NativeConnection.connect(connectionOptions(settings));
  try {
    const worker = await createKhaWorker({ connection, namespace: settings.namespace, taskQueue });
    process.stderr.write(`kha worker: polling task queue ${taskQueue} on ${settings.address} (namespace ${settings.namespace})\n`);
    await worker.run();
    process.stderr.write('kha worker: stopped\n');
    return 0;
  } finally {
    closeIdleSessions();
    await connection.close();
  }
}
