// The worker trusts no workflow input: anyone who can reach the namespace can start a workflow with a
// ClusterSpec that never went through the CLI's loader. Each workflow checks its input with the same
// schema and cross-field rules before it schedules anything, and fails with a non-retryable InvalidSpec.
// Pure (runs inside the workflow sandbox).
import { ActivityFailure, ApplicationFailure, proxyActivities } from '@temporalio/workflow';
import type * as activities from '../activities';
import { ClusterFile, API_VERSION, KIND } from '../spec/schema';
import { crossFieldChecks, normalise, type CheckOptions } from '../spec/checks';
import { fieldPath } from '../spec/issues';

export const INVALID_SPEC = 'InvalidSpec';

const MAX_PROBLEMS = 8;

function isRecord(v: unknown): v is Record<string, unknown> {
  return typeof v === 'object' && v !== null && !Array.isArray(v);
}

/** The first place two JSON-like values differ, or undefined when they are equal. */
function firstDifference(a: unknown, b: unknown, path: PropertyKey[]): PropertyKey[] | undefined {
  if (Array.isArray(a) && Array.isArray(b)) {
    if (a.length !== b.length) return path;
    for (let i = 0; i < a.length; i++) {
      const d = firstDifference(a[i], b[i], [...path, i]);
      if (d) return d;
    }
    return undefined;
  }
  if (isRecord(a) && isRecord(b)) {
    const keys = new Set([...Object.keys(a), ...Object.keys(b)]);
    for (const k of keys) {
      if (a[k] === undefined && b[k] === undefined) continue;
      const d = firstDifference(a[k], b[k], [...path, k]);
      if (d) return d;
    }
    return undefined;
  }
  return Object.is(a, b) ? undefined : path;
}

/** Every reason the cluster cannot be used as given (empty when it is exactly what the loader produces). */
export function clusterInputProblems(cluster: unknown, o: CheckOptions = {}): string[] {
  if (!isRecord(cluster)) return ['cluster: must be the object kha validate produces'];
  const problems: string[] = [];
  if (typeof cluster.source !== 'string' || cluster.source.length > 4096 || /[\u0000-\u001f\u007f]/.test(cluster.source)) {
    problems.push('cluster.source: must be a file path on one line');
  }
  const file = { apiVersion: API_VERSION, kind: KIND, metadata: { name: cluster.name }, spec: cluster.spec };
  const parsed = ClusterFile.safeParse(file);
  if (!parsed.success) {
    for (const i of parsed.error.issues.slice(0, MAX_PROBLEMS)) {
      const path = i.path[0] === 'metadata' ? ['name'] : i.path;
      problems.push(`${fieldPath(path)}: ${i.message}`);
    }
    return problems;
  }
  for (const f of crossFieldChecks(parsed.data, o)) if (f.severity === 'error') problems.push(`${fieldPath(f.path)}: ${f.message}`);
  if (problems.length) return problems.slice(0, MAX_PROBLEMS);
  // Defaults and normal forms are filled by the loader; an input that lacks them was not loaded by it.
  const diff = firstDifference(normalise(parsed.data).spec, cluster.spec, ['spec']);
  if (diff) problems.push(`${fieldPath(diff)}: differs from the loaded form of the same file (is the input from kha's loader?)`);
  return problems;
}

export function invalidInput(what: string, problems: string[]): ApplicationFailure {
  return ApplicationFailure.create({
    type: INVALID_SPEC,
    nonRetryable: true,
    message: `${what}: the input is not a valid cluster spec, nothing was done: ${problems.join('; ')}`,
  });
}

/**
 * Throws InvalidSpec unless the cluster is valid. `running`: an operation on a running cluster, whose nodes
 * may be the membership kha recorded after a removal (an even number of control-plane nodes is allowed).
 */
export function assertValidCluster(what: string, cluster: unknown, o: CheckOptions = {}): void {
  const problems = clusterInputProblems(cluster, o);
  if (problems.length) throw invalidInput(what, problems);
}

function numberIn(v: unknown, min: number, max: number): boolean {
  return typeof v === 'number' && Number.isFinite(v) && v >= min && v <= max;
}

/**
 * deployCluster's input: the cluster as above, the options' types and ranges, and the kubeconfig path, which
 * only the worker can judge (it must be in its state directory or chosen with kha deploy --kubeconfig).
 * Options this check does not know are left to the code that reads them.
 */
export function checkDeployInput(input: unknown): asserts input is { cluster: { name: string }; options?: Record<string, unknown> } {
  if (!isRecord(input)) throw invalidInput('deployCluster', ['the input must be { cluster, options }']);
  const problems = clusterInputProblems(input.cluster);
  const o = input.options;
  if (o !== undefined && !isRecord(o)) problems.push('options: must be an object');
  const opts = isRecord(o) ? o : {};
  if (opts.heartbeatTimeoutSeconds !== undefined && !numberIn(opts.heartbeatTimeoutSeconds, 1, 3600)) {
    problems.push('options.heartbeatTimeoutSeconds: must be a number of seconds from 1 to 3600');
  }
  if (opts.maxClockSkewMs !== undefined && !numberIn(opts.maxClockSkewMs, 0, 3_600_000)) {
    problems.push('options.maxClockSkewMs: must be a number of milliseconds from 0 to 3600000');
  }
  // A batch holds at most 2,000 pending activities (Temporal's default per workflow): at most 1,000 workers.
  if (opts.workersPerBatch !== undefined && !(Number.isInteger(opts.workersPerBatch) && numberIn(opts.workersPerBatch, 1, 1000))) {
    problems.push('options.workersPerBatch: must be a whole number from 1 to 1000');
  }
  if (opts.batchReportSeconds !== undefined && !numberIn(opts.batchReportSeconds, 1, 3600)) {
    problems.push('options.batchReportSeconds: must be a number of seconds from 1 to 3600');
  }
  if (opts.autoApprove !== undefined && typeof opts.autoApprove !== 'boolean') problems.push('options.autoApprove: must be true or false');
  const path = opts.kubeconfigPath;
  if (path !== undefined && (typeof path !== 'string' || !path.startsWith('/') || path.length > 4096)) {
    problems.push('options.kubeconfigPath: must be an absolute path');
  }
  if (problems.length) throw invalidInput('deployCluster', problems.slice(0, MAX_PROBLEMS));
}

/**
 * The kubeconfig path, checked by an activity on the worker (the choice is recorded there). Run once the status
 * query answers, so that `kha status` works from the first moment.
 */
export async function checkKubeconfigChoice(input: { cluster: { name: string }; options?: { kubeconfigPath?: string } }): Promise<void> {
  const path = input.options?.kubeconfigPath;
  if (typeof path !== 'string') return;
  const { checkKubeconfigTarget } = proxyActivities<typeof activities>({
    startToCloseTimeout: '30s',
    retry: { maximumAttempts: 3, nonRetryableErrorTypes: [INVALID_SPEC] },
  });
  try {
    await checkKubeconfigTarget({ cluster: (input.cluster as { name: string }).name, path });
  } catch (e) {
    const cause = e instanceof ActivityFailure ? e.cause : e;
    if (cause instanceof ApplicationFailure && cause.type === INVALID_SPEC) throw invalidInput('deployCluster', [cause.message]);
    throw e;
  }
}
