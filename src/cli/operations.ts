// The cluster operations the CLI knows, one row each. Start and attach, follow, status, completion and the
// decision commands read only this table: adding an operation is one workflow file and one row here.
import type { DeploymentStatus, DeployResult } from '../workflows/definitions';
import { applyWorkflowId, backupWorkflowId, certsWorkflowId, deployWorkflowId, removeWorkflowId, renewWorkflowId, resetWorkflowId, upgradeWorkflowId } from '../workflows/definitions';
import type { UpgradeResult } from '../workflows/upgrade-cluster';
import type { RenewResult } from '../workflows/renew-cluster';
import type { ApplyResult } from '../workflows/apply-cluster';
import { daysLeft, type CertsResult } from '../workflows/certs-cluster';
import { CERT_WARN_DAYS } from '../phases/certs';
import type { BackupResult } from '../workflows/backup-cluster';
import type { ResetResult } from '../workflows/reset-cluster';
import type { RemoveResult } from '../workflows/remove-node';
import { restoreWorkflowId } from '../workflows/definitions';
import type { RestoreResult } from '../workflows/restore-cluster';
import type { Printer } from './follow';
import type { Operation as PhaseList } from '../phases/types';
import { DEPLOY } from '../phases/deploy';
import { RESET } from '../phases/reset';
import { BACKUP } from '../phases/backup';
import { CERTS, CERTS_RENEW } from '../phases/certs';
import { APPLY } from '../phases/apply';
import { removeOperation } from '../phases/remove';
import { RESTORE } from '../phases/restore';
import { UPGRADE } from '../phases/upgrade';

/** What printing a completed run's result needs. */
export interface ResultView {
  printer: Printer;
  cluster: string;
  /** The last status the workflow answered, if any. */
  last?: DeploymentStatus;
}

export interface Operation {
  /** The workflow function the worker registers (src/workflows/index.ts). */
  workflowType: string;
  /** One workflow id per cluster: a second start attaches to the running one. */
  workflowId(cluster: string): string;
  /** Its phase list (src/phases/), as its workflow runs it and `kha plan --operation` prints it; kha remove's depends on the role of the node it removes. */
  phases: PhaseList | ((role: 'control-plane' | 'worker') => PhaseList);
  /** The noun in messages: "the deployment of demo". */
  title: string;
  /** What to check when a run failed, in the next-step line. */
  checkOnFailure: string;
  /** Prints a completed run's result; false when the result reports failures (exit 1). */
  printResult(result: unknown, v: ResultView): boolean;
  /** The line printed when the run waits at its approval gate (default: the deployment's). */
  approvalLine?(cluster: string): string;
  /**
   * The action name of `kha schedule ACTION CLUSTER --every D`, for operations a Temporal Schedule may start.
   * Their scheduled runs have ids Temporal derives from the schedule's, so they are found by search attribute.
   */
  scheduleAction?: string;
}

function printDeployResult(result: unknown, { printer, cluster }: ResultView): boolean {
  const r = result as DeployResult;
  printer.info(
    `✔ ${cluster} deployed: Kubernetes ${r.kubernetesVersion}, ${r.nodesReady} nodes Ready, ${r.etcdMembers} etcd members${r.skippedNodes.length ? `, skipped: ${r.skippedNodes.join(', ')}` : ''}; admin kubeconfig: ${r.kubeconfigPath}`,
    'result',
    { result: r },
  );
  return true;
}

function printResetResult(result: unknown, { printer, cluster, last }: ResultView): boolean {
  const r = result as ResetResult;
  if (r.failed.length) {
    for (const f of r.failed) {
      const phase = last?.phases.find((p) => p.nodes.some((n) => n.node === f.node))?.phase ?? 'reset';
      printer.error(`✖ ${f.node} failed in phase ${phase}: ${f.error}`, { node: f.node, phase });
    }
    printer.error(`next step: fix the host(s) ${r.failed.map((f) => f.node).join(', ')}, then run kha reset again for ${cluster}`);
    printer.event('result', { result: r });
    return false;
  }
  printer.info(`✔ ${cluster} reset: ${r.reset.join(', ') || 'no nodes'}`, 'result', { result: r });
  return true;
}

function printBackupResult(result: unknown, { printer, cluster }: ResultView): boolean {
  const r = result as BackupResult;
  const removed = r.removed.length ? `; removed ${r.removed.length} older: ${r.removed.join(', ')}` : '';
  printer.info(`✔ ${cluster} backed up from ${r.node}: ${r.path} (${r.sizeBytes} bytes, sha256 ${r.sha256}, etcd revision ${r.revision}, ${r.totalKeys} keys)${removed}`, 'result', { result: r });
  return true;
}

/** The certificate table: node, certificate, expires, days left; a warning mark within CERT_WARN_DAYS. */
export function certsTable(r: CertsResult): string[] {
  const rows = [['NODE', 'CERTIFICATE', 'EXPIRES', 'DAYS LEFT', '']];
  for (const n of r.nodes) {
    for (const c of n.certificates) {
      const left = c.missing ? '-' : String(daysLeft(c));
      const mark = c.missing ? 'missing' : daysLeft(c) < CERT_WARN_DAYS ? `WARNING: under ${CERT_WARN_DAYS} days` : '';
      rows.push([n.node, c.kind === 'authority' ? `${c.name} (CA)` : c.name, c.expires ?? '-', left, mark]);
    }
  }
  const width = rows[0]!.map((_, i) => Math.max(...rows.map((row) => row[i]!.length)));
  return rows.map((row) => row.map((v, i) => v.padEnd(width[i]!)).join('  ').trimEnd());
}

function printCertsResult(result: unknown, { printer, cluster }: ResultView): boolean {
  const r = result as CertsResult;
  for (const line of certsTable(r)) printer.raw(`${line}\n`);
  for (const w of r.warnings) printer.error(`warning: certificate expires soon: ${w}; renew it with kubeadm certs renew on that node`);
  const count = r.nodes.reduce((a, n) => a + n.certificates.length, 0);
  printer.info(`✔ ${cluster} certificates: ${count} on ${r.nodes.length} control-plane node(s), ${r.warnings.length} within ${CERT_WARN_DAYS} days of expiry`, 'result', { result: r });
  return true;
}

function printRenewResult(result: unknown, { printer, cluster }: ResultView): boolean {
  const r = result as RenewResult;
  for (const n of r.nodes) printer.info(`  ${n.node}: renewed; restarted ${n.restarted.join(', ')}`);
  printer.info(
    `✔ ${cluster} certificates renewed on ${r.nodes.map((n) => n.node).join(', ')}; admin kubeconfig saved again: ${r.kubeconfigPath} (a copy merged into another kubeconfig still holds the old credentials: kha kubeconfig ${cluster} --merge --force)`,
    'result',
    { result: r },
  );
  return true;
}

function printApplyResult(result: unknown, { printer, cluster }: ResultView): boolean {
  const r = result as ApplyResult;
  if (r.nothingToDo) {
    printer.info(`✔ ${cluster}: nothing to do: every node of the file runs (Kubernetes ${r.kubernetesVersion}, ${r.nodesReady} nodes Ready, ${r.etcdMembers} etcd members)`, 'result', { result: r });
    return true;
  }
  const skipped = r.skippedNodes.length ? `, skipped: ${r.skippedNodes.join(', ')}` : '';
  printer.info(`✔ ${cluster} applied: joined ${r.joined.join(', ') || 'no node'}${skipped}; Kubernetes ${r.kubernetesVersion}, ${r.nodesReady} nodes Ready, ${r.etcdMembers} etcd members`, 'result', { result: r });
  return true;
}

function printRemoveResult(result: unknown, { printer, cluster }: ResultView): boolean {
  const r = result as RemoveResult;
  const did = [
    r.memberId ? `etcd member ${r.memberId} removed${r.movedLeaderTo ? ` (leadership moved to ${r.movedLeaderTo})` : ''}` : undefined,
    'Node deleted',
    r.skipped.some((s) => s.step === 'reset-host') ? undefined : 'host reset',
  ].filter(Boolean);
  for (const s of r.skipped) printer.info(`skipped ${s.step}: ${s.why}`, 'skipped', { step: s.step, why: s.why });
  printer.info(`✔ ${r.node} removed from ${cluster}: ${did.join(', ')}${r.skipped.length ? `; skipped: ${r.skipped.map((s) => s.step).join(', ')}` : ''}`, 'result', { result: r });
  printer.info(`next step: ${r.fileChange}`);
  return true;
}

function printRestoreResult(result: unknown, { printer, cluster }: ResultView): boolean {
  const r = result as RestoreResult;
  printer.info(
    `✔ ${cluster} restored from ${r.snapshot} (sha256 ${r.sha256}, etcd revision ${r.revision}): ${r.members.length} etcd members started and healthy (${r.members.map((m) => m.name).join(', ')}), the API answers through the VIP, ${r.nodes.length} Nodes listed`,
    'result',
    { result: r },
  );
  printer.info(`the old etcd data stays in ${r.dataAside} and the moved manifests in ${r.manifestsAside} on each control-plane node; delete them once you no longer need the way back`);
  return true;
}

function printUpgradeResult(result: unknown, { printer, cluster }: ResultView): boolean {
  const r = result as UpgradeResult;
  if (r.nothingToDo) {
    printer.info(`✔ ${cluster}: nothing to do: it runs ${r.kubernetesVersion} on every node`, 'result', { result: r });
    return true;
  }
  for (const h of r.hops) printer.info(`  ${h.from} → ${h.to}: etcd snapshot ${h.snapshot.path}${h.skippedNodes.length ? `; skipped: ${h.skippedNodes.join(', ')}` : ''}`);
  const skipped = r.skippedNodes.length ? `; skipped (still at their earlier version): ${r.skippedNodes.join(', ')}` : '';
  const cordoned = r.leftCordoned.length ? `; left cordoned as before: ${r.leftCordoned.join(', ')}` : '';
  printer.info(`✔ ${cluster} upgraded from ${r.from} to ${r.kubernetesVersion}: kubeadm, kubelet and kubectl ${r.packageVersion} held on every node${skipped}${cordoned}`, 'result', { result: r });
  if (r.skippedNodes.length) printer.info(`next step: fix ${r.skippedNodes.join(', ')}, then run kha upgrade again: it upgrades only the nodes behind`);
  return true;
}

export const OPERATIONS = {
  deploy: { phases: DEPLOY, workflowType: 'deployCluster', workflowId: deployWorkflowId, title: 'deployment', checkOnFailure: 'the node named above', printResult: printDeployResult },
  reset: { phases: RESET, workflowType: 'resetCluster', workflowId: resetWorkflowId, title: 'reset', checkOnFailure: 'the hosts', printResult: printResetResult },
  backup: { phases: BACKUP, workflowType: 'backupCluster', workflowId: backupWorkflowId, title: 'backup', checkOnFailure: 'the control-plane nodes and their etcd members', printResult: printBackupResult, scheduleAction: 'backup' },
  certs: { phases: CERTS, workflowType: 'certsCluster', workflowId: certsWorkflowId, title: 'certificate check', checkOnFailure: 'the control-plane nodes', printResult: printCertsResult, scheduleAction: 'certs-check' },
  renew: { phases: CERTS_RENEW, workflowType: 'renewCluster', workflowId: renewWorkflowId, title: 'certificate renewal', checkOnFailure: 'the control-plane node named above and its static pods', printResult: printRenewResult },
  apply: {
    phases: APPLY,
    workflowType: 'applyCluster',
    workflowId: applyWorkflowId,
    title: 'apply',
    checkOnFailure: 'the new node named above',
    printResult: printApplyResult,
    approvalLine: (cluster: string) => `⏸ ${cluster} waits for approval of the changes above before it joins the new nodes. Check them, then run: kha approve ${cluster}`,
  },
  remove: { phases: removeOperation, workflowType: 'removeNode', workflowId: removeWorkflowId, title: 'removal', checkOnFailure: 'the node and the control-plane nodes', printResult: printRemoveResult },
  restore: { phases: RESTORE, workflowType: 'restoreCluster', workflowId: restoreWorkflowId, title: 'restore', checkOnFailure: 'the control-plane node named above, its etcd and its static pods', printResult: printRestoreResult },
  upgrade: {
    phases: UPGRADE,
    workflowType: 'upgradeCluster',
    workflowId: upgradeWorkflowId,
    title: 'upgrade',
    checkOnFailure: 'the node named above (kubeadm upgrade can be run again)',
    printResult: printUpgradeResult,
    approvalLine: (cluster: string) => `⏸ ${cluster}: the control plane is upgraded; the workers wait for approval. Check the control plane, then run: kha approve ${cluster}`,
  },
} as const satisfies Record<string, Operation>;

export type OperationKind = keyof typeof OPERATIONS;

/** Every operation kind, in table order (the first is the default of kha status). */
export const OPERATION_KINDS = Object.keys(OPERATIONS) as OperationKind[];

export function operation(kind: OperationKind): Operation {
  return OPERATIONS[kind];
}

/** The workflow id prefix of an operation, e.g. "kha-deploy-". */
export function workflowIdPrefix(kind: OperationKind): string {
  return OPERATIONS[kind].workflowId('');
}

/** The cluster a workflow id of any operation belongs to, or undefined for a foreign id. */
export function clusterOfWorkflowId(id: string): string | undefined {
  for (const kind of OPERATION_KINDS) {
    const prefix = workflowIdPrefix(kind);
    if (id.startsWith(prefix) && id.length > prefix.length) return id.slice(prefix.length);
  }
  return undefined;
}
