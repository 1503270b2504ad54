// Day 2: certificate expiry on a control-plane node, from kubeadm's own check (JSON output), as typed rows.
import type { ClusterSpec, NodeSpec } from '../spec/types';
import { advertiseAddress } from '../spec/types';
import { ETCD_PKI, KUBE_VIP_MANIFEST } from './common';
import { etcdctlFunction } from './join';
import { waitForVip } from './kube-vip';
import { lines, q, script } from './shell';
import { readResult, resultMarker } from './result';
import type { RenderedScript } from './types';

export const CERTS_MARKER = resultMarker('CERTS');
export const RENEWED_MARKER = resultMarker('RENEWED');

export interface CertExpiry {
  /** kubeadm's name: `apiserver`, `etcd-peer`, `admin.conf`, `ca`... */
  name: string;
  kind: 'certificate' | 'authority';
  /** ISO 8601 UTC, or null when the file is missing. */
  expires: string | null;
  /** Seconds left when kubeadm looked. */
  residualSeconds: number;
  /** The CA that signed it (certificates only). */
  authority?: string;
  externallyManaged: boolean;
  missing: boolean;
}

export function renderCertsCheck(c: ClusterSpec, n: NodeSpec): RenderedScript {
  return script({
    cluster: c.name,
    node: n.name,
    phase: 'day2',
    name: 'certs-check-expiration',
    summary: 'Prints kubeadm certs check-expiration as JSON on one result line.',
    body: lines(
      'out="$(kubeadm certs check-expiration -o json)" || kha_die "kubeadm certs check-expiration failed"',
      // kubeadm prints progress lines before its JSON object; the result line carries the object only.
      'json="$(printf \'%s\\n\' "$out" | sed -n \'/^{/,$p\' | tr -d \'\\n\')"',
      `printf '%s %s\\n' ${CERTS_MARKER} "$json"`,
    ),
  });
}

/** The JSON object the script printed on its result line, or undefined. */
export function certsOutput(stdout: string): string | undefined {
  const v = readResult(stdout, 'CERTS');
  return v === undefined ? undefined : JSON.stringify(v);
}

/** Rows of kubeadm's CertificateExpirationInfo; lines kubeadm printed before the JSON are skipped. */
export function parseCertExpiration(text: string): CertExpiry[] {
  const start = text.search(/^\{/m);
  if (start < 0) throw new Error('kubeadm certs check-expiration printed no JSON object');
  let doc: { kind?: unknown; certificates?: unknown; certificateAuthorities?: unknown };
  try {
    doc = JSON.parse(text.slice(start)) as typeof doc;
  } catch (e) {
    throw new Error(`kubeadm certs check-expiration output is not JSON: ${(e as Error).message}`);
  }
  if (doc.kind !== 'CertificateExpirationInfo') throw new Error(`expected kind CertificateExpirationInfo, got ${JSON.stringify(doc.kind)}`);
  const rows = (v: unknown, kind: CertExpiry['kind']): CertExpiry[] => {
    if (!Array.isArray(v)) throw new Error(`CertificateExpirationInfo has no ${kind === 'certificate' ? 'certificates' : 'certificateAuthorities'} array`);
    return v.map((r: Record<string, unknown>, i) => {
      if (typeof r.name !== 'string' || !r.name) throw new Error(`${kind} ${i} has no name`);
      const missing = r.missing === true;
      const expires = typeof r.expirationDate === 'string' && !missing ? new Date(r.expirationDate) : null;
      if (expires && Number.isNaN(expires.getTime())) throw new Error(`${kind} ${r.name}: expirationDate ${JSON.stringify(r.expirationDate)} is not a date`);
      const row: CertExpiry = {
        name: r.name,
        kind,
        expires: expires ? expires.toISOString() : null,
        residualSeconds: typeof r.residualTime === 'number' ? r.residualTime : 0,
        externallyManaged: r.externallyManaged === true,
        missing,
      };
      if (kind === 'certificate' && typeof r.caName === 'string') row.authority = r.caName;
      return row;
    });
  };
  return [...rows(doc.certificates, 'certificate'), ...rows(doc.certificateAuthorities, 'authority')];
}

/** The static pods that read the renewed certificates or kubeconfigs at start, in restart order. */
export const RENEW_RESTARTS = ['etcd', 'kube-apiserver', 'kube-controller-manager', 'kube-scheduler', 'kube-vip'] as const;

/**
 * `kubeadm certs renew all` on one control-plane node, then each static pod restarted (its sandbox stopped, so
 * the kubelet starts it again from the same manifest) and waited for: a component keeps the certificates it read
 * at start, so renewing without restarting leaves the old ones in use until they expire.
 */
export function renderCertsRenew(c: ClusterSpec, n: NodeSpec): RenderedScript {
  const api = `${advertiseAddress(n)}:${c.spec.controlPlaneEndpoint.port}`;
  return script({
    cluster: c.name,
    node: n.name,
    phase: 'day2',
    name: 'certs-renew',
    summary: 'Renews every kubeadm certificate of this node, restarts its static pods one at a time and waits for each.',
    body: lines(
      etcdctlFunction(),
      waitForVip(c, 300),
      `api=${q(api)}`,
      '# The newest running container of a name, as its creation time in ns (0 when none runs).',
      'created_ns() {',
      `  crictl ps --name "^$1\\$" --state running -o json 2>/dev/null | grep -o '"createdAt": *"[0-9]*"' | grep -o '[0-9][0-9]*' | sort -n | tail -n 1 || true`,
      '}',
      'restarted_since() { local t; t="$(created_ns "$1")"; [ -n "$t" ] && [ "$t" -ge "$2" ]; }',
      '# The SHA-256 fingerprint of the certificate served at $1 against the one in file $2 (openssl only).',
      'serves_file() {',
      '  kha_have openssl || return 0',
      '  local served disk',
      '  served="$(openssl s_client -connect "$1" ${3:+-cert "$3" -key "$4"} </dev/null 2>/dev/null | openssl x509 -noout -fingerprint -sha256 2>/dev/null)" || return 1',
      '  disk="$(openssl x509 -in "$2" -noout -fingerprint -sha256)"',
      '  [ -n "$served" ] && [ "$served" = "$disk" ]',
      '}',
      `etcd_ok() { etcdctl_run endpoint health >/dev/null 2>&1 && serves_file 127.0.0.1:2379 ${ETCD_PKI}/server.crt ${ETCD_PKI}/healthcheck-client.crt ${ETCD_PKI}/healthcheck-client.key; }`,
      'api_ok() { curl -fsSk --max-time 5 "https://$api/livez" >/dev/null 2>&1 && serves_file "$api" /etc/kubernetes/pki/apiserver.crt; }',
      'cm_ok() { curl -fsSk --max-time 5 https://127.0.0.1:10257/healthz >/dev/null 2>&1; }',
      'sched_ok() { curl -fsSk --max-time 5 https://127.0.0.1:10259/healthz >/dev/null 2>&1; }',
      'vip_ok() { vip_answers; }',
      'if ! out="$(kubeadm certs renew all 2>&1)"; then',
      '  printf \'%s\\n\' "$out" | tail -n 5 >&2',
      '  kha_die "kubeadm certs renew all failed"',
      'fi',
      'printf \'%s\\n\' "$out" | grep -i renewed >&2 || true',
      'since="$(date +%s%N)"',
      'restarted=()',
      'restart() {',
      '  local name="$1" check="$2" pod',
      '  if [ -z "$(created_ns "$name")" ]; then',
      '    # kube-vip runs only where kha put its manifest; every other component must be there.',
      `    [ "$name" = kube-vip ] && [ ! -f ${q(KUBE_VIP_MANIFEST)} ] && return 0`,
      '    kha_die "$name is not running on this node: the renewal is done, the restart is not"',
      '  fi',
      '  if ! restarted_since "$name" "$since"; then',
      '    for pod in $(crictl pods --namespace kube-system --name "^$name-" --state ready -q 2>/dev/null); do crictl stopp "$pod" >/dev/null; done',
      '    kha_wait 180 "the kubelet to start $name again" restarted_since "$name" "$since"',
      '  fi',
      '  kha_wait 180 "$name to be healthy after its restart" "$check"',
      '  restarted+=("\\"$name\\"")',
      '  kha_log "restarted $name"',
      '}',
      'restart etcd etcd_ok',
      'restart kube-apiserver api_ok',
      'restart kube-controller-manager cm_ok',
      'restart kube-scheduler sched_ok',
      'restart kube-vip vip_ok',
      `printf '%s {"restarted":[%s]}\\n' ${RENEWED_MARKER} "$(IFS=,; printf '%s' "\${restarted[*]}")"`,
    ),
  });
}
