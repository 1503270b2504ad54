// Entry of the `kha` command. Each subcommand lives in its own module and is loaded on demand,
// so `kha validate` does not pay for loading the Temporal SDK.
import type { Command } from './help';

const commands: Record<string, Command> = {
  validate: { summary: 'check a cluster file and print every problem', load: () => import('./validate') },
  plan: { summary: 'show the phases, nodes and order of the deployment or of --operation KIND; --out writes every script and file', load: () => import('./plan') },
  schema: { summary: 'print the JSON Schema of the cluster file', load: () => import('./schema') },
  deploy: { summary: 'deploy a cluster file and follow the deployment', load: () => import('./deploy') },
  status: { summary: 'show a deployment: phases, nodes, what it waits for', load: () => import('./status') },
  approve: { summary: 'approve the worker joins of a waiting deployment', load: () => import('./decide').then((m) => ({ run: m.approve })) },
  retry: { summary: 'retry a failed step after fixing the host', load: () => import('./decide').then((m) => ({ run: m.retry })) },
  skip: { summary: 'leave a failed worker node out and go on', load: () => import('./decide').then((m) => ({ run: m.skip })) },
  abort: { summary: 'stop a deployment (--rollback resets the nodes it touched)', load: () => import('./decide').then((m) => ({ run: m.abort })) },
  reset: { summary: 'tear a cluster down (workers first, first control plane last)', load: () => import('./reset') },
  apply: { summary: 'join the nodes a running cluster lacks after approval (never removes, never upgrades)', load: () => import('./apply') },
  backup: { summary: 'take a verified etcd snapshot into the state directory (--retain N)', load: () => import('./backup') },
  remove: { summary: 'take one node out of a running cluster (drain, etcd member by ID, Node, reset; --force)', load: () => import('./remove') },
  restore: { summary: 'put an etcd snapshot from kha backup back on every member (asks for the cluster name)', load: () => import('./restore') },
  upgrade: { summary: 'upgrade a running cluster one minor at a time (snapshot first, approval before workers)', load: () => import('./upgrade') },
  certs: { summary: 'show the certificate expiry of every control-plane node (warns under 30 days)', load: () => import('./certs') },
  schedule: { summary: 'run backups or certificate checks every D as a Temporal Schedule (list, delete)', load: () => import('./schedule') },
  server: { summary: 'run the embedded Temporal server with its Web UI', load: () => import('./server') },
  worker: { summary: 'run a kha worker against TEMPORAL_ADDRESS', load: () => import('../worker/main') },
  demo: { summary: '6 lab hosts + embedded server, deploy "demo" to the approval gate (--auto-approve, --down)', load: () => import('./demo') },
  lab: { summary: 'start, stop or show a lab of simulated hosts (kha lab up|down|status)', load: () => import('./lab') },
  doctor: { summary: 'check what a deployment needs (key, known_hosts, Temporal, SSH to every node); changes nothing', load: () => import('./doctor') },
  kubeconfig: { summary: "print a cluster's admin kubeconfig, or --merge it into ~/.kube/config", load: () => import('./kubeconfig') },
  completion: { summary: 'print the bash or zsh completion script (kha completion bash|zsh)', load: () => import('./completion').then((m) => ({ run: (a: string[]) => m.run(a, commands) })) },
  help: { summary: 'show how to use a command (kha help COMMAND)', load: () => import('./help').then((m) => ({ run: (a: string[]) => m.run(a, commands, usage()) })) },
};

function usage(): string {
  const lines = Object.entries(commands).map(([name, c]) => `  ${name.padEnd(11)} ${c.summary}`);
  return `usage: kha <command> [options]\n       kha --version\n\ncommands:\n${lines.join('\n')}\n\nkha help COMMAND shows a command's options.\n`;
}

async function main(argv: string[]): Promise<number> {
  const [name, ...rest] = argv;
  if (!name || name === '-h' || name === '--help') {
    process.stdout.write(usage());
    return name ? 0 : 2;
  }
  if (name === '--version' || name === '-V') return (await import('./version')).run();
  const cmd = Object.hasOwn(commands, name) ? commands[name] : undefined;
  if (!cmd) {
    const { didYouMean } = await import('./suggest');
    const known = name.startsWith('-') ? ['--help', '--version'] : Object.keys(commands);
    process.stderr.write(`kha: unknown ${name.startsWith('-') ? 'option' : 'command'} "${name}"${didYouMean(name, known)}\n\n${usage()}`);
    return 2;
  }
  return (await cmd.load()).run(rest);
}

// `kha status x | head` closes the pipe early; that is the reader's choice, not an error.
process.stdout.on('error', (e: NodeJS.ErrnoException) => {
  if (e.code === 'EPIPE') process.exit(process.exitCode ?? 0);
  throw e;
});

main(process.argv.slice(2)).then(
  (code) => {
    process.exitCode = code;
  },
  (err: unknown) => {
    process.stderr.write(`kha: ${err instanceof Error ? err.message : String(err)}\n`);
    process.exitCode = 1;
  },
);
