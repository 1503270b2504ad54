// What the status query answers. A small cluster gets its whole table. A phase of more than SUMMARY_ABOVE
// nodes is summarised: a count per state and only the rows an operator acts on (waiting, failed,
// compensating, the longest running, retried), so `kha status` or a Web UI poll of 1,000 nodes stays a few KB
// instead of a row per node and phase. Pure: the workflow and the CLI both import it.
import type { DeploymentStatus, NodeStepStatus, PhaseStatus, PhaseSummary, StatusRequest, StepState } from './definitions';

/** Phases with more node rows than this are summarised. */
export const SUMMARY_ABOVE = 50;
/** At most this many rows of a summarised phase are listed (rows asked for by name come on top). */
export const SUMMARY_ROWS = 20;

// Lower first: what waits for the operator, then what broke, then what runs (longest first), then retries.
const RANK: Partial<Record<StepState, number>> = { waiting: 0, failed: 1, compensating: 2, running: 3 };

function rank(n: NodeStepStatus): number | undefined {
  const r = RANK[n.state];
  if (r !== undefined) return r;
  return n.attempts > 1 || n.compensations > 0 || n.lastError ? 4 : undefined;
}

function summarise(p: PhaseStatus, asked: ReadonlySet<string>): PhaseStatus {
  const counts: PhaseSummary['counts'] = {};
  for (const n of p.nodes) counts[n.state] = (counts[n.state] ?? 0) + 1;
  const worth = p.nodes
    .map((n, i) => ({ n, i, r: rank(n) }))
    .filter((x): x is { n: NodeStepStatus; i: number; r: number } => x.r !== undefined)
    .sort((a, b) => a.r - b.r || (a.r === RANK.running ? (a.n.startedAt ?? '').localeCompare(b.n.startedAt ?? '') : 0) || a.i - b.i);
  const listed = new Set(worth.slice(0, SUMMARY_ROWS).map((x) => x.n));
  for (const n of p.nodes) if (asked.has(n.node)) listed.add(n);
  const omitted: PhaseSummary['omitted'] = {};
  for (const n of p.nodes) if (!listed.has(n)) omitted[n.state] = (omitted[n.state] ?? 0) + 1;
  return { ...p, nodes: p.nodes.filter((n) => listed.has(n)), summary: { total: p.nodes.length, counts, omitted } };
}

/** The status as the query answers `req`: summarised where a phase is large, unless `full` is asked. */
export function statusView(s: DeploymentStatus, req: StatusRequest = {}): DeploymentStatus {
  if (req.full || !s.phases.some((p) => p.nodes.length > SUMMARY_ABOVE)) return s;
  const asked = new Set(req.nodes ?? []);
  return { ...s, phases: s.phases.map((p) => (p.nodes.length > SUMMARY_ABOVE ? summarise(p, asked) : p)) };
}

/** How many of a phase's nodes are in `state`, whether or not the phase is summarised. */
export function countOf(p: PhaseStatus, state: StepState): number {
  return p.summary ? (p.summary.counts[state] ?? 0) : p.nodes.filter((n) => n.state === state).length;
}

/** How many nodes a phase has. */
export function totalOf(p: PhaseStatus): number {
  return p.summary?.total ?? p.nodes.length;
}

/** "997 done, 3 pending": the rows a summarised phase leaves out, by state. */
export function omittedText(p: PhaseStatus, mark: (s: StepState) => string = () => ''): string {
  const o = p.summary?.omitted ?? {};
  return (Object.keys(o) as StepState[])
    .sort((a, b) => (o[b] ?? 0) - (o[a] ?? 0))
    .map((st) => `${mark(st)}${o[st]} ${st}`)
    .join(', ');
}
