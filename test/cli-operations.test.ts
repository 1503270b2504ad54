// The CLI's table of operations: every row names a workflow the worker registers, and workflow ids map back to
// their cluster without one operation's ids passing for another's, nor a scheduled run's for any.
import { test } from 'node:test';
import assert from 'node:assert/strict';
import * as workflows from '../src/workflows';
import { OPERATION_KINDS, clusterOfWorkflowId, operation, workflowIdPrefix } from '../src/cli/operations';
import { scheduleId } from '../src/cli/schedule';

test('every operation of the CLI table is a workflow the worker registers, with its own id', () => {
  const registered = Object.keys(workflows);
  for (const kind of OPERATION_KINDS) assert.ok(registered.includes(operation(kind).workflowType), `${kind}: ${operation(kind).workflowType} is not registered`);
  const prefixes = OPERATION_KINDS.map(workflowIdPrefix);
  for (const p of prefixes) assert.equal(prefixes.filter((q) => q.startsWith(p)).length, 1, `prefix ${p} is shared`);
  assert.deepEqual(OPERATION_KINDS, ['deploy', 'reset', 'backup', 'certs', 'renew', 'apply', 'remove', 'restore', 'upgrade']);
});

test('a workflow id of any operation names its cluster; other ids name none', () => {
  for (const kind of OPERATION_KINDS) assert.equal(clusterOfWorkflowId(operation(kind).workflowId('demo')), 'demo');
  assert.equal(clusterOfWorkflowId('kha-deploy-'), undefined);
  assert.equal(clusterOfWorkflowId('other-workflow'), undefined);
});

test('the schedulable rows name their kha schedule action; a scheduled run names no cluster by its id (found by KhaCluster)', () => {
  assert.deepEqual(
    OPERATION_KINDS.filter((k) => operation(k).scheduleAction).map((k) => [k, operation(k).scheduleAction]),
    [['backup', 'backup'], ['certs', 'certs-check']],
  );
  // Temporal appends the time to the schedule's id: no operation prefix may take it for a cluster "demo-2026-...".
  assert.equal(clusterOfWorkflowId(`${scheduleId('backup', 'demo')}-2026-12-02T06:00:00Z`), undefined);
  assert.equal(clusterOfWorkflowId(`${scheduleId('certs-check', 'demo')}-2026-12-02T06:00:00Z`), undefined);
});
