// A real self-signed CA certificate (minimal DER writer), so the documented
// `openssl x509 -pubkey ... | openssl dgst -sha256` pipeline gives the same hash kubeadm prints.
import * as crypto from 'node:crypto';

function len(n: number): Buffer {
  if (n < 0x80) return Buffer.from([n]);
  const bytes: number[] = [];
  while (n > 0) {
    bytes.unshift(n & 0xff);
    n >>= 8;
  }
  return Buffer.from([0x80 | bytes.length, ...bytes]);
}
const tlv = (tag: number, ...content: Buffer[]) => {
  const c = Buffer.concat(content);
  return Buffer.concat([Buffer.from([tag]), len(c.length), c]);
};
const seq = (...c: Buffer[]) => tlv(0x30, ...c);
const set = (...c: Buffer[]) => tlv(0x31, ...c);
function int(b: Buffer): Buffer {
  return tlv(0x02, b[0]! & 0x80 ? Buffer.concat([Buffer.from([0]), b]) : b);
}
function oid(s: string): Buffer {
  const p = s.split('.').map(Number);
  const out = [40 * p[0]! + p[1]!];
  for (const v of p.slice(2)) {
    const chunk: number[] = [v & 0x7f];
    let x = v >> 7;
    while (x > 0) {
      chunk.unshift((x & 0x7f) | 0x80);
      x >>= 7;
    }
    out.push(...chunk);
  }
  return tlv(0x06, Buffer.from(out));
}
const nul = Buffer.from([0x05, 0x00]);
const utc = (d: Date) => {
  const s = d.toISOString().replace(/[-:T]/g, '').slice(2, 14) + 'Z';
  return tlv(0x17, Buffer.from(s, 'ascii'));
};
const bits = (b: Buffer, unused = 0) => tlv(0x03, Buffer.from([unused]), b);
const name = (cn: string) => seq(set(seq(oid('2.5.4.3'), tlv(0x0c, Buffer.from(cn, 'utf8')))));

export interface CaMaterial {
  certPem: string;
  keyPem: string;
  /** "sha256:<hex>" of the DER SubjectPublicKeyInfo, as kubeadm's --discovery-token-ca-cert-hash. */
  hash: string;
}

export function makeCa(nowMs: number, commonName = 'kubernetes'): CaMaterial {
  const { publicKey, privateKey } = crypto.generateKeyPairSync('rsa', { modulusLength: 2048 });
  const spki = publicKey.export({ type: 'spki', format: 'der' });
  const alg = seq(oid('1.2.840.113549.1.1.11'), nul);
  const keyUsage = seq(oid('2.5.29.15'), tlv(0x01, Buffer.from([0xff])), tlv(0x04, bits(Buffer.from([0xa4]), 2)));
  const basic = seq(oid('2.5.29.19'), tlv(0x01, Buffer.from([0xff])), tlv(0x04, seq(tlv(0x01, Buffer.from([0xff])))));
  const tbs = seq(
    tlv(0xa0, int(Buffer.from([2]))),
    int(crypto.randomBytes(8)),
    alg,
    name(commonName),
    seq(utc(new Date(nowMs - 5 * 60_000)), utc(new Date(nowMs + 10 * 365 * 86_400_000))),
    name(commonName),
    spki,
    tlv(0xa3, seq(keyUsage, basic)),
  );
  const sig = crypto.sign('sha256', tbs, privateKey);
  const der = seq(tbs, alg, bits(sig));
  const b64 = der.toString('base64').replace(/(.{64})/g, '$1\n').replace(/\n$/, '');
  return {
    certPem: `-----BEGIN CERTIFICATE-----\n${b64}\n-----END CERTIFICATE-----\n`,
    keyPem: privateKey.export({ type: 'pkcs1', format: 'pem' }).toString(),
    hash: 'sha256:' + crypto.createHash('sha256').update(spki).digest('hex'),
  };
}

/** The hash of a PEM certificate's public key (what a joining node pins). */
export function caHashOfPem(pem: string): string {
  const spki = new crypto.X509Certificate(pem).publicKey.export({ type: 'spki', format: 'der' });
  return 'sha256:' + crypto.createHash('sha256').update(spki).digest('hex');
}

const ALNUM = 'abcdefghijklmnopqrstuvwxyz0123456789';
function pick(n: number): string {
  const b = crypto.randomBytes(n);
  return [...b].map((x) => ALNUM[x % 36]).join('');
}

export function newToken(): { id: string; secret: string } {
  return { id: pick(6), secret: pick(16) };
}

export function newCertKey(): string {
  return crypto.randomBytes(32).toString('hex');
}

export function newMemberId(): string {
  return crypto.randomBytes(8).toString('hex').replace(/^0/, '8');
}

export const TOKEN_RE = /^([a-z0-9]{6})\.([a-z0-9]{16})$/;
