// Host key verification: OpenSSH known_hosts files (plain and hashed entries, [host]:port forms,
// wildcards and negation, @revoked), pinned SHA256 fingerprints, and accept-new (record the first key,
// refuse a changed one). Nothing here ever accepts an unknown or changed key without saying so.
import { createHash, createHmac } from 'node:crypto';
import * as fs from 'node:fs';
import * as os from 'node:os';
import * as path from 'node:path';
import { HostKeyMismatchError, HostKeyUnknownError, SshError } from './errors';
import { expandHome } from './paths';

export type HostKeyPolicy = 'known-hosts-file' | 'pinned' | 'accept-new';

export interface HostKeyCheck {
  /** The node the connection is for: the `host` of every error. */
  host: string;
  /** How messages describe the machine whose key is checked (default: "<host> (<address>)"). */
  who?: string;
  address: string;
  port: number;
  /** Extra names a known_hosts entry may use for this host (e.g. the node name). */
  aliases?: string[];
  policy: HostKeyPolicy;
  file?: string;
  fingerprints?: string[];
  /** accept-new only: false accepts an unknown key for this connection without recording it (kha doctor). */
  record?: boolean;
}

/** SHA256 fingerprint of a public key blob in OpenSSH's form: `SHA256:` + unpadded base64. */
export function fingerprint(keyBlob: Buffer): string {
  return 'SHA256:' + createHash('sha256').update(keyBlob).digest('base64').replace(/=+$/, '');
}

/** The key type named inside an SSH public key blob (e.g. ssh-ed25519). */
export function keyTypeOf(keyBlob: Buffer): string {
  if (keyBlob.length < 4) return 'unknown';
  const len = keyBlob.readUInt32BE(0);
  return keyBlob.subarray(4, 4 + len).toString('latin1');
}

export function defaultKnownHostsFile(policy: HostKeyPolicy): string {
  return policy === 'known-hosts-file'
    ? path.join(os.homedir(), '.ssh', 'known_hosts')
    : path.join(os.homedir(), '.config', 'kha', 'known_hosts');
}

/** The name known_hosts uses for a host: `addr` on port 22, `[addr]:port` otherwise. */
export function knownHostsName(address: string, port: number): string {
  return port === 22 ? address : `[${address}]:${port}`;
}

interface KnownHostsEntry {
  marker?: '@revoked' | '@cert-authority';
  hosts: string;
  keyType: string;
  key: Buffer;
  line: number;
}

export function parseKnownHosts(text: string): KnownHostsEntry[] {
  const out: KnownHostsEntry[] = [];
  text.split('\n').forEach((raw, i) => {
    const line = raw.trim();
    if (!line || line.startsWith('#')) return;
    const fields = line.split(/\s+/);
    let marker: KnownHostsEntry['marker'];
    if (fields[0] === '@revoked' || fields[0] === '@cert-authority') marker = fields.shift() as KnownHostsEntry['marker'];
    const [hosts, keyType, b64] = fields;
    if (!hosts || !keyType || !b64 || !/^[A-Za-z0-9+/]+=*$/.test(b64)) return;
    out.push({ marker, hosts, keyType, key: Buffer.from(b64, 'base64'), line: i + 1 });
  });
  return out;
}

function globToRegExp(glob: string): RegExp {
  const body = glob.replace(/[.+^${}()|[\]\\]/g, '\\$&').replace(/\*/g, '.*').replace(/\?/g, '.');
  return new RegExp(`^${body}$`, 'i');
}

function hashedMatches(field: string, name: string): boolean {
  const parts = field.split('|'); // ['', '1', salt, hash]
  if (parts.length !== 4 || parts[1] !== '1') return false;
  const salt = Buffer.from(parts[2] ?? '', 'base64');
  const want = parts[3] ?? '';
  return createHmac('sha1', salt).update(name).digest('base64') === want;
}

/** Whether a known_hosts host field (patterns or one hashed name) covers one of the names. */
export function hostFieldMatches(field: string, names: string[]): boolean {
  if (field.startsWith('|')) return names.some((n) => hashedMatches(field, n));
  let positive = false;
  for (const pattern of field.split(',')) {
    if (!pattern) continue;
    const negated = pattern.startsWith('!');
    const re = globToRegExp(negated ? pattern.slice(1) : pattern);
    if (names.some((n) => re.test(n))) {
      if (negated) return false;
      positive = true;
    }
  }
  return positive;
}

/** Host key algorithms a recorded key type can be negotiated with. */
function algorithmsFor(keyType: string): string[] {
  return keyType === 'ssh-rsa' ? ['rsa-sha2-512', 'rsa-sha2-256', 'ssh-rsa'] : [keyType];
}

export interface PreparedHostKeyCheck {
  /** For ssh2's hostVerifier option. */
  verify: (key: Buffer, done: (ok: boolean) => void) => void;
  /** Why the key was refused, once verify said no. */
  failure(): SshError | undefined;
  /** Host key algorithms to offer first, so the server presents a key type we already know. */
  preferredAlgorithms: string[];
  file: string;
}

const FIRST_CONTACT = Symbol('first contact');

export function prepareHostKeyCheck(check: HostKeyCheck, step = 'host key check'): PreparedHostKeyCheck {
  const file = check.file ? expandHome(check.file) : defaultKnownHostsFile(check.policy);
  const primary = knownHostsName(check.address, check.port);
  const names = [primary, ...(check.aliases ?? []).map((a) => knownHostsName(a, check.port))];
  const who = check.who ?? (check.host === check.address ? check.host : `${check.host} (${check.address})`);
  let failed: SshError | undefined;

  const readEntries = (): KnownHostsEntry[] => {
    let text: string;
    try {
      text = fs.readFileSync(file, 'utf8');
    } catch (e) {
      if ((e as NodeJS.ErrnoException).code === 'ENOENT') return [];
      throw e;
    }
    return parseKnownHosts(text).filter((e) => e.marker !== '@cert-authority' && hostFieldMatches(e.hosts, names));
  };

  const preferredAlgorithms: string[] = [];
  if (check.policy !== 'pinned') {
    try {
      for (const e of readEntries()) if (!e.marker) preferredAlgorithms.push(...algorithmsFor(e.keyType));
    } catch {
      // An unreadable file is reported by verify() below.
    }
  }

  /** Without the lock, a first key is recorded; under it, FIRST_CONTACT says nobody has recorded one yet. */
  const decide = (key: Buffer, underLock = false): SshError | undefined | typeof FIRST_CONTACT => {
    const actual = fingerprint(key);
    if (check.policy === 'pinned') {
      const pins = (check.fingerprints ?? []).map((f) => f.replace(/=+$/, ''));
      if (pins.length === 0)
        return new HostKeyUnknownError(check.host, step, `no pinned fingerprint for ${who}; it presented ${actual}`, actual);
      if (pins.includes(actual)) return undefined;
      return new HostKeyMismatchError(
        check.host,
        step,
        `host key of ${who} does not match the pinned fingerprint: expected ${pins.join(' or ')}, got ${actual}`,
        pins,
        actual,
      );
    }
    let entries: KnownHostsEntry[];
    try {
      entries = readEntries();
    } catch (e) {
      return new HostKeyUnknownError(check.host, step, `cannot read known hosts file ${file}: ${(e as Error).message}; ${who} presented ${actual}`, actual);
    }
    const revoked = entries.find((e) => e.marker === '@revoked' && e.key.equals(key));
    if (revoked)
      return new HostKeyMismatchError(check.host, step, `host key ${actual} of ${who} is revoked in ${file}:${revoked.line}`, [], actual);
    const known = entries.filter((e) => !e.marker);
    if (known.some((e) => e.key.equals(key))) return undefined;
    if (known.length > 0) {
      const type = keyTypeOf(key);
      const sameType = known.filter((e) => e.keyType === type);
      const shown = sameType.length > 0 ? sameType : known;
      const expected = shown.map((e) => fingerprint(e.key));
      return new HostKeyMismatchError(
        check.host,
        step,
        `HOST KEY CHANGED for ${who}: expected ${expected.join(' or ')} (${file}:${shown.map((e) => e.line).join(',')}), got ${actual}. ` +
          'Refusing to connect; if the change is intended, remove the old entry from the known hosts file.',
        expected,
        actual,
      );
    }
    if (check.policy === 'accept-new') {
      // A check that only looks (kha doctor) accepts a first key without recording it.
      if (check.record === false) return underLock ? FIRST_CONTACT : undefined;
      return underLock ? FIRST_CONTACT : recordFirstKey(key, actual);
    }
    return new HostKeyUnknownError(check.host, step, `${who} is not in the known hosts file ${file}; it presented ${actual}`, actual);
  };

  /**
   * Under the file's lock, looks again and records the key only if still nobody has: of two workers meeting
   * a host for the first time with different keys, one records its key and the other sees a changed key.
   */
  const recordFirstKey = (key: Buffer, actual: string): SshError | undefined => {
    let unlock: () => void;
    try {
      fs.mkdirSync(path.dirname(file), { recursive: true, mode: 0o700 });
      unlock = lockFile(`${file}.lock`);
    } catch (e) {
      return new HostKeyUnknownError(check.host, step, `cannot lock the known hosts file ${file}: ${(e as Error).message}`, actual);
    }
    try {
      const again = decide(key, true);
      if (again !== FIRST_CONTACT) return again;
      const entry = `${primary} ${keyTypeOf(key)} ${key.toString('base64')}\n`;
      // A file whose last line lacks its newline would otherwise run into ours and spoil both lines.
      fs.appendFileSync(file, endsWithoutNewline(file) ? `\n${entry}` : entry, { mode: 0o600 });
      return undefined;
    } catch (e) {
      return new HostKeyUnknownError(check.host, step, `cannot record the host key ${actual} of ${who} in ${file}: ${(e as Error).message}`, actual);
    } finally {
      unlock();
    }
  };

  return {
    verify: (key, done) => {
      const r = decide(key);
      failed = r === FIRST_CONTACT ? undefined : r;
      done(failed === undefined);
    },
    failure: () => failed,
    preferredAlgorithms: [...new Set(preferredAlgorithms)],
    file,
  };
}

function endsWithoutNewline(file: string): boolean {
  let fd: number;
  try {
    fd = fs.openSync(file, 'r');
  } catch (e) {
    if ((e as NodeJS.ErrnoException).code === 'ENOENT') return false;
    throw e;
  }
  try {
    const size = fs.fstatSync(fd).size;
    if (size === 0) return false;
    const b = Buffer.alloc(1);
    fs.readSync(fd, b, 0, 1, size - 1);
    return b[0] !== 0x0a;
  } finally {
    fs.closeSync(fd);
  }
}

/** A lock older than this was left by a process that died holding it (a holder keeps it for microseconds). */
const STALE_LOCK_MS = 10_000;
const LOCK_WAIT_MS = 15_000;

function sleepSync(ms: number): void {
  Atomics.wait(new Int32Array(new SharedArrayBuffer(4)), 0, 0, ms);
}

/** An exclusive lock between processes: a lock file created with O_EXCL. Returns the unlock function. */
export function lockFile(lock: string): () => void {
  const deadline = Date.now() + LOCK_WAIT_MS;
  for (let wait = 1; ; wait = Math.min(wait * 2, 50)) {
    try {
      const fd = fs.openSync(lock, 'wx', 0o600);
      fs.writeSync(fd, `${process.pid}\n`);
      fs.closeSync(fd);
      return () => fs.rmSync(lock, { force: true });
    } catch (e) {
      if ((e as NodeJS.ErrnoException).code !== 'EEXIST') throw e;
    }
    try {
      if (Date.now() - fs.statSync(lock).mtimeMs > STALE_LOCK_MS) {
        fs.rmSync(lock, { force: true });
        continue;
      }
    } catch {
      continue; // gone in between: try again at once
    }
    if (Date.now() > deadline) throw new Error(`${lock} is held by another process`);
    sleepSync(wait);
  }
}
