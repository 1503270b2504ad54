// The pure parts of the CLI's output: the status table, the change lines, the decision text, the live redraw.
import { describe, it } from 'node:test';
import assert from 'node:assert/strict';
import { decisionText, facts, Live, newFacts, statusTable } from '../src/cli/output';
import type { DeploymentStatus } from '../src/workflows/definitions';

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
});
