// Where the operator commands send their requests: the Temporal cluster named by TEMPORAL_ADDRESS (with its
// namespace, TLS and API key; `kha worker` processes run the workflows there), or the embedded dev server
// (started or reused; the commands that follow a deployment run a worker in their own process).
import { appendFileSync } from 'node:fs';
import { Client, Connection, type WorkflowHandle } from '@temporalio/client';
import { connectionOptions, settingsFromEnv } from '../temporal/connection';
import { embeddedLogFiles, embeddedServerStatus, ensureBackgroundWorker, ensureEmbeddedServer, type EmbeddedServer } from '../server/embedded';
import { TASK_QUEUE } from '../workflows/definitions';
import { closeIdleSessions } from '../activities/common';

/** An error meant for the operator: the message is printed as is, with the exit code given. */
export class CliError extends Error {
  constructor(message: string, readonly code = 1) {
    super(message);
  }
}

export interface Target {
  client: Client;
  connection: Connection;
  namespace: string;
  address: string;
  taskQueue: string;
  /** Base URL of the Web UI, when known. */
  uiUrl?: string;
  /** Set when the target is the embedded server. */
  embedded?: EmbeddedServer;
  close(): Promise<void>;
}

/** Base URL of the Web UI of an external cluster: TEMPORAL_UI_URL, or Temporal Cloud's for *.tmprl.cloud. */
export function externalUiUrl(address: string, env: NodeJS.ProcessEnv = process.env): string | undefined {
  if (env.TEMPORAL_UI_URL) return env.TEMPORAL_UI_URL.replace(/\/+$/, '');
  if (/\.tmprl\.cloud(:\d+)?$/.test(address)) return 'https://cloud.temporal.io';
  return undefined;
}

export function workflowUrl(t: Pick<Target, 'uiUrl' | 'namespace'>, workflowId: string, runId?: string): string | undefined {
  if (!t.uiUrl) return undefined;
  const base = `${t.uiUrl}/namespaces/${encodeURIComponent(t.namespace)}/workflows/${encodeURIComponent(workflowId)}`;
  return runId ? `${base}/${encodeURIComponent(runId)}` : base;
}

export interface ConnectOptions {
  /** Start the embedded server when none runs (deploy, reset); otherwise a missing one is an error. */
  startEmbedded: boolean;
  env?: NodeJS.ProcessEnv;
}

export async function connectTarget(o: ConnectOptions): Promise<Target> {
  const env = o.env ?? process.env;
  const taskQueue = env.KHA_TASK_QUEUE || TASK_QUEUE;
  const settings = settingsFromEnv(env);
  if (settings) {
    let connection: Connection;
    try {
      connection = await Connection.connect({ ...connectionOptions(settings), connectTimeout: 10_000 });
    } catch (e) {
      throw new CliError(`cannot reach Temporal at ${settings.address} (TEMPORAL_ADDRESS): ${(e as Error).message}; check the address, TLS and API key settings`);
    }
    return makeTarget(connection, settings.namespace, settings.address, taskQueue, externalUiUrl(settings.address, env));
  }
  let server: EmbeddedServer;
  if (o.startEmbedded) {
    server = await ensureEmbeddedServer({ env });
  } else {
    const st = await embeddedServerStatus(env);
    if (!st.running || !st.record) {
      throw new CliError(`no Temporal server: TEMPORAL_ADDRESS is unset and the embedded server is not running (${st.reason}); start it with: kha server (or kha deploy FILE)`);
    }
    const r = st.record;
    server = { address: r.address, uiUrl: r.uiUrl, namespace: r.namespace, started: false, pid: r.pid, dbFile: r.dbFile, logFile: r.logFile };
  }
  const connection = await Connection.connect({ address: server.address });
  return makeTarget(connection, server.namespace, server.address, taskQueue, server.uiUrl, server);
}

function makeTarget(connection: Connection, namespace: string, address: string, taskQueue: string, uiUrl?: string, embedded?: EmbeddedServer): Target {
  const client = new Client({ connection, namespace });
  return { client, connection, namespace, address, taskQueue, uiUrl, embedded, close: () => connection.close() };
}

/** Number of workers polling the task queue for workflow tasks and for activity tasks. */
export async function pollers(t: Target): Promise<{ workflow: number; activity: number }> {
  const ask = async (taskQueueType: number) => {
    const r = await t.connection.withDeadline(Date.now() + 5000, () =>
      t.connection.workflowService.describeTaskQueue({
        namespace: t.namespace,
        taskQueue: { name: t.taskQueue, kind: 1 /* NORMAL */ },
        taskQueueType, // 1 workflow, 2 activity
      }),
    );
    // A poller counts when it polled within the last minute (the server keeps older ones for a while).
    const recent = Date.now() - 60_000;
    return (r.pollers ?? []).filter((p) => {
      const ms = p.lastAccessTime?.seconds ? Number(p.lastAccessTime.seconds) * 1000 : Date.now();
      return ms >= recent;
    }).length;
  };
  const [workflow, activity] = await Promise.all([ask(1), ask(2)]);
  return { workflow, activity };
}

export function noWorkerMessage(t: Target): string {
  if (t.embedded) return `no worker polls task queue ${t.taskQueue} on the embedded server: run kha deploy FILE again to attach with a worker`;
  return `no worker polls task queue ${t.taskQueue} on ${t.address} (namespace ${t.namespace}): start one with: kha worker (same TEMPORAL_* settings)`;
}

export interface RunningWorker {
  stop(): Promise<void>;
  logFile: string;
}

let runtimeInstalled = false;

/** A kha worker inside this process, on the embedded server; its logs go to a file, not the terminal. */
export async function startInProcessWorker(t: Target): Promise<RunningWorker> {
  if (!t.embedded) throw new Error('an in-process worker runs only on the embedded server');
  const { NativeConnection, Runtime, DefaultLogger, makeTelemetryFilterString } = await import('@temporalio/worker');
  const { createKhaWorker } = await import('../worker/worker');
  const logFile = embeddedLogFiles().inProcessWorker;
  if (!runtimeInstalled) {
    runtimeInstalled = true;
    const logger = new DefaultLogger('INFO', (e) => {
      const meta = e.meta && Object.keys(e.meta).length ? ` ${JSON.stringify(e.meta)}` : '';
      try {
        appendFileSync(logFile, `${new Date(Number(e.timestampNanos / 1_000_000n)).toISOString()} ${e.level} ${e.message}${meta}\n`);
      } catch {
        /* logging must never break the worker */
      }
    });
    Runtime.install({ logger, shutdownSignals: [], telemetryOptions: { logging: { filter: makeTelemetryFilterString({ core: 'WARN', other: 'ERROR' }), forward: {} } } });
  }
  const connection = await NativeConnection.connect({ address: t.address });
  const worker = await createKhaWorker({ connection, namespace: t.namespace, taskQueue: t.taskQueue });
  const running = worker.run();
  let stopped = false;
  return {
    logFile,
    async stop() {
      if (stopped) return;
      stopped = true;
      if (worker.getState() === 'RUNNING') worker.shutdown();
      await running.catch(() => undefined);
      closeIdleSessions();
      await connection.close().catch(() => undefined);
    },
  };
}

/**
 * Makes sure something runs the workflow while this command waits on it: on the embedded server an in-process
 * worker (follow) or the background worker (detach); on an external cluster the operator's `kha worker`s.
 */
export async function workerFor(t: Target, mode: 'follow' | 'detach'): Promise<RunningWorker | undefined> {
  if (!t.embedded) return undefined;
  if (mode === 'follow') return startInProcessWorker(t);
  await ensureBackgroundWorker(t.embedded);
  return undefined;
}

/** describe() of a workflow id, or undefined when the server has never seen it. */
export async function describeOrUndefined(handle: WorkflowHandle) {
  try {
    return await handle.describe();
  } catch (e) {
    if ((e as Error).name === 'WorkflowNotFoundError') return undefined;
    throw e;
  }
}
