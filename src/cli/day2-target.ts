// What the day-2 commands (kha backup, kha certs) share: CLUSTER is a cluster file, or the name of a cluster
// kha deployed, whose spec then comes from the server: the nodes kha recorded there (nothing else to keep).
import { existsSync } from 'node:fs';
import { controlPlaneNodes, workerNodes, type ClusterSpec } from '../spec/types';
import { guarded, parseArgs, type Parsed } from './args';
import { CliError, connectTarget, type Target } from './client';
import { recordedCluster } from './membership';
import { EXIT, outputMode, Printer } from './follow';
import type { OperationKind } from './operations';
import { announceServer, followOrDetach, loadOrReport, startOrAttach } from './workflow-run';

/** CLUSTER names a file (read without a server) rather than a cluster kha deployed. */
const isClusterFile = (arg: string) => arg.includes('/') || /\.ya?ml$/.test(arg) || existsSync(arg);

/**
 * The cluster named by `arg`, or undefined after printing why the file is invalid (exit 2). A name means the
 * nodes kha recorded after the newest completed deployment, apply, upgrade or removal (src/cli/membership.ts).
 */
export async function day2Cluster(t: Target, arg: string, printer: Printer): Promise<ClusterSpec | undefined> {
  if (isClusterFile(arg)) return loadOrReport(arg, printer);
  const r = await recordedCluster(t, arg);
  const cps = controlPlaneNodes(r.cluster).map((n) => n.name);
  const workers = workerNodes(r.cluster).map((n) => n.name);
  const nodes = `control-plane ${cps.join(', ')}${workers.length ? `; workers ${workers.join(', ')}` : ''}`;
  printer.info(`${arg}: the nodes kha recorded ${r.from ? `after ${r.from}` : 'in its deployment'}: ${nodes}`, 'cluster-record', { cluster: arg, from: r.from, controlPlanes: cps, workers });
  return r.cluster;
}


/** What some day-2 commands add to the common shape. */
export interface Day2Extras<O> {
  /** Boolean options besides --json and --detach. */
  flags?: string[];
  /** CLUSTER must be a cluster file: the state to reach (kha apply), not a deployed cluster's name. */
  fileOnly?: boolean;
  /** The option that approves the run's gate once it is reached (kha apply --auto-approve). */
  autoApprove?: string;
  /** Positional arguments after CLUSTER, by name (kha remove CLUSTER NODE). */
  after?: string[];
  /** Runs once the cluster is known, before the run starts: a number is the exit code instead of starting. */
  before?: (cluster: ClusterSpec, o: O, positionals: string[], printer: Printer) => Promise<number | undefined>;
  /** Runs after a run this command followed ended well (kha apply, kha remove: the schedules get the new nodes). */
  done?: (t: Target, printer: Printer, cluster: string) => Promise<unknown>;
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
  input: (cluster: ClusterSpec, o: O, positionals: string[]) => unknown,
  extras: Day2Extras<O> = {},
): (argv: string[]) => Promise<number> {
  const after = extras.after ?? [];
  return (argv) =>
    guarded(kind, async () => {
      if (argv.includes('-h') || argv.includes('--help')) {
        process.stdout.write(usage);
        return EXIT.ok;
      }
      const a = parseArgs(argv, ['--json', '--detach', ...(extras.flags ?? [])], withValue, usage);
      const printer = new Printer(outputMode(a.flags.has('--json')));
      if (a.positionals.length !== 1 + after.length) {
        const first = extras.fileOnly ? 'cluster file' : 'cluster name or file';
        const want = after.length ? `CLUSTER ${after.join(' ')}` : `one ${first}`;
        throw new CliError(`expected ${want}, got ${a.positionals.length} argument(s)\n${usage}`, EXIT.usage);
      }
      const o = options(a);
      // A file is read and checked before any server is contacted: a bad file or a refusal starts nothing.
      const asFile = extras.fileOnly || isClusterFile(a.positionals[0]!);
      let cluster = asFile ? loadOrReport(a.positionals[0]!, printer) : undefined;
      if (asFile) {
        if (!cluster) return EXIT.usage;
        const stop = await extras.before?.(cluster, o, a.positionals, printer);
        if (stop !== undefined) return stop;
      }
      const t = await connectTarget({ startEmbedded: true });
      try {
        announceServer(t, printer);
        if (!cluster) {
          cluster = await day2Cluster(t, a.positionals[0]!, printer);
          if (!cluster) return EXIT.usage;
          const stop = await extras.before?.(cluster, o, a.positionals, printer);
          if (stop !== undefined) return stop;
        }
        const started = await startOrAttach(t, printer, { kind, cluster, args: [input(cluster, o, a.positionals)], again: true });
        if ('code' in started) return started.code;
        const autoApprove = extras.autoApprove !== undefined && a.flags.has(extras.autoApprove);
        const detach = a.flags.has('--detach');
        const code = await followOrDetach(t, printer, started.handle, { kind, cluster: cluster.name, detach, autoApprove });
        if (code === EXIT.ok && !detach) await extras.done?.(t, printer, cluster.name);
        return code;
      } finally {
        await t.close();
      }
    });
}
