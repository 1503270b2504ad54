// Resolves the spec's Kubernetes version to one package version for every node. Pure.
import type { RenderFacts } from '../render/types';

function parsePkg(v: string): { patch: number[]; revision: string } | undefined {
  const m = /^(\d+)\.(\d+)\.(\d+)-(.+)$/.exec(v.trim());
  if (!m) return undefined;
  return { patch: [Number(m[1]), Number(m[2]), Number(m[3])], revision: m[4]! };
}

function cmpPkg(a: string, b: string): number {
  const pa = parsePkg(a)!;
  const pb = parsePkg(b)!;
  for (let i = 0; i < 3; i++) if (pa.patch[i] !== pb.patch[i]) return pa.patch[i]! - pb.patch[i]!;
  return pa.revision.localeCompare(pb.revision, 'en', { numeric: true });
}

/**
 * `wanted` is the spec's version ("1.35", "v1.35.2"); `available` the package versions the repository offers
 * (e.g. "1.35.2-1.1"). Returns the newest matching one, or an error message.
 */
export function resolveVersion(wanted: string, available: string[]): RenderFacts | string {
  const w = /^v?(\d+)\.(\d+)(?:\.(\d+))?$/.exec(wanted);
  if (!w) return `not a Kubernetes version: ${wanted}`;
  const matching = available
    .filter((v) => parsePkg(v))
    .filter((v) => {
      const p = parsePkg(v)!;
      return p.patch[0] === Number(w[1]) && p.patch[1] === Number(w[2]) && (w[3] === undefined || p.patch[2] === Number(w[3]));
    })
    .sort(cmpPkg);
  const best = matching[matching.length - 1];
  if (!best) {
    const offered = available.length ? available.slice(-5).join(', ') : 'none';
    return `Kubernetes ${wanted} is not offered by the package repository (newest offered: ${offered})`;
  }
  const p = parsePkg(best)!;
  return { kubernetesVersion: `v${p.patch.join('.')}`, packageVersion: best };
}

/** The facts `kha plan` assumes before a deployment resolves the version. */
export function assumedFacts(wanted: string): RenderFacts {
  const w = /^v?(\d+)\.(\d+)(?:\.(\d+))?$/.exec(wanted);
  const patch = w?.[3] ?? '0';
  const v = `${w?.[1] ?? '1'}.${w?.[2] ?? '0'}.${patch}`;
  return { kubernetesVersion: `v${v}`, packageVersion: `${v}-1.1` };
}
