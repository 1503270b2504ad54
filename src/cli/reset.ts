// `kha reset FILE`: tear the cluster down (workers first, then control-plane nodes, the first one last).
import { createInterface } from 'node:readline/promises';
import type { ResetInput } from '../workflows/reset-cluster';
import { deployWorkflowId } from '../workflows/definitions';
import { guarded, parseArgs } from './args';
import { connectTarget, describeOrUndefined } from './client';
import { EXIT, outputMode, Printer } from './follow';
import { announceServer, followOrDetach, loadOrReport, startOrAttach } from './workflow-run';

const USAGE = `usage: kha reset FILE [--yes] [--reboot] [--json] [--detach]

Resets every node of the cluster in FILE: kubeadm reset and cleanup, workers first, then the control-plane
nodes one at a time, the first one last. Asks for the cluster's name as confirmation unless --yes.
  --yes      do not ask (required when standard input is not a terminal)
  --reboot   reboot each node after its reset
Exit status: 0 reset, 1 a node failed or the reset was not confirmed, 2 invalid input or no confirmation.
`;

export async function run(argv: string[]): Promise<number> {
  return guarded('reset', async () => {
    if (argv.includes('-h') || argv.includes('--help')) {
      process.stdout.write(USAGE);
      return EXIT.ok;
    }
    const a = parseArgs(argv, ['--yes', '--reboot', '--json', '--detach'], [], USAGE);
    const printer = new Printer(outputMode(a.flags.has('--json')));
    if (a.positionals.length !== 1) {
      printer.error(`kha reset: expected one cluster file, got ${a.positionals.length}\n${USAGE}`);
      return EXIT.usage;
    }
    const cluster = loadOrReport(a.positionals[0]!, printer);
    if (!cluster) return EXIT.usage;
    const names = cluster.spec.nodes.map((n) => n.name).join(', ');

    if (!a.flags.has('--yes')) {
      if (!process.stdin.isTTY) {
        printer.error(`kha reset: refusing to reset cluster ${cluster.name} (${names}) without confirmation: standard input is not a terminal; add --yes to confirm`);
        return EXIT.usage;
      }
      const rl = createInterface({ input: process.stdin, output: process.stderr });
      const answer = await rl.question(
        `This resets every node of cluster ${cluster.name} (${names}): kubeadm reset, etcd data and CNI state removed${a.flags.has('--reboot') ? ', then a reboot' : ''}.\nType the cluster name to confirm: `,
      );
      rl.close();
      if (answer.trim() !== cluster.name) {
        printer.error(`kha reset: not confirmed (expected "${cluster.name}"); nothing was done`);
        return EXIT.failed;
      }
    }

    const t = await connectTarget({ startEmbedded: true });
    try {
      announceServer(t, printer);
      const deploy = await describeOrUndefined(t.client.workflow.getHandle(deployWorkflowId(cluster.name)));
      if (deploy?.status.name === 'RUNNING') {
        printer.error(
          `kha reset: the deployment of ${cluster.name} is running (${deployWorkflowId(cluster.name)}); let it finish, or when it waits for a decision stop it with kha abort ${cluster.name} [--rollback]; then run kha reset again`,
        );
        return EXIT.failed;
      }
      const input: ResetInput = { cluster, reboot: a.flags.has('--reboot') };
      const started = await startOrAttach(t, printer, {
        kind: 'reset',
        cluster,
        args: [input],
        // A reset is always wanted again when asked for.
        again: true,
      });
      if ('code' in started) return started.code;
      return await followOrDetach(t, printer, started.handle, { kind: 'reset', cluster: cluster.name, detach: a.flags.has('--detach') });
    } finally {
      await t.close();
    }
  });
}
