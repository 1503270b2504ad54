// The operator's answers to a waiting operation (a deployment, a reset: whichever of the CLI table runs): approve,
// retry, skip, abort. Each is a workflow Update, so a rejection comes back with the validator's reason. Then the
// command follows the operation to its next stop (on the embedded server that is also what runs it), unless
// --detach.
import { createInterface } from 'node:readline/promises';
import type { WorkflowHandle } from '@temporalio/client';
import { approveWorkersUpdate, decisionUpdate, statusQuery, type Decision } from '../workflows/definitions';
import { guarded, parseArgs } from './args';
import { CliError, connectTarget, noWorkerMessage, pollers, workerFor, type Target } from './client';
import { EXIT, outputMode, Printer, sendUpdate } from './follow';
import { followOrDetach } from './workflow-run';
import { OPERATION_KINDS, operation, type OperationKind } from './operations';
import { latestRun } from './runs';

const COMMON = `  --detach  return once the answer is accepted
  --json    one JSON object per line
Exit status: as kha deploy once it follows (0 done, 10 waiting for approval, 11 waiting for a decision,
1 failed or aborted); 1 when the answer is rejected (the reason is printed); 2 bad usage.`;

export const USAGES = {
  approve: `usage: kha approve CLUSTER [--detach] [--json]\n\nApproves the worker joins of a deployment waiting at its approval gate, or the changes an apply printed.\n${COMMON}\n`,
  retry: `usage: kha retry CLUSTER [--node NODE | --all] [--detach] [--json]\n\nRetries the failed step (of NODE, when several wait; of every waiting node with --all) after you fixed the\nhost(s).\n${COMMON}\n`,
  skip: `usage: kha skip CLUSTER NODE|--all [--detach] [--json]\n\nLeaves the failed worker NODE (with --all: every waiting worker) out of the cluster and goes on.\n${COMMON}\n`,
  abort: `usage: kha abort CLUSTER [--rollback [--yes]] [--detach] [--json]\n\nStops a deployment; --rollback resets the nodes this run touched that were not members of the cluster\nbefore it (listed first; asks for the cluster's name on a terminal, --yes otherwise), without it they stay\nas they are.\n${COMMON}\n`,
};

type Name = keyof typeof USAGES;

/** Runs before the answer is sent, with a worker in place; a number is the exit code instead of sending. */
type Before = (h: WorkflowHandle, printer: Printer, cluster: string) => Promise<number | undefined>;

async function answer(
  name: Name,
  cluster: string,
  o: { json: boolean; detach: boolean },
  send: (h: WorkflowHandle) => Promise<string>,
  before?: Before,
): Promise<number> {
  const printer = new Printer(outputMode(o.json));
  const t: Target = await connectTarget({ startEmbedded: false });
  try {
    const { kind, handle } = await runningOperation(t, cluster, name);
    // An Update waits for a worker to run its validator: make sure one runs, or say so instead of hanging.
    const worker = await workerFor(t, o.detach ? 'detach' : 'follow');
    try {
      if (!t.embedded && (await pollers(t)).workflow === 0) throw new CliError(`${noWorkerMessage(t)}; the ${name} needs a running worker`);
      const stop = await before?.(handle, printer, cluster);
      if (stop !== undefined) return stop;
      const r = await sendUpdate(() => send(handle));
      if (!r.ok) {
        printer.error(`kha ${name}: rejected: ${r.reason}`, { command: name, rejected: true, reason: r.reason });
        printer.error(`see where it stands: kha status ${cluster}`);
        return EXIT.failed;
      }
      printer.info(`${name}: ${r.result}`, 'accepted', { command: name, result: r.result });
      return await followOrDetach(t, printer, handle, { kind, cluster, detach: o.detach, worker });
    } finally {
      await worker?.stop();
    }
  } finally {
    await t.close();
  }
}

/**
 * The one operation of the cluster that runs (the workflows refuse to run beside each other), started by hand
 * or by a schedule, or why there is none.
 */
async function runningOperation(t: Target, cluster: string, name: Name): Promise<{ kind: OperationKind; handle: WorkflowHandle }> {
  const ended: string[] = [];
  for (const kind of OPERATION_KINDS) {
    const op = operation(kind);
    const running = await latestRun(t, kind, cluster, 'running');
    if (running) return { kind, handle: running.handle };
    const d = (await latestRun(t, kind, cluster))?.d;
    if (d) ended.push(`the ${op.title} of ${cluster} is not running (${d.status.name.toLowerCase()} at ${d.closeTime?.toISOString() ?? '?'})`);
  }
  if (!ended.length) {
    const titles = OPERATION_KINDS.map((k) => operation(k).title).join(' or ');
    throw new CliError(`no ${titles} of ${cluster} on ${t.address} (namespace ${t.namespace}); start one with: kha deploy FILE`);
  }
  throw new CliError(`${ended.join('; ')}: nothing to ${name}; see kha status ${cluster}`);
}

function by(): string {
  return `${process.env.USER ?? 'operator'} via kha`;
}

function command(
  name: Name,
  extraBool: string[],
  extraValue: string[],
  positionals: number | ((flags: Set<string>) => number),
  body: (p: string[], flags: Set<string>, values: Map<string, string>) => (h: WorkflowHandle) => Promise<string>,
  before?: (flags: Set<string>) => Before | undefined,
) {
  return (argv: string[]) =>
    guarded(name, async () => {
      if (argv.includes('-h') || argv.includes('--help')) {
        process.stdout.write(USAGES[name]);
        return EXIT.ok;
      }
      const a = parseArgs(argv, ['--json', '--detach', ...extraBool], extraValue, USAGES[name]);
      const want = typeof positionals === 'number' ? positionals : positionals(a.flags);
      if (a.positionals.length !== want) throw new CliError(`expected ${want === 1 ? 'CLUSTER' : 'CLUSTER NODE'}\n${USAGES[name]}`, EXIT.usage);
      const send = body(a.positionals, a.flags, a.values);
      return answer(name, a.positionals[0]!, { json: a.flags.has('--json'), detach: a.flags.has('--detach') }, send, before?.(a.flags));
    });
}

/** Lists what a rollback resets; asks for the cluster's name on a terminal, needs --yes otherwise. */
function confirmRollback(yes: boolean): Before {
  return async (h, printer, cluster) => {
    const s = await h.query(statusQuery);
    const nodes = s.rollbackNodes;
    const kept = s.membersBefore?.length ? `; members before this run, kept as they are: ${s.membersBefore.join(', ')}` : '';
    if (nodes && nodes.length === 0) {
      printer.info(`rollback resets no node: this run touched none that was not already a member${kept}`, 'rollback-plan', { nodes, membersBefore: s.membersBefore ?? [] });
      return undefined;
    }
    const list = nodes ? `${nodes.length} node(s): ${nodes.join(', ')}` : 'every node this run touched (this deployment does not say which)';
    printer.info(`rollback resets ${list} (kubeadm reset, their Kubernetes state and etcd data removed)${kept}`, 'rollback-plan', { nodes, membersBefore: s.membersBefore ?? [] });
    if (yes) return undefined;
    if (!process.stdin.isTTY) {
      printer.error(`kha abort: refusing to roll back ${cluster} without confirmation: standard input is not a terminal; add --yes to confirm`);
      return EXIT.usage;
    }
    const rl = createInterface({ input: process.stdin, output: process.stderr });
    const typed = await rl.question(`Type the cluster name to confirm the rollback: `);
    rl.close();
    if (typed.trim() !== cluster) {
      printer.error(`kha abort: not confirmed (expected "${cluster}"); nothing was sent`);
      return EXIT.failed;
    }
    return undefined;
  };
}

function decide(d: Decision) {
  return (h: WorkflowHandle) => h.executeUpdate(decisionUpdate, { args: [d] });
}

export const approve = command('approve', [], [], 1, () => (h) => h.executeUpdate<string, [string]>(approveWorkersUpdate.name, { args: [by()] }));
export const retry = command('retry', ['--all'], ['--node'], 1, (_p, f, v) => {
  if (f.has('--all') && v.has('--node')) throw new CliError(`--node and --all exclude each other\n${USAGES.retry}`, EXIT.usage);
  return decide({ action: 'retry', node: v.get('--node'), all: f.has('--all') || undefined, by: by() });
});
export const skip = command(
  'skip',
  ['--all'],
  [],
  (f) => (f.has('--all') ? 1 : 2),
  (p, f) => decide({ action: 'skip', node: p[1], all: f.has('--all') || undefined, by: by() }),
);
export const abort = command(
  'abort',
  ['--rollback', '--yes'],
  [],
  1,
  (_p, f) => decide({ action: f.has('--rollback') ? 'abort-rollback' : 'abort-leave', by: by() }),
  (f) => (f.has('--rollback') ? confirmRollback(f.has('--yes')) : undefined),
);
