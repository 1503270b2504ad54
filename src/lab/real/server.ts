// The real tier's services on the lab bridge (this machine's .1 address, HTTPS with the lab's own CA, which
// every host trusts): an OCI registry (pull only) that containerd reaches through the mirrors the cluster file
// names, the Kubernetes apt repository per built minor (signed index, signing key, packages), and Calico's stand-in
// manifest. It listens on the bridge address only: nothing outside the lab reaches it.
import { createReadStream, readFileSync } from 'node:fs';
import { createServer, type Server } from 'node:https';
import type { IncomingMessage, ServerResponse } from 'node:http';
import { repositoryFile } from './apt-repo';
import { blobStream, MANIFEST_TYPE, type ImageCatalog } from './images';
import type { TierRecord } from './tier';

export const LAB_SERVICES_PORT = 5443;

/** Base URL of the package repository the lab serves, as the cluster file's packages.repository. */
export const REPO_PATH = '/k8s/core:/stable:';
export const CALICO_MANIFEST_PATH = '/calico/calico.yaml';

export function calicoStandinManifest(): string {
  // The shape kha's manifest install edits: the commented pool CIDR lines, a calico-node DaemonSet.
  return `# Calico stand-in of the kha lab's real tier: calico-node installs a CNI configuration and nothing else.
apiVersion: apps/v1
kind: DaemonSet
metadata:
  name: calico-node
  namespace: kube-system
  labels:
    k8s-app: calico-node
spec:
  selector:
    matchLabels:
      k8s-app: calico-node
  template:
    metadata:
      labels:
        k8s-app: calico-node
    spec:
      hostNetwork: true
      automountServiceAccountToken: false
      priorityClassName: system-node-critical
      tolerations:
        - operator: Exists
      containers:
        - name: calico-node
          image: docker.io/calico/node:lab
          env:
            # - name: CALICO_IPV4POOL_CIDR
            #   value: "192.168.0.0/16"
            - name: NODE_IP
              valueFrom:
                fieldRef:
                  fieldPath: status.hostIP
          volumeMounts:
            - { name: cni-net-dir, mountPath: /host/etc/cni/net.d }
            - { name: cni-bin-dir, mountPath: /host/opt/cni/bin }
      volumes:
        - { name: cni-net-dir, hostPath: { path: /etc/cni/net.d, type: DirectoryOrCreate } }
        - { name: cni-bin-dir, hostPath: { path: /opt/cni/bin, type: DirectoryOrCreate } }
`;
}

export interface LabServicesOptions {
  address: string;
  tier: TierRecord;
  catalog: ImageCatalog;
  certPem: string;
  keyPem: string;
  /** The armored OpenPGP key served as Release.key. */
  releaseKey: string;
  /** The Kubernetes apt repository, one directory per minor (src/lab/real/apt-repo.ts). */
  repoDir: string;
  log: (msg: string) => void;
}

export function startLabServices(o: LabServicesOptions): Promise<Server> {
  const manifests = new Map<string, (typeof o.catalog.images)[number]>();
  for (const img of o.catalog.images) manifests.set(`${img.name}:${img.tag}`, img);
  const lookup = (name: string, ref: string) => {
    // Mirrors for docker.io may prefix library/ for single names; the stand-ins answer any tag.
    const n = name.replace(/^library\//, '');
    if (ref.startsWith('sha256:')) return o.catalog.images.find((i) => i.name === n && i.manifestDigest === ref);
    return manifests.get(`${n}:${ref}`) ?? manifests.get(`${n}:*`);
  };

  const handle = (req: IncomingMessage, res: ServerResponse) => {
    const url = new URL(req.url ?? '/', 'https://lab');
    const path = decodeURIComponent(url.pathname);
    const head = req.method === 'HEAD';
    const send = (code: number, type: string, body: string | Buffer, headers: Record<string, string> = {}) => {
      res.writeHead(code, { 'Content-Type': type, 'Content-Length': String(Buffer.byteLength(body)), ...headers });
      res.end(head ? undefined : body);
    };
    if (req.method !== 'GET' && !head) return send(405, 'text/plain', 'pull only\n');
    if (path === '/v2/' || path === '/v2') return send(200, 'application/json', '{}', { 'Docker-Distribution-API-Version': 'registry/2.0' });
    let m = /^\/v2\/(.+)\/manifests\/([^/]+)$/.exec(path);
    if (m) {
      const img = lookup(m[1]!, m[2]!);
      if (!img) {
        o.log(`registry: no image ${m[1]}:${m[2]}`);
        return send(404, 'application/json', JSON.stringify({ errors: [{ code: 'MANIFEST_UNKNOWN', message: `manifest unknown: ${m[1]}:${m[2]}` }] }));
      }
      const body = readFileSync(blobStream(o.catalog, img.manifestDigest)!.path);
      return send(200, MANIFEST_TYPE, body, { 'Docker-Content-Digest': img.manifestDigest });
    }
    m = /^\/v2\/(.+)\/blobs\/(sha256:[0-9a-f]{64})$/.exec(path);
    if (m) {
      const blob = blobStream(o.catalog, m[2]!);
      if (!blob) return send(404, 'application/json', JSON.stringify({ errors: [{ code: 'BLOB_UNKNOWN', message: 'blob unknown' }] }));
      res.writeHead(200, { 'Content-Type': 'application/octet-stream', 'Content-Length': String(blob.size), 'Docker-Content-Digest': m[2]! });
      if (head) return res.end();
      createReadStream(blob.path).pipe(res);
      return;
    }
    m = new RegExp(`^${REPO_PATH.replace(/[.*+?^${}()|[\]\\]/g, '\\$&')}/v(\\d+\\.\\d+)/deb/([^/]+)$`).exec(path);
    if (m) {
      if (!o.tier.kubeVersions.some((v) => v.startsWith(`${m![1]}.`))) return send(404, 'text/plain', `no Kubernetes ${m[1]} in the lab repository\n`);
      if (m[2] === 'Release.key') return send(200, 'application/pgp-keys', o.releaseKey);
      // The repository's files are read per request: a test may re-sign it (another key) while the lab runs.
      const f = repositoryFile(o.repoDir, m[1]!, m[2]!);
      if (!f) return send(404, 'text/plain', 'not found\n');
      const type = m[2]!.endsWith('.deb') ? 'application/vnd.debian.binary-package' : 'text/plain';
      res.writeHead(200, { 'Content-Type': type, 'Content-Length': String(f.size) });
      if (head) return res.end();
      createReadStream(f.path).pipe(res);
      return;
    }
    if (path === CALICO_MANIFEST_PATH) return send(200, 'application/yaml', calicoStandinManifest());
    send(404, 'text/plain', 'not found\n');
  };

  const server = createServer({ cert: o.certPem, key: o.keyPem }, (req, res) => {
    try {
      handle(req, res);
    } catch (e) {
      o.log(`lab services: ${req.method} ${req.url}: ${(e as Error).message}`);
      if (!res.headersSent) res.writeHead(500);
      res.end();
    }
  });
  return new Promise((resolve, reject) => {
    server.once('error', reject);
    server.listen(LAB_SERVICES_PORT, o.address, () => resolve(server));
  });
}
