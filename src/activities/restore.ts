// kha restore: the check on the worker (the snapshot confined to the cluster's backups directory, its sha256;
// the running etcd members), the copy to each control-plane node over SSH standard input, and one activity per
// step on a node. The snapshot's bytes stay inside stageSnapshot: results, heartbeats and failures carry its
// path, size and hash only.
import { createHash } from 'node:crypto';
import { createReadStream, existsSync, lstatSync, readFileSync, readdirSync, realpathSync } from 'node:fs';
import { basename, dirname, isAbsolute, join } from 'node:path';
import { ApplicationFailure } from '@temporalio/common';
import type { ClusterSpec, NodeSpec } from '../spec/types';
import { findNode } from '../spec/types';
import { type EtcdMember, parseEtcdMembers } from '../render/day2-etcd-members';
import {
  renderRestoreApiStart,
  renderRestoreDataAside,
  renderRestoreEtcdStart,
  renderRestoreMember,
  renderRestorePrepare,
  renderRestoreQuorum,
  renderRestoreRestart,
  renderRestoreStage,
  renderRestoreStop,
  renderRestoreVerify,
  restorePaths,
} from '../render/day2-etcd-restore';
import { readResult, ResultError, type ResultKind, type ResultOf } from '../render/result';
import type { RenderedScript } from '../render/types';
import { backupDir, etcdMembers, SNAPSHOT_FILE } from './day2';
import { activityContext, heartbeating, runScript, stepSummary, withHealthyControlPlane, withNode } from './common';
import type { StepResult } from './types';

export interface RestoreCheckCall {
  cluster: ClusterSpec;
  /** A snapshot file name in the cluster's backups directory, or an absolute path to one there. */
  snapshot: string;
}

export interface RestoreCheck {
  /** The snapshot's real path on the worker's machine. */
  path: string;
  sizeBytes: number;
  sha256: string;
  /** The control-plane node that listed the members. */
  via: string;
  members: EtcdMember[];
  attempt?: number;
}

export interface RestoreNodeCall {
  cluster: ClusterSpec;
  node: string;
  /** This run's name in paths on the nodes. */
  tag: string;
}

export interface StageCall extends RestoreNodeCall {
  path: string;
  sha256: string;
}

export interface StageResult extends StepResult {
  revision: number;
  totalKeys: number;
  etcdutl: 'host' | 'container';
}

export interface RestoreVerifyResult {
  via: string;
  members: EtcdMember[];
  /** Client URLs that answered a quorum read. */
  healthy: string[];
  nodes: string[];
  attempt?: number;
}

function invalid(message: string): ApplicationFailure {
  return ApplicationFailure.create({ type: 'InvalidSpec', nonRetryable: true, message });
}

/** The snapshot's real path, only if it is a snapshot file directly in the cluster's backups directory. */
export function confineSnapshot(cluster: string, snapshot: string): string {
  const dir = backupDir(cluster);
  if (typeof snapshot !== 'string' || !snapshot || snapshot.length > 4096 || /[\u0000-\u001f\u007f]/.test(snapshot)) throw invalid('snapshot: must be a file name or a path on one line');
  const asked = snapshot.includes('/') ? snapshot : join(dir, snapshot);
  if (!isAbsolute(asked)) throw invalid(`snapshot ${JSON.stringify(snapshot)}: give a file name in ${dir} or an absolute path`);
  const available = () => {
    const all = existsSync(dir) ? readdirSync(dir).filter((f) => SNAPSHOT_FILE.test(f)).sort() : [];
    return all.length ? `snapshots of ${cluster}: ${all.join(', ')}` : `no snapshots of ${cluster} in ${dir}: take one with kha backup ${cluster}`;
  };
  let real: string;
  try {
    real = realpathSync(asked);
  } catch {
    throw invalid(`snapshot ${JSON.stringify(snapshot)}: no such file (${available()})`);
  }
  const realDir = existsSync(dir) ? realpathSync(dir) : dir;
  if (dirname(real) !== realDir || !SNAPSHOT_FILE.test(basename(real))) {
    throw invalid(`snapshot ${JSON.stringify(snapshot)}: not a snapshot kha backup took of ${cluster}; kha restore reads only ${dir}/etcd-*.db (${available()})`);
  }
  if (!lstatSync(real).isFile()) throw invalid(`snapshot ${JSON.stringify(snapshot)}: not a regular file`);
  return real;
}

async function sha256Of(path: string): Promise<{ sha256: string; size: number }> {
  const h = createHash('sha256');
  let size = 0;
  await heartbeating(`hashing the snapshot ${basename(path)}`, async () => {
    for await (const chunk of createReadStream(path)) {
      h.update(chunk as Buffer);
      size += (chunk as Buffer).length;
    }
  });
  return { sha256: h.digest('hex'), size };
}

function result<K extends ResultKind>(stdout: string, kind: K, what: string): ResultOf<K> {
  try {
    const r = readResult(stdout, kind);
    if (r) return r;
  } catch (e) {
    if (e instanceof ResultError) throw ApplicationFailure.nonRetryable(`${what}: ${e.message}`, 'CommandFailed');
    throw e;
  }
  throw ApplicationFailure.create({ type: 'TransientCommandFailed', message: `${what} printed no report` });
}

/** Read-only: the snapshot (confined, hashed) and the running members by ID and peer URL. */
export async function restoreCheck(call: RestoreCheckCall): Promise<RestoreCheck> {
  const path = confineSnapshot(call.cluster.name, call.snapshot);
  const { sha256, size } = await sha256Of(path);
  if (size === 0) throw invalid(`snapshot ${path} is empty`);
  const seen = await etcdMembers({ cluster: call.cluster });
  return { path, sizeBytes: size, sha256, via: seen.via, members: seen.members };
}

function controlPlane(call: RestoreNodeCall): NodeSpec {
  const n = findNode(call.cluster, call.node);
  if (n.role !== 'control-plane') throw invalid(`${call.node} is not a control-plane node of ${call.cluster.name}`);
  restorePaths(call.tag);
  return n;
}

/** The snapshot on the node (0600, over SSH standard input), its hash there, etcdutl ready, snapshot status. */
export async function stageSnapshot(call: StageCall): Promise<StageResult> {
  controlPlane(call);
  const path = confineSnapshot(call.cluster.name, call.path);
  if (path !== call.path) throw invalid(`snapshot path ${call.path} is not the checked one`);
  return withNode(call.cluster, call.node, async (s, node) => {
    const prep = await runScript(s, node.name, 'restore', renderRestorePrepare(call.cluster, node, call.tag));
    const there = result(prep.stdout, 'RESTORE-COPY', `restore-prepare on ${node.name}`).sha256;
    const copy = there !== call.sha256;
    if (copy) {
      const data = readFileSync(path);
      const sha = createHash('sha256').update(data).digest('hex');
      if (sha !== call.sha256) throw ApplicationFailure.nonRetryable(`the snapshot ${path} changed since the check (sha256 ${sha}, checked ${call.sha256}); nothing was changed on the cluster`, 'SnapshotChanged');
      await heartbeating(`copying the snapshot to ${node.name}`, () => s.writeFile(restorePaths(call.tag).snapshot, data, 0o600, { signal: activityContext()?.cancellationSignal }));
    }
    const run = await runScript(s, node.name, 'restore', renderRestoreStage(call.cluster, node, call.tag, call.sha256));
    const r = result(run.stdout, 'RESTORE-STAGED', `restore-stage on ${node.name}`);
    const st = r.status as { revision?: unknown; totalKey?: unknown };
    const revision = typeof st.revision === 'number' ? st.revision : -1;
    const totalKeys = typeof st.totalKey === 'number' ? st.totalKey : -1;
    return {
      node: node.name,
      changed: copy,
      note: `${copy ? 'copied' : 'copy already there'}, sha256 checked; etcdutl snapshot status: revision ${revision}, ${totalKeys} keys (etcdutl from the ${r.etcdutl === 'host' ? 'host' : 'etcd container'})`,
      revision,
      totalKeys,
      etcdutl: r.etcdutl,
    };
  });
}

async function nodeStep(call: RestoreNodeCall, render: (c: ClusterSpec, n: NodeSpec, tag: string) => RenderedScript, what: string, anyRole = false): Promise<StepResult> {
  if (anyRole) {
    findNode(call.cluster, call.node);
    restorePaths(call.tag);
  } else controlPlane(call);
  return withNode(call.cluster, call.node, async (s, node) => {
    const { changed, note } = stepSummary(await runScript(s, node.name, 'restore', render(call.cluster, node, call.tag), { retryOn: ['timeout'] }), what);
    return { node: node.name, changed, note };
  });
}

export const stopControlPlane = (call: RestoreNodeCall) => nodeStep(call, renderRestoreStop, 'API server and etcd stopped');
export const moveEtcdDataAside = (call: RestoreNodeCall) => nodeStep(call, renderRestoreDataAside, `etcd data moved to ${restorePaths(call.tag).dataAside}`);
export const restoreEtcdMember = (call: RestoreNodeCall) => nodeStep(call, renderRestoreMember, 'member restored');
export const startEtcd = (call: RestoreNodeCall) => nodeStep(call, renderRestoreEtcdStart, 'etcd started');
export const startApiServer = (call: RestoreNodeCall) => nodeStep(call, renderRestoreApiStart, 'API server started');
export const restartAfterRestore = (call: RestoreNodeCall) => nodeStep(call, renderRestoreRestart, 'restarted', true);

/** Waits until every member of the file is started and healthy, seen from any control-plane node that answers. */
export async function waitRestoredQuorum(call: { cluster: ClusterSpec }): Promise<{ via: string; members: number; attempt?: number }> {
  return withHealthyControlPlane(call.cluster, undefined, async (s, cp) => {
    const { stdout } = await runScript(s, cp.name, 'restore', renderRestoreQuorum(call.cluster, cp), { retryOn: ['timeout'] });
    return { via: cp.name, members: result(stdout, 'ETCD', `restore-etcd-quorum on ${cp.name}`).members };
  });
}

/** Read-only: members, their health, /livez through the VIP and the Nodes, from a control-plane node. */
export async function verifyRestore(call: { cluster: ClusterSpec }): Promise<RestoreVerifyResult> {
  return withHealthyControlPlane(call.cluster, undefined, async (s, cp) => {
    const { stdout } = await runScript(s, cp.name, 'restore', renderRestoreVerify(call.cluster, cp), { retryOn: ['timeout'] });
    const r = result(stdout, 'RESTORE-VERIFY', `restore-verify on ${cp.name}`);
    let members: EtcdMember[];
    try {
      members = parseEtcdMembers(JSON.stringify(r.members));
    } catch (e) {
      throw ApplicationFailure.nonRetryable(`restore-verify on ${cp.name}: ${(e as Error).message}`, 'CommandFailed');
    }
    return { via: cp.name, members, healthy: r.healthy, nodes: r.nodes };
  });
}
