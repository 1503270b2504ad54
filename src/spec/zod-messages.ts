// Turns zod issues into messages an operator can act on. Messages written in schema.ts
// (`must be ...`) are kept; zod's generic ones are replaced.
import type { z } from 'zod';

/** Marker returned by the parse-level error map, so we can tell zod's defaults from schema messages. */
export const DEFAULT_MESSAGE = '\u0000default';

export interface MappedIssue {
  path: PropertyKey[];
  message: string;
  anchor: 'value' | 'key';
}

type AnyDef = { type: string; shape?: Record<string, unknown>; innerType?: unknown; element?: unknown; valueType?: unknown; options?: unknown[]; in?: unknown };

function defOf(s: unknown): AnyDef | undefined {
  return (s as { _zod?: { def?: AnyDef } } | undefined)?._zod?.def;
}

/** The schema at a path, through defaults, optionals, arrays and records. */
export function schemaAt(schema: unknown, path: ReadonlyArray<PropertyKey>): unknown {
  let cur: unknown = schema;
  const unwrap = (): void => {
    for (let d = defOf(cur); d && (d.type === 'default' || d.type === 'optional' || d.type === 'nullable' || d.type === 'prefault' || d.type === 'pipe'); d = defOf(cur)) {
      cur = d.type === 'pipe' ? d.in : d.innerType;
    }
  };
  unwrap();
  for (const seg of path) {
    const d = defOf(cur);
    if (!d) return undefined;
    if (d.type === 'object' && d.shape) cur = d.shape[String(seg)];
    else if (d.type === 'array') cur = d.element;
    else if (d.type === 'record') cur = d.valueType;
    else return undefined;
    unwrap();
  }
  return cur;
}

export function objectKeysAt(schema: unknown, path: ReadonlyArray<PropertyKey>): string[] {
  const d = defOf(schemaAt(schema, path));
  return d?.type === 'object' && d.shape ? Object.keys(d.shape) : [];
}

/** What a string field must look like, as its schema says it ("must be an IPv4 address ..."). */
function stringRule(schema: unknown, path: ReadonlyArray<PropertyKey>): string | undefined {
  const s = schemaAt(schema, path) as { safeParse?: (v: unknown, o: object) => { success: boolean; error?: { issues: Array<{ message: string }> } } } | undefined;
  const r = s?.safeParse?.('\u0001', { error: () => DEFAULT_MESSAGE });
  const msg = r && !r.success ? r.error?.issues[0]?.message : undefined;
  return msg && msg !== DEFAULT_MESSAGE ? msg : undefined;
}

export function editDistance(a: string, b: string): number {
  const prev = Array.from({ length: b.length + 1 }, (_, j) => j);
  for (let i = 1; i <= a.length; i++) {
    let diag = prev[0]!;
    prev[0] = i;
    for (let j = 1; j <= b.length; j++) {
      const tmp = prev[j]!;
      prev[j] = Math.min(prev[j]! + 1, prev[j - 1]! + 1, diag + (a[i - 1] === b[j - 1] ? 0 : 1));
      diag = tmp;
    }
  }
  return prev[b.length]!;
}

/** The closest candidate when it is close enough to be a typo. */
export function didYouMean(word: string, candidates: readonly string[]): string | undefined {
  let best: string | undefined;
  let bestD = Infinity;
  for (const c of candidates) {
    const d = c.toLowerCase() === word.toLowerCase() ? 0 : editDistance(word, c);
    if (d < bestD) {
      best = c;
      bestD = d;
    }
  }
  const limit = Math.max(2, Math.floor(word.length / 3));
  return best !== undefined && bestD <= limit ? best : undefined;
}

/** How a YAML value reads to a person. */
export function describeValue(v: unknown, source?: string): string {
  if (v === null) return 'an empty value';
  if (Array.isArray(v)) return 'a list';
  if (typeof v === 'object') return 'a mapping';
  if (typeof v === 'string') return JSON.stringify(v.length > 60 ? `${v.slice(0, 57)}...` : v);
  if (typeof v === 'number') return `the number ${source ?? String(v)}`;
  return String(v);
}

const typeWords: Record<string, string> = {
  string: 'a string',
  number: 'a number',
  int: 'a whole number',
  boolean: 'true or false',
  object: 'a mapping of fields (key: value)',
  array: 'a list',
  record: 'a mapping',
};

function quoteList(values: readonly unknown[]): string {
  return values.map((v) => (typeof v === 'string' ? `"${v}"` : String(v))).join(', ');
}

type Issue = z.core.$ZodIssue & { input?: unknown };

/**
 * Drops "required field is missing" where an unknown field in the same object was guessed to be
 * that field: the typo is the one thing to fix.
 */
export function dropExplainedMissing(issues: MappedIssue[]): MappedIssue[] {
  const guessed = new Set<string>();
  for (const i of issues) {
    const m = /\(did you mean "([^"]+)"\?\)$/.exec(i.message);
    if (i.anchor === 'key' && m) guessed.add(JSON.stringify([...i.path.slice(0, -1), m[1]]));
  }
  return issues.filter((i) => !(i.message === 'required field is missing' && guessed.has(JSON.stringify(i.path))));
}

/**
 * One message per issue (an unknown-keys issue becomes one message per key).
 * `source` gives the text of a scalar as written in the file.
 */
export function mapZodIssue(issue: Issue, schema: unknown, source: (path: PropertyKey[]) => string | undefined): MappedIssue[] {
  const path = issue.path as PropertyKey[];
  const custom = issue.message !== DEFAULT_MESSAGE ? issue.message : undefined;
  const got = (): string => describeValue(issue.input, source(path));
  // zod reports a missing enum or literal as a bad value; for a person it is a missing field.
  if (issue.input === undefined && issue.code !== 'unrecognized_keys' && issue.code !== 'invalid_key') {
    return [{ path, message: 'required field is missing', anchor: 'value' }];
  }
  if (issue.input === null && (issue.code === 'invalid_type' || issue.code === 'invalid_value')) {
    const rule = issue.code === 'invalid_type' && issue.expected === 'string' ? stringRule(schema, path) : undefined;
    if (rule) return [{ path, message: `has no value; it ${rule}`, anchor: 'value' }];
    const want = issue.code === 'invalid_type' ? typeWords[issue.expected] ?? issue.expected : `one of ${quoteList(issue.values)}`;
    return [{ path, message: `has no value; expected ${want}`, anchor: 'value' }];
  }
  switch (issue.code) {
    case 'unrecognized_keys': {
      const known = objectKeysAt(schema, path);
      return issue.keys.map((k) => {
        const guess = didYouMean(k, known);
        const hint = guess ? ` (did you mean "${guess}"?)` : known.length ? `; allowed fields here: ${known.join(', ')}` : '';
        return { path: [...path, k], message: `unknown field "${k}"${hint}`, anchor: 'key' as const };
      });
    }
    case 'invalid_type': {
      const want = typeWords[issue.expected] ?? issue.expected;
      if (issue.expected === 'string' && (typeof issue.input === 'number' || typeof issue.input === 'boolean')) {
        const text = source(path) ?? String(issue.input);
        return [{ path, message: `must be a string, got ${got()}: put it in quotes, "${text}"`, anchor: 'value' }];
      }
      if (issue.expected === 'int' && typeof issue.input === 'number') {
        return [{ path, message: `must be a whole number (got ${issue.input})`, anchor: 'value' }];
      }
      if ((issue.expected === 'number' || issue.expected === 'int') && typeof issue.input === 'string' && /^-?\d+(\.\d+)?$/.test(issue.input)) {
        return [{ path, message: `must be a number, not a string: write ${issue.input} without quotes`, anchor: 'value' }];
      }
      if (issue.expected === 'boolean' && typeof issue.input === 'string' && /^(true|false)$/i.test(issue.input)) {
        return [{ path, message: `must be true or false, not a string: write ${issue.input.toLowerCase()} without quotes`, anchor: 'value' }];
      }
      return [{ path, message: `must be ${want} (got ${got()})`, anchor: 'value' }];
    }
    case 'invalid_value': {
      if (custom) return [{ path, message: `${custom} (got ${got()})`, anchor: 'value' }];
      const guess = typeof issue.input === 'string' ? didYouMean(issue.input, issue.values.map(String)) : undefined;
      const one = issue.values.length === 1;
      const msg = `must be ${one ? '' : 'one of '}${quoteList(issue.values)} (got ${got()})${guess ? `; did you mean "${guess}"?` : ''}`;
      return [{ path, message: msg, anchor: 'value' }];
    }
    case 'invalid_format':
      return [{ path, message: `${custom ?? `must match ${issue.pattern ?? issue.format}`} (got ${got()})`, anchor: 'value' }];
    case 'too_small':
    case 'too_big': {
      if (custom) return [{ path, message: custom, anchor: 'value' }];
      const bound = issue.code === 'too_small' ? issue.minimum : issue.maximum;
      const word = issue.code === 'too_small' ? 'at least' : 'at most';
      if (issue.origin === 'array') {
        return [{ path, message: `must have ${word} ${String(bound)} entr${Number(bound) === 1 ? 'y' : 'ies'}`, anchor: 'value' }];
      }
      if (issue.origin === 'string') {
        return [{ path, message: `must be ${word} ${String(bound)} characters long`, anchor: 'value' }];
      }
      return [{ path, message: `must be ${word} ${String(bound)} (got ${String(issue.input)})`, anchor: 'value' }];
    }
    case 'invalid_key': {
      const inner = issue.issues.map((i) => (i.message !== DEFAULT_MESSAGE ? i.message : 'is not allowed')).join('; ');
      const key = String(path[path.length - 1]);
      return [{ path, message: `invalid key ${JSON.stringify(key)}: ${inner}`, anchor: 'key' }];
    }
    case 'invalid_union':
      return [{ path, message: custom ?? `does not match any allowed form (got ${got()})`, anchor: 'value' }];
    default:
      return [{ path, message: custom ?? `is not valid (got ${got()})`, anchor: 'value' }];
  }
}
