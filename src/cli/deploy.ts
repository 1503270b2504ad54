// `kha deploy FILE`: validate, start (or attach to) the deployCluster workflow, follow it.
import { resolve } from 'node:path';
import type { DeployInput } from '../workflows/deploy-cluster';
import { resetWorkflowId } from '../workflows/definitions';
import { recordKubeconfigChoice } from '../activities/kubeconfig-target';
import { parseArgs, guarded } from './args';
import { connectTarget, describeOrUndefined } from './client';
import { EXIT, outputMode, Printer } from './follow';
import { announceServer, followOrDetach, loadOrReport, startOrAttach } from './workflow-run';

const USAGE = `usage: kha deploy FILE [--detach] [--json] [--auto-approve] [--kubeconfig PATH] [--again]

Deploys the cluster described in FILE and follows the deployment.
  --detach        return once the deployment is started
  --json          one JSON object per line instead of text
  --auto-approve  approve the workers when the approval gate is reached (and let an approval
                  sent before the gate count; without it such an approval is ignored)
  --kubeconfig    where to save the admin kubeconfig (on the worker's machine; a worker on another machine
                  writes only inside its own state directory)
  --again         start a new run even when the last deployment completed

Without TEMPORAL_ADDRESS it starts or reuses the embedded Temporal server and runs a worker in this process.
Exit status: 0 deployed, 10 waiting for approval, 11 waiting for an operator decision, 1 failed or aborted,
2 invalid input.
`;

export async function run(argv: string[]): Promise<number> {
  return guarded('deploy', async () => {
    if (argv.includes('-h') || argv.includes('--help')) {
      process.stdout.write(USAGE);
      return EXIT.ok;
    }
    const a = parseArgs(argv, ['--detach', '--json', '--auto-approve', '--again'], ['--kubeconfig'], USAGE);
    const printer = new Printer(outputMode(a.flags.has('--json')));
    if (a.positionals.length !== 1) {
      printer.error(`kha deploy: expected one cluster file, got ${a.positionals.length}\n${USAGE}`);
      return EXIT.usage;
    }
    const file = a.positionals[0]!;
    const cluster = loadOrReport(file, printer);
    if (!cluster) return EXIT.usage;
    const kubeconfig = a.values.get('--kubeconfig');
    const options: DeployInput['options'] = {};
    if (kubeconfig) {
      options.kubeconfigPath = resolve(kubeconfig);
      // The worker writes outside its state directory only where the user of this machine said so.
      recordKubeconfigChoice(cluster.name, options.kubeconfigPath);
    }
    if (a.flags.has('--auto-approve')) options.autoApprove = true;
    const input: DeployInput = { cluster, options: Object.keys(options).length ? options : undefined };

    const t = await connectTarget({ startEmbedded: true });
    try {
      announceServer(t, printer);
      // The workflow itself refuses to run beside a reset (no race); this says so before starting one.
      const reset = await describeOrUndefined(t.client.workflow.getHandle(resetWorkflowId(cluster.name)));
      if (reset?.status.name === 'RUNNING') {
        printer.error(`kha deploy: a reset of ${cluster.name} is running (${resetWorkflowId(cluster.name)}); wait until it ends (kha status ${cluster.name} --reset), then deploy again`);
        return EXIT.failed;
      }
      const started = await startOrAttach(t, printer, {
        kind: 'deploy',
        cluster,
        args: [input],
        again: a.flags.has('--again'),
      });
      if ('code' in started) return started.code;
      return await followOrDetach(t, printer, started.handle, {
        kind: 'deploy',
        cluster: cluster.name,
        detach: a.flags.has('--detach'),
        autoApprove: a.flags.has('--auto-approve'),
      });
    } finally {
      await t.close();
    }
  });
}
