// `kha kubeconfig CLUSTER [--merge [--force]]`: the admin kubeconfig kha saved at the end of a deployment, printed
// (as `kind get kubeconfig` does), or merged into the user's kubeconfig under a context named after the cluster.
import { existsSync, mkdirSync, readFileSync, renameSync, writeFileSync } from 'node:fs';
import { homedir } from 'node:os';
import { dirname, join } from 'node:path';
import { parse, stringify } from 'yaml';
import { defaultKubeconfigPath } from '../activities/kubeconfig-target';
import type { DeployResult } from '../workflows/definitions';
import { guarded, parseArgs } from './args';
import { CliError } from './client';

const USAGE = `usage: kha kubeconfig CLUSTER [--merge] [--force] [--file PATH]

Prints the admin kubeconfig kha saved when it deployed CLUSTER (the path the deployment reports, default
$XDG_STATE_HOME/kha/CLUSTER/admin.conf). It holds the cluster's admin credentials.
  --merge   add it to ~/.kube/config (the first file of $KUBECONFIG when set) as context CLUSTER, with
            cluster CLUSTER and user CLUSTER-admin; the current context is set only when there is none
  --force   with --merge, replace a context, cluster or user of those names that differs
  --file    the saved kubeconfig to read, when kha deploy --kubeconfig put it elsewhere
Exit status: 0 printed or merged, 1 nothing saved for CLUSTER or an entry of that name differs, 2 bad usage.
`;

type Named = { name?: unknown } & Record<string, unknown>;
interface KubeConfig {
  apiVersion?: unknown;
  kind?: unknown;
  clusters?: Named[];
  contexts?: Named[];
  users?: Named[];
  'current-context'?: unknown;
  [k: string]: unknown;
}

/** The saved file: --file, the default path, or the path the completed deployment reports. */
async function savedKubeconfig(cluster: string, file: string | undefined): Promise<string> {
  if (file) {
    if (!existsSync(file)) throw new CliError(`${file}: no such file`);
    return file;
  }
  const local = defaultKubeconfigPath(cluster);
  if (existsSync(local)) return local;
  let reported: string | undefined;
  try {
    const { connectTarget, describeOrUndefined } = await import('./client');
    const { deployWorkflowId } = await import('../workflows/definitions');
    const t = await connectTarget({ startEmbedded: false });
    try {
      const handle = t.client.workflow.getHandle(deployWorkflowId(cluster));
      const d = await describeOrUndefined(handle);
      if (d?.status.name === 'COMPLETED') reported = ((await handle.result()) as DeployResult).kubeconfigPath;
    } finally {
      await t.close();
    }
  } catch {
    /* no server: only the local path counts */
  }
  if (reported && existsSync(reported)) return reported;
  throw new CliError(
    reported
      ? `the deployment of ${cluster} saved its kubeconfig at ${reported}, which is not on this machine (the worker that ran it saved it); copy it here or use --file`
      : `no admin kubeconfig saved for ${cluster} (looked at ${local} and for a completed deployment on the server); kha saves it when a deployment completes`,
  );
}

function readKubeconfig(file: string): KubeConfig {
  let doc: unknown;
  try {
    doc = parse(readFileSync(file, 'utf8'));
  } catch (e) {
    throw new CliError(`${file}: not a kubeconfig (${(e as Error).message.split('\n')[0]})`);
  }
  if (doc === null || doc === undefined) return {};
  if (typeof doc !== 'object' || Array.isArray(doc) || ((doc as KubeConfig).kind !== undefined && (doc as KubeConfig).kind !== 'Config')) {
    throw new CliError(`${file}: not a kubeconfig (kind Config)`);
  }
  return doc as KubeConfig;
}

function first(list: Named[] | undefined, field: string, file: string): Record<string, unknown> {
  const v = list?.[0]?.[field];
  if (!v || typeof v !== 'object') throw new CliError(`${file}: no ${field} entry`);
  return v as Record<string, unknown>;
}

/** The user's kubeconfig as kubectl picks it: the first file of $KUBECONFIG, else ~/.kube/config. */
export function userKubeconfigPath(env: NodeJS.ProcessEnv = process.env): string {
  const fromEnv = (env.KUBECONFIG ?? '').split(':').find(Boolean);
  return fromEnv ?? join(env.HOME || homedir(), '.kube', 'config');
}

function merge(cluster: string, saved: string, target: string, force: boolean): string[] {
  const src = readKubeconfig(saved);
  const cfg: KubeConfig = existsSync(target) ? readKubeconfig(target) : {};
  const user = `${cluster}-admin`;
  const wanted: Array<[keyof KubeConfig & ('clusters' | 'contexts' | 'users'), Named]> = [
    ['clusters', { name: cluster, cluster: first(src.clusters, 'cluster', saved) }],
    ['users', { name: user, user: first(src.users, 'user', saved) }],
    ['contexts', { name: cluster, context: { cluster, user } }],
  ];
  const conflicts: string[] = [];
  const changes: string[] = [];
  for (const [list, entry] of wanted) {
    const have = (cfg[list] ??= []).findIndex((e) => e?.name === entry.name);
    const what = `${list.slice(0, -1)} ${String(entry.name)}`;
    if (have < 0) {
      cfg[list]!.push(entry);
      changes.push(`added ${what}`);
    } else if (JSON.stringify(cfg[list]![have]) !== JSON.stringify(entry)) {
      if (!force) conflicts.push(what);
      cfg[list]![have] = entry;
      changes.push(`replaced ${what}`);
    }
  }
  if (conflicts.length) {
    throw new CliError(`${target} already has a different ${conflicts.join(', ')}; nothing was changed (--force replaces them)`);
  }
  if (!cfg['current-context']) {
    cfg['current-context'] = cluster;
    changes.push(`current context ${cluster}`);
  }
  if (!changes.length) return [];
  cfg.apiVersion ??= 'v1';
  cfg.kind ??= 'Config';
  mkdirSync(dirname(target), { recursive: true, mode: 0o700 });
  const tmp = `${target}.kha-${process.pid}.tmp`;
  writeFileSync(tmp, stringify(cfg), { mode: 0o600 });
  renameSync(tmp, target);
  return changes;
}

export async function run(argv: string[]): Promise<number> {
  return guarded('kubeconfig', async () => {
    if (argv.includes('-h') || argv.includes('--help')) {
      process.stdout.write(USAGE);
      return 0;
    }
    const a = parseArgs(argv, ['--merge', '--force'], ['--file'], USAGE);
    if (a.positionals.length !== 1) throw new CliError(`expected one cluster name\n${USAGE}`, 2);
    if (a.flags.has('--force') && !a.flags.has('--merge')) throw new CliError(`--force goes with --merge\n${USAGE}`, 2);
    const cluster = a.positionals[0]!;
    const saved = await savedKubeconfig(cluster, a.values.get('--file'));
    if (!a.flags.has('--merge')) {
      process.stdout.write(readFileSync(saved, 'utf8'));
      return 0;
    }
    const target = userKubeconfigPath();
    const changes = merge(cluster, saved, target, a.flags.has('--force'));
    const current = readKubeconfig(target)['current-context'];
    process.stdout.write(
      changes.length ? `${target}: ${changes.join(', ')} (from ${saved})\n` : `${target}: context ${cluster} is up to date\n`,
    );
    if (current !== cluster) process.stdout.write(`switch to it with: kubectl config use-context ${cluster}\n`);
    return 0;
  });
}
