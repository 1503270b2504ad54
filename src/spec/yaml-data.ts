// The parsed YAML document as plain data, with aliases and merge keys (<<) resolved under one budget.
// The yaml library's own toJS recomputes a merged map at every use (a chain of merges costs quadratic or
// exponential time) and stops alias bombs with an error that carries no position. Here every node is
// converted once, an alias reuses its anchor's value, and each alias or merge adds what it repeats to a
// budget, so the work stays linear in the file plus the budget and a refusal names the alias that broke it.
import { isAlias, isMap, isPair, isScalar, isSeq, type Document, type Node } from 'yaml';

/** Values that aliases and merges may repeat in total; a real cluster file repeats a few thousand at most. */
export const MAX_REPEATED_VALUES = 50_000;
/** Nesting a cluster file never needs (the deepest field is about 8 levels down). */
export const MAX_DEPTH = 64;

export interface DataProblem {
  offset: number;
  message: string;
}

export type DataResult = { data: unknown } | { problem: DataProblem };

class Stop extends Error {
  constructor(readonly problem: DataProblem) {
    super(problem.message);
  }
}

interface Converted {
  value: unknown;
  /** How many values the node stands for once its aliases are expanded. */
  size: number;
}

const MERGE = '<<';

function isMergeKey(key: unknown): boolean {
  if (!isScalar(key)) return false;
  const v = key.value;
  return v === MERGE || (typeof v === 'symbol' && v.description === MERGE);
}

function keyText(key: unknown, value: unknown): string {
  if (isScalar(key)) return typeof key.value === 'symbol' ? String(key.value.description) : String(key.value);
  return JSON.stringify(value);
}

/** Sets an own property, so a key such as __proto__ is data, not a prototype change. */
function define(obj: Record<string, unknown>, key: string, value: unknown): void {
  Object.defineProperty(obj, key, { value, writable: true, enumerable: true, configurable: true });
}

export function documentData(doc: Document): DataResult {
  // Anchors as met in document order: an alias means the last anchor of its name before it.
  const anchors = new Map<string, Node>();
  const done = new Map<Node, Converted>();
  const inProgress = new Set<Node>();
  let repeated = 0;
  const offsetOf = (n: { range?: [number, number, number] | null } | null | undefined): number => n?.range?.[0] ?? 0;

  const spend = (n: number, at: Node, what: string): void => {
    repeated += n;
    if (repeated > MAX_REPEATED_VALUES) {
      throw new Stop({
        offset: offsetOf(at),
        message: `${what} takes the document past ${MAX_REPEATED_VALUES} repeated values; a cluster file needs far fewer (this looks like an alias bomb): write the values out or use fewer aliases`,
      });
    }
  };

  const convert = (node: unknown, depth: number): Converted => {
    if (node === null || node === undefined) return { value: null, size: 1 };
    if (depth > MAX_DEPTH) {
      throw new Stop({ offset: offsetOf(node as Node), message: `nested more than ${MAX_DEPTH} levels deep; a cluster file needs about 8` });
    }
    if (isAlias(node)) {
      const target = anchors.get(node.source);
      if (!target) throw new Stop({ offset: offsetOf(node), message: `alias *${node.source} has no anchor &${node.source} before it` });
      if (inProgress.has(target)) {
        throw new Stop({ offset: offsetOf(node), message: `alias *${node.source} is inside the value it refers to (a loop)` });
      }
      const c = done.get(target)!;
      spend(c.size, node, `alias *${node.source}`);
      return c;
    }
    const n = node as Node;
    if (n.anchor) anchors.set(n.anchor, n);
    inProgress.add(n);
    let out: Converted;
    if (isScalar(n)) {
      out = { value: n.value, size: 1 };
    } else if (isSeq(n)) {
      const arr: unknown[] = [];
      let size = 1;
      for (const it of n.items) {
        const c = convert(it, depth + 1);
        arr.push(c.value);
        size += c.size;
      }
      out = { value: arr, size };
    } else if (isMap(n)) {
      const obj: Record<string, unknown> = {};
      let size = 1;
      const merges: Array<{ at: Node; sources: Array<{ at: Node; c: Converted }> }> = [];
      for (const pair of n.items) {
        if (!isPair(pair)) continue;
        if (isMergeKey(pair.key)) {
          const v = pair.value as Node | null;
          const sources = isSeq(v) && !v.anchor ? v.items.map((it) => ({ at: it as Node, c: convert(it, depth + 2) })) : [{ at: v as Node, c: convert(v, depth + 1) }];
          merges.push({ at: (pair.key as Node), sources });
          continue;
        }
        const k = convert(pair.key, depth + 1);
        const v = convert(pair.value, depth + 1);
        define(obj, keyText(pair.key, k.value), v.value);
        size += k.size + v.size;
      }
      // Keys written in the map win over merged ones; earlier merge sources win over later ones.
      for (const m of merges) {
        for (const s of m.sources) {
          const src = s.c.value;
          if (!src || typeof src !== 'object' || Array.isArray(src)) {
            throw new Stop({ offset: offsetOf(s.at ?? m.at), message: '<< (merge) takes a mapping, an alias of one, or a list of them' });
          }
          const keys = Object.keys(src);
          spend(keys.length, s.at ?? m.at, '<< (merge)');
          for (const key of keys) {
            if (!Object.prototype.hasOwnProperty.call(obj, key)) define(obj, key, (src as Record<string, unknown>)[key]);
          }
          size += s.c.size;
        }
      }
      out = { value: obj, size };
    } else {
      out = { value: null, size: 1 };
    }
    inProgress.delete(n);
    done.set(n, out);
    return out;
  };

  try {
    return { data: convert(doc.contents, 0).value };
  } catch (e) {
    if (e instanceof Stop) return { problem: e.problem };
    throw e;
  }
}
