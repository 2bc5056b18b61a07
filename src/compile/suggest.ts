/** Closest candidates by edit distance, for "did you mean" hints. */
export function closestNames(name: string, candidates: Iterable<string>, max = 3): string[] {
  const limit = Math.max(2, Math.floor(name.length / 3));
  return [...candidates]
    .map((candidate) => ({ candidate, distance: editDistance(name.toLowerCase(), candidate.toLowerCase()) }))
    .filter((c) => c.distance <= limit || c.candidate.includes(name) || name.includes(c.candidate))
    .sort((a, b) => a.distance - b.distance || a.candidate.localeCompare(b.candidate))
    .slice(0, max)
    .map((c) => c.candidate);
}

export function didYouMean(name: string, candidates: Iterable<string>): string {
  const close = closestNames(name, candidates);
  return close.length > 0 ? `Did you mean ${close.map((c) => `\`${c}\``).join(', ')}?` : '';
}

/** Levenshtein distance with two rows: O(n·m) time, O(m) memory. */
export function editDistance(a: string, b: string): number {
  let previous = Array.from({ length: b.length + 1 }, (_, j) => j);
  for (let i = 1; i <= a.length; i++) {
    const current = [i];
    for (let j = 1; j <= b.length; j++) {
      current[j] = Math.min(previous[j]! + 1, current[j - 1]! + 1, previous[j - 1]! + (a[i - 1] === b[j - 1] ? 0 : 1));
    }
    previous = current;
  }
  return previous[b.length]!;
}
