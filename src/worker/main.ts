// `kha worker`: a long-running worker against TEMPORAL_ADDRESS (self-hosted or Temporal Cloud).
// SIGINT/SIGTERM stop polling, let running activities finish within the grace time, then exit.
import { NativeConnection, Runtime } from '@temporalio/worker';
import { connectionOptions, settingsFromEnv } from '../temporal/connection';
import { createKhaWorker } from './worker';
import { TASK_QUEUE } from '../workflows/definitions';
import { closeIdleSessions } from '../activities/common';
import { guarded, parseArgs } from '../cli/args';
import { CliError } from '../cli/client';

const USAGE = `usage: kha worker [--task-queue NAME]

Runs a kha worker against the Temporal cluster named by TEMPORAL_ADDRESS (TEMPORAL_NAMESPACE, TLS or API key
settings as for every command) until SIGINT or SIGTERM. It needs SSH access to the hosts and the keys the
cluster files name. --task-queue defaults to $KHA_TASK_QUEUE or ${TASK_QUEUE}.
`;

export async function run(argv: string[]): Promise<number> {
  if (argv.includes('-h') || argv.includes('--help')) {
    process.stdout.write(USAGE);
    return 0;
  }
  return guarded('worker', () => work(argv));
}

async function work(argv: string[]): Promise<number> {
  const a = parseArgs(argv, [], ['--task-queue'], USAGE);
  if (a.positionals.length) throw new CliError(`unexpected argument "${a.positionals[0]}"\n${USAGE}`, 2);
  const taskQueue = a.values.get('--task-queue') ?? (process.env.KHA_TASK_QUEUE || TASK_QUEUE);
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
