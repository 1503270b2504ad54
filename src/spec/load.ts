// Loads a cluster file: YAML with positions, the zod schema, cross-field checks, normalisation.
// Every problem is collected and reported at once, sorted by line.
import { closeSync, openSync, readSync, statSync } from 'node:fs';
import { LineCounter, parseDocument } from 'yaml';
import { ClusterFile } from './schema';
import type { ClusterSpec } from './types';
import { crossFieldChecks, normalise } from './checks';
import { duplicateKeys, locate, sourceText } from './positions';
import { fieldPath, sortIssues, SpecError, type SpecIssue } from './issues';
import { DEFAULT_MESSAGE, dropExplainedMissing, mapZodIssue } from './zod-messages';
import { documentData } from './yaml-data';

export { formatIssue, formatWarning, SpecError, type SpecIssue } from './issues';

export interface LoadResult {
  /** Present only when there are no errors. */
  cluster?: ClusterSpec;
  errors: SpecIssue[];
  warnings: SpecIssue[];
}

/** Cluster files are small (500 nodes take about 80 KiB); anything larger is the wrong file, and parsing it would be slow. */
export const MAX_BYTES = 256 * 1024;

const yamlMessages: Record<string, string> = {
  MULTIPLE_DOCS: 'the file holds several YAML documents (---); a cluster file is one document',
  BLOCK_AS_IMPLICIT_KEY:
    'YAML reads this value as a nested key because it holds ": " or ends with ":"; put the value in quotes, or fix the indentation',
  TAB_AS_INDENT: 'tabs are not allowed as indentation in YAML; indent with spaces',
};

/**
 * An unclosed quote runs to the end of the file, where YAML reports it; the opening quote is the
 * last one before that point, which is where the fix goes.
 */
function unclosedQuote(text: string, end: number, message: string): { offset: number; message: string } | undefined {
  const quote = /"quote/.test(message) ? '"' : /'quote/.test(message) ? "'" : undefined;
  if (!quote) return undefined;
  for (let i = Math.min(end, text.length) - 1; i >= 0; i--) {
    if (text[i] === quote && !(quote === '"' && text[i - 1] === '\\')) {
      return { offset: i, message: `this ${quote === '"' ? 'double' : 'single'} quote is never closed; add the closing ${quote}` };
    }
  }
  return undefined;
}

export function loadClusterText(text: string, source: string): LoadResult {
  const errors: SpecIssue[] = [];
  const warnings: SpecIssue[] = [];
  const lc = new LineCounter();
  // Duplicate keys are found by our own walk, which knows the field path of each.
  // Merge keys (<<: *anchor) let nodes share settings, as operators write them in other tools.
  const doc = parseDocument(text, { lineCounter: lc, uniqueKeys: false, prettyErrors: false, merge: true });
  const issue = (line: number, col: number, field: string, message: string): SpecIssue => ({ file: source, line, col, field, message });

  for (const e of doc.errors) {
    const q = e.code === 'MISSING_CHAR' ? unclosedQuote(text, e.pos[0], e.message) : undefined;
    const p = lc.linePos(q ? q.offset : e.pos[0]);
    errors.push(issue(p.line, p.col, '(yaml)', q ? q.message : yamlMessages[e.code] ?? e.message));
  }
  for (const w of doc.warnings) {
    const p = lc.linePos(w.pos[0]);
    warnings.push(issue(p.line, p.col, '(yaml)', w.message));
  }
  if (errors.length) return { errors: sortIssues(errors), warnings: sortIssues(warnings) };

  for (const d of duplicateKeys(doc)) {
    const p = lc.linePos(d.offset);
    const first = lc.linePos(d.firstOffset).line;
    errors.push(issue(p.line, p.col, fieldPath(d.path), `duplicate key "${d.key}" (first given on line ${first}); keep one`));
  }

  const converted = documentData(doc);
  if ('problem' in converted) {
    const p = lc.linePos(converted.problem.offset);
    errors.push(issue(p.line, p.col, '(yaml)', converted.problem.message));
    return { errors: sortIssues(errors), warnings: sortIssues(warnings) };
  }
  const data = converted.data;
  if (data === null || data === undefined) {
    errors.push(issue(1, 1, '(document)', `the file is empty: a cluster file starts with apiVersion, kind, metadata and spec`));
    return { errors, warnings };
  }

  const at = (path: PropertyKey[], anchor: 'value' | 'key') => locate(doc, lc, path, anchor);
  const parsed = ClusterFile.safeParse(data, { reportInput: true, error: () => DEFAULT_MESSAGE });
  if (!parsed.success) {
    const mapped = parsed.error.issues.flatMap((zi) => mapZodIssue(zi, ClusterFile, (p) => sourceText(doc, p)));
    for (const m of dropExplainedMissing(mapped)) {
      const p = at(m.path, m.anchor);
      errors.push(issue(p.line, p.col, fieldPath(m.path), m.message));
    }
    return { errors: sortIssues(errors), warnings: sortIssues(warnings) };
  }

  for (const f of crossFieldChecks(parsed.data)) {
    const p = at(f.path, f.anchor);
    (f.severity === 'error' ? errors : warnings).push(issue(p.line, p.col, fieldPath(f.path), f.message));
  }
  if (errors.length) return { errors: sortIssues(errors), warnings: sortIssues(warnings) };
  const file = normalise(parsed.data);
  return { cluster: { name: file.metadata.name, source, spec: file.spec }, errors: [], warnings: sortIssues(warnings) };
}

function readError(path: string, err: unknown): SpecIssue {
  const code = (err as NodeJS.ErrnoException).code;
  const why =
    code === 'ENOENT' ? 'no such file' :
    code === 'EACCES' || code === 'EPERM' ? 'permission denied: cannot read the file' :
    code === 'EISDIR' ? 'is a directory, not a cluster file' :
    `cannot read the file: ${(err as Error).message}`;
  return { file: path, line: 0, col: 0, field: '(file)', message: why };
}

/** At most MAX_BYTES + 1 bytes: devices and pipes (/dev/zero) have no size to check beforehand. */
function readBounded(path: string): Buffer {
  const fd = openSync(path, 'r');
  try {
    const buf = Buffer.alloc(MAX_BYTES + 1);
    let n = 0;
    while (n < buf.length) {
      const got = readSync(fd, buf, n, buf.length - n, null);
      if (got === 0) break;
      n += got;
    }
    return buf.subarray(0, n);
  } finally {
    closeSync(fd);
  }
}

export function loadClusterFile(path: string): LoadResult {
  let bytes: Buffer;
  try {
    const st = statSync(path);
    if (st.isDirectory()) return { errors: [readError(path, Object.assign(new Error('directory'), { code: 'EISDIR' }))], warnings: [] };
    bytes = readBounded(path);
  } catch (err) {
    return { errors: [readError(path, err)], warnings: [] };
  }
  const nul = bytes.indexOf(0);
  if (nul >= 0) {
    const before = bytes.subarray(0, nul).toString('utf8').split('\n');
    const message = 'holds a NUL byte: this is not a text file';
    return { errors: [{ file: path, line: before.length, col: before[before.length - 1]!.length + 1, field: '(file)', message }], warnings: [] };
  }
  if (bytes.length > MAX_BYTES) {
    // Point at where the limit is crossed, so the message has a position like every other.
    const head = bytes.subarray(0, MAX_BYTES).toString('latin1');
    const lines = head.split('\n');
    const col = lines[lines.length - 1]!.length + 1;
    const message = `the file goes on past ${MAX_BYTES} bytes; a cluster file is much smaller (is this the right file?)`;
    return { errors: [{ file: path, line: lines.length, col, field: '(file)', message }], warnings: [] };
  }
  return loadClusterText(bytes.toString('utf8'), path);
}

/** For modules that need a valid cluster or nothing: throws SpecError with every error. */
export function loadClusterOrThrow(path: string): ClusterSpec {
  const r = loadClusterFile(path);
  if (!r.cluster) throw new SpecError(r.errors, r.warnings);
  return r.cluster;
}
