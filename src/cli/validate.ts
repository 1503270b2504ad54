// `kha validate FILE...`: check cluster files without contacting any host.
import { formatIssue, formatWarning, loadClusterFile } from '../spec/load';
import { controlPlaneNodes, workerNodes, type ClusterSpec } from '../spec/types';

const USAGE = 'usage: kha validate FILE...\n\nChecks cluster files; prints every problem as file:line:col: field: message.\nExit status: 0 valid, 2 invalid.\n';

export function summary(c: ClusterSpec): string {
  const cp = controlPlaneNodes(c).length;
  const w = workerNodes(c).length;
  return `cluster ${c.name}, Kubernetes ${c.spec.kubernetes.version}, ${cp} control-plane + ${w} worker node${w === 1 ? '' : 's'}`;
}

export async function run(argv: string[]): Promise<number> {
  if (argv.includes('-h') || argv.includes('--help')) {
    process.stdout.write(USAGE);
    return 0;
  }
  const dashdash = argv.indexOf('--');
  const before = dashdash < 0 ? argv : argv.slice(0, dashdash);
  const files = dashdash < 0 ? argv : [...before, ...argv.slice(dashdash + 1)];
  const option = before.find((a) => a.startsWith('-'));
  if (option) {
    process.stderr.write(`kha validate: unknown option "${option}"\n${USAGE}`);
    return 2;
  }
  if (!files.length) {
    process.stderr.write(USAGE);
    return 2;
  }
  let ok = true;
  for (const file of files) {
    const r = loadClusterFile(file);
    // One list in file order, errors and warnings interleaved as a compiler prints them.
    const all = [...r.errors.map((i) => ({ i, text: formatIssue(i) })), ...r.warnings.map((i) => ({ i, text: formatWarning(i) }))];
    const lines = all.sort((a, b) => a.i.line - b.i.line || a.i.col - b.i.col).map((x) => x.text);
    if (lines.length) process.stderr.write(`${lines.join('\n')}\n`);
    if (r.cluster) process.stdout.write(`${file}: valid: ${summary(r.cluster)}\n`);
    else ok = false;
  }
  return ok ? 0 : 2;
}
