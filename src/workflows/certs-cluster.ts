// certsCluster: `kha certs` on the shared engine: kubeadm's expiry check on every control-plane node. Read-only,
// so it runs beside anything; a certificate within CERT_WARN_DAYS of expiry is a warning in the status too (the
// terminal's table, and the current details the Web UI shows).
import type { ClusterSpec } from '../spec/types';
import type { CertExpiry } from '../activities/day2';
import { assertValidCluster } from './input-check';
import { CERTS, CERT_WARN_DAYS, certsCheckPhase } from '../phases/certs';
import { Engine } from './engine/engine';

export interface CertsInput {
  cluster: ClusterSpec;
}

export interface CertsResult {
  cluster: string;
  /** When kubeadm looked, the first node's check (days left count from each node's own check). */
  checkedAt: string;
  nodes: Array<{ node: string; certificates: CertExpiry[] }>;
  /** "node name: N days left" for each certificate within CERT_WARN_DAYS of expiry. */
  warnings: string[];
}

export const daysLeft = (c: CertExpiry): number => Math.floor(c.residualSeconds / 86_400);

export async function certsCluster(input: CertsInput): Promise<CertsResult> {
  assertValidCluster('certsCluster', input?.cluster, { running: true });
  const { cluster } = input;
  const first = cluster.spec.nodes.find((n) => n.role === 'control-plane')!;
  const e = new Engine(CERTS, cluster, { heartbeatTimeoutSeconds: 60 });
  let result: CertsResult | undefined;
  return e.run(
    async () => {
      const track = { phase: certsCheckPhase.id, node: 'cluster' };
      const checkedAt = new Date().toISOString();
      await e.steps.step(certsCheckPhase.id, { ...first, name: 'cluster' }, async () => {
        const r = await e.steps.call('certificateExpiry', certsCheckPhase.id, 'cluster', [{ cluster }], undefined, track);
        const warnings = r.nodes.flatMap((n) =>
          n.certificates.filter((c) => !c.missing && daysLeft(c) < CERT_WARN_DAYS).map((c) => `${n.node} ${c.name}: ${daysLeft(c)} days left (expires ${c.expires})`),
        );
        if (warnings.length) (e.status.warnings ??= []).push(...warnings.map((w) => `certificate expires soon: ${w}`));
        result = { cluster: cluster.name, checkedAt, nodes: r.nodes, warnings };
        const count = r.nodes.reduce((a, n) => a + n.certificates.length, 0);
        return `${count} certificates on ${r.nodes.length} node(s), ${warnings.length} within ${CERT_WARN_DAYS} days of expiry`;
      });
      return result!;
    },
    async () => 0,
    () => `certificate check of ${cluster.name} aborted by the operator`,
  );
}
