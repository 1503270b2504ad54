// The check the real-tier reset test applies to its etcd samples (test/helpers/etcd.ts): it must pass the
// teardown it expects and name each way a teardown can go wrong.
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { parseMemberList, teardownProblems, type EtcdSample } from './helpers/etcd';

const ORDER = [['cp-1', 'cp-2', 'cp-3'], ['cp-1', 'cp-2'], ['cp-1']];
let t = Date.UTC(2026, 0, 1);
const ok = (...members: string[]): EtcdSample => ({ at: (t += 1000), kind: 'ok', members });
const gone = (): EtcdSample => ({ at: (t += 1000), kind: 'unreachable', error: 'connection refused' });

test('teardownProblems: the expected teardown passes', () => {
  const s = [ok('cp-1', 'cp-2', 'cp-3'), ok('cp-1', 'cp-2', 'cp-3'), ok('cp-1', 'cp-2'), ok('cp-1'), gone(), gone()];
  assert.deepEqual(teardownProblems(s, ORDER), []);
});

test('teardownProblems: a listed member that is not healthy (its etcd stopped before its removal)', () => {
  const s: EtcdSample[] = [ok('cp-1', 'cp-2', 'cp-3'), { at: (t += 1000), kind: 'unhealthy', members: ['cp-1', 'cp-2', 'cp-3'], unhealthy: ['cp-3'], learners: [] }, ok('cp-1', 'cp-2'), ok('cp-1'), gone()];
  const p = teardownProblems(s, ORDER);
  assert.equal(p.length, 1, p.join('\n'));
  assert.match(p[0]!, /members \[cp-1,cp-2,cp-3\] listed, not healthy: \[cp-3\]$/);
});

test('teardownProblems: two members at once, the wrong order, and etcd gone while members remain', () => {
  assert.match(teardownProblems([ok('cp-1', 'cp-2', 'cp-3'), ok('cp-1'), gone()], ORDER).join('\n'), /member sets seen \[cp-1,cp-2,cp-3\] → \[cp-1\], expected/);
  assert.match(teardownProblems([ok('cp-1', 'cp-2', 'cp-3'), ok('cp-2', 'cp-3'), ok('cp-3'), gone()], ORDER).join('\n'), /seen \[cp-1,cp-2,cp-3\] → \[cp-2,cp-3\] → \[cp-3\]/);
  assert.match(teardownProblems([ok('cp-1', 'cp-2', 'cp-3'), gone(), ok('cp-1', 'cp-2'), ok('cp-1'), gone()], ORDER).join('\n'), /no member answered while \[cp-1,cp-2,cp-3\] were members/);
});

test('teardownProblems: the last member unhealthy while alone (its own reset), and a set the sampler missed', () => {
  const alone: EtcdSample = { at: (t += 1000), kind: 'unhealthy', members: ['cp-1'], unhealthy: ['cp-1'], learners: [] };
  assert.deepEqual(teardownProblems([ok('cp-1', 'cp-2', 'cp-3'), ok('cp-1', 'cp-2'), ok('cp-1'), alone, gone()], ORDER), []);
  const missed = [ok('cp-1', 'cp-2', 'cp-3'), ok('cp-1'), gone()];
  assert.match(teardownProblems(missed, ORDER).join('\n'), /member sets seen \[cp-1,cp-2,cp-3\] → \[cp-1\], expected/);
  assert.deepEqual(teardownProblems(missed, ORDER, { sequential: true }), []);
  // Proven sequential or not: a set outside the order, or the order reversed, is a problem.
  assert.match(teardownProblems([ok('cp-1', 'cp-2', 'cp-3'), ok('cp-2', 'cp-3'), ok('cp-3'), gone()], ORDER, { sequential: true }).join('\n'), /seen \[cp-1,cp-2,cp-3\] → \[cp-2,cp-3\] → \[cp-3\]/);
  assert.match(teardownProblems([ok('cp-1', 'cp-2', 'cp-3'), ok('cp-1'), ok('cp-1', 'cp-2'), gone()], ORDER, { sequential: true }).join('\n'), /member sets seen/);
});

test('parseMemberList reads etcdctl member list -w simple', () => {
  const rows = parseMemberList('8e9e05c52164694d, started, cp-1, https://198.18.0.11:2380, https://198.18.0.11:2379, false\n2a, unstarted, , https://198.18.0.12:2380, , true\n');
  assert.deepEqual(rows[1], { id: '2a', status: 'unstarted', name: '', peerURLs: ['https://198.18.0.12:2380'], clientURLs: [], isLearner: true });
  assert.equal(rows[0]!.name, 'cp-1');
  assert.throws(() => parseMemberList('Error: context deadline exceeded'), /unexpected member list line/);
});
