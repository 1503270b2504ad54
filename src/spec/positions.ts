// Maps a field path to a position in the YAML source, so every message points at the line to fix.
import { isAlias, isMap, isPair, isScalar, isSeq, type Document, type LineCounter, type Node, type Pair } from 'yaml';

export interface Position {
  line: number;
  col: number;
}

export type Anchor = 'value' | 'key';

interface Found {
  /** The node the full path leads to, when it exists. */
  node?: Node;
  /** The pair holding the last segment that was found (its key is where a missing child is reported). */
  pair?: Pair;
  /** The deepest node that exists on the way. */
  deepest?: Node;
  exact: boolean;
}

function resolveAlias(doc: Document, n: unknown): Node | undefined {
  let cur = n;
  for (let i = 0; i < 16 && isAlias(cur); i++) cur = cur.resolve(doc);
  return (cur ?? undefined) as Node | undefined;
}

function walk(doc: Document, path: ReadonlyArray<PropertyKey>): Found {
  let cur = resolveAlias(doc, doc.contents);
  let pair: Pair | undefined;
  if (!cur) return { exact: false };
  for (let i = 0; i < path.length; i++) {
    const seg = path[i];
    let next: unknown;
    if (isMap(cur)) {
      const p = cur.items.find((it) => isPair(it) && isScalar(it.key) && String(it.key.value) === String(seg));
      if (!p) return { pair, deepest: cur, exact: false };
      pair = p as Pair;
      next = p.value;
      if (next == null) return { pair, deepest: cur, exact: false };
    } else if (isSeq(cur) && typeof seg === 'number') {
      next = cur.items[seg];
      pair = undefined;
      if (next == null) return { deepest: cur, exact: false };
    } else {
      return { pair, deepest: cur, exact: false };
    }
    cur = resolveAlias(doc, next);
    if (!cur) return { pair, exact: false };
  }
  return { node: cur, pair, deepest: cur, exact: true };
}

function at(lc: LineCounter, offset: number | undefined): Position {
  if (offset === undefined) return { line: 1, col: 1 };
  return lc.linePos(offset);
}

/**
 * Position of a field: its value (or its key when anchor is 'key'); for a field that does not
 * exist, the key of the nearest existing parent.
 */
export function locate(doc: Document, lc: LineCounter, path: ReadonlyArray<PropertyKey>, anchor: Anchor = 'value'): Position {
  const f = walk(doc, path);
  if (f.exact) {
    if (anchor === 'key' && f.pair && isScalar(f.pair.key)) return at(lc, f.pair.key.range?.[0]);
    return at(lc, f.node?.range?.[0]);
  }
  if (f.pair && isScalar(f.pair.key)) return at(lc, f.pair.key.range?.[0]);
  return at(lc, f.deepest?.range?.[0]);
}

/** The text of a plain scalar as written (so 1.30 is reported as 1.30, not as the number 1.3). */
export function sourceText(doc: Document, path: ReadonlyArray<PropertyKey>): string | undefined {
  const f = walk(doc, path);
  if (f.exact && isScalar(f.node) && typeof f.node.source === 'string') return f.node.source;
  return undefined;
}

/** Duplicate keys anywhere in the document, with the path of each repeated key. */
export function duplicateKeys(doc: Document): Array<{ path: PropertyKey[]; key: string; firstOffset: number; offset: number }> {
  const out: Array<{ path: PropertyKey[]; key: string; firstOffset: number; offset: number }> = [];
  const seen = new Set<unknown>();
  const visit = (n: unknown, path: PropertyKey[]): void => {
    if (!n || seen.has(n)) return;
    seen.add(n);
    if (isMap(n)) {
      const first = new Map<string, number>();
      for (const it of n.items) {
        if (!isPair(it) || !isScalar(it.key)) continue;
        const k = String(it.key.value);
        const off = it.key.range?.[0] ?? 0;
        if (first.has(k)) out.push({ path: [...path, k], key: k, firstOffset: first.get(k)!, offset: off });
        else {
          first.set(k, off);
          visit(it.value, [...path, k]);
        }
      }
    } else if (isSeq(n)) {
      n.items.forEach((it, i) => visit(it, [...path, i]));
    }
  };
  visit(doc.contents, []);
  return out;
}
