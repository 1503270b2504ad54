// Day 2: the etcd members as etcd names them, by ID and peer URL, read on a control-plane node. A member is
// removed by its ID; which one is decided by an exact peer URL, never by a substring of an address.
import type { ClusterSpec, NodeSpec } from '../spec/types';
import { etcdctlFunction } from './join';
import { lines, script } from './shell';
import { resultMarker } from './result';
import type { RenderedScript } from './types';

export const ETCD_MEMBERS_MARKER = resultMarker('ETCD-MEMBERS');

export interface EtcdMember {
  /** The member ID in hex, as etcdctl prints it with --hex. */
  id: string;
  /** Empty until the member has started once. */
  name: string;
  peerURLs: string[];
  clientURLs: string[];
  isLearner: boolean;
  /** A member added but not yet started has no name and no client URLs. */
  started: boolean;
}

export function renderEtcdMemberList(c: ClusterSpec, n: NodeSpec): RenderedScript {
  return script({
    cluster: c.name,
    node: n.name,
    phase: 'day2',
    name: 'etcd-member-list',
    summary: 'Prints the etcd member list (IDs in hex, peer and client URLs) as one JSON line.',
    body: lines(
      etcdctlFunction(),
      'members="$(etcdctl_run member list -w json --hex)" || kha_die "etcd did not list its members"',
      `printf '%s %s\\n' ${ETCD_MEMBERS_MARKER} "$(printf '%s' "$members" | tr -d '\\n')"`,
    ),
  });
}

/** The members from `etcdctl member list -w json --hex`; throws naming what is missing. */
export function parseEtcdMembers(json: string): EtcdMember[] {
  let doc: unknown;
  try {
    doc = JSON.parse(json);
  } catch (e) {
    throw new Error(`etcd member list is not JSON: ${(e as Error).message}`);
  }
  const raw = (doc as { members?: unknown }).members;
  if (!Array.isArray(raw)) throw new Error('etcd member list has no members array');
  return raw.map((m: Record<string, unknown>, i) => {
    const id = m.ID;
    // Without --hex, IDs are 64-bit numbers that JSON.parse would round: only hex strings are accepted.
    if (typeof id !== 'string' || !/^[0-9a-f]{1,16}$/.test(id)) throw new Error(`etcd member ${i} has no hex ID (got ${JSON.stringify(id)})`);
    const urls = (v: unknown) => (Array.isArray(v) ? v.filter((x): x is string => typeof x === 'string') : []);
    const name = typeof m.name === 'string' ? m.name : '';
    const clientURLs = urls(m.clientURLs);
    return { id, name, peerURLs: urls(m.peerURLs), clientURLs, isLearner: m.isLearner === true, started: name !== '' && clientURLs.length > 0 };
  });
}

/** The member whose peer URLs include exactly `peerURL` (scheme, address and port), if any. */
export function memberByPeerURL<M extends Pick<EtcdMember, 'peerURLs'>>(members: readonly M[], peerURL: string): M | undefined {
  return members.find((m) => m.peerURLs.includes(peerURL));
}
