// Names and types shared by the workflows, the worker and the client. Pure: workflow code imports it.
import { defineQuery, defineSignal, defineUpdate } from '@temporalio/workflow';
import { defineSearchAttributeKey, SearchAttributeType } from '@temporalio/common';
import type { NodeFacts } from '../activities/types';
import type { RenderFacts } from '../render/types';

export const TASK_QUEUE = 'kha';

export function deployWorkflowId(cluster: string): string {
  return `kha-deploy-${cluster}`;
}
export function resetWorkflowId(cluster: string): string {
  return `kha-reset-${cluster}`;
}
export function backupWorkflowId(cluster: string): string {
  return `kha-backup-${cluster}`;
}
export function removeWorkflowId(cluster: string): string {
  return `kha-remove-${cluster}`;
}
export function certsWorkflowId(cluster: string): string {
  return `kha-certs-${cluster}`;
}
export function renewWorkflowId(cluster: string): string {
  return `kha-renew-${cluster}`;
}
export function upgradeWorkflowId(cluster: string): string {
  return `kha-upgrade-${cluster}`;
}
export function applyWorkflowId(cluster: string): string {
  return `kha-apply-${cluster}`;
}
export function restoreWorkflowId(cluster: string): string {
  return `kha-restore-${cluster}`;
}

export const SA_CLUSTER = defineSearchAttributeKey('KhaCluster', SearchAttributeType.KEYWORD);
export const SA_PHASE = defineSearchAttributeKey('KhaPhase', SearchAttributeType.KEYWORD);
export const SA_STATE = defineSearchAttributeKey('KhaState', SearchAttributeType.KEYWORD);
export const SEARCH_ATTRIBUTES = [SA_CLUSTER, SA_PHASE, SA_STATE];

export type StepState = 'pending' | 'running' | 'done' | 'skipped' | 'failed' | 'compensating' | 'waiting';

export interface NodeStepStatus {
  node: string;
  state: StepState;
  attempts: number;
  compensations: number;
  startedAt?: string;
  endedAt?: string;
  lastError?: string;
  /** Short human note: "already initialized", "joined", ... */
  note?: string;
}

export interface PhaseStatus {
  phase: string;
  title: string;
  mode: 'parallel' | 'sequential' | 'single' | 'gate' | 'cluster';
  state: StepState;
  startedAt?: string;
  endedAt?: string;
  nodes: NodeStepStatus[];
  /** Set when the query summarised the phase (status-view.ts): `nodes` then lists only some rows. */
  summary?: PhaseSummary;
}

export interface PhaseSummary {
  /** Rows of the phase. */
  total: number;
  /** Rows per state, all of them. */
  counts: Partial<Record<StepState, number>>;
  /** Rows per state that `nodes` leaves out. */
  omitted: Partial<Record<StepState, number>>;
}

/** What a status query asks for: by default a large phase is summarised. */
export interface StatusRequest {
  /** These nodes' rows are listed in every phase. */
  nodes?: string[];
  /** Every row of every phase, however many (hundreds of KB at 1,000 nodes). */
  full?: boolean;
}

export type DeploymentState =
  | 'running'
  | 'waiting-approval'
  | 'waiting-decision'
  | 'rolling-back'
  | 'done'
  | 'aborted';

export interface PendingDecision {
  phase: string;
  node: string;
  role: 'control-plane' | 'worker';
  error: string;
  /** Actions the operator may take here. */
  allowed: DecisionAction[];
}

export interface DeploymentStatus {
  cluster: string;
  kubernetesVersion?: string;
  state: DeploymentState;
  currentPhase?: string;
  waitingFor?: string;
  pendingDecision?: PendingDecision;
  phases: PhaseStatus[];
  /** Nodes that already belonged to the cluster when this run started: never reset by its rollback or compensation. */
  membersBefore?: string[];
  /** What `kha abort --rollback` would reset now: the nodes this run touched that were not members before. */
  rollbackNodes?: string[];
  /** Things the operator should know that are not a step: an approval that came too early and was ignored. */
  notices?: string[];
  /** What needs the operator's attention soon although the run succeeded: a certificate close to expiry. */
  warnings?: string[];
  startedAt: string;
  endedAt?: string;
  kubeconfigPath?: string;
}

export type DecisionAction = 'retry' | 'skip' | 'abort-rollback' | 'abort-leave';
export interface Decision {
  action: DecisionAction;
  /** Required for skip: the node the decision is about (guards against a stale decision). */
  node?: string;
  /** Retry or skip every node waiting now (skip: the waiting workers) instead of one. */
  all?: boolean;
  by?: string;
}

export interface DeployResult {
  cluster: string;
  kubernetesVersion: string;
  nodesReady: number;
  etcdMembers: number;
  skippedNodes: string[];
  kubeconfigPath: string;
}

export const statusQuery = defineQuery<DeploymentStatus, [StatusRequest?]>('status');
/** The argument names who approves (recorded in the workflow's log). */
export const approveWorkersUpdate = defineUpdate<string, [by: string]>('approveWorkers');
export const approveWorkersSignal = defineSignal<[by: string]>('approveWorkersSignal');
export const decisionUpdate = defineUpdate<string, [Decision]>('operatorDecision');
export const decisionSignal = defineSignal<[Decision]>('operatorDecisionSignal');
/**
 * Sent by a starting deployment to the cluster's reset workflow and the reverse: delivered only while the
 * other runs, which makes the starting one refuse. Two that start at once both refuse; never both run.
 */
export const exclusiveProbeSignal = defineSignal<[from: string]>('exclusiveProbe');

// ---- batches of workers: child workflows of a large deployment (deployWorkers) ------------------------------

export function workerBatchWorkflowId(cluster: string, batch: number): string {
  return `${deployWorkflowId(cluster)}-workers-${batch + 1}`;
}

/** What a batch tells its deployment: rows that changed, who waits for a decision, its facts once, its end. */
export interface BatchReport {
  batch: number;
  rows: Array<NodeStepStatus & { phase: string }>;
  /** Every node of the batch that waits for an operator now. */
  waiting: PendingDecision[];
  /** Once, when the batch's preflight is done: its workers' facts for the cross-node check. */
  facts?: NodeFacts[];
  /** Every worker of the batch has ended its pipeline (joined, skipped). */
  settled?: boolean;
}
export interface BatchGo {
  facts: RenderFacts;
  /** The batch's workers that belonged to the cluster before this run. */
  membersBefore: string[];
}
export interface BatchResult {
  skipped: string[];
  rolledBack: number;
}
export const batchReportSignal = defineSignal<[BatchReport]>('batchReport');
/** The cross-node check passed: host changes may start, with these facts. */
export const batchGoSignal = defineSignal<[BatchGo]>('batchGo');
/** The control plane is complete and approved: workers join through `via`. */
export const batchJoinSignal = defineSignal<[via: string[]]>('batchJoin');
/** The deployment is verified: the batch ends (until then an abort may still roll its workers back). */
export const batchFinishSignal = defineSignal('batchFinish');
/** An operator decision the deployment accepted for `nodes` of the batch. */
export const batchDecisionSignal = defineSignal<[Decision, string[]]>('batchDecision');
