// curl (answers from the model, never the network), gpg --dearmor and --show-keys, ipvsadm, ipset, iptables, conntrack.
import * as crypto from 'node:crypto';
import * as fs from 'node:fs';
import { err, exists, flag, has, hostname, hp, out, parseArgs, writeFileAtomic, writeOut, caller } from './env';
import { isActive, kubeVersions, netTables, saveNetTables } from './host';
import { readModel } from './model';
import { dialApi } from './kubeadm';
import { DOCKER_KEY_FINGERPRINT, KUBERNETES_KEY_FINGERPRINT } from '../../spec/sources';

const KEY_HEADER = Buffer.from([0x99, 0x01, 0x0d, 0x04]);

/**
 * Which key a URL serves. The Kubernetes repositories (pkgs.k8s.io and mirrors of its layout) and Docker's
 * serve their real release keys, so the fingerprints kha pins by default match; anything else a key of its own.
 */
export function keyFingerprintForUrl(url: string): string {
  if (/\/core:\/stable:\/v1\.\d+\/deb\/Release\.key$|\/kubernetes[^/]*\/.*Release\.key$/.test(url)) return KUBERNETES_KEY_FINGERPRINT;
  if (/\/linux\/(debian|ubuntu)\/gpg$/.test(url)) return DOCKER_KEY_FINGERPRINT;
  return crypto.createHash('sha256').update(url).digest('hex').slice(0, 40).toUpperCase();
}

/**
 * A stable armored OpenPGP public key block: an old-format public-key packet header, then (the sim's
 * shorthand for the key material) the 20 bytes of the fingerprint gpg reports for it.
 */
function armoredKey(url: string): string {
  const fpr = Buffer.from(keyFingerprintForUrl(url), 'hex');
  const body = Buffer.concat([KEY_HEADER, fpr, crypto.createHash('sha512').update(fpr).digest()]);
  return `-----BEGIN PGP PUBLIC KEY BLOCK-----\n\n${body.toString('base64').replace(/(.{64})/g, '$1\n')}\n=sim1\n-----END PGP PUBLIC KEY BLOCK-----\n`;
}

const ARMOR = /-----BEGIN PGP PUBLIC KEY BLOCK-----\r?\n(?:[^\n]*:[^\n]*\n)*\r?\n([\s\S]*?)\n=[^\n]*\n-----END PGP PUBLIC KEY BLOCK-----/;

/** The fingerprint of a sim key file, armored or dearmored; undefined for anything else. */
export function keyFileFingerprint(data: Buffer): string | undefined {
  const m = ARMOR.exec(data.toString('latin1'));
  const bin = m ? Buffer.from(m[1]!.replace(/\s+/g, ''), 'base64') : data;
  if (bin.length < 24 || !bin.subarray(0, 4).equals(KEY_HEADER)) return undefined;
  return bin.subarray(4, 24).toString('hex').toUpperCase();
}

/** gpg --show-keys [--with-colons] FILE: what a key file holds, without importing it. */
function showKeys(p: ReturnType<typeof parseArgs>): number {
  const input = p.pos[0];
  const data = input ? (exists(hp(input)) ? fs.readFileSync(hp(input)) : undefined) : Buffer.from(caller().readStdin() ?? '', 'latin1');
  if (data === undefined) {
    err(`gpg: can't open '${input}': No such file or directory`);
    return 2;
  }
  const fpr = keyFileFingerprint(data);
  if (!fpr) {
    err('gpg: no valid OpenPGP data found.');
    return 2;
  }
  const uid = fpr === KUBERNETES_KEY_FINGERPRINT ? 'isv:kubernetes OBS Project <isv:kubernetes@build.opensuse.org>' : fpr === DOCKER_KEY_FINGERPRINT ? 'Docker Release (CE deb) <docker@docker.com>' : 'kha-sim key';
  if (has(p, 'with-colons')) {
    out(`pub:-:4096:1:${fpr.slice(-16)}:1690000000:::-:::scSC::::::23::0:\nfpr:::::::::${fpr}:\nuid:-::::1690000000::${fpr.slice(0, 40)}::${uid}::::::::::0:`);
  } else {
    out(`pub   rsa4096 2023-07-22 [SC]\n      ${fpr}\nuid                      ${uid}\n`);
  }
  return 0;
}

const doc = (o: string) => `---\n${o.trim()}\n`;

/** The manifests the scripts download (Calico), synthesised with the kinds that matter to the model. */
export function manifestForUrl(url: string): string | undefined {
  // Calico 3.30+ ships its CRDs separately as operator-crds.yaml.
  if (/(tigera-operator(-crds)?|operator-crds)\.yaml$/.test(url)) {
    const crds = ['installations.operator.tigera.io', 'apiservers.operator.tigera.io', 'tigerastatuses.operator.tigera.io', 'ippools.crd.projectcalico.org', 'goldmanes.operator.tigera.io', 'whiskers.operator.tigera.io'];
    const parts = crds.map((n) => doc(`apiVersion: apiextensions.k8s.io/v1\nkind: CustomResourceDefinition\nmetadata:\n  name: ${n}`));
    if (/crds\.yaml$/.test(url)) return parts.join('');
    // From Calico 3.30 the operator's CRDs ship only in operator-crds.yaml.
    if (Number(/\/v3\.(\d+)\./.exec(url)?.[1] ?? 0) >= 30) parts.length = 0;
    parts.unshift(doc('apiVersion: v1\nkind: Namespace\nmetadata:\n  name: tigera-operator'));
    parts.push(doc('apiVersion: v1\nkind: ServiceAccount\nmetadata:\n  name: tigera-operator\n  namespace: tigera-operator'));
    parts.push(doc('apiVersion: apps/v1\nkind: Deployment\nmetadata:\n  name: tigera-operator\n  namespace: tigera-operator\nspec:\n  replicas: 1'));
    return parts.join('');
  }
  if (/custom-resources\.yaml$/.test(url)) {
    return doc('apiVersion: operator.tigera.io/v1\nkind: Installation\nmetadata:\n  name: default\nspec:\n  calicoNetwork:\n    ipPools:\n    - name: default-ipv4-ippool\n      cidr: 192.168.0.0/16\n      encapsulation: VXLANCrossSubnet') + doc('apiVersion: operator.tigera.io/v1\nkind: APIServer\nmetadata:\n  name: default\nspec: {}');
  }
  if (/calico\.yaml$/.test(url)) {
    return [
      doc('apiVersion: v1\nkind: ConfigMap\nmetadata:\n  name: calico-config\n  namespace: kube-system\ndata:\n  calico_backend: "bird"'),
      doc('apiVersion: apiextensions.k8s.io/v1\nkind: CustomResourceDefinition\nmetadata:\n  name: ippools.crd.projectcalico.org'),
      doc('apiVersion: apps/v1\nkind: DaemonSet\nmetadata:\n  name: calico-node\n  namespace: kube-system\nspec:\n  template:\n    spec:\n      containers:\n        - name: calico-node\n          image: docker.io/calico/node:v3.31.2\n          env:\n            # - name: CALICO_IPV4POOL_CIDR\n            #   value: "192.168.0.0/16"\n            - name: CALICO_IPV4POOL_IPIP\n              value: "Always"'),
      doc('apiVersion: apps/v1\nkind: Deployment\nmetadata:\n  name: calico-kube-controllers\n  namespace: kube-system\nspec:\n  template:\n    spec:\n      containers:\n        - name: calico-kube-controllers\n          image: docker.io/calico/kube-controllers:v3.31.2'),
    ].join('');
  }
  return undefined;
}

/**
 * A downloaded package: an ar archive header, then the control fields the sim's apt-get reads, from the
 * file name NAME_VERSION_ARCH.deb. Its bytes depend on the URL, so each file has its own checksum.
 */
function debFor(url: string): Buffer {
  const base = decodeURIComponent(url.split('/').pop() ?? '').replace(/\.deb$/, '');
  const [name = 'unknown', version = '0', arch = 'all'] = base.split('_');
  return Buffer.from(`!<arch>\ndebian-binary   sim\nPackage: ${name}\nVersion: ${version}\nArchitecture: ${arch}\nFrom: ${url}\n`);
}

interface Reply {
  code: number; // curl exit code
  http?: number;
  body?: Buffer | string;
  message?: string;
}

function answer(url: string, insecure: boolean, cacert: boolean): Reply {
  const m = /^(https?):\/\/([^/:]+)(?::(\d+))?(\/.*)?$/.exec(url);
  if (!m) return { code: 3, message: `curl: (3) URL rejected: Malformed input to a URL function` };
  const [, scheme, host, port, p = '/'] = m;
  if (host === '127.0.0.1' && port === '10249') {
    // kube-proxy's metrics port: its DaemonSet pod runs on every node of the cluster whose kubelet runs.
    const c = readModel().cluster;
    const node = c?.nodes.find((n) => n.name === hostname());
    if (!c || !node || node.kubeletDown || !isActive('kubelet')) return { code: 7, message: `curl: (7) Failed to connect to 127.0.0.1 port 10249 after 0 ms: Couldn't connect to server` };
    return p === '/proxyMode' ? { code: 0, http: 200, body: c.proxyMode } : { code: 0, http: 404, body: '404 page not found\n' };
  }
  if (port === '6443' || /^\d+\.\d+\.\d+\.\d+$/.test(host!)) {
    const c = readModel().cluster;
    const e = dialApi(c, `${host}:${port ?? (scheme === 'https' ? 443 : 80)}`);
    if (e) return e.includes('no such host') ? { code: 6, message: `curl: (6) Could not resolve host: ${host}` } : { code: 7, message: `curl: (7) Failed to connect to ${host} port ${port} after 0 ms: Couldn't connect to server` };
    if (!insecure && !cacert) return { code: 60, message: 'curl: (60) SSL certificate problem: unable to get local issuer certificate' };
    if (/^\/(livez|readyz|healthz)/.test(p)) return { code: 0, http: 200, body: 'ok' };
    if (p.startsWith('/version')) return { code: 0, http: 200, body: JSON.stringify({ major: '1', gitVersion: c!.kubernetesVersion }) };
    return { code: 0, http: 403, body: '{"kind":"Status","status":"Failure","reason":"Forbidden","code":403}' };
  }
  if (/Release\.key$/.test(p) || /\/gpg$/.test(p)) return { code: 0, http: 200, body: armoredKey(url) };
  const manifest = manifestForUrl(url);
  if (manifest) return { code: 0, http: 200, body: manifest };
  const minor = /\/v(1\.\d+)\/deb\/Packages$/.exec(p)?.[1];
  if (minor) {
    const vs = kubeVersions(minor);
    if (vs.length === 0) return { code: 22, http: 404, message: `curl: (22) The requested URL returned error: 404` };
    return { code: 0, http: 200, body: ['kubeadm', 'kubelet', 'kubectl'].flatMap((pk) => vs.map((v) => `Package: ${pk}\nVersion: ${v}\nArchitecture: amd64\n`)).join('\n') };
  }
  if (/\.deb$/.test(p)) return { code: 0, http: 200, body: debFor(url) };
  return { code: 6, message: `curl: (6) Could not resolve host: ${host}` };
}

export function curl(args: string[]): number {
  const p = parseArgs(args, new Set(['o', 'output', 'w', 'write-out', 'm', 'max-time', 'connect-timeout', 'H', 'header', 'cacert', 'retry', 'retry-delay', 'X', 'request', 'd', 'data', 'u', 'user', 'A', 'cert', 'key', 'resolve', 'retry-max-time']));
  const url = p.pos.find((x) => /^https?:\/\//.test(x));
  if (!url) {
    err('curl: no URL specified!');
    return 2;
  }
  const r = answer(url, has(p, 'k', 'insecure'), flag(p, 'cacert') !== undefined);
  const silent = has(p, 's', 'silent') && !has(p, 'S', 'show-error');
  const failHttp = has(p, 'f', 'fail');
  let code = r.code;
  if (code === 0 && failHttp && (r.http ?? 200) >= 400) code = 22;
  if (code !== 0) {
    if (!silent) err(r.message ?? `curl: (22) The requested URL returned error: ${r.http}`);
  } else {
    const o = flag(p, 'o', 'output');
    if (o) writeFileAtomic(hp(o), r.body ?? '');
    else if (r.body !== undefined) writeOut(r.body);
  }
  const w = flag(p, 'w', 'write-out');
  if (w) writeOut(w.replace(/%\{http_code\}/g, String(code === 0 || code === 22 ? r.http ?? 0 : 0).padStart(3, '0')).replace(/\\n/g, '\n'));
  return code;
}

export function gpg(args: string[]): number {
  const p = parseArgs(args, new Set(['o', 'output', 'homedir']));
  if (has(p, 'show-keys')) return showKeys(p);
  if (!has(p, 'dearmor', 'dearmour')) {
    err('gpg: only --dearmor and --show-keys are simulated');
    return 2;
  }
  const input = p.pos[0];
  const text = input ? (exists(hp(input)) ? fs.readFileSync(hp(input), 'utf8') : undefined) : caller().readStdin();
  if (text === undefined) {
    err(`gpg: can't open '${input}': No such file or directory\ngpg: dearmoring failed: No such file or directory`);
    return 2;
  }
  const m = ARMOR.exec(text);
  if (!m) {
    err('gpg: no valid OpenPGP data found.\ngpg: dearmoring failed: Unknown system error');
    return 2;
  }
  const bin = Buffer.from(m[1]!.replace(/\s+/g, ''), 'base64');
  const o = flag(p, 'o', 'output');
  if (o && o !== '-') {
    if (exists(hp(o)) && !has(p, 'yes')) {
      err(`gpg: cannot open '/dev/tty': No such device or address`);
      return 2;
    }
    writeFileAtomic(hp(o), bin);
  } else writeOut(bin);
  return 0;
}

export function ipvsadm(args: string[]): number {
  const t = netTables();
  if (args.includes('-C') || args.includes('--clear')) {
    t.ipvs = [];
    saveNetTables(t);
    return 0;
  }
  out('IP Virtual Server version 1.2.1 (size=4096)\nProt LocalAddress:Port Scheduler Flags\n  -> RemoteAddress:Port           Forward Weight ActiveConn InActConn');
  for (const s of t.ipvs) out(s);
  return 0;
}

export function ipset(args: string[]): number {
  const t = netTables();
  const [verb, name] = args;
  if (verb === 'destroy' || verb === 'x') {
    t.ipsets = name ? t.ipsets.filter((s) => s !== name) : [];
    saveNetTables(t);
    return 0;
  }
  if (verb === 'flush' || verb === 'F') return 0;
  if (verb === 'list' || verb === 'L' || verb === undefined) {
    for (const s of t.ipsets) if (!name || s === name) out(args.includes('-n') || args.includes('-name') ? s : `Name: ${s}\nType: hash:ip,port,ip\nMembers:\n`);
    return 0;
  }
  return 0;
}

export function iptables(tool: string, args: string[]): number {
  const t = netTables();
  const table = args.includes('-t') ? args[args.indexOf('-t') + 1]! : 'filter';
  if (tool.endsWith('-save')) {
    for (const [tb, chains] of Object.entries(t.iptablesChains)) {
      out(`*${tb}`);
      for (const c of chains) out(`:${c} - [0:0]`);
      out('COMMIT');
    }
    return 0;
  }
  if (tool.endsWith('-restore')) {
    caller().readStdin();
    return 0;
  }
  if (args.includes('-F') || args.includes('--flush') || args.includes('-X') || args.includes('--delete-chain')) {
    if (args.includes('-X') || args.includes('--delete-chain')) delete t.iptablesChains[table];
    saveNetTables(t);
    return 0;
  }
  if (args.includes('-S') || args.includes('-L') || args.includes('--list')) {
    for (const c of t.iptablesChains[table] ?? []) out(args.includes('-S') ? `-N ${c}` : `Chain ${c} (0 references)`);
    return 0;
  }
  return 0;
}

export function conntrack(args: string[]): number {
  if (args.includes('--version')) out('conntrack v1.4.7 (conntrack-tools)');
  return 0;
}
