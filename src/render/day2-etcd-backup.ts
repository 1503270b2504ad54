// Day 2: an etcd snapshot taken on a control-plane node whose member answers a quorum read, checked with
// etcdutl there. The snapshot lands under the etcd data directory because etcdctl and etcdutl may only exist
// inside the etcd container, which mounts that directory; it is deleted once the worker has its copy.
// Nothing printed carries the snapshot: only its path, size, SHA-256 and what etcdutl says about it.
import type { ClusterSpec, NodeSpec } from '../spec/types';
import { etcdctlFunction } from './join';
import { lines, q, script } from './shell';
import { resultMarker } from './result';
import type { RenderedScript } from './types';

export const SNAPSHOT_DIR = '/var/lib/etcd/kha-backup';
export const SNAPSHOT_PATH = `${SNAPSHOT_DIR}/snapshot.db`;
export const SNAPSHOT_MARKER = resultMarker('SNAPSHOT');
export const SNAPSHOT_UNHEALTHY = resultMarker('SNAPSHOT-UNHEALTHY');

/** What the node printed about the snapshot it took. */
export interface SnapshotReport {
  path: string;
  size: number;
  sha256: string;
  status: { hash: number; revision: number; totalKey: number; totalSize: number; version: string };
}

function etcdutlFunction(): string {
  return lines(
    'etcdutl_run() {',
    '  if kha_have etcdutl; then',
    '    etcdutl "$@"',
    '  else',
    '    local cid',
    "    cid=\"$(crictl ps --name '^etcd$' --state running -q 2>/dev/null | head -n 1)\"",
    '    [ -n "$cid" ] || return 1',
    '    crictl exec "$cid" etcdutl "$@"',
    '  fi',
    '}',
  );
}

export function renderEtcdSnapshot(c: ClusterSpec, n: NodeSpec): RenderedScript {
  return script({
    cluster: c.name,
    node: n.name,
    phase: 'day2',
    name: 'etcd-snapshot',
    summary: 'Takes an etcd snapshot from the local member if it is healthy, and checks it with etcdutl.',
    body: lines(
      etcdctlFunction(),
      etcdutlFunction(),
      `dir=${q(SNAPSHOT_DIR)}`,
      `snap=${q(SNAPSHOT_PATH)}`,
      'if ! etcdctl_run endpoint health >/dev/null 2>&1; then',
      `  printf '%s {"node":"%s"}\\n' ${SNAPSHOT_UNHEALTHY} ${q(n.name)}`,
      '  exit 0',
      'fi',
      'umask 077',
      '# A snapshot left by an interrupted run is stale: start clean.',
      'rm -rf -- "$dir"',
      'mkdir -m 0700 -- "$dir"',
      'if ! log="$(etcdctl_run snapshot save "$snap" 2>&1)"; then',
      '  printf \'%s\\n\' "$log" | tail -n 5 >&2',
      '  rm -rf -- "$dir"',
      '  kha_die "etcdctl snapshot save failed"',
      'fi',
      'chmod 0600 -- "$snap"',
      'if ! status="$(etcdutl_run snapshot status "$snap" -w json)"; then',
      '  rm -rf -- "$dir"',
      '  kha_die "etcdutl snapshot status rejects the snapshot"',
      'fi',
      'sha="$(sha256sum -- "$snap" | awk \'{ print $1 }\')"',
      'size="$(stat -c %s -- "$snap")"',
      `printf '%s {"path":"%s","size":%s,"sha256":"%s","status":%s}\\n' ${SNAPSHOT_MARKER} "$snap" "$size" "$sha" "$(printf '%s' "$status" | tr -d '\\n')"`,
    ),
  });
}

/** Deletes the node's copy of the snapshot (safe when there is none). */
export function renderEtcdSnapshotCleanup(c: ClusterSpec, n: NodeSpec): RenderedScript {
  return script({
    cluster: c.name,
    node: n.name,
    phase: 'day2',
    name: 'etcd-snapshot-cleanup',
    summary: "Deletes the node's copy of the etcd snapshot once the worker has it.",
    body: lines(`rm -rf -- ${q(SNAPSHOT_DIR)}`),
  });
}

/** The report the snapshot script printed; throws naming the field that is wrong. */
export function parseSnapshotReport(json: string): SnapshotReport {
  let r: Record<string, unknown>;
  try {
    r = JSON.parse(json) as Record<string, unknown>;
  } catch (e) {
    throw new Error(`snapshot report is not JSON: ${(e as Error).message}`);
  }
  const s = (r.status ?? {}) as Record<string, unknown>;
  const num = (v: unknown, what: string): number => {
    if (typeof v !== 'number' || !Number.isSafeInteger(v) || v < 0) throw new Error(`snapshot report: ${what} is not a non-negative integer (${JSON.stringify(v)})`);
    return v;
  };
  if (r.path !== SNAPSHOT_PATH) throw new Error(`snapshot report: path ${JSON.stringify(r.path)} is not ${SNAPSHOT_PATH}`);
  if (typeof r.sha256 !== 'string' || !/^[0-9a-f]{64}$/.test(r.sha256)) throw new Error('snapshot report: sha256 is not a SHA-256 digest');
  return {
    path: r.path,
    size: num(r.size, 'size'),
    sha256: r.sha256,
    status: { hash: num(s.hash, 'status.hash'), revision: num(s.revision, 'status.revision'), totalKey: num(s.totalKey, 'status.totalKey'), totalSize: num(s.totalSize, 'status.totalSize'), version: typeof s.version === 'string' ? s.version : '' },
  };
}
