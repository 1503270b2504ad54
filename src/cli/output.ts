// How deployment status reaches the operator: a table (status, the live view on a TTY), one plain line per
// change (logs, CI), or one JSON object per line (scripts). Pure functions of DeploymentStatus, except Live.
import type { DeploymentStatus, NodeStepStatus, PhaseStatus, StepState } from '../workflows/definitions';
import { MARK } from '../workflows/progress';
import { countOf, omittedText, totalOf } from '../workflows/status-view';

export type OutputMode = 'tty' | 'plain' | 'json';

const SPINNER = ['⠋', '⠙', '⠹', '⠸', '⠼', '⠴', '⠦', '⠧', '⠇', '⠏'];
const COLOR: Partial<Record<StepState, string>> = { done: '32', failed: '31', waiting: '33', compensating: '35', running: '36', skipped: '90' };

function paint(s: string, state: StepState, color: boolean): string {
  const c = COLOR[state];
  return color && c ? `\x1b[${c}m${s}\x1b[0m` : s;
}

function pad(s: string, n: number): string {
  return s.length >= n ? s : s + ' '.repeat(n - s.length);
}

export function duration(from?: string, to?: string, now = Date.now()): string {
  if (!from) return '';
  const ms = (to ? Date.parse(to) : now) - Date.parse(from);
  if (!Number.isFinite(ms) || ms < 0) return '';
  const s = Math.round(ms / 1000);
  if (s < 60) return `${s}s`;
  const m = Math.floor(s / 60);
  if (m < 60) return `${m}m${String(s % 60).padStart(2, '0')}s`;
  return `${Math.floor(m / 60)}h${String(m % 60).padStart(2, '0')}m`;
}

// A long error is cut in its middle: the head names the step, the tail holds the tool's last words (apt's
// NO_PUBKEY, kubeadm's reason), which a cut at the end would drop.
function oneLine(s: string, max = 160): string {
  const t = s.replace(/\s+/g, ' ').trim();
  if (t.length <= max) return t;
  const head = Math.floor(max * 0.3);
  return `${t.slice(0, head)} … ${t.slice(t.length - (max - head - 3))}`;
}

export function headline(s: DeploymentStatus, now = Date.now()): string {
  const parts = [`cluster ${s.cluster}`];
  if (s.kubernetesVersion) parts.push(`Kubernetes ${s.kubernetesVersion}`);
  parts.push(s.state);
  if (s.currentPhase) parts.push(`phase ${s.currentPhase}`);
  parts.push(duration(s.startedAt, s.endedAt, now));
  return parts.filter(Boolean).join(' · ');
}

function nodeDetail(n: NodeStepStatus): string {
  const bits: string[] = [];
  if (n.attempts > 1) bits.push(`attempt ${n.attempts}`);
  if (n.compensations) bits.push(`${n.compensations} compensation${n.compensations > 1 ? 's' : ''}`);
  if (n.lastError && n.state !== 'done') bits.push(`last error: ${oneLine(n.lastError)}`);
  else if (n.note) bits.push(oneLine(n.note));
  return bits.join(', ');
}

export interface TableOptions {
  color?: boolean;
  /** Spinner frame for running steps (live view); undefined shows the static mark. */
  frame?: number;
  /** Show every node of every phase (status), or only those of unfinished phases (live view). */
  allNodes?: boolean;
  /** After the count of rows a summarised phase leaves out: how to see one of them. */
  moreHint?: string;
  now?: number;
}

/** The status as lines: a headline, one row per phase, node rows under it, then what it waits for. */
export function statusTable(s: DeploymentStatus, o: TableOptions = {}): string[] {
  const color = o.color ?? false;
  const mark = (st: StepState) => (st === 'running' && o.frame !== undefined ? SPINNER[o.frame % SPINNER.length]! : MARK[st]);
  const titleWidth = Math.max(...s.phases.map((p) => p.title.length), 10);
  const nodeWidth = Math.max(...s.phases.flatMap((p) => p.nodes.map((n) => n.node.length)), 8);
  const lines = [headline(s, o.now)];
  for (const p of s.phases) {
    const total = totalOf(p);
    const count = total ? `${countOf(p, 'done') + countOf(p, 'skipped')}/${total}` : '';
    const row = `  ${mark(p.state)} ${pad(p.title, titleWidth)}  ${pad(p.state, 12)} ${pad(count, 5)} ${duration(p.startedAt, p.endedAt, o.now)}`;
    lines.push(paint(row.trimEnd(), p.state, color));
    const showNodes = o.allNodes || (p.state !== 'done' && p.state !== 'pending' && p.state !== 'skipped') || p.nodes.some((n) => n.state === 'failed' || n.state === 'waiting');
    if (!showNodes || !total) continue;
    if (p.nodes.length && !p.summary && p.nodes.every((n) => n.state === 'pending')) {
      lines.push(`      ${MARK.pending} ${p.nodes.map((n) => n.node).join(', ')}`);
      continue;
    }
    for (const n of p.nodes) {
      const row2 = `      ${mark(n.state)} ${pad(n.node, nodeWidth)}  ${pad(n.state, 12)} ${pad(duration(n.startedAt, n.endedAt, o.now), 7)} ${nodeDetail(n)}`;
      lines.push(paint(row2.trimEnd(), n.state, color));
    }
    // A summarised phase (a large cluster) lists only the rows worth a line; the rest are counted.
    if (p.summary && omittedText(p)) lines.push(`      ${p.nodes.length ? 'and ' : ''}${omittedText(p)}${o.moreHint ?? ''}`);
  }
  if (s.waitingFor) lines.push(`waiting for: ${s.waitingFor}`);
  for (const w of s.warnings ?? []) lines.push(`warning: ${w}`);
  for (const n of s.notices ?? []) lines.push(`note: ${n}`);
  if (s.kubeconfigPath) lines.push(`kubeconfig: ${s.kubeconfigPath}`);
  return lines;
}

/** Flat facts of a status; the plain and JSON outputs print the ones that changed. */
export interface Fact {
  key: string;
  line: string;
  event: Record<string, unknown>;
}

export function facts(s: DeploymentStatus): Fact[] {
  const out: Fact[] = [];
  const ver = s.kubernetesVersion ? ` (Kubernetes ${s.kubernetesVersion})` : '';
  const state: Fact = {
    key: `state=${s.state}|${s.waitingFor ?? ''}|${s.kubernetesVersion ?? ''}`,
    line: `${s.cluster}: ${s.state}${ver}${s.waitingFor ? `: waiting for ${s.waitingFor}` : ''}`,
    event: { type: 'state', cluster: s.cluster, state: s.state, kubernetesVersion: s.kubernetesVersion, waitingFor: s.waitingFor },
  };
  for (const p of s.phases) {
    const phase: Fact = {
      key: `phase:${p.phase}=${p.state}`,
      line: `${p.phase}: ${p.state}${p.summary ? ` (${countOf(p, 'done') + countOf(p, 'skipped')}/${totalOf(p)} nodes done)` : ''}`,
      event: { type: 'phase', phase: p.phase, title: p.title, state: p.state, startedAt: p.startedAt, endedAt: p.endedAt },
    };
    // A phase starts before its nodes and ends after them.
    const ended = p.state === 'done' || p.state === 'failed' || p.state === 'skipped';
    if (!ended) out.push(phase);
    for (const n of p.nodes) {
      const detail = nodeDetail(n);
      out.push({
        key: `node:${p.phase}/${n.node}=${n.state}|${n.attempts}|${n.compensations}|${n.lastError ?? ''}`,
        line: `${p.phase} ${n.node}: ${n.state}${detail ? ` (${detail})` : ''}`,
        event: { type: 'node', phase: p.phase, node: n.node, state: n.state, attempts: n.attempts, compensations: n.compensations, lastError: n.lastError, note: n.note, startedAt: n.startedAt, endedAt: n.endedAt },
      });
    }
    if (ended) out.push(phase);
  }
  for (const w of s.warnings ?? []) out.push({ key: `warning=${w}`, line: `warning: ${w}`, event: { type: 'warning', message: w } });
  for (const n of s.notices ?? []) out.push({ key: `notice=${n}`, line: `note: ${n}`, event: { type: 'notice', message: n } });
  // The state comes from what the steps did ("waiting-approval" after the joins): it is told after them.
  out.push(state);
  return out;
}

/** When a fact's change happened, as far as the status tells (end, else start); undefined for the state. */
function factTime(f: Fact): number | undefined {
  const e = f.event as { state?: string; startedAt?: string; endedAt?: string };
  if (f.event.type !== 'node' && f.event.type !== 'phase') return undefined;
  const t = e.state === 'running' || e.state === 'compensating' || e.state === 'waiting' ? undefined : e.endedAt;
  const ms = Date.parse(t ?? e.startedAt ?? '');
  return Number.isFinite(ms) ? ms : undefined;
}

/**
 * Facts not seen before, in the order they happened (steps by their time, the deployment's state last);
 * `seen` is updated. Pending ones are not news.
 */
export function newFacts(s: DeploymentStatus, seen: Set<string>): Fact[] {
  const fresh: Fact[] = [];
  for (const f of facts(s)) {
    if (seen.has(f.key)) continue;
    seen.add(f.key);
    if (/=pending(\||$)/.test(f.key)) continue;
    fresh.push(f);
  }
  // Facts without a time stay right after the fact before them; the state goes last.
  let before = -Infinity;
  const keyed = fresh.map((f, i) => {
    const t = f.event.type === 'state' ? Infinity : factTime(f) ?? before;
    if (t !== Infinity) before = Math.max(before, t);
    return { f, i, t };
  });
  keyed.sort((a, b) => a.t - b.t || a.i - b.i);
  return keyed.map((k) => k.f);
}

/** The failure that an operator decision waits on, with the commands that resolve it. */
export function decisionText(s: DeploymentStatus): string[] {
  const d = s.pendingDecision;
  if (!d) return [];
  const tries = (n: NodeStepStatus) =>
    ` after ${n.attempts} attempt${n.attempts === 1 ? '' : 's'}${n.compensations ? ` and ${n.compensations} compensation${n.compensations > 1 ? 's' : ''}` : ''}`;
  // Every step that waits (several nodes of a parallel phase can), the one the status names first.
  const waiting = s.phases.flatMap((p) => p.nodes.filter((n) => n.state === 'waiting').map((n) => ({ phase: p.phase, n })));
  waiting.sort((a, b) => Number(b.n.node === d.node && b.phase === d.phase) - Number(a.n.node === d.node && a.phase === d.phase));
  if (!waiting.length) waiting.push({ phase: d.phase, n: { node: d.node, state: 'waiting', attempts: 0, compensations: 0, lastError: d.error } });
  // A summarised status (a large cluster) lists only some of the waiting rows: the commands count them all.
  const waitingCount = Math.max(waiting.length, s.phases.reduce((a, p) => a + countOf(p, 'waiting'), 0));
  // Nodes that failed the same way (same phase, tries and error but for their own name) make one line.
  const groups = new Map<string, Array<{ phase: string; n: NodeStepStatus }>>();
  for (const w of waiting) {
    const err = (w.n.lastError ?? d.error).split(w.n.node).join('<node>');
    const key = `${w.phase}|${w.n.attempts}|${w.n.compensations}|${err}`;
    groups.set(key, [...(groups.get(key) ?? []), w]);
  }
  const lines = [...groups.values()].map((g) => {
    const { phase, n } = g[0]!;
    const who = g.length === 1 ? `${n.node}${n.node === d.node ? ` (${d.role})` : ''}` : `${g.map((x) => x.n.node).join(', ')} (${g.length} nodes)`;
    return `✖ ${who} failed in phase ${phase}${n.attempts ? tries(n) : ''}: ${oneLine(n.lastError ?? d.error, 400)}`;
  });
  if (waitingCount > waiting.length) lines.push(`  and ${waitingCount - waiting.length} more node(s) waiting (kha status ${s.cluster} --node NAME shows one)`);
  const next: string[] = [];
  // Per-node commands while they fit on a screen; a batch gets one command for all of them.
  if (d.allowed.includes('retry') && waitingCount <= 3) for (const { n } of waiting) next.push(`fix the host, then: kha retry ${s.cluster} --node ${n.node}`);
  if (d.allowed.includes('retry') && waitingCount > 1) next.push(`fix the hosts, then retry all ${waitingCount}: kha retry ${s.cluster} --all`);
  if (d.allowed.includes('skip')) next.push(waitingCount > 1 ? `leave the waiting workers out: kha skip ${s.cluster} --all (or one: kha skip ${s.cluster} ${d.node})` : `leave it out: kha skip ${s.cluster} ${d.node}`);
  if (d.allowed.includes('abort-rollback')) next.push(`give up and undo: kha abort ${s.cluster} --rollback`);
  if (d.allowed.includes('abort-leave')) next.push(`give up, leave the nodes as they are: kha abort ${s.cluster}`);
  lines.push('next step, one of:', ...next.map((n) => `  ${n}`));
  return lines;
}

/** Running or compensating steps: while any runs, leaving would cut an activity off from its worker. */
export function activeSteps(s: DeploymentStatus): Array<{ phase: PhaseStatus; node: NodeStepStatus }> {
  return s.phases.flatMap((p) => p.nodes.filter((n) => n.state === 'running' || n.state === 'compensating').map((node) => ({ phase: p, node })));
}

/** Redraws a block of lines in place on a terminal. */
export class Live {
  private drawn = 0;
  constructor(private readonly out: NodeJS.WriteStream = process.stdout) {}
  draw(lines: string[]): void {
    const width = this.out.columns || 120;
    const clipped = lines.map((l) => clip(l, width - 1));
    let s = '';
    if (this.drawn) s += `\x1b[${this.drawn}A`;
    s += clipped.map((l) => `\x1b[2K${l}`).join('\n') + '\n';
    // Clear lines left over from a taller previous frame.
    const extra = this.drawn - clipped.length;
    if (extra > 0) s += `${'\x1b[2K\n'.repeat(extra)}\x1b[${extra}A`;
    this.out.write(s);
    this.drawn = clipped.length;
  }
  /** Forget the block: the next draw starts below it. */
  commit(): void {
    this.drawn = 0;
  }
}

/** Cuts a line to the terminal width, not counting colour escapes. */
function clip(line: string, width: number): string {
  let visible = 0;
  let out = '';
  for (let i = 0; i < line.length; i++) {
    if (line[i] === '\x1b') {
      const m = /^\x1b\[[0-9;]*[A-Za-z]/.exec(line.slice(i));
      if (m) {
        out += m[0];
        i += m[0].length - 1;
        continue;
      }
    }
    if (visible >= width) break;
    out += line[i];
    visible++;
  }
  return visible >= width && line.includes('\x1b[') ? `${out}\x1b[0m` : out;
}
