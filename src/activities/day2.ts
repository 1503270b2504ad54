// Day-2 building blocks that run on a live cluster: an etcd backup copied to the worker's state directory, the
// certificate expiry of every control-plane node, and the etcd member list by ID and peer URL. The snapshot's
// bytes stay inside etcdBackup: results, heartbeats and failures carry only its path, size, hash and revision.
import { createHash } from 'node:crypto';
import { chmodSync, mkdirSync, readdirSync, renameSync, rmSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { ApplicationFailure } from '@temporalio/common';
import type { ClusterSpec } from '../spec/types';
import { stateDir } from '../server/embedded';
import { patterns } from '../spec/schema';
import { type CertExpiry, certsOutput, parseCertExpiration, renderCertsCheck, renderCertsRenew } from '../render/day2-certs';
import { readResult } from '../render/result';
import { type EtcdMember, ETCD_MEMBERS_MARKER, parseEtcdMembers, renderEtcdMemberList } from '../render/day2-etcd-members';
import {
  SNAPSHOT_MARKER,
  SNAPSHOT_UNHEALTHY,
  parseSnapshotReport,
  renderEtcdSnapshot,
  renderEtcdSnapshotCleanup,
} from '../render/day2-etcd-backup';
import { type ClusterState, parseClusterState, renderClusterState } from '../render/day2-cluster-state';
import { TRANSIENT_KINDS } from '../ssh/errors';
import { heartbeating, marker, redact, runScript, toFailure, withHealthyControlPlane, withNode } from './common';

export type { CertExpiry } from '../render/day2-certs';
export type { EtcdMember } from '../render/day2-etcd-members';
export type { ClusterNode, ClusterState } from '../render/day2-cluster-state';

export const DEFAULT_BACKUP_RETAIN = 5;

export interface Day2Call {
  cluster: ClusterSpec;
  /** Control-plane nodes to try, in order (default: every control-plane node in the file's order). */
  via?: string[];
}

export interface EtcdBackupCall extends Day2Call {
  /** How many snapshots of this cluster to keep in the state directory, this one included. */
  retain?: number;
}

export interface EtcdBackupResult {
  /** The control-plane node whose member the snapshot came from. */
  node: string;
  /** The copy on the worker's machine (mode 0600). */
  path: string;
  sizeBytes: number;
  sha256: string;
  /** From `etcdutl snapshot status` on the node. */
  revision: number;
  etcdHash: number;
  totalKeys: number;
  etcdVersion: string;
  /** Older snapshots deleted to keep `retain`. */
  removed: string[];
  attempt?: number;
}

export interface EtcdMembersResult {
  via: string;
  members: EtcdMember[];
  attempt?: number;
}

export interface ClusterStateResult extends ClusterState {
  attempt?: number;
}

export interface CertExpiryResult {
  nodes: Array<{ node: string; certificates: CertExpiry[] }>;
}

function invalid(message: string): ApplicationFailure {
  return ApplicationFailure.create({ type: 'InvalidSpec', nonRetryable: true, message });
}

function controlPlanes(call: Day2Call): string[] {
  const cps = call.cluster.spec.nodes.filter((n) => n.role === 'control-plane').map((n) => n.name);
  const via = call.via && call.via.length ? call.via : cps;
  const unknown = via.filter((v) => !cps.includes(v));
  if (unknown.length) throw invalid(`via names ${unknown.join(', ')}, not control-plane nodes of ${call.cluster.name}`);
  return via;
}

/** Where a cluster's snapshots live on the worker's machine. */
export function backupDir(cluster: string): string {
  if (!patterns.dnsLabel.test(cluster)) throw invalid(`cluster name ${JSON.stringify(cluster)} is not a DNS label`);
  return join(stateDir(), cluster, 'backups');
}

export const SNAPSHOT_FILE = /^etcd-\d{8}T\d{6}\.\d{3}Z-[a-z0-9.-]+\.db$/;

/** Keeps the newest `retain` snapshots (their names sort by time); returns the paths deleted. */
function prune(dir: string, retain: number): string[] {
  const all = readdirSync(dir).filter((f) => SNAPSHOT_FILE.test(f)).sort();
  const old = all.slice(0, Math.max(0, all.length - retain)).map((f) => join(dir, f));
  for (const p of old) rmSync(p, { force: true });
  return old;
}

/** fn's result, or null (noted in `skipped`) when the node does not answer: the next member may (a dead first control plane). */
async function unlessUnreachable<T>(skipped: string[], name: string, fn: () => Promise<T>): Promise<T | null> {
  try {
    return await fn();
  } catch (e) {
    if (!(e instanceof ApplicationFailure) || !TRANSIENT_KINDS.includes(e.type ?? '')) throw e;
    skipped.push(`${name} (does not answer: ${e.message})`);
    return null;
  }
}

export async function etcdBackup(call: EtcdBackupCall): Promise<EtcdBackupResult> {
  const retain = call.retain ?? DEFAULT_BACKUP_RETAIN;
  if (!Number.isInteger(retain) || retain < 1 || retain > 1000) throw invalid(`retain must be an integer from 1 to 1000, got ${retain}`);
  const dir = backupDir(call.cluster.name);
  const unhealthy: string[] = [];
  for (const name of controlPlanes(call)) {
    const r = await unlessUnreachable(unhealthy, name, () => withNode(call.cluster, name, async (s, node) => {
      const { stdout } = await runScript(s, name, 'day2', renderEtcdSnapshot(call.cluster, node));
      if (marker(stdout, SNAPSHOT_UNHEALTHY) !== undefined) return undefined;
      const raw = marker(stdout, SNAPSHOT_MARKER);
      if (!raw) throw ApplicationFailure.create({ type: 'TransientCommandFailed', message: `etcd snapshot on ${name} printed no report` });
      let report;
      try {
        report = parseSnapshotReport(raw);
      } catch (e) {
        throw ApplicationFailure.nonRetryable(`etcd snapshot on ${name}: ${(e as Error).message}`, 'CommandFailed');
      }
      try {
        const data = await heartbeating(`copying the etcd snapshot from ${name}`, () => s.readFile(report.path));
        const sha256 = createHash('sha256').update(data).digest('hex');
        if (data.length !== report.size || sha256 !== report.sha256) {
          throw ApplicationFailure.create({
            type: 'TransientCommandFailed',
            message: `the copy of the etcd snapshot from ${name} differs (${data.length} bytes, sha256 ${sha256}; the node has ${report.size} bytes, ${report.sha256})`,
          });
        }
        mkdirSync(dir, { recursive: true, mode: 0o700 });
        const stamp = new Date().toISOString().replace(/[-:]/g, '');
        const path = join(dir, `etcd-${stamp}-${name}.db`);
        const tmp = `${path}.tmp-${process.pid}`;
        writeFileSync(tmp, data, { mode: 0o600 });
        chmodSync(tmp, 0o600);
        renameSync(tmp, path);
        return { node: name, path, sizeBytes: report.size, sha256, revision: report.status.revision, etcdHash: report.status.hash, totalKeys: report.status.totalKey, etcdVersion: report.status.version, removed: prune(dir, retain) };
      } catch (e) {
        throw toFailure(e, name);
      } finally {
        await s.runScript(renderEtcdSnapshotCleanup(call.cluster, node).content).catch(() => undefined);
      }
    }));
    if (r) return r;
    if (r === undefined) unhealthy.push(name);
  }
  throw ApplicationFailure.create({ type: 'TransientCommandFailed', message: `no healthy etcd member to take a snapshot from (not healthy: ${unhealthy.join(', ')})` });
}

export async function etcdMembers(call: Day2Call): Promise<EtcdMembersResult> {
  return withHealthyControlPlane(call.cluster, controlPlanes(call), async (s, cp) => {
    const { stdout } = await runScript(s, cp.name, 'day2', renderEtcdMemberList(call.cluster, cp));
    const raw = marker(stdout, ETCD_MEMBERS_MARKER);
    if (!raw) throw ApplicationFailure.create({ type: 'TransientCommandFailed', message: `etcd member list on ${cp.name} printed nothing` });
    try {
      return { via: cp.name, members: parseEtcdMembers(raw) };
    } catch (e) {
      throw ApplicationFailure.nonRetryable(`etcd member list on ${cp.name}: ${(e as Error).message}`, 'CommandFailed');
    }
  });
}

/** kubeadm's expiry check on every control-plane node, one at a time. */
export async function certificateExpiry(call: Day2Call): Promise<CertExpiryResult> {
  const nodes: CertExpiryResult['nodes'] = [];
  for (const name of controlPlanes(call)) {
    nodes.push(
      await withNode(call.cluster, name, async (s, node) => {
        const { stdout } = await runScript(s, name, 'day2', renderCertsCheck(call.cluster, node));
        const text = certsOutput(stdout);
        if (text === undefined) throw ApplicationFailure.create({ type: 'TransientCommandFailed', message: `kubeadm certs check-expiration on ${name} printed no report` });
        try {
          return { node: name, certificates: parseCertExpiration(text) };
        } catch (e) {
          throw ApplicationFailure.nonRetryable(`kubeadm certs check-expiration on ${name}: ${(e as Error).message}`, 'CommandFailed');
        }
      }),
    );
  }
  return { nodes };
}

export interface RenewCall {
  cluster: ClusterSpec;
  node: string;
}

export interface RenewResult {
  node: string;
  /** The static pods restarted after the renewal, in order. */
  restarted: string[];
  attempt?: number;
}

/** kubeadm certs renew all on one control-plane node, then its static pods restarted and healthy again. */
export async function renewCertificates(call: RenewCall): Promise<RenewResult> {
  if (!call.cluster.spec.nodes.some((n) => n.name === call.node && n.role === 'control-plane')) throw invalid(`${call.node} is not a control-plane node of ${call.cluster.name}`);
  return withNode(call.cluster, call.node, async (s, node) => {
    // A restart that timed out is tried again: the kubelet may have been slow, and renewing again is harmless.
    const { stdout } = await runScript(s, node.name, 'day2', renderCertsRenew(call.cluster, node), { retryOn: ['timeout'] });
    const r = readResult(stdout, 'RENEWED');
    if (!r) throw ApplicationFailure.create({ type: 'TransientCommandFailed', message: `certificate renewal on ${node.name} printed no report` });
    return { node: node.name, restarted: r.restarted };
  });
}

/**
 * What runs (kha apply's discovery), read on the first control-plane node of the file that is a member and
 * answers; a node that is no member yet (a new one) or does not answer is passed over. Read-only.
 */
export async function discoverCluster(call: Day2Call): Promise<ClusterStateResult> {
  const passed: string[] = [];
  let answered = false;
  for (const name of controlPlanes(call)) {
    try {
      const state = await withNode(call.cluster, name, async (s, node) => {
        const { result, stdout } = await runScript(s, name, 'day2', renderClusterState(call.cluster, node), { allowFailure: true });
        if (result.exitCode !== 0) {
          const tail = redact(result.stderrTail || result.stdoutTail).trim().split('\n').pop() ?? '';
          throw ApplicationFailure.create({ type: 'TransientCommandFailed', message: `cluster-state on ${name} exited with ${result.exitCode}: ${tail}` });
        }
        try {
          return parseClusterState(stdout, name);
        } catch (e) {
          throw ApplicationFailure.nonRetryable(`cluster-state on ${name}: ${(e as Error).message}`, 'CommandFailed');
        }
      });
      if (state) return state;
      passed.push(`${name}: no admin.conf, not a member`);
    } catch (e) {
      if (!(e instanceof ApplicationFailure) || !(e.type === 'TransientCommandFailed' || TRANSIENT_KINDS.includes(e.type ?? ''))) throw e;
      answered = answered || e.type === 'TransientCommandFailed';
      passed.push(e.message);
    }
  }
  if (!answered && passed.every((p) => p.endsWith('not a member'))) {
    throw ApplicationFailure.nonRetryable(`no control-plane node in the file is a member of a running cluster ${call.cluster.name} (${passed.join('; ')}): deploy it first with kha deploy FILE`, 'NotACluster');
  }
  throw ApplicationFailure.create({ type: 'TransientCommandFailed', message: `no control-plane node of ${call.cluster.name} answered: ${passed.join('; ')}` });
}
