// kha upgrade's plan, from what runs and what the file (or --to) asks for: the hops (one minor each), and what
// refuses before any host changes. Pure: the workflow and the tests import it.
import type { ClusterSpec } from '../spec/types';
import type { ClusterState } from '../render/day2-cluster-state';
import type { RenderFacts } from '../render/types';
import type { ResultOf } from '../render/result';

/** How many minors older than the API servers a kubelet may be (Kubernetes' version skew policy since 1.28). */
export const KUBELET_MAX_SKEW = 3;

export interface Version {
  minor: number;
  /** undefined: the newest patch of the minor. */
  patch?: number;
}

export interface UpgradePlan {
  /** The version kubeadm recorded ("v1.34.4"). */
  current: string;
  /** Each hop's target: "1.35" (its newest patch) or "1.35.4" (exactly); empty when nothing is to do. */
  hops: string[];
  /** Why the upgrade does not start; nothing changed. */
  refusals: string[];
  /** Nodes whose kubelet runs another version than the control plane (an earlier upgrade stopped half-way). */
  lagging: string[];
  /** Nodes cordoned before the upgrade: drained and upgraded, then left cordoned. */
  cordoned: string[];
}

export function parseVersion(v: string): Version | undefined {
  const m = /^v?1\.(\d{1,2})(?:\.(\d{1,3}))?$/.exec(v.trim());
  if (!m) return undefined;
  return m[2] === undefined ? { minor: Number(m[1]) } : { minor: Number(m[1]), patch: Number(m[2]) };
}

const text = (v: Version) => (v.patch === undefined ? `1.${v.minor}` : `1.${v.minor}.${v.patch}`);

/**
 * The hops from `current` (a full version) to `target` (a minor or a patch): every minor in between at its newest
 * patch, the last one as asked. The same minor with a newer patch is one hop; the same version is none.
 */
export function planHops(current: string, target: string): { hops: string[]; refusal?: string } {
  const c = parseVersion(current);
  const t = parseVersion(target);
  if (!c || c.patch === undefined) return { hops: [], refusal: `the cluster's version ${JSON.stringify(current)} is not a full version such as v1.34.4` };
  if (!t) return { hops: [], refusal: `${JSON.stringify(target)} is not a Kubernetes version such as 1.36 or 1.36.2` };
  if (t.minor < c.minor || (t.minor === c.minor && t.patch !== undefined && t.patch < c.patch)) {
    return { hops: [], refusal: `the cluster runs v1.${c.minor}.${c.patch} and ${text(t)} is older: kubeadm does not downgrade (restore an etcd snapshot onto hosts installed at the older version instead)` };
  }
  if (t.minor === c.minor) return { hops: t.patch !== undefined && t.patch > c.patch ? [text(t)] : [] };
  const hops: string[] = [];
  for (let m = c.minor + 1; m < t.minor; m++) hops.push(`1.${m}`);
  hops.push(text(t));
  return { hops };
}

/** The plan for `cluster` (the file) against what runs (`state`), toward `target`. */
export function planUpgrade(cluster: ClusterSpec, state: ClusterState, target: string): UpgradePlan {
  const refusals: string[] = [];
  const { hops, refusal } = planHops(state.kubernetesVersion, target);
  if (refusal) refusals.push(refusal);
  const cur = parseVersion(state.kubernetesVersion);
  const live = new Map(state.nodes.map((n) => [n.name, n]));
  const file = new Set(cluster.spec.nodes.map((n) => n.name));
  const missing = cluster.spec.nodes.filter((n) => !live.has(n.name)).map((n) => n.name);
  if (missing.length) refusals.push(`${missing.join(', ')} ${missing.length === 1 ? 'is' : 'are'} in ${cluster.source} but no Node of ${cluster.name}: join ${missing.length === 1 ? 'it' : 'them'} first (kha apply ${cluster.source}) or delete ${missing.length === 1 ? 'it' : 'them'} from the file`);
  const unknown = state.nodes.filter((n) => !file.has(n.name)).map((n) => n.name);
  if (unknown.length) refusals.push(`Node(s) ${unknown.join(', ')} of ${cluster.name} are not in ${cluster.source}: kha cannot reach them to upgrade them; add them to the file or take them out (kha remove)`);
  const notReady = state.nodes.filter((n) => file.has(n.name) && !n.ready).map((n) => n.name);
  if (notReady.length) refusals.push(`${notReady.join(', ')} ${notReady.length === 1 ? 'is' : 'are'} not Ready: fix ${notReady.length === 1 ? 'it' : 'them'} (or kha remove ${notReady.length === 1 ? 'it' : 'them'}) before upgrading`);
  const unhealthy = state.members.filter((m) => !m.clientURLs.some((u) => state.healthyEndpoints.includes(u)));
  if (unhealthy.length) refusals.push(`etcd member(s) ${unhealthy.map((m) => m.name || m.id).join(', ')} do not answer a health check: kubeadm upgrade needs every member healthy`);
  if (state.members.some((m) => m.isLearner)) refusals.push(`etcd has a learner member: a join did not finish; kha deploy --again or kha remove it first`);
  const lagging: string[] = [];
  if (cur && cur.patch !== undefined) {
    const first = hops.length ? parseVersion(hops[0]!) : undefined;
    for (const n of state.nodes) {
      const k = parseVersion(n.kubeletVersion);
      if (!k) {
        refusals.push(`Node ${n.name} reports kubelet ${JSON.stringify(n.kubeletVersion)}, not a version kha can compare`);
        continue;
      }
      if (k.minor > cur.minor || (k.minor === cur.minor && (k.patch ?? 0) > cur.patch)) refusals.push(`Node ${n.name} runs kubelet ${n.kubeletVersion}, newer than the control plane's v1.${cur.minor}.${cur.patch}: the version skew policy forbids it`);
      else if (first && first.minor - k.minor > KUBELET_MAX_SKEW) {
        refusals.push(`Node ${n.name} runs kubelet ${n.kubeletVersion}: after the next hop the API servers would be ${first.minor - k.minor} minors newer, more than the ${KUBELET_MAX_SKEW} the version skew policy allows`);
      }
      if (k.minor !== cur.minor || k.patch !== cur.patch) lagging.push(n.name);
    }
  }
  // A run that stopped half-way left kubelets behind: the same version again finishes them.
  if (!refusals.length && !hops.length && lagging.length && cur) hops.push(`1.${cur.minor}.${cur.patch}`);
  const cordoned = state.nodes.filter((n) => n.unschedulable && file.has(n.name)).map((n) => n.name);
  return { current: state.kubernetesVersion, hops, refusals, lagging, cordoned };
}

/** What differs from one pinned version on every node that was not skipped, as the final check reports it. */
export function versionProblems(cluster: ClusterSpec, s: ClusterState, facts: RenderFacts, packages: ReadonlyMap<string, ResultOf<'PACKAGES'>>, skipped: readonly string[]): string[] {
  const problems: string[] = [];
  if (s.kubernetesVersion !== facts.kubernetesVersion) problems.push(`kubeadm-config records ${s.kubernetesVersion}, not ${facts.kubernetesVersion}`);
  for (const n of cluster.spec.nodes) {
    if (skipped.includes(n.name)) continue;
    const live = s.nodes.find((x) => x.name === n.name);
    if (!live) problems.push(`no Node ${n.name}`);
    else {
      if (live.kubeletVersion !== facts.kubernetesVersion) problems.push(`Node ${n.name} reports kubelet ${live.kubeletVersion}`);
      if (!live.ready) problems.push(`Node ${n.name} is not Ready`);
    }
    const pk = packages.get(n.name);
    if (!pk) problems.push(`${n.name} reported no package versions`);
    else for (const [name, v] of Object.entries(pk)) if (v !== facts.packageVersion) problems.push(`${n.name} has ${name} ${v || 'not installed'}, not ${facts.packageVersion}`);
  }
  const unhealthy = s.members.filter((m) => !m.clientURLs.some((u) => s.healthyEndpoints.includes(u)));
  if (unhealthy.length) problems.push(`etcd member(s) ${unhealthy.map((m) => m.name || m.id).join(', ')} unhealthy`);
  return problems;
}
