// `kha plan FILE [--node NAME] [--phase NAME] [--out DIR]`: the deployment's stages in order, and
// with --out every script and file each node will get, before any host is contacted.
import { chmodSync, mkdirSync, writeFileSync } from 'node:fs';
import { dirname, join } from 'node:path';
import { formatIssue, formatWarning, loadClusterFile } from '../spec/load';
import type { ClusterSpec } from '../spec/types';
import { firstControlPlane, kubeMinor } from '../spec/types';
import { deploymentStages, describeMode, phaseDirName, phasesForNode, planFacts, PHASE_ORDER, renderPhase } from '../render';
import { DEPLOY } from '../phases/deploy';
import { RESET } from '../phases/reset';
import { nodesOf } from '../phases/select';
import type { Stage } from '../render';
import type { AnyPhaseName, PhaseRender, RenderFacts } from '../render/types';
import { didYouMean } from './suggest';

const USAGE = `usage: kha plan FILE [--node NAME] [--phase NAME] [--out DIR]

Prints the deployment's phases in order with the nodes each runs on, whether they run in
parallel or one at a time, the scripts each runs, how a re-run sees that a step is done, and
what compensation and rollback do; then the teardown (kha reset). With --out, writes every script and file to
DIR/<node>/<NN-phase>/ (scripts as <name>.sh, files under files/ at their host path).
Phases: ${PHASE_ORDER.join(', ')}
`;

interface Options {
  file: string;
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
    if (flag === '--node' || flag === '--phase' || flag === '--out') {
      const v = inline ?? argv[++i];
      if (v === undefined || v === '') throw new UsageError(`${flag} needs a value`);
      if (flag === '--node') o.node = v;
      else if (flag === '--out') o.out = v;
      else {
        if (!(PHASE_ORDER as readonly string[]).includes(v)) throw new UsageError(`unknown phase "${v}" (phases: ${PHASE_ORDER.join(', ')})`);
        o.phase = v as AnyPhaseName;
      }
    } else if (a.startsWith('-')) {
      throw new UsageError(`unknown option "${a}"${didYouMean(flag, ['--node', '--phase', '--out', '--help'])}`);
    } else if (file === undefined) {
      file = a;
    } else {
      throw new UsageError(`one cluster file only (got "${file}" and "${a}")`);
    }
  }
  if (!file) throw new UsageError('no cluster file given');
  return { ...o, file };
}

function versionLine(c: ClusterSpec, facts: RenderFacts, resolvedAtDeploy: boolean): string {
  const v = c.spec.kubernetes.version;
  if (!resolvedAtDeploy) return `Kubernetes ${facts.kubernetesVersion} (packages ${facts.packageVersion})`;
  return (
    `Kubernetes ${v}: this plan uses ${facts.kubernetesVersion} (packages ${facts.packageVersion}); ` +
    `deploy resolves ${kubeMinor(v)} to its newest patch on ${firstControlPlane(c).name} and pins it on every node`
  );
}

function stageSelected(s: Stage, o: Options): boolean {
  if (o.node && s.mode !== 'gate' && !s.nodes.includes(o.node)) return false;
  if (o.phase && s.mode !== 'gate' && !s.steps.some((st) => st.phase === o.phase)) return false;
  if (s.mode === 'gate' && (o.phase || o.node)) return false;
  return true;
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
    if (def) {
      out.push(`      · already done: ${def.check}`);
      if (def.compensation) out.push(`      · after its retries: ${def.compensation.what}`);
      out.push(`      · on abort --rollback: ${def.rollback}`);
    }
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

function writeOut(dir: string, renders: PhaseRender[], plan: string): { scripts: number; files: number } {
  let scripts = 0;
  let files = 0;
  mkdirSync(dir, { recursive: true });
  writeFileSync(join(dir, 'plan.txt'), plan);
  for (const r of renders) {
    const phaseDir = join(dir, r.node, phaseDirName(r.phase));
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
  if (o.node && o.phase && !phasesForNode(c, o.node).includes(o.phase)) {
    process.stderr.write(`kha plan: phase ${o.phase} does not run on ${o.node} (its phases: ${phasesForNode(c, o.node).join(', ')})\n`);
    return 2;
  }
  const { facts, resolvedAtDeploy } = planFacts(c);
  const plan = planText(c, o, facts, resolvedAtDeploy);
  process.stdout.write(plan);
  if (o.out) {
    const renders = selectedRenders(c, o, facts);
    const { scripts, files } = writeOut(o.out, renders, plan);
    const nodes = new Set(renders.map((r) => r.node)).size;
    process.stdout.write(`\nWrote ${scripts} scripts and ${files} files for ${nodes} node${nodes === 1 ? '' : 's'} to ${o.out}\n`);
    for (const n of scriptNotes(renders)) process.stdout.write(`  ${n}\n`);
  }
  return 0;
}
