// kha remove: the scripts that take one node out of a running cluster. The check and the etcd steps run on a
// healthy control-plane node and speak to each member on its own client URL; a member is removed by the hex ID
// the activity picked by exact peer URL, never by a name or part of an address. Values that are only known at
// run time (member IDs, client URLs) are validated here and rendered in, so `kha plan`-style review shows them.
import type { ClusterSpec, NodeSpec } from '../spec/types';
import { vipInterface } from '../spec/types';
import { ADMIN_CONF, ETCD_PKI, KUBE_VIP_MANIFEST, localApiAddress } from './common';
import { etcdctlFunction } from './join';
import { resultMarker } from './result';
import { lines, q, script } from './shell';
import type { RenderedScript } from './types';

export const REMOVAL_CHECK_MARKER = resultMarker('REMOVAL-CHECK');

const HEX_ID = /^[0-9a-f]{1,16}$/;
const CLIENT_URL = /^https:\/\/[0-9A-Za-z.:[\]-]+$/;

/** etcdctl against one member's client URL (the host's etcdctl, or the one in the local etcd container). */
export function etcdAtFunction(): string {
  return lines(
    `etcd_certs=(--cacert=${ETCD_PKI}/ca.crt --cert=${ETCD_PKI}/healthcheck-client.crt --key=${ETCD_PKI}/healthcheck-client.key --dial-timeout=3s --command-timeout=8s)`,
    'etcd_at() {',
    '  local ep="$1"',
    '  shift',
    '  if kha_have etcdctl; then',
    '    ETCDCTL_API=3 etcdctl --endpoints="$ep" "${etcd_certs[@]}" "$@"',
    '  else',
    '    local cid',
    "    cid=\"$(crictl ps --name '^etcd$' --state running -q 2>/dev/null | head -n 1)\"",
    '    [ -n "$cid" ] || return 1',
    '    crictl exec "$cid" etcdctl --endpoints="$ep" "${etcd_certs[@]}" "$@"',
    '  fi',
    '}',
    '# "MEMBER LEADER" of the member at $1, both in decimal as the fields output prints them.',
    'etcd_status() {',
    '  etcd_at "$1" endpoint status -w fields 2>/dev/null | awk -F\' : \' \'$1 == "\\"MemberID\\"" { m = $2 } $1 == "\\"Leader\\"" { l = $2 } END { if (m == "" || l == "") exit 1; print m, l }\'',
    '}',
  );
}

function kubectlLocal(c: ClusterSpec): string {
  return lines(
    `export KUBECONFIG=${q(ADMIN_CONF)}`,
    '# This node\'s own API server (the VIP may be moving while a control-plane node leaves).',
    localApiAddress(),
    `api_server="https://$api_address:${c.spec.controlPlaneEndpoint.port}"`,
    'kube() { kubectl --server "$api_server" --request-timeout=20s "$@"; }',
    '# True when the Node exists, false when the API server says NotFound; any other answer ends the script.',
    'node_exists() {',
    '  local out',
    '  if out="$(kube get node "$1" -o name 2>&1)"; then return 0; fi',
    '  if printf \'%s\' "$out" | grep -q NotFound; then return 1; fi',
    '  printf \'%s\\n\' "$out" >&2',
    '  kha_die "cannot ask the API server about node $1"',
    '}',
  );
}

function checkUrls(urls: readonly string[]): void {
  for (const u of urls) if (!CLIENT_URL.test(u)) throw new Error(`etcd client URL ${JSON.stringify(u)} is not an https URL of an address`);
}

/**
 * On a healthy control-plane node: whether the Node `target` exists, and for each member's client URL whether
 * it answers a quorum read, its member ID and the leader it knows (decimal, converted by the activity).
 */
export function renderRemovalCheck(c: ClusterSpec, via: NodeSpec, target: string, clientURLs: readonly string[]): RenderedScript {
  checkUrls(clientURLs);
  return script({
    cluster: c.name,
    node: via.name,
    phase: 'remove',
    name: 'removal-check',
    runsOn: 'control-plane',
    summary: `Read-only: whether the Node ${target} exists, and each etcd member's health, ID and leader.`,
    body: lines(
      kubectlLocal(c),
      etcdAtFunction(),
      `node=${q(target)}`,
      'exists=false',
      'if node_exists "$node"; then exists=true; fi',
      'eps=""',
      `for url in ${clientURLs.map(q).join(' ')}; do`,
      '  healthy=false',
      '  if etcd_at "$url" endpoint health >/dev/null 2>&1; then healthy=true; fi',
      '  read -r member leader < <(etcd_status "$url" || echo "- -") || true',
      '  [ "$member" != "-" ] || { member=""; leader=""; }',
      '  eps="${eps:+$eps,}{\\"url\\":\\"$url\\",\\"healthy\\":$healthy,\\"member\\":\\"$member\\",\\"leader\\":\\"$leader\\"}"',
      'done',
      `kha_result REMOVAL-CHECK "{\\"nodeExists\\":$exists,\\"endpoints\\":[$eps]}"`,
    ),
  });
}

/** On a healthy control-plane node: cordon and drain `target` through the eviction API (PodDisruptionBudgets hold). */
export function renderDrain(c: ClusterSpec, via: NodeSpec, target: string, timeoutSeconds: number, phase = 'remove'): RenderedScript {
  if (!Number.isInteger(timeoutSeconds) || timeoutSeconds < 1) throw new Error(`drain timeout ${timeoutSeconds} is not a whole number of seconds`);
  return script({
    step: true,
    cluster: c.name,
    node: via.name,
    phase,
    name: 'drain',
    runsOn: 'control-plane',
    summary: `Drains ${target}: cordon, then evict its pods (DaemonSets stay), at most ${timeoutSeconds} s.`,
    body: lines(
      kubectlLocal(c),
      `node=${q(target)}`,
      'if ! node_exists "$node"; then',
      '  kha_already "no Node $node: nothing to drain"',
      'else',
      '  # Evictions respect PodDisruptionBudgets; one that keeps a pod past the timeout is reported as a timeout.',
      `  kha_reporting timeout 'global timeout reached|did not complete within|timed out' kube drain "$node" --ignore-daemonsets --delete-emptydir-data --timeout=${timeoutSeconds}s`,
      '  KHA_CHANGES=1',
      '  kha_log "drained $node"',
      'fi',
    ),
  });
}

/** On the node itself: its kube-vip static pod goes, and with it any claim on the VIP. */
export function renderKubeVipRemove(c: ClusterSpec, n: NodeSpec): RenderedScript {
  return script({
    step: true,
    cluster: c.name,
    node: n.name,
    phase: 'remove',
    name: 'kube-vip-remove',
    summary: 'Removes the kube-vip manifest, waits for its pod to stop and releases the VIP if this node still has it.',
    body: lines(
      `manifest=${q(KUBE_VIP_MANIFEST)}`,
      `vip=${q(c.spec.controlPlaneEndpoint.vip)}`,
      `vip_dev=${q(vipInterface(c, n))}`,
      'if [ -e "$manifest" ]; then',
      '  rm -f -- "$manifest"',
      '  KHA_CHANGES=1',
      '  kha_log "removed $manifest"',
      'else',
      '  kha_already "no $manifest"',
      'fi',
      'kube_vip_gone() { ! crictl ps --name kube-vip --state running -q 2>/dev/null | grep -q .; }',
      'if kha_have crictl && ! kube_vip_gone; then kha_wait 90 "the kube-vip container to stop" kube_vip_gone; fi',
      'if ip -4 -o addr show dev "$vip_dev" 2>/dev/null | awk \'{ print $4 }\' | grep -qx -- "$vip/32"; then',
      '  ip addr del "$vip/32" dev "$vip_dev"',
      '  KHA_CHANGES=1',
      '  kha_log "released the VIP $vip from $vip_dev"',
      'fi',
    ),
  });
}

export interface MemberRemoval {
  /** The member to remove, hex as etcdctl --hex prints it. */
  id: string;
  /** Its client URL: move-leader is sent there while it leads. */
  clientURL?: string;
  /** The member that takes over leadership, hex; required when the member may lead. */
  successor?: string;
}

/** Hex member ID to the decimal etcdctl's fields output uses (IDs are 64-bit: BigInt, never a float). */
export function decimalId(hex: string): string {
  return BigInt(`0x${hex}`).toString(10);
}

/** On a healthy control-plane node: moves etcd leadership off the member if it leads, then removes it by ID. */
export function renderEtcdRemoveMember(c: ClusterSpec, via: NodeSpec, target: string, m: MemberRemoval): RenderedScript {
  for (const id of [m.id, m.successor].filter((x): x is string => x !== undefined)) if (!HEX_ID.test(id)) throw new Error(`etcd member ID ${JSON.stringify(id)} is not hex`);
  if (m.clientURL !== undefined) checkUrls([m.clientURL]);
  const move = m.successor && m.clientURL;
  return script({
    step: true,
    cluster: c.name,
    node: via.name,
    phase: 'remove',
    name: 'etcd-remove-member',
    runsOn: 'control-plane',
    summary: `Removes etcd member ${m.id} (${target})${move ? `, after moving leadership to ${m.successor} if it leads` : ''}.`,
    body: lines(
      etcdctlFunction(),
      etcdAtFunction(),
      `id=${q(m.id)}`,
      'listed() { etcdctl_run member list --hex -w simple | awk -F\', \' -v id="$id" \'$1 == id { found = 1 } END { exit !found }\'; }',
      'etcdctl_run member list --hex -w simple >/dev/null || kha_die "the local etcd member does not answer"',
      'if ! listed; then',
      `  kha_already "etcd member $id (${target}) is not listed: already removed"`,
      'else',
      move
        ? lines(
            `  url=${q(m.clientURL!)}`,
            `  successor=${q(m.successor!)}`,
            `  want=${q(decimalId(m.id))}`,
            '  leads() { read -r member leader < <(etcd_status "$url") && [ "$member" = "$want" ] && [ "$leader" = "$want" ]; }',
            '  if leads; then',
            '    # move-leader must reach the leader itself: it is sent to the member\'s own client URL.',
            '    etcd_at "$url" move-leader "$successor" >&2 || kha_die "etcdctl move-leader $successor failed"',
            '    not_leading() { ! leads; }',
            '    kha_wait 30 "leadership to leave member $id" not_leading',
            '    kha_log "moved etcd leadership from $id to $successor"',
            '  fi',
          )
        : null,
      '  etcdctl_run member remove "$id" >&2 || kha_die "etcdctl member remove $id failed"',
      '  gone() { ! listed; }',
      '  kha_wait 30 "member $id to leave the member list" gone',
      '  KHA_CHANGES=1',
      `  kha_log "removed etcd member $id (${target})"`,
      'fi',
    ),
  });
}

/** On a healthy control-plane node: the Node object goes (its pods with it, once it is gone). */
export function renderDeleteNode(c: ClusterSpec, via: NodeSpec, target: string): RenderedScript {
  return script({
    step: true,
    cluster: c.name,
    node: via.name,
    phase: 'remove',
    name: 'delete-node',
    runsOn: 'control-plane',
    summary: `Deletes the Node ${target}.`,
    body: lines(
      kubectlLocal(c),
      `node=${q(target)}`,
      'if node_exists "$node"; then',
      '  kube delete node "$node" --wait=true >&2',
      '  KHA_CHANGES=1',
      '  kha_log "deleted Node $node"',
      'else',
      '  kha_already "no Node $node"',
      'fi',
    ),
  });
}
