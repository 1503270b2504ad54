// What the day-2 commands (kha backup, kha certs) share: CLUSTER is a cluster file, or the name of a cluster
// kha deployed, whose spec then comes from its last deployment's input on the server (nothing else to keep).
import { existsSync } from 'node:fs';
import { defaultPayloadConverter } from '@temporalio/common';
import type { ClusterSpec } from '../spec/types';
import { deployWorkflowId } from '../workflows/definitions';
import { guarded, parseArgs, type Parsed } from './args';
import { CliError, connectTarget, describeOrUndefined, type Target } from './client';
import { EXIT, outputMode, Printer } from './follow';
import type { OperationKind } from './operations';
import { announceServer, followOrDetach, loadOrReport, startOrAttach } from './workflow-run';

/** The cluster named by `arg`, or undefined after printing why the file is invalid (exit 2). */
export async function day2Cluster(t: Target, arg: string, printer: Printer): Promise<ClusterSpec | undefined> {
  if (arg.includes('/') || /\.ya?ml$/.test(arg) || existsSync(arg)) return loadOrReport(arg, printer);
  const id = deployWorkflowId(arg);
  const d = await describeOrUndefined(t.client.workflow.getHandle(id));
  if (!d) throw new CliError(`no deployment of ${arg} on ${t.address} (workflow ${id}); name a cluster kha deployed, or give its cluster file`);
  const h = await t.connection.workflowService.getWorkflowExecutionHistory({ namespace: t.namespace, execution: { workflowId: d.workflowId, runId: d.runId }, maximumPageSize: 1 });
  const payload = h.history?.events?.[0]?.workflowExecutionStartedEventAttributes?.input?.payloads?.[0];
  const cluster = payload ? defaultPayloadConverter.fromPayload<{ cluster?: ClusterSpec }>(payload).cluster : undefined;
  if (!cluster?.spec) throw new CliError(`the deployment of ${arg} (${id}) has no cluster in its input; give the cluster file instead`);
  return cluster;
}

/** What some day-2 commands add to the common shape. */
export interface Day2Extras {
  /** Boolean options besides --json and --detach. */
  flags?: string[];
  /** CLUSTER must be a cluster file: the state to reach (kha apply), not a deployed cluster's name. */
  fileOnly?: boolean;
  /** The option that approves the run's gate once it is reached (kha apply --auto-approve). */
  autoApprove?: string;
}

/**
 * A day-2 command: usage, options (checked by `options` before any server is contacted), CLUSTER, then a new
 * run of the operation (every run is wanted: a new snapshot, a fresh check), followed like a deployment.
 */
export function day2Command<O>(
  kind: OperationKind,
  usage: string,
  withValue: string[],
  options: (a: Parsed) => O,
  input: (cluster: ClusterSpec, o: O) => unknown,
  extras: Day2Extras = {},
): (argv: string[]) => Promise<number> {
  return (argv) =>
    guarded(kind, async () => {
      if (argv.includes('-h') || argv.includes('--help')) {
        process.stdout.write(usage);
        return EXIT.ok;
      }
      const a = parseArgs(argv, ['--json', '--detach', ...(extras.flags ?? [])], withValue, usage);
      const printer = new Printer(outputMode(a.flags.has('--json')));
      const what = extras.fileOnly ? 'cluster file' : 'cluster name or file';
      if (a.positionals.length !== 1) throw new CliError(`expected one ${what}, got ${a.positionals.length}\n${usage}`, EXIT.usage);
      const o = options(a);
      // A file is checked before any server is contacted.
      const fromFile = extras.fileOnly ? loadOrReport(a.positionals[0]!, printer) : undefined;
      if (extras.fileOnly && !fromFile) return EXIT.usage;
      const t = await connectTarget({ startEmbedded: true });
      try {
        announceServer(t, printer);
        const cluster = fromFile ?? (await day2Cluster(t, a.positionals[0]!, printer));
        if (!cluster) return EXIT.usage;
        const started = await startOrAttach(t, printer, { kind, cluster, args: [input(cluster, o)], again: true });
        if ('code' in started) return started.code;
        const autoApprove = extras.autoApprove !== undefined && a.flags.has(extras.autoApprove);
        return await followOrDetach(t, printer, started.handle, { kind, cluster: cluster.name, detach: a.flags.has('--detach'), autoApprove });
      } finally {
        await t.close();
      }
    });
}
