// Resolving the spec's Kubernetes version to one package version for every node. Pure and free of
// dependencies: the workflow imports it too.
import type { RenderFacts } from './types';

function compareNumeric(a: string, b: string): number {
  const pa = a.split(/[.-]/).map(Number);
  const pb = b.split(/[.-]/).map(Number);
  for (let i = 0; i < Math.max(pa.length, pb.length); i++) {
    const d = (pa[i] ?? 0) - (pb[i] ?? 0);
    if (d !== 0) return d;
  }
  return 0;
}

/**
 * Picks the package for the spec's version among the repository's kubeadm versions
 * ("1.35.2-1.1"): the newest patch for a minor, or exactly the given patch.
 */
export function resolveKubernetesVersion(specVersion: string, available: string[]): RenderFacts {
  const wanted = specVersion.replace(/^v/, '');
  const isMinor = /^1\.\d+$/.test(wanted);
  const matching = available
    .filter((v) => /^\d+\.\d+\.\d+-[0-9A-Za-z.+~]+$/.test(v))
    .filter((v) => (isMinor ? v.startsWith(`${wanted}.`) : v.split('-')[0] === wanted))
    .sort(compareNumeric);
  const best = matching[matching.length - 1];
  if (!best) {
    throw new Error(`no kubeadm package for Kubernetes ${specVersion} in the repository (found: ${available.join(', ') || 'none'})`);
  }
  return { kubernetesVersion: `v${best.split('-')[0]}`, packageVersion: best };
}

/** Facts before any host was asked (plan, tests, teardown): a full version as is, a minor as its .0 patch. */
export function assumedFacts(specVersion: string): RenderFacts {
  const v = specVersion.replace(/^v/, '');
  const full = /^1\.\d+$/.test(v) ? `${v}.0` : v;
  return { kubernetesVersion: `v${full}`, packageVersion: `${full}-1.1` };
}
