// The CLI's table of operations: every row names a workflow the worker registers, and workflow ids map back to
// their cluster without one operation's ids passing for another's.
import { test } from 'node:test';
import assert from 'node:assert/strict';
import * as workflows from '../src/workflows';
import { OPERATION_KINDS, clusterOfWorkflowId, operation, workflowIdPrefix } from '../src/cli/operations';

test('every operation of the CLI table is a workflow the worker registers, with its own id', () => {
  const registered = Object.keys(workflows);
  for (const kind of OPERATION_KINDS) assert.ok(registered.includes(operation(kind).workflowType), `${kind}: ${operation(kind).workflowType} is not registered`);
  const prefixes = OPERATION_KINDS.map(workflowIdPrefix);
  for (const p of prefixes) assert.equal(prefixes.filter((q) => q.startsWith(p)).length, 1, `prefix ${p} is shared`);
  assert.deepEqual(OPERATION_KINDS, ['deploy', 'reset', 'backup', 'certs', 'remove']);
});

test('a workflow id of any operation names its cluster; other ids name none', () => {
  for (const kind of OPERATION_KINDS) assert.equal(clusterOfWorkflowId(operation(kind).workflowId('demo')), 'demo');
  assert.equal(clusterOfWorkflowId('kha-deploy-'), undefined);
  assert.equal(clusterOfWorkflowId('other-workflow'), undefined);
});
