// Issues found in a cluster file, and how they are printed: `file:line:col: field: message`.

export interface SpecIssue {
  file: string;
  /** 1-based; 0 when the issue concerns the whole file (it could not be read). */
  line: number;
  /** 1-based; 0 with line 0. */
  col: number;
  /** Path of the field, such as spec.nodes[2].address; "(yaml)" for syntax errors, "(file)" for read errors. */
  field: string;
  message: string;
}

export function formatIssue(i: SpecIssue): string {
  const where = i.line > 0 ? `${i.file}:${i.line}:${i.col}` : i.file;
  return `${where}: ${i.field}: ${i.message}`;
}

export function formatWarning(i: SpecIssue): string {
  return formatIssue({ ...i, message: `warning: ${i.message}` });
}

export function sortIssues(issues: SpecIssue[]): SpecIssue[] {
  // Array.prototype.sort is stable, so issues on one position keep the order they were found in.
  return [...issues].sort((a, b) => a.line - b.line || a.col - b.col);
}

/** Thrown by loadClusterOrThrow; carries every error so callers can print them all. */
export class SpecError extends Error {
  readonly issues: SpecIssue[];
  readonly warnings: SpecIssue[];
  constructor(issues: SpecIssue[], warnings: SpecIssue[] = []) {
    super(issues.map(formatIssue).join('\n'));
    this.name = 'SpecError';
    this.issues = issues;
    this.warnings = warnings;
  }
}

/** spec.nodes[2].labels["node-role.kubernetes.io/infra"] from ['spec','nodes',2,'labels','node-role...']. */
export function fieldPath(path: ReadonlyArray<PropertyKey>): string {
  let out = '';
  for (const seg of path) {
    if (typeof seg === 'number') out += `[${seg}]`;
    else if (typeof seg === 'string' && /^[A-Za-z_][A-Za-z0-9_]*$/.test(seg)) out += out ? `.${seg}` : seg;
    else out += `[${JSON.stringify(String(seg))}]`;
  }
  return out || '(document)';
}
