// The fast tier: the real workflows on a real Temporal dev server with activities that touch no host. Each
// mock activity records its call and answers like the real one; a test makes steps fail or hold.
import { mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { Worker } from '@temporalio/worker';
import type { TestWorkflowEnvironment } from '@temporalio/testing';
import { ApplicationFailure } from '@temporalio/common';
import type * as activities from '../../src/activities';
import type { NodeFacts } from '../../src/activities/types';
import type { ClusterSpec } from '../../src/spec/types';
import { loadOrFail, ROOT } from '../render-helpers';
import { startTemporal } from './temporal';
import { MAX_CONCURRENT_WORKFLOW_TASKS } from '../../src/worker/worker';

type Acts = typeof activities;
type Call = { activity: keyof Acts; node: string };

/** A cluster file with `cps` control-plane nodes and `workers` workers (addresses in the lab range, never contacted). */
export function mockCluster(name: string, cps: number, workers: number, tweak: (yaml: string) => string = (y) => y): ClusterSpec {
  const dir = mkdtempSync(join(tmpdir(), 'kha-mock-'));
  try {
    return loadOrFail(mockClusterFile(dir, name, cps, workers, tweak));
  } finally {
    rmSync(dir, { recursive: true, force: true });
  }
}

/** mockCluster's file, written to `dir` (for the CLI, which reads files itself); returns its path. */
export function mockClusterFile(dir: string, name: string, cps: number, workers: number, tweak: (yaml: string) => string = (y) => y): string {
  const addr = (i: number) => `198.19.${Math.floor(i / 250)}.${(i % 250) + 2}`;
  const nodes = [
    ...Array.from({ length: cps }, (_, i) => `    - { name: cp-${i + 1}, address: ${addr(i + 1)}, role: control-plane }`),
    ...Array.from({ length: workers }, (_, i) => `    - { name: w-${i + 1}, address: ${addr(cps + i + 1)}, role: worker }`),
  ];
  const yaml = tweak(
    [
      'apiVersion: kha.dev/v1alpha1',
      'kind: Cluster',
      'metadata:',
      `  name: ${name}`,
      'spec:',
      '  kubernetes:',
      '    version: "1.35"',
      '  nodes:',
      ...nodes,
      '  controlPlaneEndpoint:',
      '    vip: 198.19.255.1',
      '    interface: eth0',
      '  policy:',
      '    retry: { maximumAttempts: 2, initialIntervalSeconds: 0.1, maximumIntervalSeconds: 1 }',
      '    compensation: { rebootTimeoutSeconds: 10 }',
      '',
    ].join('\n'),
  );
  const f = join(dir, `${name}.yaml`);
  writeFileSync(f, yaml);
  return f;
}

/** Mock activities: what ran, in order; failures and holds per activity and node. */
export class MockHosts {
  readonly calls: Call[] = [];
  /** "activity node" -> how many more calls fail (Infinity: until cleared). */
  readonly failing = new Map<string, number>();
  /** Nodes that run in the cluster already (what discoverCluster reports, at Kubernetes v1.35.2). */
  readonly members = new Set<string>();
  /** The file the running cluster was deployed from, when it differs from the one applied (nodes missing from it). */
  runningSpec?: ClusterSpec;
  private readonly holds = new Map<string, { promise: Promise<void>; release: () => void }>();
  /** What removalCheck sees: control planes whose etcd member is not healthy, the leader, hosts that do not answer. */
  readonly etcd = { unhealthy: new Set<string>(), leader: 'cp-1' };
  readonly unreachable = new Set<string>();
  /** How many more drains time out (a PodDisruptionBudget that forbids the eviction). */
  drainTimeouts = 0;
  /** What restoreCheck lists instead of one member per control plane (a cluster that differs from its file). */
  restoreMembers?: (cluster: ClusterSpec) => Array<{ id: string; name: string; peerURLs: string[]; clientURLs: string[]; isLearner: boolean; started: boolean }>;
  /**
   * Versions for kha upgrade: what kubeadm recorded, each node's kubelet (the start version unless upgraded),
   * the kubeadm versions each minor's repository offers, and nodes cordoned before.
   */
  readonly kube = { start: 'v1.35.2', cluster: 'v1.35.2', kubelet: new Map<string, string>(), offered: new Map<string, string[]>(), cordoned: new Set<string>() };

  /** Forgets calls, failures and holds: each test starts with healthy hosts. */
  reset(): void {
    this.calls.length = 0;
    this.failing.clear();
    this.members.clear();
    this.runningSpec = undefined;
    this.etcd.unhealthy.clear();
    this.etcd.leader = 'cp-1';
    this.unreachable.clear();
    this.drainTimeouts = 0;
    this.restoreMembers = undefined;
    Object.assign(this.kube, { start: 'v1.35.2', cluster: 'v1.35.2' });
    this.kube.kubelet.clear();
    this.kube.offered.clear();
    this.kube.cordoned.clear();
    for (const h of this.holds.values()) h.release();
    this.holds.clear();
  }
  failNext(activity: keyof Acts, node: string, times = Infinity): void {
    this.failing.set(`${activity} ${node}`, times);
  }
  clear(activity: keyof Acts, node: string): void {
    this.failing.delete(`${activity} ${node}`);
  }
  /** The activity waits on `node` until release() (a host that is slow). */
  hold(activity: keyof Acts, node: string): () => void {
    let release!: () => void;
    const promise = new Promise<void>((r) => (release = r));
    this.holds.set(`${activity} ${node}`, { promise, release });
    return () => {
      this.holds.delete(`${activity} ${node}`);
      release();
    };
  }
  ran(activity: keyof Acts, node?: string): number {
    return this.calls.filter((c) => c.activity === activity && (node === undefined || c.node === node)).length;
  }

  private async enter(activity: keyof Acts, node: string): Promise<void> {
    this.calls.push({ activity, node });
    const hold = this.holds.get(`${activity} ${node}`);
    if (hold) await hold.promise;
    const left = this.failing.get(`${activity} ${node}`);
    if (left !== undefined && left > 0) {
      this.failing.set(`${activity} ${node}`, left - 1);
      throw ApplicationFailure.nonRetryable(`${activity} failed on ${node} (mock)`, 'CommandFailed');
    }
  }

  activities(): Acts {
    const unmocked = (activity: string) => async () => {
      throw ApplicationFailure.nonRetryable(`${activity} has no mock`, 'CommandFailed');
    };
    const step = (activity: keyof Acts) => async (c: { node: string }) => {
      await this.enter(activity, c.node);
      return { node: c.node, changed: true, note: `${activity} (mock)` };
    };
    const m: Record<keyof Acts, unknown> = {
      preflightNode: async (c: { node: string; cluster: ClusterSpec }): Promise<NodeFacts> => {
        await this.enter('preflightNode', c.node);
        return {
          node: c.node,
          hostname: c.node,
          macs: [`mac-${c.node}`],
          productUuid: `uuid-${c.node}`,
          machineId: `id-${c.node}`,
          os: 'Debian 12',
          arch: 'amd64',
          cpus: 2,
          memoryMb: 4096,
          clockOffsetMs: 0,
          interfaces: ['eth0'],
          criSockets: [],
          portsInUse: [],
          privileged: true,
          kubeletConfPresent: false,
          adminConfPresent: false,
          installed: {},
          availableVersions: ['1.35.2-1.1'],
          vipAnswers: false,
          problems: [],
        };
      },
      hostPrep: step('hostPrep'),
      containerRuntime: step('containerRuntime'),
      installPackages: async (c: { node: string }) => {
        await this.enter('installPackages', c.node);
        const v = '1.35.2-1.1';
        return { node: c.node, changed: true, note: 'packages (mock)', versions: { kubeadm: v, kubelet: v, kubectl: v } };
      },
      kubeVipFirstNode: step('kubeVipFirstNode'),
      kubeadmInit: step('kubeadmInit'),
      waitForVip: step('waitForVip'),
      switchKubeVipToAdminConf: step('switchKubeVipToAdminConf'),
      installCalico: step('installCalico'),
      joinControlPlane: step('joinControlPlane'),
      joinWorker: step('joinWorker'),
      waitEtcdHealthy: step('waitEtcdHealthy'),
      resetNode: step('resetNode'),
      removeNodeFromCluster: step('removeNodeFromCluster'),
      rebootNode: step('rebootNode'),
      verifyCluster: async (c: { node: string; cluster: ClusterSpec }) => {
        await this.enter('verifyCluster', c.node);
        const cps = c.cluster.spec.nodes.filter((n) => n.role === 'control-plane').length;
        const joined = new Set([...this.members, ...this.calls.filter((x) => x.activity === 'joinWorker' || x.activity === 'joinControlPlane' || x.activity === 'kubeadmInit').map((x) => x.node)]);
        return { nodesReady: joined.size, nodesTotal: c.cluster.spec.nodes.length, notReady: [], etcdMembers: cps, etcdHealthy: true, vipAnswers: true, kubeProxyMode: 'ipvs', problems: [] };
      },
      fetchKubeconfig: async (c: { node: string; path?: string }) => {
        await this.enter('fetchKubeconfig', c.node);
        return { path: c.path ?? '/tmp/mock.conf', server: 'https://198.19.255.1:6443' };
      },
      checkKubeconfigTarget: async (c: { cluster: string; path?: string }) => ({ path: c.path ?? `/tmp/${c.cluster}.conf` }),
      // Day-2 activities: no deploy or reset step calls them. The backup answers like the real one (row "cluster").
      etcdMembers: unmocked('etcdMembers'),
      // The running cluster is `members`: every one Ready, each control-plane node's etcd member healthy.
      discoverCluster: async (c: { cluster: ClusterSpec }) => {
        await this.enter('discoverCluster', 'cluster');
        const live = (this.runningSpec ?? c.cluster).spec.nodes.filter((n) => this.members.has(n.name));
        const cps = live.filter((n) => n.role === 'control-plane');
        if (!cps.length) throw ApplicationFailure.nonRetryable(`no control-plane node in the file is a member of a running cluster ${c.cluster.name} (mock): deploy it first with kha deploy FILE`, 'NotACluster');
        return {
          via: cps[0]?.name ?? '',
          kubernetesVersion: this.kube.cluster,
          nodes: live.map((n) => ({ name: n.name, address: n.address, ready: true, controlPlane: n.role === 'control-plane', kubeletVersion: this.kube.kubelet.get(n.name) ?? this.kube.start, unschedulable: this.kube.cordoned.has(n.name) })),
          members: cps.map((n, i) => ({ id: (0xa0 + i).toString(16).padStart(16, '0'), name: n.name, peerURLs: [`https://${n.address}:2380`], clientURLs: [`https://${n.address}:2379`], isLearner: false, started: true })),
          healthyEndpoints: cps.map((n) => `https://${n.address}:2379`),
          vipHolder: cps[0]?.name ?? '',
        };
      },
      etcdBackup: async (c: { cluster: ClusterSpec; retain?: number }) => {
        await this.enter('etcdBackup', 'cluster');
        const node = c.cluster.spec.nodes.find((n) => n.role === 'control-plane')!.name;
        return { node, path: `/tmp/mock-backups/${c.cluster.name}/etcd-mock-${node}.db`, sizeBytes: 4096, sha256: '0'.repeat(64), revision: 42, etcdHash: 7, totalKeys: 100, etcdVersion: '3.6.0', removed: [] };
      },
      // kha remove: members are the spec's control planes (ID "a" + index), healthy unless listed in etcd.unhealthy.
      removalCheck: async (c: { node: string; cluster: ClusterSpec }) => {
        await this.enter('removalCheck', 'cluster');
        const cps = c.cluster.spec.nodes.filter((n) => n.role === 'control-plane');
        const members = cps.map((n, i) => ({
          id: `a${i + 1}`,
          name: n.name,
          peerURLs: [`https://${n.address}:2380`],
          clientURLs: [`https://${n.address}:2379`],
          healthy: !this.etcd.unhealthy.has(n.name),
          leader: n.name === this.etcd.leader,
        }));
        const healthyVia = cps.filter((n) => n.name !== c.node && !this.etcd.unhealthy.has(n.name)).map((n) => n.name);
        const reachable = !this.unreachable.has(c.node);
        return {
          via: healthyVia[0] ?? cps[0]!.name,
          members,
          targetMember: members.find((m) => m.name === c.node)?.id,
          nodeExists: true,
          reachable,
          unreachable: reachable ? undefined : `${c.node}: connect timed out (mock)`,
          healthyVia,
        };
      },
      drainNode: async (c: { node: string; timeoutSeconds: number }) => {
        await this.enter('drainNode', c.node);
        if (this.drainTimeouts > 0) {
          this.drainTimeouts--;
          throw ApplicationFailure.create({ type: 'DrainTimeout', nonRetryable: true, message: `drain of ${c.node} did not finish within ${c.timeoutSeconds} s (mock)` });
        }
        return { node: c.node, changed: true, note: 'drained (mock)' };
      },
      removeKubeVip: step('removeKubeVip'),
      removeEtcdMember: async (c: { node: string; memberId: string; via: string[] }) => {
        await this.enter('removeEtcdMember', c.node);
        const moved = this.etcd.leader === c.node ? c.via[0] : undefined;
        return { node: c.node, changed: true, note: `member ${c.memberId} removed (mock)`, movedLeaderTo: moved };
      },
      deleteNodeObject: step('deleteNodeObject'),
      // kha upgrade: kubeadm upgrade apply records the version; a node's kubelet is at the target once upgraded.
      upgradeRepository: async (c: { node: string; minor: string }) => {
        await this.enter('upgradeRepository', c.node);
        return { node: c.node, changed: true, note: `apt source ${c.minor} (mock)`, available: this.kube.offered.get(c.minor) ?? [] };
      },
      upgradeKubeadm: async (c: { node: string; mode: string; facts: { kubernetesVersion: string; packageVersion: string } }) => {
        await this.enter('upgradeKubeadm', c.node);
        if (c.mode === 'apply') this.kube.cluster = c.facts.kubernetesVersion;
        const kubelet = `${(this.kube.kubelet.get(c.node) ?? this.kube.start).slice(1)}-1.1`;
        return { node: c.node, changed: true, note: `kubeadm upgrade ${c.mode} (mock)`, packages: { kubeadm: c.facts.packageVersion, kubelet, kubectl: kubelet } };
      },
      drainForUpgrade: async (c: { node: string; timeoutSeconds: number }) => {
        await this.enter('drainForUpgrade', c.node);
        if (this.drainTimeouts > 0) {
          this.drainTimeouts--;
          throw ApplicationFailure.create({ type: 'DrainTimeout', nonRetryable: true, message: `drain of ${c.node} did not finish within ${c.timeoutSeconds} s (mock)` });
        }
        return { node: c.node, changed: true, note: 'drained (mock)' };
      },
      upgradeKubelet: async (c: { node: string; facts: { kubernetesVersion: string; packageVersion: string } }) => {
        await this.enter('upgradeKubelet', c.node);
        this.kube.kubelet.set(c.node, c.facts.kubernetesVersion);
        const v = c.facts.packageVersion;
        return { node: c.node, changed: true, note: 'kubelet (mock)', packages: { kubeadm: v, kubelet: v, kubectl: v } };
      },
      uncordonNode: step('uncordonNode'),
      // Every control plane: apiserver 365 days, front-proxy-client 10 days (a warning), ca 3650 days.
      certificateExpiry: async (c: { cluster: ClusterSpec }) => {
        await this.enter('certificateExpiry', 'cluster');
        const cert = (name: string, days: number, kind: 'certificate' | 'authority' = 'certificate') => ({
          name,
          kind,
          expires: new Date(Date.UTC(2030, 0, 1) + days * 86_400_000).toISOString(),
          residualSeconds: days * 86_400 + 3600,
          externallyManaged: false,
          missing: false,
        });
        const nodes = c.cluster.spec.nodes.filter((n) => n.role === 'control-plane').map((n) => ({ node: n.name, certificates: [cert('apiserver', 365), cert('front-proxy-client', 10), cert('ca', 3650, 'authority')] }));
        return { nodes };
      },
      // kha restore: snapshots are /tmp/mock-backups/CLUSTER/etcd-*.db (by name or that path); members one per control plane.
      restoreCheck: async (c: { cluster: ClusterSpec; snapshot: string }) => {
        await this.enter('restoreCheck', 'cluster');
        const dir = `/tmp/mock-backups/${c.cluster.name}`;
        const path = c.snapshot.includes('/') ? c.snapshot : `${dir}/${c.snapshot}`;
        if (!path.startsWith(`${dir}/etcd-`) || path.slice(dir.length + 1).includes('/')) {
          throw ApplicationFailure.nonRetryable(`snapshot ${JSON.stringify(c.snapshot)}: not a snapshot kha backup took of ${c.cluster.name} (mock)`, 'InvalidSpec');
        }
        const cps = c.cluster.spec.nodes.filter((n) => n.role === 'control-plane');
        const members = this.restoreMembers?.(c.cluster) ?? cps.map((n, i) => ({ id: `b${i + 1}`, name: n.name, peerURLs: [`https://${n.address}:2380`], clientURLs: [`https://${n.address}:2379`], isLearner: false, started: true }));
        return { path, sizeBytes: 4096, sha256: '1'.repeat(64), via: cps[0]!.name, members };
      },
      stageSnapshot: async (c: { node: string }) => {
        await this.enter('stageSnapshot', c.node);
        return { node: c.node, changed: true, note: 'copied (mock)', revision: 42, totalKeys: 100, etcdutl: 'container' };
      },
      stopControlPlane: step('stopControlPlane'),
      moveEtcdDataAside: step('moveEtcdDataAside'),
      restoreEtcdMember: step('restoreEtcdMember'),
      startEtcd: step('startEtcd'),
      startApiServer: step('startApiServer'),
      restartAfterRestore: step('restartAfterRestore'),
      waitRestoredQuorum: async (c: { cluster: ClusterSpec }) => {
        await this.enter('waitRestoredQuorum', 'cluster');
        return { via: 'cp-1', members: c.cluster.spec.nodes.filter((n) => n.role === 'control-plane').length };
      },
      verifyRestore: async (c: { cluster: ClusterSpec }) => {
        await this.enter('verifyRestore', 'cluster');
        const cps = c.cluster.spec.nodes.filter((n) => n.role === 'control-plane');
        return {
          via: 'cp-1',
          members: cps.map((n, i) => ({ id: `c${i + 1}`, name: n.name, peerURLs: [`https://${n.address}:2380`], clientURLs: [`https://${n.address}:2379`], isLearner: false, started: true })),
          healthy: cps.map((n) => `https://${n.address}:2379`),
          nodes: c.cluster.spec.nodes.map((n) => n.name),
        };
      },
      renewCertificates: async (c: { node: string }) => {
        await this.enter('renewCertificates', c.node);
        return { node: c.node, restarted: ['etcd', 'kube-apiserver', 'kube-controller-manager', 'kube-scheduler', 'kube-vip'] };
      },
    };
    return m as Acts;
  }
}

/** A dev server (with its Web UI on `ui.uiPort` when asked) and a worker with mock activities on `taskQueue`, until close(). */
export async function startMockEnv(taskQueue: string, ui?: { uiPort: number }): Promise<{ env: TestWorkflowEnvironment; hosts: MockHosts; close(): Promise<void> }> {
  const env = await startTemporal(ui ? { ui: true, uiPort: ui.uiPort } : {});
  const hosts = new MockHosts();
  const worker = await mockWorker(env, taskQueue, hosts);
  const running = worker.run();
  return {
    env,
    hosts,
    async close() {
      worker.shutdown();
      await running;
      await env.teardown();
    },
  };
}

/** A worker with the prebuilt workflow bundle and the mock activities, on its own task queue. */
async function mockWorker(env: TestWorkflowEnvironment, taskQueue: string, hosts: MockHosts): Promise<Worker> {
  return Worker.create({
    connection: env.nativeConnection,
    namespace: env.namespace ?? 'default',
    taskQueue,
    activities: hosts.activities(),
    workflowBundle: { codePath: join(ROOT, 'dist', 'workflow-bundle.js') },
    maxConcurrentWorkflowTaskExecutions: MAX_CONCURRENT_WORKFLOW_TASKS,
  });
}
