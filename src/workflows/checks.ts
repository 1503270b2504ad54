// Cross-node preflight checks over the facts every node reported. Pure: runs inside the workflow.
import type { NodeFacts } from '../activities/types';

export interface CrossNodeInput {
  facts: NodeFacts[];
  firstControlPlane: string;
  controlPlanes: string[];
  vipInterface: (node: string) => string;
  maxClockSkewMs: number;
}

export interface CrossNodeProblem {
  node: string;
  message: string;
}

function duplicates(facts: NodeFacts[], key: (f: NodeFacts) => string[], what: string): CrossNodeProblem[] {
  const seen = new Map<string, string>();
  const out: CrossNodeProblem[] = [];
  for (const f of facts) {
    for (const v of key(f)) {
      if (!v) continue;
      const other = seen.get(v);
      if (other !== undefined && other !== f.node) {
        out.push({ node: f.node, message: `${what} ${v} is the same as on ${other} (cloned machine?); make it unique` });
      } else seen.set(v, f.node);
    }
  }
  return out;
}

export function crossNodeProblems(input: CrossNodeInput): CrossNodeProblem[] {
  const { facts } = input;
  const problems: CrossNodeProblem[] = [];
  for (const f of facts) for (const p of f.problems) problems.push({ node: f.node, message: p });
  problems.push(...duplicates(facts, (f) => [f.hostname], 'hostname'));
  problems.push(...duplicates(facts, (f) => f.macs, 'MAC address'));
  problems.push(...duplicates(facts, (f) => [f.productUuid], 'product_uuid'));
  problems.push(...duplicates(facts, (f) => [f.machineId], 'machine-id'));

  const first = facts.find((f) => f.node === input.firstControlPlane);
  if (first) {
    for (const f of facts) {
      const skew = Math.abs(f.clockOffsetMs - first.clockOffsetMs);
      if (skew > input.maxClockSkewMs) {
        problems.push({ node: f.node, message: `clock differs from ${first.node} by ${Math.round(skew)} ms (limit ${input.maxClockSkewMs} ms); enable NTP/chrony` });
      }
    }
    const existing = first.clusterCaHash;
    for (const f of facts) {
      if (f.clusterCaHash && f.clusterCaHash !== existing) {
        problems.push({
          node: f.node,
          message: existing
            ? `already belongs to another cluster (CA ${f.clusterCaHash.slice(0, 19)}…, this cluster's is ${existing.slice(0, 19)}…); reset it first`
            : `already belongs to a cluster although ${first.node} has none; reset it (kha reset) or remove it from the file`,
        });
      }
    }
    if (!existing && first.vipAnswers) {
      problems.push({ node: first.node, message: 'the VIP already answers on port 6443 but no cluster exists here: another machine holds it' });
    }
    // Without a cluster nobody may hold the VIP yet: an ARP answer means another machine uses it.
    for (const f of facts) {
      if (!existing && f.vipNeighbor && input.controlPlanes.includes(f.node)) {
        problems.push({ node: f.node, message: `the VIP answers ARP from ${f.vipNeighbor} but no cluster exists here: another machine uses that address; choose a free VIP` });
      }
    }
  }
  for (const cp of input.controlPlanes) {
    const f = facts.find((x) => x.node === cp);
    const want = input.vipInterface(cp);
    if (f && !f.interfaces.includes(want)) {
      problems.push({ node: cp, message: `interface ${want} for the VIP is missing (has ${f.interfaces.join(', ') || 'none'})` });
    }
  }
  return problems;
}
