// Day 2: certificate expiry on a control-plane node, from kubeadm's own check (JSON output), as typed rows.
import type { ClusterSpec, NodeSpec } from '../spec/types';
import { lines, script } from './shell';
import { readResult, resultMarker } from './result';
import type { RenderedScript } from './types';

export const CERTS_MARKER = resultMarker('CERTS');

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
