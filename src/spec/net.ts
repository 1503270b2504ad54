// IPv4 arithmetic for the cross-field checks (overlaps, containment). Inputs are already
// pattern-checked by the schema, so parsing here only has to be correct, not forgiving.

export interface Cidr {
  text: string;
  base: number; // network address as an unsigned 32-bit number
  prefix: number;
}

export function ipToInt(ip: string): number {
  const p = ip.split('.').map(Number);
  return (((p[0]! << 24) >>> 0) + (p[1]! << 16) + (p[2]! << 8) + p[3]!) >>> 0;
}

export function intToIp(n: number): string {
  return [n >>> 24, (n >>> 16) & 255, (n >>> 8) & 255, n & 255].join('.');
}

function maskOf(prefix: number): number {
  return prefix === 0 ? 0 : (0xffffffff << (32 - prefix)) >>> 0;
}

export function parseCidr(text: string): Cidr & { hostBitsSet: boolean } {
  const [ip, len] = text.split('/');
  const prefix = Number(len);
  const addr = ipToInt(ip!);
  const base = (addr & maskOf(prefix)) >>> 0;
  return { text, base, prefix, hostBitsSet: base !== addr };
}

/** The canonical form of a CIDR (host bits cleared). */
export function canonicalCidr(c: Cidr): string {
  return `${intToIp(c.base)}/${c.prefix}`;
}

export function cidrContains(c: Cidr, ip: string): boolean {
  return ((ipToInt(ip) & maskOf(c.prefix)) >>> 0) === c.base;
}

export function cidrsOverlap(a: Cidr, b: Cidr): boolean {
  const p = Math.min(a.prefix, b.prefix);
  const m = maskOf(p);
  return ((a.base & m) >>> 0) === ((b.base & m) >>> 0);
}

export function isIpv4(s: string): boolean {
  return /^(25[0-5]|2[0-4]\d|1\d\d|[1-9]?\d)(\.(25[0-5]|2[0-4]\d|1\d\d|[1-9]?\d)){3}$/.test(s);
}

const UNUSABLE: Array<[Cidr, string]> = [
  [parseCidr('0.0.0.0/8'), 'is in 0.0.0.0/8 ("this network"), which no host can be reached at'],
  [parseCidr('127.0.0.0/8'), 'is a loopback address: it would reach the worker itself, not a node'],
  [parseCidr('224.0.0.0/4'), 'is a multicast address, not the address of one host'],
  [parseCidr('240.0.0.0/4'), 'is in 240.0.0.0/4 (reserved, and 255.255.255.255 is the broadcast address), not the address of one host'],
];

/** Why an IPv4 address cannot be a node's or the VIP's, or undefined when it can. */
export function unusableAddress(ip: string): string | undefined {
  for (const [c, why] of UNUSABLE) if (cidrContains(c, ip)) return why;
  return undefined;
}
