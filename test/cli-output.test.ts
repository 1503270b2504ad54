// The pure parts of the CLI's output: the status table, the change lines, the decision text, the live redraw.
import { describe, it } from 'node:test';
import assert from 'node:assert/strict';
import { decisionText, facts, Live, newFacts, statusTable } from '../src/cli/output';
import type { DeploymentStatus, NodeStepStatus } from '../src/workflows/definitions';
import { renderProgress } from '../src/workflows/progress';
import { statusView, SUMMARY_ABOVE, SUMMARY_ROWS } from '../src/workflows/status-view';

function status(): DeploymentStatus {
  return {
    cluster: 'demo',
    kubernetesVersion: '1.35.2',
    state: 'waiting-decision',
    currentPhase: 'worker-join',
    waitingFor: 'operator decision for k8swn-02 (worker-join)',
    startedAt: '2026-01-01T00:00:00.000Z',
    pendingDecision: { phase: 'worker-join', node: 'k8swn-02', role: 'worker', error: 'JoinFailed: kubeadm join exited 1', allowed: ['retry', 'skip', 'abort-rollback', 'abort-leave'] },
    phases: [
      { phase: 'preflight', title: 'Preflight checks', mode: 'parallel', state: 'done', startedAt: '2026-01-01T00:00:00.000Z', endedAt: '2026-01-01T00:00:07.000Z', nodes: [{ node: 'k8scp-01', state: 'done', attempts: 1, compensations: 0 }] },
      {
        phase: 'worker-join',
        title: 'Worker joins',
        mode: 'parallel',
        state: 'running',
        startedAt: '2026-01-01T00:01:00.000Z',
        nodes: [
          { node: 'k8swn-01', state: 'running', attempts: 1, compensations: 0, startedAt: '2026-01-01T00:01:00.000Z' },
          { node: 'k8swn-02', state: 'waiting', attempts: 3, compensations: 1, lastError: 'JoinFailed: kubeadm join exited 1', startedAt: '2026-01-01T00:01:00.000Z' },
        ],
      },
      { phase: 'verify', title: 'Verification', mode: 'cluster', state: 'pending', nodes: [] },
    ],
  };
}

describe('cli output', () => {
  it('the table names every phase, and nodes of unfinished phases with attempts and last error', () => {
    const lines = statusTable(status(), { now: Date.parse('2026-01-01T00:02:05.000Z') });
    assert.equal(lines[0], 'cluster demo · Kubernetes 1.35.2 · waiting-decision · phase worker-join · 2m05s');
    assert.match(lines[1]!, /^ {2}✔ Preflight checks +done +1\/1 +7s$/);
    assert.match(lines[2]!, /^ {2}▶ Worker joins +running +0\/2 +1m05s$/);
    assert.match(lines[3]!, /^ {6}▶ k8swn-01 +running +1m05s$/);
    assert.match(lines[4]!, /^ {6}⏸ k8swn-02 +waiting +1m05s +attempt 3, 1 compensation, last error: JoinFailed: kubeadm join exited 1$/);
    assert.match(lines[5]!, /^ {2}· Verification +pending$/);
    assert.equal(lines[6], 'waiting for: operator decision for k8swn-02 (worker-join)');
    // status shows the nodes of finished phases too
    assert.ok(statusTable(status(), { allNodes: true }).some((l) => /^ {6}✔ k8scp-01 +done/.test(l)));
  });

  it('the decision text names node, role, phase, tries and each next command', () => {
    assert.deepEqual(decisionText(status()), [
      '✖ k8swn-02 (worker) failed in phase worker-join after 3 attempts and 1 compensation: JoinFailed: kubeadm join exited 1',
      'next step, one of:',
      '  fix the host, then: kha retry demo --node k8swn-02',
      '  leave it out: kha skip demo k8swn-02',
      '  give up and undo: kha abort demo --rollback',
      '  give up, leave the nodes as they are: kha abort demo',
    ]);
  });

  it('change lines: each fact once, pending ones never, a changed node again', () => {
    const seen = new Set<string>();
    const first = newFacts(status(), seen).map((f) => f.line);
    assert.ok(first.includes('worker-join k8swn-01: running'));
    assert.ok(!first.some((l) => l.startsWith('verify')), 'pending phases are not news');
    assert.deepEqual(newFacts(status(), seen), []);
    const s = status();
    s.phases[1]!.nodes[0]!.state = 'done';
    assert.deepEqual(newFacts(s, seen).map((f) => f.line), ['worker-join k8swn-01: done']);
    assert.equal(facts(s).filter((f) => f.event.type === 'node').length, 3);
  });

  it('Live redraws in place: up over the last frame, clears each line and what a taller frame left', () => {
    let out = '';
    const stream = { columns: 40, write: (s: string) => ((out += s), true) } as unknown as NodeJS.WriteStream;
    const live = new Live(stream);
    live.draw(['a', 'b', 'c']);
    assert.equal(out, '\x1b[2Ka\n\x1b[2Kb\n\x1b[2Kc\n');
    out = '';
    live.draw(['x'.repeat(60)]);
    assert.equal(out, `\x1b[3A\x1b[2K${'x'.repeat(39)}\n\x1b[2K\n\x1b[2K\n\x1b[2A`);
    live.commit();
    out = '';
    live.draw(['z']);
    assert.equal(out, '\x1b[2Kz\n');
  });

  it('a phase of more than SUMMARY_ABOVE nodes is summarised: counts per state, only the rows worth a line', () => {
    const rows = (n: number, row: (i: number) => Partial<NodeStepStatus>): NodeStepStatus[] =>
      Array.from({ length: n }, (_, i) => ({ node: `w-${i + 1}`, state: 'done', attempts: 1, compensations: 0, ...row(i) }));
    const s: DeploymentStatus = {
      ...status(),
      pendingDecision: { phase: 'host-prep', node: 'w-7', role: 'worker', error: 'HostPrepFailed: modprobe br_netfilter exited 1', allowed: ['retry', 'skip', 'abort-rollback', 'abort-leave'] },
      phases: [
        {
          phase: 'host-prep',
          title: 'Host preparation',
          mode: 'parallel',
          state: 'running',
          nodes: rows(1000, (i) =>
            i < 30 ? { state: 'waiting', attempts: 3, lastError: `HostPrepFailed: modprobe br_netfilter exited 1 on w-${i + 1}` }
            : i < 100 ? { state: 'running', startedAt: `2026-01-01T00:00:${String(99 - i).padStart(2, '0')}.000Z` }
            : i === 500 ? { attempts: 2 }
            : {},
          ),
        },
        { phase: 'control-plane-join', title: 'Control-plane joins', mode: 'sequential', state: 'done', nodes: rows(SUMMARY_ABOVE, () => ({})) },
      ],
    };
    // A small phase (and a status with only small phases) is answered as it is.
    assert.equal(statusView({ ...s, phases: [s.phases[1]!] }).phases[0], s.phases[1]);
    const v = statusView(s);
    const hp = v.phases[0]!;
    assert.equal(hp.nodes.length, SUMMARY_ROWS);
    assert.ok(hp.nodes.every((n) => n.state === 'waiting'), 'what waits for the operator comes first');
    assert.deepEqual(hp.summary, { total: 1000, counts: { waiting: 30, running: 70, done: 900 }, omitted: { waiting: 10, running: 70, done: 900 } });
    assert.equal(v.phases[1]!.summary, undefined);
    // Rows asked for by name are listed too; `full` answers every row.
    assert.deepEqual(statusView(s, { nodes: ['w-600'] }).phases[0]!.nodes.map((n) => n.node).slice(-1), ['w-600']);
    assert.equal(statusView(s, { full: true }).phases[0]!.nodes.length, 1000);
    // With fewer waiting, the longest running come next, then a retried one.
    const few = statusView({ ...s, phases: [{ ...s.phases[0]!, nodes: s.phases[0]!.nodes.slice(25) }] }).phases[0]!;
    // (listed in file order: the 5 waiting, then the 15 that started first, w-86 to w-100)
    assert.deepEqual(few.nodes.map((n) => n.node), ['w-26', 'w-27', 'w-28', 'w-29', 'w-30', ...Array.from({ length: 15 }, (_, i) => `w-${86 + i}`)]);
    const calm = statusView({ ...s, phases: [{ ...s.phases[0]!, nodes: s.phases[0]!.nodes.slice(95) }] }).phases[0]!;
    assert.deepEqual(calm.nodes.map((n) => [n.node, n.state]), [['w-96', 'running'], ['w-97', 'running'], ['w-98', 'running'], ['w-99', 'running'], ['w-100', 'running'], ['w-501', 'done']]);
    assert.ok(Buffer.byteLength(JSON.stringify(v)) < 16 * 1024, `${Buffer.byteLength(JSON.stringify(v))} bytes`);

    const table = statusTable(v, { allNodes: true, moreHint: ' (kha status demo --node NAME shows one)' });
    assert.ok(table.some((l) => /^ {2}▶ Host preparation +running +900\/1000\b/.test(l)), table.join('\n'));
    assert.ok(table.includes('      and 900 done, 70 running, 10 waiting (kha status demo --node NAME shows one)'), table.join('\n'));
    const dec = decisionText(v);
    assert.ok(dec.some((l) => l === '  and 10 more node(s) waiting (kha status demo --node NAME shows one)'), dec.join('\n'));
    assert.ok(dec.some((l) => /retry all 30: kha retry demo --all/.test(l)), dec.join('\n'));
    assert.match(renderProgress(v), /\| ▶ Host preparation \| running \| ⏸ w-1 ×3, .*⏸ w-20 ×3, ✔ 900 done, ▶ 70 running, ⏸ 10 waiting \|/);
    assert.ok(facts(v).some((f) => f.line === 'host-prep: running (900/1000 nodes done)'));
  });
});
