// The one way a rendered script reports back: lines `KHA-<KIND> <json object>` on stdout, written by the
// kha_result shell function (or a printf of the same shape). This module is the only place that reads them.
//
// Hostile text: stdout may carry other output (tool output, and anything a host's files contain), so a line
// counts only when it starts with a known KHA-<KIND>, its JSON parses whole and its value passes the kind's
// check. Two lines of one kind are refused rather than one picked: a copied or forged line makes the step
// fail, never feeds it someone else's data. A line cut short (a script killed mid-print) never parses as a
// JSON object, so it is reported as malformed. Error messages name the kind and the problem, never the
// line: the credentials kind carries secrets.
import { z } from 'zod';

/** A step's effect: how many files it changed, and whether it found the work already done. */
const Step = z.object({ changes: z.number().int().nonnegative(), already: z.boolean() });

/** Why a script failed, for the activity's retry decision (see FAILURE_KINDS). */
export const FAILURE_KINDS = ['timeout', 'apt-unavailable', 'kubeadm-preflight'] as const;
const Failure = z.object({ kind: z.enum(FAILURE_KINDS) });

const Clock = z.object({ ms: z.number().int().positive() });
const Packages = z.object({ kubeadm: z.string(), kubelet: z.string(), kubectl: z.string() });
const Etcd = z.object({ members: z.number().int().nonnegative(), node: z.string() });

/** Kinds whose value is checked where they are used (facts, credentials, verify): here only "a JSON object". */
const Checked = z.record(z.string(), z.unknown());

const KINDS = {
  STEP: Step,
  FAILURE: Failure,
  CLOCK: Clock,
  PACKAGES: Packages,
  ETCD: Etcd,
  FACTS: Checked,
  'JOIN-CREDENTIALS': Checked,
  VERIFY: Checked,
  SNAPSHOT: Checked,
  'SNAPSHOT-UNHEALTHY': z.object({ node: z.string() }),
  'ETCD-MEMBERS': Checked,
  CERTS: Checked,
  RENEWED: z.object({ restarted: z.array(z.string()) }),
  'CLUSTER-STATE': Checked,
  'UPGRADE-REPOSITORY': z.object({ available: z.array(z.string()) }),
  'REMOVAL-CHECK': z.object({
    nodeExists: z.boolean(),
    endpoints: z.array(z.object({ url: z.string(), healthy: z.boolean(), member: z.string().regex(/^\d*$/), leader: z.string().regex(/^\d*$/) })),
  }),
  // kha restore: a snapshot copy's hash before and after the upload, and the final check.
  'RESTORE-COPY': z.object({ sha256: z.string().regex(/^([0-9a-f]{64})?$/) }),
  'RESTORE-STAGED': z.object({ sha256: z.string().regex(/^[0-9a-f]{64}$/), etcdutl: z.enum(['host', 'container']), status: Checked }),
  'RESTORE-VERIFY': z.object({ members: Checked, healthy: z.array(z.string()), nodes: z.array(z.string()), vip: z.boolean() }),
} as const;

export type ResultKind = keyof typeof KINDS;
export type ResultOf<K extends ResultKind> = z.infer<(typeof KINDS)[K]>;
export type StepReport = ResultOf<'STEP'>;
export type FailureKind = (typeof FAILURE_KINDS)[number];

/** The marker that starts a result line of this kind, e.g. "KHA-STEP". */
export function resultMarker<K extends ResultKind>(kind: K): `KHA-${K}` {
  return `KHA-${kind}`;
}

export class ResultError extends Error {
  constructor(
    readonly kind: ResultKind,
    message: string,
  ) {
    super(message);
    this.name = 'ResultError';
  }
}

/** The value of the one `KHA-<kind>` line in stdout, or undefined when there is none. Throws ResultError when malformed or repeated. */
export function readResult<K extends ResultKind>(stdout: string, kind: K): ResultOf<K> | undefined {
  const prefix = `${resultMarker(kind)} `;
  const found = stdout.split('\n').filter((l) => l.startsWith(prefix));
  if (found.length === 0) return undefined;
  const marker = resultMarker(kind);
  if (found.length > 1) throw new ResultError(kind, `${marker} printed ${found.length} times; refusing to choose one`);
  let raw: unknown;
  try {
    raw = JSON.parse(found[0]!.slice(prefix.length).replace(/\r$/, ''));
  } catch {
    throw new ResultError(kind, `${marker} line is not JSON (cut short?)`);
  }
  const parsed = KINDS[kind].safeParse(raw);
  if (!parsed.success) {
    const first = parsed.error.issues[0];
    throw new ResultError(kind, `${marker} line is malformed${first ? ` at ${first.path.join('.') || 'the top'}: ${first.message}` : ''}`);
  }
  return parsed.data as ResultOf<K>;
}

/** Like readResult, but a missing line is an error too; `what` names the script in it. */
export function requireResult<K extends ResultKind>(stdout: string, kind: K, what: string): ResultOf<K> {
  const r = readResult(stdout, kind);
  if (r === undefined) throw new ResultError(kind, `${what} output has no ${resultMarker(kind)} line`);
  return r;
}

/** Shell that prints this kind's result line from a JSON text (a shell word, expanded by bash). */
export function resultLine(kind: ResultKind, json: string): string {
  return `kha_result ${kind} ${json}`;
}
