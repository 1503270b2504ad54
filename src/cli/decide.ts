// The operator's answers to a waiting deployment: approve, retry, skip, abort. Each is a workflow Update, so a
// rejection comes back with the validator's reason. Then the command follows the deployment to its next stop
// (on the embedded server that is also what runs it), unless --detach.
import type { WorkflowHandle } from '@temporalio/client';
import { approveWorkersUpdate, decisionUpdate, deployWorkflowId, type Decision } from '../workflows/definitions';
import { guarded, parseArgs } from './args';
import { CliError, connectTarget, describeOrUndefined, noWorkerMessage, pollers, workerFor, type Target } from './client';
import { EXIT, outputMode, Printer, sendUpdate } from './follow';
import { followOrDetach } from './workflow-run';

const COMMON = `  --detach  return once the answer is accepted
  --json    one JSON object per line
Exit status: as kha deploy once it follows (0 done, 10 waiting for approval, 11 waiting for a decision,
1 failed or aborted); 1 when the answer is rejected (the reason is printed); 2 bad usage.`;

export const USAGES = {
  approve: `usage: kha approve CLUSTER [--detach] [--json]\n\nApproves the worker joins of a deployment waiting at its approval gate.\n${COMMON}\n`,
  retry: `usage: kha retry CLUSTER [--node NODE] [--detach] [--json]\n\nRetries the failed step (of NODE, when several wait) after you fixed the host.\n${COMMON}\n`,
  skip: `usage: kha skip CLUSTER NODE [--detach] [--json]\n\nLeaves the failed worker NODE out of the cluster and goes on.\n${COMMON}\n`,
  abort: `usage: kha abort CLUSTER [--rollback] [--detach] [--json]\n\nStops a deployment waiting for a decision; --rollback resets the nodes it touched, without it they stay as\nthey are.\n${COMMON}\n`,
};

type Name = keyof typeof USAGES;

async function answer(
  name: Name,
  cluster: string,
  o: { json: boolean; detach: boolean },
  send: (h: WorkflowHandle) => Promise<string>,
): Promise<number> {
  const printer = new Printer(outputMode(o.json));
  const t: Target = await connectTarget({ startEmbedded: false });
  try {
    const id = deployWorkflowId(cluster);
    const d = await describeOrUndefined(t.client.workflow.getHandle(id));
    if (!d) throw new CliError(`no deployment of ${cluster} on ${t.address} (namespace ${t.namespace}); start one with: kha deploy FILE`);
    if (d.status.name !== 'RUNNING') {
      throw new CliError(`the deployment of ${cluster} is not running (${d.status.name.toLowerCase()} at ${d.closeTime?.toISOString() ?? '?'}): nothing to ${name}; see kha status ${cluster}`);
    }
    const handle = t.client.workflow.getHandle(id, d.runId);
    // An Update waits for a worker to run its validator: make sure one runs, or say so instead of hanging.
    const worker = await workerFor(t, o.detach ? 'detach' : 'follow');
    try {
      if (!t.embedded && (await pollers(t)).workflow === 0) throw new CliError(`${noWorkerMessage(t)}; the ${name} needs a running worker`);
      const r = await sendUpdate(() => send(handle));
      if (!r.ok) {
        printer.error(`kha ${name}: rejected: ${r.reason}`, { command: name, rejected: true, reason: r.reason });
        printer.error(`see where it stands: kha status ${cluster}`);
        return EXIT.failed;
      }
      printer.info(`${name}: ${r.result}`, 'accepted', { command: name, result: r.result });
      return await followOrDetach(t, printer, handle, { kind: 'deploy', cluster, detach: o.detach, worker });
    } finally {
      await worker?.stop();
    }
  } finally {
    await t.close();
  }
}

function by(): string {
  return `${process.env.USER ?? 'operator'} via kha`;
}

function command(name: Name, extraBool: string[], extraValue: string[], positionals: number, body: (p: string[], flags: Set<string>, values: Map<string, string>) => (h: WorkflowHandle) => Promise<string>) {
  return (argv: string[]) =>
    guarded(name, async () => {
      if (argv.includes('-h') || argv.includes('--help')) {
        process.stdout.write(USAGES[name]);
        return EXIT.ok;
      }
      const a = parseArgs(argv, ['--json', '--detach', ...extraBool], extraValue, USAGES[name]);
      if (a.positionals.length !== positionals) throw new CliError(`expected ${positionals === 1 ? 'CLUSTER' : 'CLUSTER NODE'}\n${USAGES[name]}`, EXIT.usage);
      const send = body(a.positionals, a.flags, a.values);
      return answer(name, a.positionals[0]!, { json: a.flags.has('--json'), detach: a.flags.has('--detach') }, send);
    });
}

function decide(d: Decision) {
  return (h: WorkflowHandle) => h.executeUpdate(decisionUpdate, { args: [d] });
}

export const approve = command('approve', [], [], 1, () => (h) => h.executeUpdate<string, [string]>(approveWorkersUpdate.name, { args: [by()] }));
export const retry = command('retry', [], ['--node'], 1, (_p, _f, v) => decide({ action: 'retry', node: v.get('--node'), by: by() }));
export const skip = command('skip', [], [], 2, (p) => decide({ action: 'skip', node: p[1], by: by() }));
export const abort = command('abort', ['--rollback'], [], 1, (_p, f) => decide({ action: f.has('--rollback') ? 'abort-rollback' : 'abort-leave', by: by() }));
