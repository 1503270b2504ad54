// Builds what a lab needs before any host boots: keys, and each host's upper layer (users,
// authorized_keys, sshd config and host key, hostname, hosts file, sudoers, tool wrappers).
// Written straight into the upper directory, which is allowed while the overlay is not mounted.
import { chmodSync, chownSync, existsSync, lstatSync, mkdirSync, readFileSync, readdirSync, statSync, writeFileSync } from 'node:fs';
import { spawnSync } from 'node:child_process';
import { dirname, join } from 'node:path';
import { randomBytes, randomUUID } from 'node:crypto';
import { ed25519KeyPair } from './sshkey';
import { run } from './proc';
import { SSHD_CONFIG } from './host-init';
import { writeToolWrappers } from './tools';
import { hiddenPackageTools } from './sim/tools';
import { prepareRealHost } from './real/setup';
import type { LabPaths, LabState } from './layout';

export const LAB_USER = 'kha';
export const LAB_PW_USER = 'khapw';

interface LabUsers {
  uid: number; // kha; khapw is uid + 1
  rootPub: string;
  userPub: string;
  pwUserPub: string;
  pwHash: string;
}

/** Writes an ed25519 key pair as path and path.pub; returns the public key line. */
function keygen(path: string, comment: string): string {
  const k = ed25519KeyPair(comment);
  put(path, k.privateKey, 0o600);
  put(`${path}.pub`, k.publicKey + '\n', 0o644);
  return k.publicKey;
}

/** The first uid from 1900 on that /etc/passwd and /etc/group leave free for two users. */
function freeUid(): number {
  const used = new Set<number>();
  for (const f of ['/etc/passwd', '/etc/group']) {
    for (const line of readFileSync(f, 'utf8').split('\n')) used.add(Number(line.split(':')[2]));
  }
  let uid = 1900;
  while (used.has(uid) || used.has(uid + 1)) uid += 2;
  return uid;
}

/** Lab-wide keys and the khapw password. */
export async function prepareKeys(p: LabPaths): Promise<LabUsers> {
  mkdirSync(p.keys, { recursive: true, mode: 0o700 });
  const rootPub = keygen(p.rootKey, 'kha-lab-root');
  const userPub = keygen(p.userKey, 'kha-lab-kha');
  const pwUserPub = keygen(p.pwUserKey, 'kha-lab-khapw');
  const password = randomBytes(12).toString('base64url');
  writeFileSync(p.pwUserPassword, password + '\n', { mode: 0o600 });
  // SHA-512 crypt through libc; perl-base is essential on Debian. The password travels on stdin.
  const salt = randomBytes(12).toString('base64').replace(/[^A-Za-z0-9]/g, '').slice(0, 16);
  const pwHash = (await run('perl', ['-e', 'chomp(my $p = <STDIN>); print crypt($p, "\\$6\\$" . $ARGV[0] . "\\$")', salt], { input: password + '\n' })).stdout.trim();
  if (!pwHash.startsWith('$6$')) throw new Error('could not hash the khapw password (libc crypt without SHA-512?)');
  return { uid: freeUid(), rootPub, userPub, pwUserPub, pwHash };
}

function put(path: string, content: string, mode = 0o644, uid = 0, gid = 0): void {
  mkdirSync(dirname(path), { recursive: true });
  writeFileSync(path, content, { mode });
  chmodSync(path, mode);
  chownSync(path, uid, gid);
}

function dir(path: string, mode: number, uid = 0, gid = 0): void {
  mkdirSync(path, { recursive: true });
  chmodSync(path, mode);
  chownSync(path, uid, gid);
}

/** Copies a file of this machine into the upper layer with its owner and mode, then appends. */
function extend(upper: string, path: string, extra: string): void {
  const st = statSync(path);
  const text = readFileSync(path, 'utf8');
  put(join(upper, path), text + (text.endsWith('\n') || text === '' ? '' : '\n') + extra, st.mode & 0o7777, st.uid, st.gid);
}

export function prepareHost(p: LabPaths, state: LabState, name: string, users: LabUsers): void {
  const hp = p.host(name);
  for (const d of [hp.upper, hp.work, hp.merged]) mkdirSync(d, { recursive: true });
  writeFileSync(hp.bootId, randomUUID() + '\n');
  const u = hp.upper;
  // Directories the upper layer creates take their attributes from here, so set them like the originals.
  for (const d of ['/etc', '/etc/ssh', '/root', '/home', '/usr', '/usr/local', '/usr/local/sbin', '/usr/local/bin']) {
    const st = statSync(d);
    dir(join(u, d), st.mode & 0o7777, st.uid, st.gid);
  }

  put(join(u, 'etc/hostname'), `${name}\n`);
  put(join(u, 'etc/machine-id'), randomBytes(16).toString('hex') + '\n', 0o444);
  const hostsLines = state.hosts.map((h) => `${h.address}\t${h.name}`).join('\n');
  // No DNS in the lab: names come from /etc/hosts, and a lookup fails at once on the host itself
  // instead of sending packets toward this machine's resolver.
  put(join(u, 'etc/resolv.conf'), '# kha lab: no DNS server; lab names are in /etc/hosts\nnameserver 127.0.0.1\noptions timeout:1 attempts:1\n');
  put(join(u, 'etc/hosts'), `127.0.0.1\tlocalhost\n127.0.1.1\t${name}\n::1\tlocalhost ip6-localhost ip6-loopback\n${hostsLines}\n`);

  const { uid } = users;
  extend(u, '/etc/passwd', `${LAB_USER}:x:${uid}:${uid}:kha lab user:/home/${LAB_USER}:/bin/bash\n${LAB_PW_USER}:x:${uid + 1}:${uid + 1}:kha lab user with sudo password:/home/${LAB_PW_USER}:/bin/bash\n`);
  extend(u, '/etc/group', `${LAB_USER}:x:${uid}:\n${LAB_PW_USER}:x:${uid + 1}:\n`);
  extend(u, '/etc/shadow', `${LAB_USER}:*:20000:0:99999:7:::\n${LAB_PW_USER}:${users.pwHash}:20000:0:99999:7:::\n`);
  if (existsSync('/etc/gshadow')) extend(u, '/etc/gshadow', `${LAB_USER}:!::\n${LAB_PW_USER}:!::\n`);
  put(join(u, 'etc/sudoers.d/kha-lab'), `${LAB_USER} ALL=(ALL:ALL) NOPASSWD: ALL\n${LAB_PW_USER} ALL=(ALL:ALL) ALL\n`, 0o440);
  chmodSync(join(u, 'etc/sudoers.d'), 0o755);

  // Debian's stock shell start-up files, not this machine's (which may change PATH).
  for (const f of existsSync('/etc/skel') ? readdirSync('/etc/skel') : []) put(join(u, 'root', f), readFileSync(join('/etc/skel', f), 'utf8'));
  dir(join(u, 'root/.ssh'), 0o700);
  put(join(u, 'root/.ssh/authorized_keys'), users.rootPub + '\n', 0o600);
  for (const [user, id, pub] of [[LAB_USER, uid, users.userPub], [LAB_PW_USER, uid + 1, users.pwUserPub]] as const) {
    dir(join(u, 'home', user), 0o755, id, id);
    dir(join(u, 'home', user, '.ssh'), 0o700, id, id);
    put(join(u, 'home', user, '.ssh/authorized_keys'), pub + '\n', 0o600, id, id);
  }

  put(join(u, 'etc/ssh/sshd_config'), SSHD_CONFIG);
  keygen(join(u, 'etc/ssh/ssh_host_ed25519_key'), `root@${name}`);
  const tier = state.kube ?? 'sim';
  writeToolWrappers(u, tier);
  hideMachineTools(u, hiddenPackageTools(tier));
  if (tier === 'real') prepareRealHost(u, state.dir);
}

/**
 * A fresh host has no Kubernetes tooling until the packages phase installs it; this machine may have some
 * (a cloud SDK's kubectl, say) that the lower layer would show. Overlay whiteouts hide them.
 */
function hideMachineTools(upper: string, tools: string[]): void {
  for (const d of ['/usr/bin', '/usr/sbin', '/usr/local/bin', '/bin', '/sbin']) {
    if (!existsSync(d) || lstatSync(d).isSymbolicLink()) continue;
    for (const t of tools) {
      const p = join(d, t);
      try {
        lstatSync(p);
      } catch {
        continue;
      }
      if (existsSync(join(upper, p))) continue;
      const st = statSync(d);
      dir(join(upper, d), st.mode & 0o7777, st.uid, st.gid);
      const r = spawnSync('mknod', [join(upper, p), 'c', '0', '0']);
      if (r.status !== 0) throw new Error(`lab: cannot hide ${p} from the hosts: ${r.stderr?.toString().trim() || r.error?.message}`);
    }
  }
}

/**
 * Hides this machine's other SSH host keys in every host: overlay whiteouts (0:0 character
 * devices) in each upper layer, copied from one template so each host costs a single cp.
 */
export async function hideMachineHostKeys(p: LabPaths, hosts: string[]): Promise<void> {
  const names = readdirSync('/etc/ssh').filter((f) => f.startsWith('ssh_host_') && !f.startsWith('ssh_host_ed25519_key'));
  if (!names.length || !hosts.length) return;
  const tmpl = join(p.hosts, '.whiteouts');
  const script = 'set -e; t=$1; shift; mkdir -p "$t"; for n in $NAMES; do mknod "$t/$n" c 0 0; done; for d in "$@"; do (cd "$t" && cp -a $NAMES "$d/"); done; rm -rf "$t"';
  await run('sh', ['-c', script.replaceAll('$NAMES', names.join(' ')), 'sh', tmpl, ...hosts.map((h) => join(p.host(h).upper, 'etc/ssh'))]);
}

/** known_hosts lines for every host, by name and by address. */
export function knownHostsText(p: LabPaths, state: LabState): string {
  return state.hosts
    .map((h) => {
      const [type, key] = readFileSync(join(p.host(h.name).upper, 'etc/ssh/ssh_host_ed25519_key.pub'), 'utf8').trim().split(/\s+/);
      return `${h.name},${h.address} ${type} ${key}`;
    })
    .join('\n') + '\n';
}
