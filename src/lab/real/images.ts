// OCI images of the real tier, made from the binaries in the cache: one uncompressed layer each, stored as
// blobs that the lab's registry serves. Which images exist follows what kubeadm itself asks for
// (`kubeadm config images list`), plus kube-vip's and calico-node's stand-ins.
import { spawnSync } from 'node:child_process';
import { createHash } from 'node:crypto';
import { chmodSync, closeSync, copyFileSync, existsSync, linkSync, lstatSync, mkdirSync, openSync, readFileSync, readSync, readdirSync, readlinkSync, renameSync, rmSync, statSync, symlinkSync } from 'node:fs';
import { basename, dirname, isAbsolute, join } from 'node:path';
import { kubeBinDir, type TierRecord } from './tier';
import { writeFileAtomic } from '../sim/env';

export interface ImageRef {
  /** Repository path without the registry host, e.g. "kube-apiserver", "coredns/coredns". */
  name: string;
  /** A tag, or "*" for any tag (the stand-ins answer whatever version the spec names). */
  tag: string;
  manifestDigest: string;
  manifestSize: number;
}

export interface ImageCatalog {
  images: ImageRef[];
  blobsDir: string;
}

const MANIFEST_TYPE = 'application/vnd.oci.image.manifest.v1+json';
export { MANIFEST_TYPE };

/** file in the image -> file on this machine (symlinks: "->target"). */
type Contents = Record<string, string>;

interface ImageDef {
  name: string;
  tag: string;
  contents: Contents;
  entrypoint?: string[];
}

function sha256File(path: string): string {
  const h = createHash('sha256');
  const buf = Buffer.alloc(1 << 20);
  const fd = openSync(path, 'r');
  try {
    for (let n = readSync(fd, buf); n > 0; n = readSync(fd, buf)) h.update(buf.subarray(0, n));
  } finally {
    closeSync(fd);
  }
  return h.digest('hex');
}

/** Shared libraries a dynamically linked program needs, as ldd lists them. */
function libsOf(program: string): string[] {
  const r = spawnSync('ldd', [program], { encoding: 'utf8' });
  if (r.status !== 0) return [];
  const out: string[] = [];
  for (const line of r.stdout.split('\n')) {
    const m = /=>\s*(\/\S+)/.exec(line) ?? /^\s*(\/\S+)\s*\(/.exec(line);
    if (m) out.push(m[1]!);
  }
  return out;
}

/** A file of this machine at its own path in the image; a symbolic link comes with the chain it points along. */
function addWithLinks(c: Contents, path: string): void {
  for (let p = path, hops = 0; hops < 10 && !(p.slice(1) in c); hops++) {
    if (!lstatSync(p).isSymbolicLink()) {
      c[p.slice(1)] = p;
      return;
    }
    const target = readlinkSync(p);
    c[p.slice(1)] = `->${target}`;
    p = isAbsolute(target) ? target : join(dirname(p), target);
  }
}

/** kube-proxy with the iptables, nft, ipset and conntrack programs it runs (and their libraries), from this machine. */
function kubeProxyContents(bin: string): Contents {
  const c: Contents = { 'usr/local/bin/kube-proxy': join(bin, 'kube-proxy') };
  const programs = ['/usr/sbin/xtables-nft-multi', '/usr/sbin/xtables-legacy-multi', '/usr/sbin/ipset', '/usr/sbin/nft', '/usr/sbin/conntrack'].filter(existsSync);
  for (const p of programs) {
    addWithLinks(c, p);
    for (const lib of libsOf(p)) addWithLinks(c, lib);
  }
  const multi = existsSync('/usr/sbin/xtables-nft-multi') ? 'xtables-nft-multi' : 'xtables-legacy-multi';
  for (const name of ['iptables', 'iptables-save', 'iptables-restore', 'ip6tables', 'ip6tables-save', 'ip6tables-restore']) c[`usr/sbin/${name}`] = `->${multi}`;
  const xt = '/usr/lib/x86_64-linux-gnu/xtables';
  if (existsSync(xt)) for (const f of readdirSync(xt)) c[join(xt, f).slice(1)] = join(xt, f);
  return c;
}

function imageDefs(t: TierRecord): ImageDef[] {
  const defs: ImageDef[] = [];
  const s = t.standinsDir;
  for (const v of t.kubeVersions) {
    const bin = kubeBinDir(t, v);
    const r = spawnSync(join(bin, 'kubeadm'), ['config', 'images', 'list', '--kubernetes-version', `v${v}`], { encoding: 'utf8' });
    if (r.status !== 0) throw new Error(`kubeadm ${v} config images list failed: ${r.stderr}`);
    for (const ref of r.stdout.split('\n').map((l) => l.trim()).filter(Boolean)) {
      const path = ref.slice(ref.indexOf('/') + 1);
      const [name, tag] = [path.slice(0, path.lastIndexOf(':')), path.slice(path.lastIndexOf(':') + 1)];
      const component = basename(name);
      let contents: Contents;
      let entrypoint: string[] | undefined;
      if (component === 'kube-proxy') contents = kubeProxyContents(bin);
      else if (component.startsWith('kube-')) contents = { [`usr/local/bin/${component}`]: join(bin, component) };
      else if (component === 'etcd') contents = Object.fromEntries(['etcd', 'etcdctl', 'etcdutl'].map((b) => [`usr/local/bin/${b}`, join(t.etcdDir, b)]));
      else if (component === 'pause') [contents, entrypoint] = [{ pause: join(s, 'pause') }, ['/pause']];
      else if (component === 'coredns') [contents, entrypoint] = [{ coredns: join(t.cache, 'coredns', readdirSync(join(t.cache, 'coredns')).sort().at(-1)!, 'coredns') }, ['/coredns']];
      else throw new Error(`kubeadm ${v} asks for an image the lab cannot make: ${ref}`);
      defs.push({ name, tag, contents, entrypoint });
    }
  }
  defs.push({ name: 'kube-vip/kube-vip', tag: '*', contents: { 'kube-vip': join(s, 'kube-vip') }, entrypoint: ['/kube-vip'] });
  const cni: Contents = { 'calico-node': join(s, 'calico-node') };
  for (const p of ['bridge', 'host-local', 'loopback', 'portmap']) if (existsSync(`/usr/lib/cni/${p}`)) cni[`opt/cni/bin/${p}`] = `/usr/lib/cni/${p}`;
  defs.push({ name: 'calico/node', tag: '*', contents: cni, entrypoint: ['/calico-node'] });
  // Unique by name:tag (both Kubernetes minors ask for the same pause and CoreDNS).
  const seen = new Set<string>();
  return defs.filter((d) => !seen.has(`${d.name}:${d.tag}`) && seen.add(`${d.name}:${d.tag}`));
}

/** Builds (or reuses) every image's blobs under <cache>/oci; returns what the registry serves. */
export function buildImages(t: TierRecord): ImageCatalog {
  const root = join(t.cache, 'oci');
  const blobsDir = join(root, 'blobs', 'sha256');
  mkdirSync(blobsDir, { recursive: true });
  const images: ImageRef[] = [];
  for (const def of imageDefs(t)) {
    // Cache key: the image's definition and its sources' sizes and times.
    const key = createHash('sha256')
      .update(JSON.stringify({ layout: 2, def, files: Object.values(def.contents).filter((f) => !f.startsWith('->')).map((f) => [f, statSync(f).size, statSync(f).mtimeMs]) }))
      .digest('hex')
      .slice(0, 24);
    const indexFile = join(root, 'index', `${key}.json`);
    if (existsSync(indexFile)) {
      images.push(JSON.parse(readFileSync(indexFile, 'utf8')) as ImageRef);
      continue;
    }
    // Per-process names, renamed into place: two labs starting at once may build the same image.
    const staging = join(root, 'staging', `${key}.${process.pid}`);
    rmSync(staging, { recursive: true, force: true });
    for (const [inImage, src] of Object.entries(def.contents)) {
      const dst = join(staging, inImage);
      mkdirSync(dirname(dst), { recursive: true });
      if (src.startsWith('->')) symlinkSync(src.slice(2), dst);
      else {
        try {
          linkSync(src, dst);
        } catch {
          copyFileSync(src, dst);
        }
      }
    }
    mkdirSync(join(staging, 'tmp'), { recursive: true });
    chmodSync(join(staging, 'tmp'), 0o1777);
    mkdirSync(join(staging, 'etc'), { recursive: true });
    const layer = `${staging}.tar`;
    const tar = spawnSync('tar', ['--sort=name', '--owner=0', '--group=0', '--numeric-owner', '--mtime=@0', '-cf', layer, '-C', staging, '.']);
    if (tar.status !== 0) throw new Error(`tar of image ${def.name}: ${tar.stderr}`);
    rmSync(staging, { recursive: true, force: true });
    const layerDigest = sha256File(layer);
    const layerSize = statSync(layer).size;
    renameSync(layer, join(blobsDir, layerDigest));
    const config = Buffer.from(
      JSON.stringify({
        architecture: 'amd64',
        os: 'linux',
        config: { Env: ['PATH=/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin'], ...(def.entrypoint ? { Entrypoint: def.entrypoint } : {}) },
        rootfs: { type: 'layers', diff_ids: [`sha256:${layerDigest}`] },
      }),
    );
    const configDigest = createHash('sha256').update(config).digest('hex');
    writeFileAtomic(join(blobsDir, configDigest), config);
    const manifest = Buffer.from(
      JSON.stringify({
        schemaVersion: 2,
        mediaType: MANIFEST_TYPE,
        config: { mediaType: 'application/vnd.oci.image.config.v1+json', digest: `sha256:${configDigest}`, size: config.length },
        layers: [{ mediaType: 'application/vnd.oci.image.layer.v1.tar', digest: `sha256:${layerDigest}`, size: layerSize }],
      }),
    );
    const manifestDigest = createHash('sha256').update(manifest).digest('hex');
    writeFileAtomic(join(blobsDir, manifestDigest), manifest);
    const ref: ImageRef = { name: def.name, tag: def.tag, manifestDigest: `sha256:${manifestDigest}`, manifestSize: manifest.length };
    mkdirSync(dirname(indexFile), { recursive: true });
    writeFileAtomic(indexFile, JSON.stringify(ref));
    images.push(ref);
  }
  return { images, blobsDir };
}

export function blobStream(cat: ImageCatalog, digest: string): { path: string; size: number } | undefined {
  const m = /^sha256:([0-9a-f]{64})$/.exec(digest);
  if (!m) return undefined;
  const path = join(cat.blobsDir, m[1]!);
  if (!existsSync(path)) return undefined;
  return { path, size: statSync(path).size };
}
