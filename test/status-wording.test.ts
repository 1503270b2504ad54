// What the operator reads: plain output in the order things happened, and one line for a batch of nodes that
// failed the same way. Pure functions of a status.
import { describe, it } from 'node:test';
import assert from 'node:assert/strict';
import { decisionText, newFacts } from '../src/cli/output';
import type { DeploymentStatus, NodeStepStatus } from '../src/workflows/definitions';

const at = (s: number) => new Date(Date.UTC(2026, 0, 1, 0, 0, s)).toISOString();

function gate(): DeploymentStatus {
  return {
    cluster: 'demo',
    state: 'waiting-approval',
    currentPhase: 'approval',
    waitingFor: 'approval: check the control plane, then run: kha approve demo',
    startedAt: at(0),
    phases: [
      {
        phase: 'control-plane-join',
        title: 'Control-plane joins',
        mode: 'sequential',
        state: 'done',
        startedAt: at(10),
        endedAt: at(40),
        nodes: [
          { node: 'k8scp-02', state: 'done', attempts: 1, compensations: 0, startedAt: at(10), endedAt: at(25), note: 'joined' },
          { node: 'k8scp-03', state: 'done', attempts: 1, compensations: 0, startedAt: at(25), endedAt: at(40), note: 'joined' },
        ],
      },
      { phase: 'approval', title: 'Approval before workers', mode: 'gate', state: 'running', startedAt: at(41), nodes: [] },
    ],
  };
}

describe('status wording', () => {
  it('plain lines: the joins that led to the gate come before the state that waits at it', () => {
    const lines = newFacts(gate(), new Set()).map((f) => f.line);
    assert.deepEqual(lines, [
      'control-plane-join k8scp-02: done (joined)',
      'control-plane-join k8scp-03: done (joined)',
      'control-plane-join: done',
      'approval: running',
      'demo: waiting-approval: waiting for approval: check the control plane, then run: kha approve demo',
    ]);
  });

  it('twelve workers failing the same way: one line for them and one command for all', () => {
    const s = gate();
    s.state = 'waiting-decision';
    const names = Array.from({ length: 12 }, (_, i) => `k8swn-${String(i + 1).padStart(2, '0')}`);
    const nodes: NodeStepStatus[] = names.map((n) => ({ node: n, state: 'waiting', attempts: 3, compensations: 0, lastError: `TransientCommandFailed: worker-join/join on ${n} exited with 1: timed out` }));
    s.phases.push({ phase: 'worker-join', title: 'Worker joins', mode: 'parallel', state: 'running', nodes });
    s.pendingDecision = { phase: 'worker-join', node: 'k8swn-01', role: 'worker', error: nodes[0]!.lastError!, allowed: ['retry', 'skip', 'abort-rollback', 'abort-leave'] };
    assert.deepEqual(decisionText(s), [
      `✖ ${names.join(', ')} (12 nodes) failed in phase worker-join after 3 attempts: TransientCommandFailed: worker-join/join on k8swn-01 exited with 1: timed out`,
      'next step, one of:',
      '  fix the hosts, then retry all 12: kha retry demo --all',
      '  leave the waiting workers out: kha skip demo --all (or one: kha skip demo k8swn-01)',
      '  give up and undo: kha abort demo --rollback',
      '  give up, leave the nodes as they are: kha abort demo',
    ]);
  });
});
