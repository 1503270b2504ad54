// "Did you mean" for mistyped commands and options (no imports, so light commands stay light).
/** Edits between two names, a swap of neighbours counting as one (the commonest typo). */
function editDistance(a: string, b: string): number {
  const d: number[][] = Array.from({ length: a.length + 1 }, (_, i) => Array.from({ length: b.length + 1 }, (_, j) => (i === 0 ? j : j === 0 ? i : 0)));
  for (let i = 1; i <= a.length; i++) {
    for (let j = 1; j <= b.length; j++) {
      const cost = a[i - 1] === b[j - 1] ? 0 : 1;
      let v = Math.min(d[i - 1]![j]! + 1, d[i]![j - 1]! + 1, d[i - 1]![j - 1]! + cost);
      if (i > 1 && j > 1 && a[i - 1] === b[j - 2] && a[i - 2] === b[j - 1]) v = Math.min(v, d[i - 2]![j - 2]! + 1);
      d[i]![j] = v;
    }
  }
  return d[a.length]![b.length]!;
}

/** The known name nearest to a mistyped one: the only one it starts, or within a third of its length in edits. */
export function nearest(name: string, known: readonly string[]): string | undefined {
  const prefixed = known.filter((k) => name.length > 2 && k.startsWith(name));
  if (prefixed.length === 1) return prefixed[0];
  let best: string | undefined;
  let bestD = Math.max(1, Math.floor(name.replace(/^-+/, '').length / 3)) + 1;
  for (const k of known) {
    const d = editDistance(name, k);
    if (d < bestD) [best, bestD] = [k, d];
  }
  return best;
}

/** " (did you mean --detach?)" for a mistyped name, or "". */
export function didYouMean(name: string, known: readonly string[]): string {
  const n = nearest(name, known);
  return n ? ` (did you mean ${n}?)` : '';
}
