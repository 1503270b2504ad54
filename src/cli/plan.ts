// `kha plan FILE [--operation KIND] [--node NAME] [--phase NAME] [--out DIR]`: an operation's phases in order
// (the deployment's by default), and with --out every script and file each node will get, before any host
// is contacted. The phases are the lists the workflows run (src/phases/, one per row of the CLI table).
import { chmodSync, mkdirSync, writeFileSync } from 'node:fs';
import { dirname, join } from 'node:path';
import { formatIssue, formatWarning, loadClusterFile } from '../spec/load';
import type { ClusterSpec } from '../spec/types';
import { firstControlPlane, kubeMinor } from '../spec/types';
import { DEFAULT_DRAIN_TIMEOUT_SECONDS } from '../workflows/remove-node';
import { DEFAULT_UPGRADE_DRAIN_TIMEOUT_SECONDS } from '../workflows/upgrade-cluster';
import { deploymentStages, describeMode, phaseDirName, phasesForNode, planFacts, PHASE_ORDER, renderPhase } from '../render';
import { DEPLOY } from '../phases/deploy';
import { RESET } from '../phases/reset';
import { concurrencyOf, nodesOf } from '../phases/select';
import type { Stage } from '../render';
import type { AnyPhaseName, PhaseRender, RenderFacts } from '../render/types';
import { didYouMean } from './suggest';
import { OPERATION_KINDS, operation, type OperationKind } from './operations';
import type { NodeSet, Operation, PhaseDef, StepRef } from '../phases/types';
import { renderStep, PLAN_STAND_INS, type StepContext } from '../render/steps';
import type { NodeSpec } from '../spec/types';

const USAGE = `usage: kha plan FILE [--operation KIND] [--node NAME] [--phase NAME] [--out DIR]

Prints the deployment's phases in order with the nodes each runs on, whether they run in
parallel or one at a time, the scripts each runs, how a re-run sees that a step is done, and
what compensation and rollback do; then the teardown (kha reset). With --out, writes every script and file to
DIR/<node>/<NN-phase>/ (scripts as <name>.sh, files under files/ at their host path).
Phases: ${PHASE_ORDER.join(', ')}

--operation KIND prints another operation the same way, from the phase list its workflow runs, and --out
writes its scripts to DIR/<node>/<NN-phase-id>/. KIND: ${OPERATION_KINDS.join(', ')}.
For remove, --node NAME is the node removed (required); for the others it narrows the plan to that node,
and --phase to one phase id of the operation. Values only a run learns (etcd member IDs, the restore run,
the snapshot's hash) are stand-ins, printed with the plan.
`;

interface Options {
  file: string;
  operation: OperationKind;
  node?: string;
  phase?: AnyPhaseName;
  out?: string;
}

class UsageError extends Error {}

function parseArgs(argv: string[]): Options | 'help' {
  let file: string | undefined;
  const o: Partial<Options> = {};
  for (let i = 0; i < argv.length; i++) {
    const a = argv[i]!;
    if (a === '-h' || a === '--help') return 'help';
    const eq = a.indexOf('=');
    const [flag, inline] = a.startsWith('--') && eq > 0 ? [a.slice(0, eq), a.slice(eq + 1)] : [a, undefined];
    if (flag === '--node' || flag === '--phase' || flag === '--out' || flag === '--operation') {
      const v = inline ?? argv[++i];
      if (v === undefined || v === '') throw new UsageError(`${flag} needs a value`);
      if (flag === '--node') o.node = v;
      else if (flag === '--out') o.out = v;
      else if (flag === '--operation') {
        if (!(OPERATION_KINDS as readonly string[]).includes(v)) throw new UsageError(`unknown operation "${v}"${didYouMean(v, OPERATION_KINDS)} (operations: ${OPERATION_KINDS.join(', ')})`);
        o.operation = v as OperationKind;
      } else o.phase = v as AnyPhaseName;
    } else if (a.startsWith('-')) {
      throw new UsageError(`unknown option "${a}"${didYouMean(flag, ['--operation', '--node', '--phase', '--out', '--help'])}`);
    } else if (file === undefined) {
      file = a;
    } else {
      throw new UsageError(`one cluster file only (got "${file}" and "${a}")`);
    }
  }
  if (!file) throw new UsageError('no cluster file given');
  const operation = o.operation ?? 'deploy';
  // The deployment's --phase names a rendered phase; another operation's one of its phase ids (checked later).
  if (operation === 'deploy' && o.phase && !(PHASE_ORDER as readonly string[]).includes(o.phase)) throw new UsageError(`unknown phase "${o.phase}" (phases: ${PHASE_ORDER.join(', ')})`);
  return { ...o, file, operation };
}

function versionLine(c: ClusterSpec, facts: RenderFacts, resolvedAtDeploy: boolean, who = 'deploy'): string {
  const v = c.spec.kubernetes.version;
  if (!resolvedAtDeploy) return `Kubernetes ${facts.kubernetesVersion} (packages ${facts.packageVersion})`;
  return (
    `Kubernetes ${v}: this plan uses ${facts.kubernetesVersion} (packages ${facts.packageVersion}); ` +
    `${who} resolves ${kubeMinor(v)} to its newest patch on ${firstControlPlane(c).name} and pins it on every node`
  );
}

function stageSelected(s: Stage, o: Options): boolean {
  if (o.node && s.mode !== 'gate' && !s.nodes.includes(o.node)) return false;
  if (o.phase && s.mode !== 'gate' && !s.steps.some((st) => st.phase === o.phase)) return false;
  if (s.mode === 'gate' && (o.phase || o.node)) return false;
  return true;
}

/** How a re-run sees a phase done, what happens after its retries, and what a rollback does. */
function phaseNotes(def: PhaseDef): string[] {
  return [
    `      · already done: ${def.check}`,
    ...(def.compensation ? [`      · after its retries: ${def.compensation.what}`] : []),
    `      · on abort --rollback: ${def.rollback}`,
  ];
}

function stepLabel(phase: AnyPhaseName, script: string, runsOn: 'node' | 'control-plane'): string {
  return `${phase}/${script}${runsOn === 'control-plane' ? ' (on a healthy control-plane node)' : ''}`;
}

function planText(c: ClusterSpec, o: Options, facts: RenderFacts, resolvedAtDeploy: boolean): string {
  const out: string[] = [];
  out.push(`Plan for cluster ${c.name} (${c.source})`);
  out.push(versionLine(c, facts, resolvedAtDeploy));
  out.push('');
  const stages = deploymentStages(c).filter((s) => stageSelected(s, o));
  const width = Math.max(...stages.map((s) => s.title.length), 10);
  const modeWidth = Math.max(...stages.map((s) => describeMode(s).length), 8);
  stages.forEach((s, i) => {
    const nodes = o.node ? s.nodes.filter((n) => n === o.node) : s.nodes;
    out.push(`${String(i + 1).padStart(2)}. ${s.title.padEnd(width)}  ${describeMode(s).padEnd(modeWidth)}  ${nodes.join(' ')}`.trimEnd());
    const steps = o.phase ? s.steps.filter((st) => st.phase === o.phase) : s.steps;
    for (const st of steps) out.push(`      ${stepLabel(st.phase, st.script, st.runsOn)}`);
    const def = DEPLOY.phases.find((p) => p.id === s.id);
    if (def) out.push(...phaseNotes(def));
  });
  if (!o.phase || o.phase === 'reset') {
    const joins = DEPLOY.phases.filter((p) => p.compensation);
    const undo = joins[0]?.compensation;
    if (undo && !o.node) {
      out.push('');
      out.push(`Compensation of a failed join (${joins.map((p) => p.id).join(', ')}), after its retries, per node, then a reboot:`);
      for (const st of undo.steps) out.push(`      ${stepLabel(st.render as AnyPhaseName, st.script, st.runsOn)}`);
    }
    out.push('');
    out.push('Teardown (kha reset):');
    for (const p of RESET.phases) {
      const nodes = nodesOf(p.nodes, c).map((n) => n.name).filter((n) => !o.node || n === o.node);
      if (!nodes.length) continue;
      out.push(`    ${p.title}  ${describeMode({ mode: p.mode, nodes })}  ${nodes.join(' ')}`);
      for (const st of p.steps) out.push(`      ${stepLabel(st.render as AnyPhaseName, st.script, st.runsOn)}${st.note ? ` (${st.note})` : ''}`);
    }
  }
  return `${out.join('\n')}\n`;
}

function selectedRenders(c: ClusterSpec, o: Options, facts: RenderFacts): PhaseRender[] {
  const nodes = o.node ? [o.node] : c.spec.nodes.map((n) => n.name);
  return nodes.flatMap((n) =>
    phasesForNode(c, n)
      .filter((p) => !o.phase || p === o.phase)
      .map((p) => renderPhase(c, n, p, facts)),
  );
}

function writeOut(dir: string, renders: PhaseRender[], plan: string, dirName: (phase: AnyPhaseName) => string): { scripts: number; files: number } {
  let scripts = 0;
  let files = 0;
  mkdirSync(dir, { recursive: true });
  writeFileSync(join(dir, 'plan.txt'), plan);
  for (const r of renders) {
    const phaseDir = join(dir, r.node, dirName(r.phase));
    mkdirSync(phaseDir, { recursive: true });
    for (const s of r.scripts) {
      const p = join(phaseDir, `${s.name}.sh`);
      writeFileSync(p, s.content);
      chmodSync(p, 0o755);
      scripts++;
    }
    for (const f of r.files) {
      const p = join(phaseDir, 'files', `${f.path.replace(/^\/+/, '')}${f.variant ? `.${f.variant}` : ''}`);
      mkdirSync(dirname(p), { recursive: true });
      writeFileSync(p, f.content);
      // Owner-readable always, so a reviewer can read what a 0600 file on the host will hold.
      chmodSync(p, f.mode | 0o600);
      files++;
    }
  }
  return { scripts, files };
}

function scriptNotes(renders: PhaseRender[]): string[] {
  const notes: string[] = [];
  for (const r of renders) {
    for (const s of r.scripts) {
      if (s.secretEnv.length) notes.push(`${r.node} ${r.phase}/${s.name}: reads ${s.secretEnv.join(', ')} from its environment (never written into the script)`);
      if (s.sensitiveOutput) notes.push(`${r.node} ${r.phase}/${s.name}: its output holds secrets and is never logged`);
    }
  }
  return notes;
}

// ---- any other operation: the phase list its workflow runs --------------------------------------------------

/** A phase of an operation as the plan shows it: the nodes it is for, and the nodes a kha apply may add. */
interface OpPhase {
  def: PhaseDef;
  /** Its position in the operation (the NN of --out). */
  index: number;
  nodes: NodeSpec[];
}

// kha apply's new nodes are known only after discovery: the plan shows every node of the file that could be
// one (the first control-plane node is the member discovery runs on).
const APPLY_CANDIDATES: Partial<Record<NodeSet, (c: ClusterSpec) => NodeSpec[]>> = {
  'new-nodes': (c) => c.spec.nodes.filter((n) => n.name !== firstControlPlane(c).name),
  'new-control-planes': (c) => nodesOf('joining-control-planes', c),
  'new-workers': (c) => nodesOf('workers', c),
};

/** The nodes a phase is for: the removed node for kha remove, the first control-plane node for a cluster-wide phase. */
function opPhaseNodes(p: PhaseDef, c: ClusterSpec, target: NodeSpec | undefined): NodeSpec[] {
  if (p.mode === 'gate') return [];
  if (target) return [target];
  if (p.mode === 'cluster') return [nodesOf(p.nodes, c)[0] ?? firstControlPlane(c)];
  return APPLY_CANDIDATES[p.nodes]?.(c) ?? nodesOf(p.nodes, c);
}

function opPhases(op: Operation, c: ClusterSpec, target: NodeSpec | undefined): OpPhase[] {
  return op.phases
    .map((def, i) => ({ def, index: i + 1, nodes: opPhaseNodes(def, c, target) }))
    .filter((p) => (p.def.mode === 'gate' ? !p.def.when || c.spec.policy[p.def.when] : p.nodes.length > 0));
}

function stepContext(kind: OperationKind, c: ClusterSpec, p: OpPhase, node: NodeSpec, target: NodeSpec | undefined, facts: RenderFacts): StepContext {
  const cps = nodesOf('control-planes', c);
  // A cluster-wide step runs on the node shown; one for a node runs on a healthy control-plane node other than it.
  const via = p.def.mode === 'cluster' && !target ? node : (cps.find((n) => n.name !== node.name) ?? node);
  const drainTimeoutSeconds = kind === 'upgrade' ? DEFAULT_UPGRADE_DRAIN_TIMEOUT_SECONDS : DEFAULT_DRAIN_TIMEOUT_SECONDS;
  return { operation: kind, cluster: c, node, via, facts, drainTimeoutSeconds };
}

function opStepLabel(st: StepRef): string {
  const where = st.runsOn === 'control-plane' ? 'on a healthy control-plane node' : undefined;
  const more = [where, st.note].filter(Boolean).join('; ');
  return `${st.render}/${st.script}${more ? ` (${more})` : ''}`;
}

function operationText(kind: OperationKind, op: Operation, c: ClusterSpec, phases: OpPhase[], o: Options, facts: RenderFacts, resolvedAtDeploy: boolean): string {
  const out = [`Plan for cluster ${c.name} (${c.source}): ${op.title.toLowerCase()} (kha ${kind === 'renew' ? 'certs renew' : kind})`];
  if (kind === 'upgrade') out.push(`Upgrade to the file's version (kha upgrade --to VERSION picks another): ${versionLine(c, facts, resolvedAtDeploy, 'kha upgrade')}`);
  if (kind === 'remove' || kind === 'restore') {
    const S = PLAN_STAND_INS;
    out.push(
      kind === 'remove'
        ? `Stand-ins for what the run learns: etcd member ID ${S.memberId} (the node's), ${S.successorId} (the member that takes over leadership)`
        : `Stand-ins for what the run learns: restore run ${S.restoreTag}, snapshot sha256 ${S.snapshotSha256.slice(0, 8)}…`,
    );
  }
  if (kind === 'apply') out.push('The new nodes are the file\'s nodes the running cluster lacks (discovery finds them); the plan shows every node that could be one.');
  out.push('');
  const width = Math.max(...phases.map((p) => p.def.title.length), 10);
  const modes = phases.map((p) => describeMode({ mode: p.def.mode, nodes: p.nodes.map((n) => n.name), concurrency: concurrencyOf(p.def, c) }));
  const modeWidth = Math.max(...modes.map((m) => m.length), 8);
  phases.forEach((p, i) => {
    const nodes = p.nodes.map((n) => n.name).filter((n) => !o.node || kind === 'remove' || n === o.node);
    out.push(`${String(p.index).padStart(2)}. ${p.def.title.padEnd(width)}  ${modes[i]!.padEnd(modeWidth)}  ${nodes.join(' ')}`.trimEnd());
    for (const st of p.def.steps) out.push(`      ${opStepLabel(st)}`);
    out.push(...phaseNotes(p.def));
    for (const b of op.barriers.filter((x) => x.phase === p.def.id)) out.push(`      · waits for ${b.after} on every node: ${b.why}`);
  });
  return `${out.join('\n')}\n`;
}

/** Every script of the chosen phases for the chosen nodes, as --out writes it (no files: day-2 steps have none). */
function operationRenders(kind: OperationKind, c: ClusterSpec, phases: OpPhase[], o: Options, target: NodeSpec | undefined, facts: RenderFacts): PhaseRender[] {
  const renders: PhaseRender[] = [];
  for (const p of phases) {
    for (const n of p.nodes.filter((x) => !o.node || kind === 'remove' || x.name === o.node)) {
      const x = stepContext(kind, c, p, n, target, facts);
      const scripts = p.def.steps.map((st) => renderStep(st, x)).filter((s): s is Exclude<typeof s, 'ssh'> => s !== 'ssh');
      if (scripts.length) renders.push({ phase: `${String(p.index).padStart(2, '0')}-${p.def.id}` as AnyPhaseName, node: n.name, scripts, files: [] });
    }
  }
  return renders;
}

/** kha plan --operation KIND: exit code. */
function planOperation(o: Options, c: ClusterSpec): number {
  const kind = o.operation;
  const row = operation(kind);
  const target = kind === 'remove' ? c.spec.nodes.find((n) => n.name === o.node) : undefined;
  if (kind === 'remove' && !target) {
    process.stderr.write(`kha plan: --operation remove needs --node NAME, the node to remove (nodes: ${c.spec.nodes.map((n) => n.name).join(', ')})\n`);
    return 2;
  }
  const op = typeof row.phases === 'function' ? row.phases(target!.role) : row.phases;
  let phases = opPhases(op, c, target);
  if (o.phase) {
    if (!phases.some((p) => p.def.id === o.phase)) {
      process.stderr.write(`kha plan: unknown phase "${o.phase}" of ${kind} (phases: ${phases.map((p) => p.def.id).join(', ')})\n`);
      return 2;
    }
    phases = phases.filter((p) => p.def.id === o.phase);
  }
  // As for the deployment: a node's plan leaves the gates out.
  if (o.node && kind !== 'remove') phases = phases.filter((p) => p.def.mode !== 'gate' && p.nodes.some((n) => n.name === o.node));
  const { facts, resolvedAtDeploy } = planFacts(c);
  const plan = operationText(kind, op, c, phases, o, facts, resolvedAtDeploy);
  process.stdout.write(plan);
  if (o.out) writeAndReport(o.out, operationRenders(kind, c, phases, o, target, facts), plan, (phase) => phase);
  return 0;
}

export async function run(argv: string[]): Promise<number> {
  let o: Options | 'help';
  try {
    o = parseArgs(argv);
  } catch (e) {
    if (!(e instanceof UsageError)) throw e;
    process.stderr.write(`kha plan: ${e.message}\n${USAGE}`);
    return 2;
  }
  if (o === 'help') {
    process.stdout.write(USAGE);
    return 0;
  }
  const loaded = loadClusterFile(o.file);
  for (const w of loaded.warnings) process.stderr.write(`${formatWarning(w)}\n`);
  if (!loaded.cluster) {
    for (const e of loaded.errors) process.stderr.write(`${formatIssue(e)}\n`);
    return 2;
  }
  const c = loaded.cluster;
  if (o.node && !c.spec.nodes.some((n) => n.name === o.node)) {
    process.stderr.write(`kha plan: no node named "${o.node}" in ${o.file} (nodes: ${c.spec.nodes.map((n) => n.name).join(', ')})\n`);
    return 2;
  }
  if (o.operation !== 'deploy') return planOperation(o, c);
  if (o.node && o.phase && !phasesForNode(c, o.node).includes(o.phase)) {
    process.stderr.write(`kha plan: phase ${o.phase} does not run on ${o.node} (its phases: ${phasesForNode(c, o.node).join(', ')})\n`);
    return 2;
  }
  const { facts, resolvedAtDeploy } = planFacts(c);
  const plan = planText(c, o, facts, resolvedAtDeploy);
  process.stdout.write(plan);
  if (o.out) writeAndReport(o.out, selectedRenders(c, o, facts), plan, phaseDirName);
  return 0;
}

function writeAndReport(dir: string, renders: PhaseRender[], plan: string, dirName: (phase: AnyPhaseName) => string): void {
  const { scripts, files } = writeOut(dir, renders, plan, dirName);
  const nodes = new Set(renders.map((r) => r.node)).size;
  process.stdout.write(`\nWrote ${scripts} scripts and ${files} files for ${nodes} node${nodes === 1 ? '' : 's'} to ${dir}\n`);
  for (const n of scriptNotes(renders)) process.stdout.write(`  ${n}\n`);
}
