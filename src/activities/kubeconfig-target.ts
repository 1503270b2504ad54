// Where the admin kubeconfig may be written on the worker's machine. A workflow input can name any path, and
// anyone who can start a workflow can write the input, so a path is used only when it lies in the worker's
// state directory, or when `kha deploy --kubeconfig` recorded it there for this cluster (the state directory
// belongs to the user running the worker; the Temporal namespace may not).
import { mkdirSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import { isAbsolute, join, normalize } from 'node:path';
import { ApplicationFailure } from '@temporalio/common';
import { stateDir } from '../server/embedded';
import { patterns } from '../spec/schema';

function choiceFile(cluster: string): string {
  return join(stateDir(), 'kubeconfig-choices', cluster);
}

function refuse(message: string): ApplicationFailure {
  return ApplicationFailure.create({ type: 'InvalidSpec', nonRetryable: true, message });
}

export function defaultKubeconfigPath(cluster: string): string {
  return join(stateDir(), cluster, 'admin.conf');
}

/** For the CLI: the user chose this absolute path for the cluster's kubeconfig. */
export function recordKubeconfigChoice(cluster: string, path: string): void {
  const file = choiceFile(cluster);
  mkdirSync(join(stateDir(), 'kubeconfig-choices'), { recursive: true, mode: 0o700 });
  writeFileSync(file, `${path}\n`, { mode: 0o600 });
}

/**
 * After the kubeconfig is written: the choice was for one deployment, not for every later input. It stays
 * usable by the run that used it (`runId`): an attempt whose completion was lost (a heartbeat timeout under
 * load) is retried, and the retry must find the choice it already used.
 */
export function forgetKubeconfigChoice(cluster: string, path: string, runId?: string): void {
  const c = chosen(cluster);
  if (c?.path !== path) return;
  if (runId) writeFileSync(choiceFile(cluster), `${path}\nused-by ${runId}\n`, { mode: 0o600 });
  else rmSync(choiceFile(cluster), { force: true });
}

/** The chosen path, and the run that used it once it was used. */
function chosen(cluster: string): { path: string; usedBy?: string } | undefined {
  let text: string;
  try {
    text = readFileSync(choiceFile(cluster), 'utf8');
  } catch {
    return undefined;
  }
  const [path = '', used = ''] = text.split('\n');
  const usedBy = /^used-by (\S+)$/.exec(used)?.[1];
  return usedBy ? { path: path.trim(), usedBy } : { path: path.trim() };
}

/** The path to write the cluster's kubeconfig to; InvalidSpec for a path the worker may not use. */
export function kubeconfigTarget(cluster: string, requested: string | undefined, runId?: string): string {
  if (!patterns.dnsLabel.test(cluster)) throw refuse(`cluster name ${JSON.stringify(cluster)} is not a DNS label`);
  if (requested === undefined || requested === '') return defaultKubeconfigPath(cluster);
  if (!isAbsolute(requested) || normalize(requested) !== requested || /[\u0000-\u001f]/.test(requested)) {
    throw refuse(`kubeconfigPath ${JSON.stringify(requested)} must be an absolute, normalised path`);
  }
  const root = stateDir();
  if (requested.startsWith(root + '/')) return requested;
  const c = chosen(cluster);
  if (c?.path === requested && (!c.usedBy || c.usedBy === runId)) return requested;
  throw refuse(
    `kubeconfigPath ${requested} is outside the worker's state directory ${root} and was not chosen with ` +
      `kha deploy --kubeconfig for cluster ${cluster} on this machine; refusing to write it`,
  );
}

/** Activity: run before the deployment touches any host, so a bad path fails it at once. */
export async function checkKubeconfigTarget(call: { cluster: string; path?: string }): Promise<{ path: string }> {
  return { path: kubeconfigTarget(call.cluster, call.path) };
}
