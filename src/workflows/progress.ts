// The Markdown progress table shown as the workflow's current details in the Web UI. Pure.
import type { DeploymentStatus, StepState } from './definitions';
import { omittedText } from './status-view';

/** One symbol per state, shared by the Web UI table and the terminal view. */
export const MARK: Record<StepState, string> = {
  pending: '·',
  running: '▶',
  done: '✔',
  skipped: '↷',
  failed: '✖',
  compensating: '↺',
  waiting: '⏸',
};

function cell(s: string): string {
  return s.replace(/\|/g, '\\|').replace(/\n/g, ' ');
}

export function renderProgress(s: DeploymentStatus): string {
  const lines: string[] = [];
  lines.push(`**${s.cluster}**: ${s.state}${s.kubernetesVersion ? ` · Kubernetes ${s.kubernetesVersion}` : ''}`);
  if (s.waitingFor) lines.push('', `**Waiting for** ${cell(s.waitingFor)}`);
  if (s.pendingDecision) lines.push('', `**${s.pendingDecision.node}** failed in ${s.pendingDecision.phase}: ${cell(s.pendingDecision.error)}`);
  for (const w of s.warnings ?? []) lines.push('', `**⚠ Warning** ${cell(w)}`);
  for (const n of s.notices ?? []) lines.push('', `**Note** ${cell(n)}`);
  lines.push('', '| phase | state | nodes |', '|---|---|---|');
  for (const p of s.phases) {
    const nodes = p.nodes
      .map((n) => `${MARK[n.state]} ${n.node}${n.attempts > 1 ? ` ×${n.attempts}` : ''}${n.compensations ? ` ↺${n.compensations}` : ''}`)
      .join(', ');
    const more = p.summary ? omittedText(p, (st) => `${MARK[st]} `) : '';
    lines.push(`| ${MARK[p.state]} ${cell(p.title)} | ${p.state} | ${cell([nodes, more].filter(Boolean).join(', ')) || '—'} |`);
  }
  return lines.join('\n');
}
