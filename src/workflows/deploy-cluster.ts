// deployCluster: order, concurrency, retries, compensation, approval and status. No I/O and no secrets here:
// activities render, run over SSH and check effects; join credentials never leave an activity.
import {
  ActivityCancellationType,
  ActivityFailure,
  ApplicationFailure,
  CancellationScope,
  condition,
  isCancellation,
  sleep,
  TimeoutFailure,
  proxyActivities,
  setCurrentDetails,
  setHandler,
  upsertSearchAttributes,
  log,
  patched,
} from '@temporalio/workflow';
import { RetryState, type ActivityOptions, type RetryPolicy } from '@temporalio/common';
import type * as activities from '../activities';
import type { ClusterSpec, NodeSpec } from '../spec/types';
import type { RenderFacts } from '../render/types';
import type { NodeFacts } from '../activities/types';
import { NON_RETRYABLE_ERRORS } from '../activities/types';
import {
  approveWorkersSignal,
  approveWorkersUpdate,
  decisionSignal,
  decisionUpdate,
  resetWorkflowId,
  statusQuery,
  SA_CLUSTER,
  SA_PHASE,
  SA_STATE,
  type Decision,
  type DecisionAction,
  type DeploymentStatus,
  type DeployResult,
  type NodeStepStatus,
  type PhaseStatus,
  type StepState,
} from './definitions';
import { crossNodeProblems } from './checks';
import { DEPLOY } from '../phases/deploy';
import { nodesOf } from '../phases/select';
import { resolveKubernetesVersion } from '../render/version';
import { renderProgress } from './progress';
import { refuseBeside } from './exclusive';
import { checkDeployInput, checkKubeconfigChoice } from './input-check';

export interface DeployOptions {
  /** Heartbeat timeout of activities (default 20 s); a killed worker's activity is retried after it. */
  heartbeatTimeoutSeconds?: number;
  /** Where the admin kubeconfig goes on the worker's machine (default: the worker's state directory). */
  kubeconfigPath?: string;
  /** Limit on clock skew between nodes (default 1000 ms). */
  maxClockSkewMs?: number;
  /** Started with --auto-approve: an approval sent before the gate counts (otherwise it is ignored). */
  autoApprove?: boolean;
}

export interface DeployInput {
  cluster: ClusterSpec;
  options?: DeployOptions;
}

type Acts = typeof activities;

class Aborted extends Error {
  constructor(readonly action: DecisionAction) {
    super(`aborted by operator (${action})`);
  }
}


export async function deployCluster(input: DeployInput): Promise<DeployResult> {
  checkDeployInput(input);
  const { cluster } = input;
  const spec = cluster.spec;
  const opts = input.options ?? {};
  const cps = spec.nodes.filter((n) => n.role === 'control-plane');
  const workers = spec.nodes.filter((n) => n.role === 'worker');
  const first = cps[0]!;
  const now = () => new Date().toISOString();

  // ---- status -------------------------------------------------------------------------------------------
  const status: DeploymentStatus = {
    cluster: cluster.name,
    state: 'running',
    startedAt: now(),
    phases: DEPLOY.phases.map((p) => ({
      phase: p.id,
      title: p.title,
      mode: p.mode,
      state: 'pending' as StepState,
      // A cluster-wide phase has one row, "cluster"; a gate has none.
      nodes: (p.mode === 'cluster' ? ['cluster'] : nodesOf(p.nodes, cluster).map((n) => n.name)).map((node) => ({ node, state: 'pending' as StepState, attempts: 0, compensations: 0 })),
    })),
  };
  const phaseOf = (p: string) => status.phases.find((x) => x.phase === p)!;
  const stepOf = (p: string, node: string): NodeStepStatus => {
    const ph = phaseOf(p);
    let s = ph.nodes.find((n) => n.node === node);
    if (!s) {
      s = { node, state: 'pending', attempts: 0, compensations: 0 };
      ph.nodes.push(s);
    }
    return s;
  };
  const pending = new Map<string, { phase: string; role: 'control-plane' | 'worker'; error: string; allowed: DecisionAction[]; decision?: Decision }>();
  let approved = false;
  let abortAction: DecisionAction | undefined;
  // Nodes of the cluster before this run (from preflight), and the nodes this run worked on.
  const membersBefore = new Set<string>();
  const touched = new Set<string>();

  function publish(): void {
    const waiting = [...pending.entries()];
    status.pendingDecision = waiting.length
      ? { node: waiting[0]![0], phase: waiting[0]![1].phase, role: waiting[0]![1].role, error: waiting[0]![1].error, allowed: waiting[0]![1].allowed }
      : undefined;
    if (status.state === 'running' || status.state === 'waiting-decision' || status.state === 'waiting-approval') {
      if (waiting.length) {
        status.state = 'waiting-decision';
        status.waitingFor = `operator decision for ${waiting.map(([n, w]) => `${n} (${w.phase})`).join(', ')}: kha retry | kha skip NODE | kha abort [--rollback]`;
      } else if (status.state === 'waiting-decision') {
        status.state = 'running';
        status.waitingFor = undefined;
      }
    }
    status.rollbackNodes = rollbackOrder().map((n) => n.name);
    upsertSearchAttributes([
      { key: SA_CLUSTER, value: cluster.name },
      { key: SA_PHASE, value: status.currentPhase ?? 'none' },
      { key: SA_STATE, value: status.state },
    ]);
    setCurrentDetails(renderProgress(status));
  }

  function startPhase(p: string): void {
    status.currentPhase = p;
    const ph = phaseOf(p);
    ph.state = 'running';
    ph.startedAt = now();
    publish();
  }
  function endPhase(p: string): void {
    const ph = phaseOf(p);
    ph.state = 'done';
    ph.endedAt = now();
    publish();
  }

  // ---- handlers ------------------------------------------------------------------------------------------
  setHandler(statusQuery, () => status);
  const approve = (by?: string) => {
    approved = true;
    log.info('workers approved', { by: by ?? 'unknown' });
  };
  setHandler(approveWorkersUpdate, (by: string) => {
    approve(by);
    return `approved: joining ${workers.length} worker node(s)`;
  }, {
    validator: (_by: string) => {
      if (status.state !== 'waiting-approval') {
        throw new Error(`nothing waits for approval: the deployment is ${status.state}${status.currentPhase ? ` in phase ${status.currentPhase}` : ''}`);
      }
    },
  });
  setHandler(approveWorkersSignal, (by: string) => {
    // A run started with --auto-approve was approved in advance; any other approval sent before the gate
    // (during preflight, say) was given without seeing the control plane.
    if (status.state === 'waiting-approval' || opts.autoApprove) return approve(by);
    if (approved) return;
    const where = status.currentPhase ? ` in phase ${status.currentPhase}` : '';
    const notice = `approval by ${by || 'unknown'} ignored at ${now()}: it came before the gate (deployment ${status.state}${where}); approve again when it waits for approval`;
    log.warn('early approval ignored', { by, state: status.state, phase: status.currentPhase });
    (status.notices ??= []).push(notice);
    publish();
  });

  /** The nodes a batch decision (--all) applies to: every waiting node, for skip the waiting workers. */
  function batch(d: Decision): string[] {
    if (pending.size === 0) throw new Error(`no decision is pending: the deployment is ${status.state}`);
    const nodes = [...pending.entries()].filter(([, w]) => w.allowed.includes(d.action)).map(([n]) => n);
    if (!nodes.length) {
      throw new Error(`${d.action} is not allowed for any waiting node (${[...pending.entries()].map(([n, w]) => `${n}: ${w.role}, phase ${w.phase}`).join('; ')})`);
    }
    return nodes;
  }
  function pickPending(d: Decision): string {
    if (d.node) {
      if (!pending.has(d.node)) throw new Error(`no decision is pending for ${d.node}; pending: ${[...pending.keys()].join(', ') || 'none'}`);
      return d.node;
    }
    if (pending.size === 0) throw new Error(`no decision is pending: the deployment is ${status.state}`);
    // Retry and skip without a node are only unambiguous when one node waits.
    if (pending.size > 1) throw new Error(`decisions are pending for ${[...pending.keys()].join(', ')}: name the node`);
    return [...pending.keys()][0]!;
  }
  function validateDecision(d: Decision): void {
    if (d.action === 'abort-rollback' || d.action === 'abort-leave') {
      // An abort stops a deployment at any point before it ends, not only at a decision.
      if (abortAction || status.state === 'done' || status.state === 'aborted' || status.state === 'rolling-back') {
        throw new Error(`cannot abort: the deployment is ${abortAction ? 'already aborting' : status.state}`);
      }
      return;
    }
    if (d.all) {
      if (d.node) throw new Error('name a node or ask for all of them, not both');
      batch(d);
      return;
    }
    const node = pickPending(d);
    const w = pending.get(node)!;
    if (!w.allowed.includes(d.action)) {
      throw new Error(`${d.action} is not allowed for ${node} (${w.role}, phase ${w.phase}); allowed: ${w.allowed.join(', ')}`);
    }
  }
  function applyDecision(d: Decision): string {
    if (d.action === 'abort-rollback' || d.action === 'abort-leave') {
      abortAction = d.action;
      main.cancel();
      return `aborting (${d.action === 'abort-rollback' ? 'rolling back touched nodes' : 'leaving nodes as they are'})`;
    }
    if (d.all) {
      const nodes = batch(d);
      for (const n of nodes) pending.get(n)!.decision = d;
      const left = [...pending.keys()].filter((n) => !nodes.includes(n));
      return `${d.action} ${nodes.length} node${nodes.length === 1 ? '' : 's'}: ${nodes.join(', ')}${left.length ? `; still waiting: ${left.join(', ')}` : ''}`;
    }
    const node = pickPending(d);
    pending.get(node)!.decision = d;
    return `${d.action} ${node}`;
  }
  setHandler(decisionUpdate, (d: Decision) => applyDecision(d), { validator: validateDecision });
  setHandler(decisionSignal, (d: Decision) => {
    try {
      validateDecision(d);
      applyDecision(d);
    } catch (e) {
      log.warn('operator decision ignored', { error: String(e) });
    }
  });

  // ---- activities ----------------------------------------------------------------------------------------
  const r = spec.policy.retry;
  const retry: RetryPolicy = {
    maximumAttempts: r.maximumAttempts,
    initialInterval: r.initialIntervalSeconds * 1000,
    backoffCoefficient: r.backoffCoefficient,
    maximumInterval: r.maximumIntervalSeconds * 1000,
    nonRetryableErrorTypes: [...NON_RETRYABLE_ERRORS],
  };
  const baseOptions: ActivityOptions = {
    startToCloseTimeout: (spec.ssh.commandTimeoutSeconds + spec.ssh.connectTimeoutSeconds * 2 + 60) * 1000,
    // Activities beat at least every 5 s; 20 s lets a new worker take over a killed one's activity quickly.
    heartbeatTimeout: (opts.heartbeatTimeoutSeconds ?? 20) * 1000,
    retry,
    cancellationType: ActivityCancellationType.WAIT_CANCELLATION_COMPLETED,
  };
  const acts = proxyActivities<Acts>(baseOptions);
  const rebootMs = spec.policy.compensation.rebootTimeoutSeconds * 1000;

  // Each activity sees the control-plane nodes and its own node only: keeps history small on large clusters.
  function forNode(node: string): ClusterSpec {
    return { ...cluster, spec: { ...spec, nodes: spec.nodes.filter((n) => n.role === 'control-plane' || n.name === node) } };
  }
  // Attempts of a step: per run of the step, the most attempts one of its activities took (Temporal's retries);
  // the runs (after a compensation or an operator's retry) add up. runBase holds the count before this run.
  const runBase = new Map<NodeStepStatus, number>();
  const budgetMs = (r.transientBudgetSeconds ?? 0) * 1000;

  /** The attempt an activity failure ended: the last of the policy, or the one the activity reported. */
  function attemptOf(e: unknown): number {
    if (!(e instanceof ActivityFailure)) return 1;
    if (e.retryState === RetryState.MAXIMUM_ATTEMPTS_REACHED) return retry.maximumAttempts ?? 1;
    const d = e.cause instanceof ApplicationFailure ? (e.cause.details?.[0] as { attempt?: unknown } | undefined) : undefined;
    return typeof d?.attempt === 'number' ? d.attempt : 1;
  }
  /** Unreachable, connection lost, timed out: a network blip, worth waiting out within the time budget. */
  function networkFailure(e: unknown): boolean {
    if (!(e instanceof ActivityFailure) || e.retryState !== RetryState.MAXIMUM_ATTEMPTS_REACHED) return false;
    const c = e.cause;
    return c instanceof TimeoutFailure || (c instanceof ApplicationFailure && ['Unreachable', 'Timeout', 'ConnectionLost'].includes(c.type ?? ''));
  }

  /**
   * Runs one activity with a summary naming phase and node, again after a network failure while the policy's
   * time budget lasts. Its attempts count in the status row `track` (phase/node), when that row exists.
   */
  async function call<K extends keyof Acts>(
    name: K,
    phase: string,
    node: string,
    args: Parameters<Acts[K]>,
    extra?: Partial<ActivityOptions>,
    track: { phase: string; node: string } = { phase, node },
  ): Promise<Awaited<ReturnType<Acts[K]>>> {
    const fn = acts[name] as unknown as { executeWithOptions(o: ActivityOptions, a: unknown[]): Promise<unknown> };
    const row = status.phases.some((p) => p.phase === track.phase) ? stepOf(track.phase, track.node) : undefined;
    const started = Date.now();
    let used = 0;
    const count = (n: number) => {
      used += n;
      if (row) row.attempts = Math.max(row.attempts, (runBase.get(row) ?? 0) + used);
    };
    for (;;) {
      try {
        const res = (await fn.executeWithOptions({ ...baseOptions, ...extra, summary: `${phase} · ${node} · ${String(name)}` }, args)) as Awaited<ReturnType<Acts[K]>>;
        count((res as { attempt?: number } | undefined)?.attempt ?? 1);
        return res;
      } catch (e) {
        count(attemptOf(e));
        const left = budgetMs - (Date.now() - started);
        if (!networkFailure(e) || left <= 0) throw e;
        log.info('network failure: retrying within the time budget', { phase, node, activity: String(name), leftMs: left });
        if (row) {
          row.lastError = `${failureText(e)} (retrying for up to ${Math.ceil(left / 1000)} s more)`;
          publish();
        }
        await sleep(Math.min(retry.maximumInterval as number, left));
      }
    }
  }

  const healthy: string[] = [first.name];
  const skipped: string[] = [];
  let facts: RenderFacts | undefined;

  function failureText(e: unknown): string {
    let cur: unknown = e;
    // The ActivityFailure wraps the activity's own ApplicationFailure; its message is what operators need.
    while (cur && typeof cur === 'object' && 'cause' in cur && (cur as { cause?: unknown }).cause) cur = (cur as { cause: unknown }).cause;
    const msg = cur instanceof Error ? cur.message : String(cur);
    const type = cur instanceof ApplicationFailure && cur.type ? `${cur.type}: ` : '';
    return `${type}${msg}`.slice(0, 2000);
  }

  /** The type of the innermost application failure ("JoinedStepFailed", ...). */
  function failureType(e: unknown): string {
    let cur: unknown = e;
    let type = '';
    while (cur && typeof cur === 'object') {
      if (cur instanceof ApplicationFailure && cur.type) type = cur.type;
      cur = (cur as { cause?: unknown }).cause;
    }
    return type;
  }

  /**
   * Runs one node step; on failure after retries (and compensation, where given) waits for an operator.
   * Compensation (a reset) never touches a node that was a member before this run, nor one whose failure came
   * after it joined: that step is retried instead. A compensation that fails waits for the operator too.
   */
  async function step(
    phase: string,
    node: NodeSpec,
    run: () => Promise<string | void>,
    compensate?: (round: number) => Promise<void>,
  ): Promise<'done' | 'skipped'> {
    const s = stepOf(phase, node.name);
    s.startedAt ??= now();
    let rounds = 0;
    for (;;) {
      s.state = 'running';
      runBase.set(s, s.attempts);
      publish();
      try {
        const note = await run();
        s.state = 'done';
        s.note = note ?? s.note;
        s.lastError = undefined;
        s.endedAt = now();
        publish();
        return 'done';
      } catch (e) {
        if (isCancellation(e)) throw e;
        s.lastError = failureText(e);
        const mayReset = !membersBefore.has(node.name) && failureType(e) !== 'JoinedStepFailed';
        if (compensate && mayReset && spec.policy.compensation.enabled && rounds < spec.policy.compensation.rounds) {
          rounds++;
          s.state = 'compensating';
          s.compensations++;
          publish();
          try {
            await CancellationScope.nonCancellable(() => compensate(rounds));
            continue;
          } catch (ce) {
            if (isCancellation(ce)) throw ce;
            // This node waits for the operator; the other nodes' steps go on.
            s.lastError = `compensation failed: ${failureText(ce)}; the step had failed with: ${s.lastError}`;
          }
        }
        s.state = 'waiting';
        const allowed: DecisionAction[] = node.role === 'worker' && phase !== 'preflight'
          ? ['retry', 'skip', 'abort-rollback', 'abort-leave']
          : ['retry', 'abort-rollback', 'abort-leave'];
        pending.set(node.name, { phase, role: node.role, error: s.lastError, allowed });
        publish();
        try {
          await condition(() => pending.get(node.name)?.decision !== undefined);
        } finally {
          const d = pending.get(node.name)?.decision;
          pending.delete(node.name);
          publish();
          if (d?.action === 'skip') {
            s.state = 'skipped';
            s.note = `skipped by operator after: ${s.lastError}`;
            skipped.push(node.name);
          }
        }
        if (s.state === 'skipped') {
          publish();
          return 'skipped';
        }
        rounds = 0; // a retry after the operator fixed the host gets fresh compensation rounds
      }
    }
  }

  async function parallel(phase: string, nodes: NodeSpec[], fn: (n: NodeSpec) => Promise<unknown>, limit = nodes.length): Promise<void> {
    let next = 0;
    const runners = Array.from({ length: Math.min(limit, nodes.length) }, async () => {
      while (next < nodes.length) {
        const n = nodes[next++]!;
        await fn(n);
      }
    });
    await Promise.all(runners);
  }

  async function compensateJoin(node: NodeSpec): Promise<void> {
    // Reset what the failed join left, drop the member and Node from the cluster, then reboot to clear the rest.
    await call('resetNode', 'compensation', node.name, [{ cluster: forNode(node.name), node: node.name }]);
    await call('removeNodeFromCluster', 'compensation', node.name, [{ cluster: forNode(node.name), node: node.name, via: [...healthy] }]);
    await call('rebootNode', 'compensation', node.name, [{ cluster: forNode(node.name), node: node.name }], {
      startToCloseTimeout: rebootMs + 60_000,
    });
  }

  // ---- the deployment ------------------------------------------------------------------------------------
  const main = new CancellationScope();
  let result: DeployResult | undefined;
  let rolledBack = 0;
  await refuseBeside(
    'exclusive-with-reset',
    resetWorkflowId(cluster.name),
    `a reset of ${cluster.name} is running (${resetWorkflowId(cluster.name)}); a deployment does not start beside it: wait until it ends (kha status ${cluster.name} --reset), then deploy again`,
    (msg) => {
      status.state = 'aborted';
      status.endedAt = now();
      (status.notices ??= []).push(msg);
      publish();
    },
  );
  // Refused beside a reset before anything is scheduled; then the worker checks the kubeconfig choice.
  await checkKubeconfigChoice(input);
  try {
    result = await main.run(async () => {
      // 1. preflight
      startPhase('preflight');
      const nodeFacts = new Map<string, NodeFacts>();
      await parallel('preflight', spec.nodes, (n) =>
        step('preflight', n, async () => {
          const f = await call('preflightNode', 'preflight', n.name, [
            { cluster: forNode(n.name), node: n.name, listVersions: n.name === first.name, expectVipFree: false },
          ]);
          nodeFacts.set(n.name, f);
          return `${f.os} ${f.arch}, ${f.cpus} CPU, ${f.memoryMb} MB`;
        }),
      );
      // Cross-node checks, then version resolution; a problem waits for the operator like a failed step.
      await step('preflight', { ...first, name: 'cluster' }, async () => {
        const all = spec.nodes.map((n) => nodeFacts.get(n.name)!).filter(Boolean);
        const problems = crossNodeProblems({
          facts: all,
          firstControlPlane: first.name,
          controlPlanes: cps.map((n) => n.name),
          vipInterface: (name) => cps.find((c) => c.name === name)?.interface ?? spec.controlPlaneEndpoint.interface,
          maxClockSkewMs: opts.maxClockSkewMs ?? 1000,
        });
        if (problems.length) {
          throw ApplicationFailure.nonRetryable(problems.map((p) => `${p.node}: ${p.message}`).join('; '), 'PreflightFailed');
        }
        membersBefore.clear();
        for (const n of spec.nodes) {
          const nf = nodeFacts.get(n.name);
          if (nf?.clusterCaHash && (nf.kubeletConfPresent || nf.adminConfPresent)) membersBefore.add(n.name);
        }
        status.membersBefore = [...membersBefore];
        const running = runningVersion();
        let resolved: RenderFacts;
        try {
          // A cluster that runs keeps its version: changing it is kubeadm upgrade's job, node by node.
          resolved = resolveKubernetesVersion(running ?? spec.kubernetes.version, nodeFacts.get(first.name)?.availableVersions ?? []);
        } catch (e) {
          throw ApplicationFailure.nonRetryable((e as Error).message, 'PreflightFailed');
        }
        facts = resolved;
        status.kubernetesVersion = resolved.kubernetesVersion;
        return running
          ? `Kubernetes ${resolved.kubernetesVersion} (package ${resolved.packageVersion}) kept: the version the cluster runs`
          : `Kubernetes ${resolved.kubernetesVersion} (package ${resolved.packageVersion}) for every node`;
      });

      /** The patch the members run ("1.35.1"), when the cluster exists; refuses a file that asks for another. */
      function runningVersion(): string | undefined {
        const byVersion = new Map<string, string[]>();
        for (const m of membersBefore) {
          const v = nodeFacts.get(m)?.installed.kubeadm?.replace(/^v/, '');
          if (v) byVersion.set(v, [...(byVersion.get(v) ?? []), m]);
        }
        if (byVersion.size === 0) return undefined;
        if (byVersion.size > 1) {
          const list = [...byVersion.entries()].map(([v, ns]) => `${ns.join(', ')}: ${v}`).join('; ');
          throw ApplicationFailure.nonRetryable(`the cluster's nodes run different kubeadm versions (${list}); finish that upgrade first: use kha upgrade`, 'PreflightFailed');
        }
        const v = [...byVersion.keys()][0]!;
        const wanted = spec.kubernetes.version.replace(/^v/, '');
        const fits = /^1\.\d+$/.test(wanted) ? v.startsWith(`${wanted}.`) : v === wanted;
        if (!fits) {
          throw ApplicationFailure.nonRetryable(
            `cluster ${cluster.name} runs Kubernetes ${v} and the file asks for ${spec.kubernetes.version}; a deployment never changes the version of a running cluster: use kha upgrade`,
            'PreflightFailed',
          );
        }
        return v;
      }
      endPhase('preflight');
      const f = facts!;

      // 2-4. host prep, container runtime, packages: every node in parallel
      for (const [phase, act] of [
        ['host-prep', 'hostPrep'],
        ['container-runtime', 'containerRuntime'],
      ] as const) {
        startPhase(phase);
        await parallel(phase, spec.nodes, (n) =>
          step(phase, n, async () => {
            touched.add(n.name);
            const res = await call(act, phase, n.name, [{ cluster: forNode(n.name), node: n.name, facts: f }]);
            return res.note;
          }),
        );
        endPhase(phase);
      }
      startPhase('packages');
      const versions = new Map<string, string>();
      await parallel('packages', spec.nodes, (n) =>
        step('packages', n, async () => {
          touched.add(n.name);
          const res = await call('installPackages', 'packages', n.name, [{ cluster: forNode(n.name), node: n.name, facts: f }]);
          const v = res.versions;
          if (v.kubeadm !== v.kubelet || v.kubelet !== v.kubectl || v.kubeadm !== f.packageVersion) {
            throw ApplicationFailure.nonRetryable(
              `versions differ on ${n.name}: kubeadm ${v.kubeadm}, kubelet ${v.kubelet}, kubectl ${v.kubectl}; expected ${f.packageVersion}`,
              'PreflightFailed',
            );
          }
          versions.set(n.name, v.kubeadm);
          return res.note;
        }),
      );
      endPhase('packages');

      // 5-6. kube-vip and kubeadm init on the first control-plane node; the VIP must answer before anything joins
      startPhase('kube-vip');
      await step('kube-vip', first, async () => (await call('kubeVipFirstNode', 'kube-vip', first.name, [{ cluster: forNode(first.name), node: first.name, facts: f }])).note);
      endPhase('kube-vip');
      startPhase('kubeadm-init');
      await step('kubeadm-init', first, async () => {
        const init = await call('kubeadmInit', 'kubeadm-init', first.name, [{ cluster: forNode(first.name), node: first.name, facts: f }]);
        // The switch script waits for the VIP before and after the switch itself; runs started before that
        // keep their separate waits (replay must see the same activities).
        const separateVipWaits = !patched('vip-waits-in-switch-script');
        if (separateVipWaits) await call('waitForVip', 'kubeadm-init', first.name, [{ cluster: forNode(first.name), node: first.name, facts: f }]);
        await call('switchKubeVipToAdminConf', 'kubeadm-init', first.name, [{ cluster: forNode(first.name), node: first.name, facts: f }]);
        if (separateVipWaits) await call('waitForVip', 'kubeadm-init', first.name, [{ cluster: forNode(first.name), node: first.name, facts: f }]);
        return init.note;
      });
      endPhase('kubeadm-init');

      // 7. Calico
      startPhase('calico');
      await step('calico', { ...first, name: 'cluster' }, async () =>
        (await call('installCalico', 'calico', first.name, [{ cluster: forNode(first.name), node: first.name, facts: f, via: [first.name] }], undefined, { phase: 'calico', node: 'cluster' })).note,
      );
      endPhase('calico');

      // 8. control-plane joins, one at a time, each gated on etcd health
      startPhase('control-plane-join');
      for (const n of cps.slice(1)) {
        await step(
          'control-plane-join',
          n,
          async () => {
            touched.add(n.name);
            const res = await call('joinControlPlane', 'control-plane-join', n.name, [{ cluster: forNode(n.name), node: n.name, facts: f, via: [...healthy] }]);
            await call('waitEtcdHealthy', 'control-plane-join', n.name, [{ cluster: forNode(n.name), node: n.name, facts: f, via: [...healthy] }]);
            return res.note;
          },
          () => compensateJoin(n),
        );
        if (stepOf('control-plane-join', n.name).state === 'done') healthy.push(n.name);
      }
      endPhase('control-plane-join');

      // 9. approval
      const gate = phaseOf('approval');
      if (workers.length && spec.policy.approveBeforeWorkers && !approved) {
        startPhase('approval');
        status.state = 'waiting-approval';
        status.waitingFor = `approval: check the control plane, then run: kha approve ${cluster.name}`;
        publish();
        await condition(() => approved);
        status.state = 'running';
        status.waitingFor = undefined;
        gate.state = 'done';
        gate.endedAt = now();
        publish();
      } else {
        gate.state = 'skipped';
        publish();
      }

      // 10. workers, bounded by the policy's concurrency, each minting its own credentials
      startPhase('worker-join');
      await parallel(
        'worker-join',
        workers,
        (n) =>
          step(
            'worker-join',
            n,
            async () => {
              touched.add(n.name);
              return (await call('joinWorker', 'worker-join', n.name, [{ cluster: forNode(n.name), node: n.name, facts: f, via: [...healthy] }])).note;
            },
            () => compensateJoin(n),
          ),
        spec.policy.workerJoinConcurrency,
      );
      endPhase('worker-join');

      // 11. verification and the admin kubeconfig
      startPhase('verify');
      let verified: { nodesReady: number; etcdMembers: number } = { nodesReady: 0, etcdMembers: 0 };
      let kubeconfigPath = '';
      await step('verify', { ...first, name: 'cluster' }, async () => {
        // Verification needs every node: it checks that each one is Ready.
        const v = await call('verifyCluster', 'verify', first.name, [{ cluster, node: first.name, facts: f, via: [...healthy] }], undefined, { phase: 'verify', node: 'cluster' });
        const expectedNodes = spec.nodes.length - skipped.length;
        const problems = [...v.problems];
        if (v.nodesReady < expectedNodes) problems.push(`${v.nodesReady}/${expectedNodes} nodes Ready (not ready: ${v.notReady.join(', ') || 'missing'})`);
        if (v.etcdMembers !== cps.length) problems.push(`etcd has ${v.etcdMembers} members, expected ${cps.length}`);
        if (problems.length) throw ApplicationFailure.nonRetryable(problems.join('; '), 'VerificationFailed');
        const kc = await call('fetchKubeconfig', 'verify', first.name, [{ cluster: forNode(first.name), node: first.name, path: opts.kubeconfigPath }], undefined, { phase: 'verify', node: 'cluster' });
        kubeconfigPath = kc.path;
        status.kubeconfigPath = kc.path;
        verified = { nodesReady: v.nodesReady, etcdMembers: v.etcdMembers };
        return `${v.nodesReady} nodes Ready, ${v.etcdMembers} etcd members, kube-proxy ${v.kubeProxyMode}, kubeconfig ${kc.path}`;
      });
      endPhase('verify');
      return {
        cluster: cluster.name,
        kubernetesVersion: f.kubernetesVersion,
        nodesReady: verified.nodesReady,
        etcdMembers: verified.etcdMembers,
        skippedNodes: skipped,
        kubeconfigPath,
      };
    });
  } catch (e) {
    if (!abortAction) throw e;
    // What was in flight when the operator aborted ends as failed, so the status tells the truth.
    for (const ph of status.phases) {
      if (ph.state === 'running') ph.state = 'failed';
      for (const n of ph.nodes) {
        if (n.state === 'running' || n.state === 'waiting' || n.state === 'compensating') {
          n.state = 'failed';
          n.note = 'aborted by operator';
        }
      }
    }
    pending.clear();
    await CancellationScope.nonCancellable(async () => {
      if (abortAction === 'abort-rollback') {
        status.state = 'rolling-back';
        status.waitingFor = undefined;
        publish();
        await rollback();
      }
      status.state = 'aborted';
      status.endedAt = now();
      publish();
    });
    throw ApplicationFailure.nonRetryable(
      `deployment of ${cluster.name} aborted by the operator${abortAction === 'abort-rollback' ? `; rolled back ${rolledBack} node(s)` : '; nodes left as they are'}`,
      'DeploymentAborted',
    );
  }
  status.state = 'done';
  status.currentPhase = undefined;
  status.endedAt = now();
  publish();
  return result!;

  /**
   * What a rollback resets: the nodes this run touched that were not members before it (a re-run on a live
   * cluster undoes only its new nodes). Workers first, then control-plane nodes, the first one last.
   */
  function rollbackOrder(): NodeSpec[] {
    const mine = (n: NodeSpec) => touched.has(n.name) && !membersBefore.has(n.name);
    return [...workers.filter(mine), ...cps.slice(1).filter(mine).reverse(), ...(mine(first) ? [first] : [])];
  }
  // Workers in parallel, then control-plane nodes one at a time.
  async function rollback(): Promise<void> {
    const order = rollbackOrder();
    rolledBack = order.length;
    const ws = order.filter((n) => n.role === 'worker');
    await Promise.all(ws.map((n) => resetForRollback(n)));
    for (const n of order.filter((x) => x.role === 'control-plane')) await resetForRollback(n);
  }
  async function resetForRollback(n: NodeSpec): Promise<void> {
    try {
      await call('resetNode', 'rollback', n.name, [{ cluster: forNode(n.name), node: n.name }]);
    } catch (e) {
      log.warn('rollback reset failed', { node: n.name, error: failureText(e) });
      stepOf('verify', n.name).lastError = `rollback failed: ${failureText(e)}`;
    }
  }
}

