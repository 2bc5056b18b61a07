/**
 * Small seeded PRNGs for the ground-truth generator, never the global random source: the same
 * seed must give byte-identical files on every machine and Node version, so everything here is
 * 32-bit integer arithmetic (`Math.imul`, `>>>`), which JavaScript defines exactly.
 */

/** One round of the splitmix32 finaliser: a bijection on 32-bit integers with good avalanche. */
export function mix32(value: number): number {
  let z = (value + 0x9e3779b9) | 0;
  z = Math.imul(z ^ (z >>> 16), 0x85ebca6b);
  z = Math.imul(z ^ (z >>> 13), 0xc2b2ae35);
  return (z ^ (z >>> 16)) >>> 0;
}

/** Derives an independent 32-bit seed from a root seed and a path of integers (e.g. person index). */
export function deriveSeed(seed: number, ...parts: number[]): number {
  let h = mix32(seed >>> 0);
  for (const part of parts) h = mix32((h ^ (part >>> 0)) >>> 0);
  return h;
}

/**
 * Invertible scramble of a 32-bit integer (xorshift-multiply steps are each bijective), keyed by
 * `key`. Distinct inputs give distinct outputs, which the generator uses to make identifiers that
 * look random but are unique by construction.
 */
export function scramble32(value: number, key: number): number {
  let z = (value ^ key) >>> 0;
  z = Math.imul(z ^ (z >>> 16), 0x7feb352d) >>> 0;
  z = Math.imul(z ^ (z >>> 15), 0x846ca68b) >>> 0;
  return (z ^ (z >>> 16)) >>> 0;
}

/**
 * `(index * multiplier + offset) mod modulus`: a bijection on [0, modulus) when the multiplier is
 * coprime with the modulus. Used for numeric identifiers of a fixed width (phones, client ids).
 * Exact for modulus * multiplier < 2^53.
 */
export function affine(index: number, multiplier: number, offset: number, modulus: number): number {
  return (index * multiplier + offset) % modulus;
}

/** Parses a CLI seed: an integer is used as is (mod 2^32); any other text is hashed with FNV-1a. */
export function seedFromString(text: string): number {
  const trimmed = text.trim();
  if (/^-?\d+$/.test(trimmed)) return Number(BigInt.asUintN(32, BigInt(trimmed)));
  let h = 0x811c9dc5;
  for (let i = 0; i < trimmed.length; i++) {
    h ^= trimmed.charCodeAt(i);
    h = Math.imul(h, 0x01000193);
  }
  return h >>> 0;
}

/** mulberry32: 32 bits of state, period 2^32, fast, and plenty for synthetic data. */
export class Rng {
  private state: number;

  constructor(seed: number) {
    this.state = seed >>> 0;
  }

  u32(): number {
    this.state = (this.state + 0x6d2b79f5) | 0;
    let t = this.state;
    t = Math.imul(t ^ (t >>> 15), t | 1);
    t ^= t + Math.imul(t ^ (t >>> 7), t | 61);
    return (t ^ (t >>> 14)) >>> 0;
  }

  /** Uniform in [0, 1). */
  next(): number {
    return this.u32() / 4294967296;
  }

  /** Uniform integer in [min, max], both inclusive. */
  int(min: number, max: number): number {
    return min + Math.floor(this.next() * (max - min + 1));
  }

  chance(p: number): boolean {
    return this.next() < p;
  }

  pick<T>(items: readonly T[]): T {
    return items[Math.floor(this.next() * items.length)]!;
  }

  /** Picks by weight; `choices` is a list of `[value, weight]`. */
  weighted<T>(choices: readonly (readonly [T, number])[]): T {
    let total = 0;
    for (const [, w] of choices) total += w;
    let r = this.next() * total;
    for (const [value, w] of choices) {
      r -= w;
      if (r < 0) return value;
    }
    return choices[choices.length - 1]![0];
  }

  /** Geometric count >= `min` with the given mean (mean > min). */
  count(mean: number, min = 0, max = Number.MAX_SAFE_INTEGER): number {
    const p = 1 / (mean - min + 1);
    let n = min;
    while (n < max && !this.chance(p)) n++;
    return n;
  }

  /** `length` characters drawn from `alphabet`. */
  chars(alphabet: string, length: number): string {
    let out = '';
    for (let i = 0; i < length; i++) out += alphabet[Math.floor(this.next() * alphabet.length)];
    return out;
  }
}

export const HEX = '0123456789abcdef';
export const BASE62 = '0123456789ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz';

/** Fixed-width encoding of a non-negative integer < alphabet.length ** width. */
export function encodeFixed(value: number, alphabet: string, width: number): string {
  let out = '';
  let v = value;
  for (let i = 0; i < width; i++) {
    out = alphabet[v % alphabet.length] + out;
    v = Math.floor(v / alphabet.length);
  }
  return out;
}
