// kubectl (nodes, the few resources the scripts use, Calico), etcdctl, crictl, ctr, containerd, kubelet.
import { createHash } from 'node:crypto';
import * as fs from 'node:fs';
import * as os from 'node:os';
import * as path from 'node:path';
import YAML from 'yaml';
import { ToolExit, dirEntries, err, exists, flag, has, hostname, hp, now, out, parseArgs, readJson, readText, runDir, sleepMs, type ParsedArgs, writeJson, writeOut, caller } from './env';
import { activeUnits, criRunning, crictlEndpoint, installed, isActive, kubeVersionOfPackage, runtimeRunning } from './host';
import { cniApplied, nodeReady, readModel, resourceKey, updateModel, type SimCluster, type SimNode, type SimResource } from './model';
import { dialApi } from './kubeadm';
import { manifestForUrl } from './net';

function kubeconfigPath(p: ParsedArgs): string {
  return flag(p, 'kubeconfig') ?? process.env.KUBECONFIG ?? `${process.env.HOME ?? os.homedir()}/.kube/config`;
}

function connect(p: ParsedArgs): SimCluster {
  const kc = kubeconfigPath(p);
  const text = readText(hp(kc));
  if (text === undefined) {
    err('E1125 00:00:00.000000 kubectl memcache.go:265] couldn\'t get current server API group list: Get "http://localhost:8080/api?timeout=32s": dial tcp [::1]:8080: connect: connection refused\nThe connection to the server localhost:8080 was refused - did you specify the right host or port?');
    throw new ToolExit(1);
  }
  const override = flag(p, 'server') ?? flag(p, 's');
  const server = override ? override.replace(/^https:\/\//, '').replace(/\/$/, '') : (/server:\s*https:\/\/(\S+)/.exec(text)?.[1] ?? '');
  const c = readModel().cluster;
  const e = dialApi(c, server);
  if (e) {
    err(e.startsWith('etcdserver') ? `Error from server: ${e}` : `Unable to connect to the server: ${e}`);
    throw new ToolExit(1);
  }
  return c!;
}

function nodeObject(c: SimCluster, n: SimNode): Record<string, unknown> {
  const ready = nodeReady(c, n);
  return {
    apiVersion: 'v1',
    kind: 'Node',
    metadata: { name: n.name, labels: n.labels, creationTimestamp: new Date(n.createdAt).toISOString() },
    spec: { taints: n.taints.length ? n.taints : undefined, podCIDR: undefined },
    status: {
      addresses: [{ type: 'InternalIP', address: n.address }, { type: 'Hostname', address: n.name }],
      conditions: [{ type: 'Ready', status: ready ? 'True' : n.kubeletDown ? 'Unknown' : 'False', reason: ready ? 'KubeletReady' : n.kubeletDown ? 'NodeStatusUnknown' : 'KubeletNotReady', message: ready ? 'kubelet is posting ready status' : n.kubeletDown ? 'Kubelet stopped posting node status.' : 'container runtime network not ready: NetworkReady=false reason:NetworkPluginNotReady message:Network plugin returns error: cni plugin not initialized' }],
      nodeInfo: { kubeletVersion: n.kubeletVersion, containerRuntimeVersion: 'containerd://1.7.28' },
    },
  };
}

function pods(c: SimCluster): Array<{ ns: string; name: string; ready: boolean; node: string }> {
  const r: Array<{ ns: string; name: string; ready: boolean; node: string }> = [];
  for (const n of c.nodes) {
    if (n.controlPlane) for (const x of ['etcd', 'kube-apiserver', 'kube-controller-manager', 'kube-scheduler']) r.push({ ns: 'kube-system', name: `${x}-${n.name}`, ready: !n.kubeletDown, node: n.name });
    r.push({ ns: 'kube-system', name: `kube-proxy-${n.name.slice(-5)}`, ready: !n.kubeletDown, node: n.name });
    if (cniApplied(c)) r.push({ ns: 'calico-system', name: `calico-node-${n.name.slice(-5)}`, ready: !n.kubeletDown, node: n.name });
  }
  r.push({ ns: 'kube-system', name: 'coredns-7c65d6cfc9-abcde', ready: cniApplied(c), node: c.nodes[0]?.name ?? '' });
  return r;
}

/** Objects of a kind (nodes, pods, and stored resources). */
function list(c: SimCluster, kind: string, ns: string | undefined): Record<string, any>[] {
  const k = kind.toLowerCase().replace(/s$/, '');
  if (k === 'node' || k === 'no') return c.nodes.map((n) => nodeObject(c, n));
  if (k === 'pod' || k === 'po') {
    return pods(c)
      .filter((x) => !ns || x.ns === ns)
      .map((x) => ({ apiVersion: 'v1', kind: 'Pod', metadata: { name: x.name, namespace: x.ns }, spec: { nodeName: x.node }, status: { phase: x.ready ? 'Running' : 'Pending', conditions: [{ type: 'Ready', status: x.ready ? 'True' : 'False' }] } }));
  }
  if (k === 'lease') {
    // kube-vip's leader election: the first holder whose kubelet runs leads (real kube-vip names its node).
    const leader = c.vipHolders.find((h) => c.nodes.some((n) => n.name === h && !n.kubeletDown));
    const leases = leader ? [{ apiVersion: 'coordination.k8s.io/v1', kind: 'Lease', metadata: { name: 'plndr-cp-lock', namespace: 'kube-system' }, spec: { holderIdentity: leader, leaseDurationSeconds: 5 } }] : [];
    return leases.filter((x) => !ns || x.metadata.namespace === ns);
  }
  if (k === 'configmap' || k === 'cm') {
    const cms: Record<string, any>[] = [
      { apiVersion: 'v1', kind: 'ConfigMap', metadata: { name: 'kube-proxy', namespace: 'kube-system' }, data: { 'config.conf': `apiVersion: kubeproxy.config.k8s.io/v1alpha1\nkind: KubeProxyConfiguration\nmode: ${c.proxyMode}\nipvs:\n  strictARP: ${c.strictARP}\n` } },
      { apiVersion: 'v1', kind: 'ConfigMap', metadata: { name: 'kubeadm-config', namespace: 'kube-system' }, data: { ClusterConfiguration: `controlPlaneEndpoint: ${c.controlPlaneEndpoint}\nkubernetesVersion: ${c.kubernetesVersion}\n` } },
    ];
    return cms.filter((x) => !ns || x.metadata.namespace === ns);
  }
  return Object.values(c.resources).filter((r) => {
    const rk = r.kind.toLowerCase();
    const plural = `${rk}s`;
    const matches = [rk, plural, `${plural}.${String(r.apiVersion).split('/')[0]}`, `${rk}.${String(r.apiVersion).split('/')[0]}`];
    return matches.includes(kind.toLowerCase()) && (!ns || !r.metadata.namespace || r.metadata.namespace === ns);
  });
}

/** A small JSONPath: .a.b, [*], [N], [?(@.k=="v")], string literals {"\n"}, {range PATH}...{end} (nestable). */
export function jsonpath(obj: unknown, expr: string): string {
  const parts: Array<{ text: string } | { path: string }> = [];
  const re = /\{([^}]*)\}|([^{]+)/g;
  let m: RegExpExecArray | null;
  while ((m = re.exec(expr))) parts.push(m[2] !== undefined ? { text: m[2].replace(/\\n/g, '\n') } : { path: m[1]!.trim() });
  let i = 0;
  // Renders parts from i until a closing {end} (or the end), against `cur`; leaves i after that {end}.
  const render = (cur: unknown): string => {
    let o = '';
    while (i < parts.length) {
      const p = parts[i++]!;
      if ('text' in p) o += p.text;
      else if (p.path === 'end') return o;
      else if (p.path.startsWith('range ')) {
        const items = evalPath(cur, p.path.slice(6).trim());
        const bodyStart = i;
        if (items.length === 0) skipBody();
        for (const item of items) {
          i = bodyStart;
          o += render(item);
        }
      } else if (/^["']/.test(p.path)) o += p.path.slice(1, -1).replace(/\\n/g, '\n').replace(/\\t/g, '\t');
      else o += evalPath(cur, p.path).map((v) => (typeof v === 'object' ? JSON.stringify(v) : String(v))).join(' ');
    }
    return o;
  };
  const skipBody = () => {
    for (let depth = 1; i < parts.length && depth > 0; i++) {
      const p = parts[i]!;
      if ('path' in p) depth += p.path.startsWith('range ') ? 1 : p.path === 'end' ? -1 : 0;
    }
  };
  return render(obj);
}

function evalPath(obj: unknown, path: string): unknown[] {
  let cur: unknown[] = [obj];
  const tokens = path.replace(/^\$/, '').match(/\[[^\]]*\]|\.(?:[^.[\\]|\\.)+/g) ?? [];
  for (const t of tokens) {
    const next: unknown[] = [];
    for (const v of cur) {
      if (v === null || v === undefined) continue;
      if (t.startsWith('.')) {
        const k = t.slice(1).replace(/\\\./g, '.');
        const x = (v as Record<string, unknown>)[k];
        if (x !== undefined) next.push(x);
      } else if (t === '[*]') {
        if (Array.isArray(v)) next.push(...v);
        else if (typeof v === 'object') next.push(...Object.values(v as object));
      } else if (/^\[\d+\]$/.test(t)) {
        const x = (v as unknown[])[Number(t.slice(1, -1))];
        if (x !== undefined) next.push(x);
      } else {
        const f = /^\[\?\(@\.([\w.]+)\s*==\s*["']([^"']*)["']\)\]$/.exec(t);
        if (f && Array.isArray(v)) for (const e of v) if (String(evalPath(e, '.' + f[1])[0]) === f[2]) next.push(e);
      }
    }
    cur = next;
  }
  return cur;
}

function printObjects(p: ParsedArgs, kind: string, objs: Record<string, any>[], single: boolean): void {
  const o = flag(p, 'o', 'output') ?? '';
  const wrap = single ? objs[0] : { apiVersion: 'v1', kind: 'List', items: objs };
  if (o === 'json') return out(JSON.stringify(wrap, null, 4));
  if (o === 'yaml') return out(YAML.stringify(wrap));
  if (o === 'name') {
    for (const x of objs) out(`${String(x.kind).toLowerCase()}/${x.metadata.name}`);
    return;
  }
  if (o.startsWith('jsonpath=')) return void writeOut(jsonpath(wrap, o.slice(9).replace(/^'|'$/g, '')));
  const noHeaders = has(p, 'no-headers');
  if (kind.startsWith('no')) {
    if (!noHeaders) out('NAME        STATUS     ROLES           AGE   VERSION');
    for (const x of objs) {
      const ready = x.status.conditions[0].status === 'True' ? 'Ready' : 'NotReady';
      const roles = x.metadata.labels['node-role.kubernetes.io/control-plane'] !== undefined ? 'control-plane' : '<none>';
      out(`${x.metadata.name}   ${ready}   ${roles}   5m    ${x.status.nodeInfo.kubeletVersion}`);
    }
    return;
  }
  if (!noHeaders) out('NAME   READY   STATUS    AGE');
  for (const x of objs) out(`${x.metadata.name}   1/1   ${x.status?.phase ?? 'Running'}   5m`);
}

function notFound(kind: string, name: string): never {
  err(`Error from server (NotFound): ${kind.endsWith('s') ? kind : kind + 's'} "${name}" not found`);
  throw new ToolExit(1);
}

function splitTarget(p: ParsedArgs, from = 1): Array<{ kind: string; name?: string }> {
  const a = p.pos.slice(from);
  if (a.length === 0) return [];
  if (a[0]!.includes('/')) return a.map((x) => ({ kind: x.split('/')[0]!, name: x.split('/')[1] }));
  if (a.length === 1) return [{ kind: a[0]! }];
  return a.slice(1).map((n) => ({ kind: a[0]!, name: n }));
}

function get(p: ParsedArgs): number {
  const raw = flag(p, 'raw');
  const c = connect(p);
  if (raw) {
    out(['/livez', '/readyz', '/healthz'].includes(raw) ? 'ok' : '{}');
    return 0;
  }
  const ns = has(p, 'A', 'all-namespaces') ? undefined : flag(p, 'n', 'namespace') ?? (p.pos[1]?.startsWith('no') ? undefined : 'default');
  const t = splitTarget(p);
  if (t.length === 0) {
    err('error: you must specify the type of resource to get.');
    return 1;
  }
  const objs: Record<string, any>[] = [];
  for (const x of t) {
    const all = list(c, x.kind, ns);
    if (x.name) {
      const f = all.find((o) => o.metadata.name === x.name);
      if (!f) {
        if (has(p, 'ignore-not-found')) continue;
        notFound(x.kind.replace(/s$/, ''), x.name);
      }
      objs.push(f);
    } else objs.push(...all);
  }
  if (objs.length === 0 && !t.some((x) => x.name) && !flag(p, 'o', 'output')) {
    err(ns ? `No resources found in ${ns} namespace.` : 'No resources found');
    return 0;
  }
  printObjects(p, t[0]!.kind, objs, t.length === 1 && !!t[0]!.name);
  return 0;
}

function readManifests(p: ParsedArgs): { docs: SimResource[]; source: string } {
  const docs: SimResource[] = [];
  let source = '';
  for (const f of p.flags.get('f') ?? p.flags.get('filename') ?? []) {
    source = f;
    const text = /^https?:\/\//.test(f) ? manifestForUrl(f) : f === '-' ? caller().readStdin() : readText(hp(f));
    if (text === undefined) {
      err(/^https?:\/\//.test(f) ? `error: unable to read URL "${f}", server reported 404 Not Found, status code=404` : `error: the path "${f}" does not exist`);
      throw new ToolExit(1);
    }
    for (const d of YAML.parseAllDocuments(text)) {
      const o = d.toJSON() as SimResource | null;
      if (o && o.kind && o.metadata?.name) docs.push(o);
    }
  }
  return { docs, source };
}

const CRD_KINDS: Record<string, string> = { Installation: 'installations.operator.tigera.io', APIServer: 'apiservers.operator.tigera.io', IPPool: 'ippools.crd.projectcalico.org', Goldmane: 'goldmanes.operator.tigera.io', Whisker: 'whiskers.operator.tigera.io' };
const CLUSTER_SCOPED = new Set(['Namespace', 'CustomResourceDefinition', 'ClusterRole', 'ClusterRoleBinding', 'Installation', 'APIServer', 'Node', 'IPPool', 'Goldmane', 'Whisker', 'PriorityClass']);

function applyOrCreate(p: ParsedArgs, create: boolean): number {
  connect(p);
  const { docs, source } = readManifests(p);
  const lines: string[] = [];
  const r = updateModel((m) => {
    const c = m.cluster!;
    for (const d of docs) {
      const crd = CRD_KINDS[d.kind];
      if (crd && !Object.values(c.resources).some((x) => x.kind === 'CustomResourceDefinition' && x.metadata.name === crd)) {
        return `error: resource mapping not found for name: "${d.metadata.name}" namespace: "" from "${source}": no matches for kind "${d.kind}" in version "${d.apiVersion}"\nensure CRDs are installed first`;
      }
      const ns = CLUSTER_SCOPED.has(d.kind) ? undefined : d.metadata.namespace ?? flag(p, 'n', 'namespace') ?? 'default';
      const key = resourceKey(d.kind, ns, d.metadata.name);
      const group = String(d.apiVersion).includes('/') ? `.${String(d.apiVersion).split('/')[0]}` : '';
      const what = `${d.kind.toLowerCase()}${group}/${d.metadata.name}`;
      const prev = c.resources[key];
      if (prev && create) return `Error from server (AlreadyExists): error when creating "${source}": ${d.kind.toLowerCase()}s${group} "${d.metadata.name}" already exists`;
      const next = { ...d, metadata: { ...d.metadata, namespace: ns } };
      lines.push(`${what} ${!prev ? 'created' : JSON.stringify(prev) === JSON.stringify(next) ? 'unchanged' : has(p, 'server-side') ? 'serverside-applied' : 'configured'}`);
      c.resources[key] = next;
    }
    return undefined;
  });
  for (const l of lines) out(l);
  if (r) {
    err(r);
    return 1;
  }
  return 0;
}

function del(p: ParsedArgs): number {
  const c = connect(p);
  for (const t of splitTarget(p)) {
    if (!t.name) continue;
    const k = t.kind.toLowerCase();
    if (k.startsWith('no')) {
      const found = updateModel((m) => {
        const before = m.cluster!.nodes.length;
        m.cluster!.nodes = m.cluster!.nodes.filter((n) => n.name !== t.name);
        return before !== m.cluster!.nodes.length;
      });
      if (!found && !has(p, 'ignore-not-found')) notFound('node', t.name);
      if (found) out(`node "${t.name}" deleted`);
      continue;
    }
    const obj = list(c, t.kind, flag(p, 'n', 'namespace')).find((o) => o.metadata.name === t.name) as SimResource | undefined;
    if (!obj) {
      if (!has(p, 'ignore-not-found')) notFound(k, t.name);
      continue;
    }
    updateModel((m) => {
      delete m.cluster!.resources[resourceKey(obj.kind, obj.metadata.namespace, obj.metadata.name)];
    });
    out(`${obj.kind.toLowerCase()} "${t.name}" deleted`);
  }
  return 0;
}

function conditionMet(c: SimCluster, kind: string, o: Record<string, any>, cond: string): boolean {
  const k = kind.toLowerCase();
  if (k.startsWith('no')) return cond.toLowerCase() === 'ready' && o.status.conditions[0].status === 'True';
  if (k.startsWith('crd') || k.startsWith('customresourcedefinition')) return cond.toLowerCase() === 'established';
  if (k.startsWith('tigerastatus')) return cniApplied(c);
  if (k.startsWith('deploy') || k.startsWith('daemonset')) return cond.toLowerCase() === 'available' || cond.toLowerCase() === 'ready';
  if (k.startsWith('po')) return o.status?.phase === 'Running';
  return true;
}

function wait(p: ParsedArgs): number {
  const forCond = flag(p, 'for') ?? '';
  const cond = /^condition=([^=]+)/i.exec(forCond)?.[1] ?? '';
  const timeoutMs = (() => {
    const t = flag(p, 'timeout') ?? '30s';
    const m = /^(\d+)(s|m|h)?$/.exec(t);
    return m ? Number(m[1]) * (m[2] === 'm' ? 60_000 : m[2] === 'h' ? 3600_000 : 1000) : 30_000;
  })();
  const deadline = Date.now() + timeoutMs;
  const targets = splitTarget(p);
  for (;;) {
    const c = connect(p);
    const pending: string[] = [];
    const met: string[] = [];
    for (const t of targets) {
      let objs = list(c, t.kind, flag(p, 'n', 'namespace'));
      if (t.kind.startsWith('crd') && t.name) {
        objs = Object.values(c.resources).filter((r) => r.kind === 'CustomResourceDefinition' && r.metadata.name === t.name);
        if (objs.length === 0) {
          err(`Error from server (NotFound): customresourcedefinitions.apiextensions.k8s.io "${t.name}" not found`);
          return 1;
        }
      } else if (t.name) objs = objs.filter((o) => o.metadata.name === t.name);
      if (t.name && objs.length === 0) notFound(t.kind, t.name);
      if (!t.name && objs.length === 0) {
        err('error: no matching resources found');
        return 1;
      }
      for (const o of objs) (conditionMet(c, t.kind, o, cond) ? met : pending).push(`${t.kind.replace(/s$/, '')}/${o.metadata.name}`);
    }
    if (pending.length === 0) {
      for (const x of met) out(`${x} condition met`);
      return 0;
    }
    if (Date.now() >= deadline) {
      err(`error: timed out waiting for the condition on ${pending[0]!.replace(/^(\w+)\//, '$1s/')}`);
      return 1;
    }
    sleepMs(Math.min(250, deadline - Date.now()));
  }
}

function labelOrTaint(p: ParsedArgs, verb: 'label' | 'taint'): number {
  connect(p);
  const [kind, name, ...specs] = p.pos.slice(1);
  if (!kind?.startsWith('no') || !name) {
    err(`kha-sim: kubectl ${verb} is simulated for nodes only`);
    return 1;
  }
  const r = updateModel((m) => {
    const n = m.cluster!.nodes.find((x) => x.name === name);
    if (!n) return 'notfound';
    let changed = false;
    for (const s of specs) {
      if (verb === 'label') {
        if (s.endsWith('-')) {
          changed = delete n.labels[s.slice(0, -1)] || changed;
          continue;
        }
        const [k, v = ''] = s.split('=') as [string, string?];
        if (n.labels[k] !== undefined && n.labels[k] !== v && !has(p, 'overwrite')) return `error: '${k}' already has a value (${n.labels[k]}), and --overwrite is false`;
        changed = changed || n.labels[k] !== v;
        n.labels[k] = v;
      } else {
        const remove = s.endsWith('-');
        const [kv, effect] = (remove ? s.slice(0, -1) : s).split(':') as [string, string?];
        const [key, value] = kv.split('=') as [string, string?];
        if (remove) {
          const before = n.taints.length;
          n.taints = n.taints.filter((t) => !(t.key === key && (!effect || t.effect === effect)));
          if (before === n.taints.length) return `error: taint "${s.slice(0, -1)}" not found`;
          changed = true;
        } else {
          if (n.taints.some((t) => t.key === key && t.effect === effect) && !has(p, 'overwrite')) return `error: node ${name} already has ${key} taint(s) with same effect(s) and --overwrite is false`;
          n.taints = n.taints.filter((t) => !(t.key === key && t.effect === effect));
          n.taints.push({ key, value, effect: effect ?? 'NoSchedule' });
          changed = true;
        }
      }
    }
    return changed ? (verb === 'label' ? 'labeled' : specs.every((s) => s.endsWith('-')) ? 'untainted' : 'tainted') : 'not labeled';
  });
  if (r === 'notfound') notFound('node', name);
  if (r.startsWith('error')) {
    err(r);
    return 1;
  }
  out(`node/${name} ${r}`);
  return 0;
}

export function kubectl(args: string[]): number {
  const p = parseArgs(args, new Set(['kubeconfig', 'n', 'namespace', 'o', 'output', 'f', 'filename', 'for', 'timeout', 'raw', 'l', 'selector', 'field-manager', 'c', 'container', 'context', 's', 'server']));
  const verb = p.pos[0];
  switch (verb) {
    case 'version': {
      const v = kubeVersionOfPackage('kubectl') ?? 'v1.35.2';
      out(`Client Version: ${v}\nKustomize Version: v5.7.1`);
      if (!has(p, 'client')) out(`Server Version: ${connect(p).kubernetesVersion}`);
      return 0;
    }
    case 'get':
      return get(p);
    case 'apply':
      return applyOrCreate(p, false);
    case 'create':
      return applyOrCreate(p, true);
    case 'delete':
      return del(p);
    case 'wait':
      return wait(p);
    case 'label':
    case 'taint':
      return labelOrTaint(p, verb);
    case 'cluster-info':
      out(`Kubernetes control plane is running at https://${connect(p).controlPlaneEndpoint}`);
      return 0;
    case 'set':
    case 'annotate':
    case 'rollout':
    case 'patch':
      connect(p);
      if (verb === 'rollout') out(`${p.pos[2] ?? ''} successfully rolled out`);
      return 0;
    case 'exec': {
      connect(p);
      const pod = p.pos[1] ?? '';
      if (pod.startsWith('etcd-') && p.rest[0] === 'etcdctl') return etcdctl(p.rest.slice(1));
      err(`kha-sim: kubectl exec is simulated for etcdctl in etcd pods only`);
      return 1;
    }
    default:
      err(`error: unknown command "${verb ?? ''}" for "kubectl"`);
      return 1;
  }
}

// ---------- etcdctl ----------

export function etcdctl(args: string[]): number {
  const p = parseArgs(args, new Set(['endpoints', 'cacert', 'cert', 'key', 'w', 'write-out', 'command-timeout', 'dial-timeout']));
  for (const f of ['cacert', 'cert', 'key']) {
    const v = flag(p, f);
    if (v && !exists(hp(v))) {
      err(`Error: open ${v}: no such file or directory`);
      return 1;
    }
  }
  const c = readModel().cluster;
  const me = hostname();
  const local = c?.etcd.find((m) => m.name === me && m.running);
  if (!c || !local) {
    err('{"level":"warn","msg":"retrying of unary invoker failed","error":"rpc error: code = DeadlineExceeded desc = latest balancer error: last connection error: connection error: desc = \\"transport: Error while dialing: dial tcp 127.0.0.1:2379: connect: connection refused\\""}\nError: context deadline exceeded');
    return 1;
  }
  const w = flag(p, 'w', 'write-out') ?? 'simple';
  const [a, b, ...rest] = p.pos;
  if (a === 'member' && b === 'list') {
    if (w === 'json') {
      // --hex prints IDs as hex strings (without it, 64-bit numbers); a member not started yet has no name or client URLs.
      const hex = has(p, 'hex');
      const id = (x: string) => (hex ? x : parseInt(x.slice(0, 12), 16));
      out(JSON.stringify({ header: { cluster_id: id('8e9e05c52164694d'), member_id: id(local.id) }, members: c.etcd.map((m) => ({ ID: id(m.id), name: m.name, peerURLs: [m.peerURL], clientURLs: [m.clientURL], isLearner: m.isLearner || undefined })) }));
    } else if (w === 'table') {
      out('+------------------+---------+------+------------+-------------+------------+\n|        ID        | STATUS  | NAME | PEER ADDRS | CLIENT ADDRS| IS LEARNER |');
      for (const m of c.etcd) out(`| ${m.id} | started | ${m.name} | ${m.peerURL} | ${m.clientURL} | ${m.isLearner} |`);
    } else for (const m of c.etcd) out(`${m.id}, started, ${m.name}, ${m.peerURL}, ${m.clientURL}, ${m.isLearner}`);
    return 0;
  }
  if (a === 'member' && (b === 'remove' || b === 'promote')) {
    const id = rest[0] ?? '';
    const r = updateModel((m) => {
      const cl = m.cluster!;
      const x = cl.etcd.find((e) => e.id === id);
      if (!x) return 'Error: etcdserver: member not found';
      if (b === 'remove') cl.etcd = cl.etcd.filter((e) => e !== x);
      else if (!x.isLearner) return 'Error: etcdserver: can only promote a learner member';
      else x.isLearner = false;
      return undefined;
    });
    if (r) {
      err(r);
      return 1;
    }
    out(b === 'remove' ? `Member ${id} removed from cluster 8e9e05c52164694d` : `Member ${id} promoted in cluster 8e9e05c52164694d`);
    return 0;
  }
  if (a === 'endpoint' && (b === 'health' || b === 'status')) {
    const members = has(p, 'cluster') ? c.etcd : [local];
    let bad = false;
    for (const m of members) {
      const ep = has(p, 'cluster') ? m.clientURL : flag(p, 'endpoints') ?? 'https://127.0.0.1:2379';
      if (b === 'health') {
        if (m.running) out(`${ep} is healthy: successfully committed proposal: took = 9.3ms`);
        else {
          err(`${ep} is unhealthy: failed to commit proposal: context deadline exceeded`);
          bad = true;
        }
      } else if (m.running) out(`${ep}, ${m.id}, 3.6.5, 20 MB, ${m === c.etcd[0]}, ${m.isLearner}, 2, 1000, 1000,`);
    }
    if (bad) {
      err('Error: unhealthy cluster');
      return 1;
    }
    return 0;
  }
  if (a === 'version') {
    out('etcdctl version: 3.6.5\nAPI version: 3.6');
    return 0;
  }
  err(`Error: unknown command "${a ?? ''}" for "etcdctl"`);
  return 1;
}

// ---------- runtime ----------

/**
 * One running container per static pod manifest while kubelet runs. kubelet restarts a static pod whose manifest
 * changed: a container counts as created when a crictl call first sees its manifest's current version (file
 * times are too coarse to compare with `date +%s%N`). etcd keeps a fixed id for `crictl exec`.
 */
function staticPodContainers(): { id: string; name: string; createdNs: bigint }[] {
  if (activeUnits()['kubelet'] !== 'active') return [];
  const dir = hp('/etc/kubernetes/manifests');
  const stateFile = path.join(runDir(), 'static-pods.json');
  const seen = readJson<Record<string, { version: string; createdNs: string }>>(stateFile, {});
  let changed = false;
  const list = dirEntries(dir)
    .filter((f) => f.endsWith('.yaml'))
    .sort()
    .map((f) => {
      const name = f.slice(0, -'.yaml'.length);
      const id = name === 'etcd' ? 'e7cd0c1d2f3a4b5c' : createHash('sha256').update(name).digest('hex').slice(0, 16);
      const st = fs.statSync(`${dir}/${f}`, { bigint: true });
      const version = `${st.ino}:${st.mtimeNs}:${st.size}`;
      if (seen[name]?.version !== version) {
        seen[name] = { version, createdNs: String(BigInt(Math.round((performance.timeOrigin + performance.now()) * 1e6))) };
        changed = true;
      }
      return { id, name, createdNs: BigInt(seen[name]!.createdNs) };
    });
  if (changed) writeJson(stateFile, seen);
  return list;
}

function etcdContainerRunning(): boolean {
  return exists(hp('/etc/kubernetes/manifests/etcd.yaml')) && activeUnits()['kubelet'] === 'active';
}

export function crictl(args: string[]): number {
  const p = parseArgs(args, new Set(['name', 'state', 'r', 'runtime-endpoint', 'o', 'output', 'label', 'namespace']));
  const verb = p.pos[0];
  if (verb === '--version' || has(p, 'version') || verb === undefined) {
    out(`crictl version v${(kubeVersionOfPackage('cri-tools') ?? 'v1.35.0').slice(1)}`);
    return 0;
  }
  const endpoint = flag(p, 'r', 'runtime-endpoint') ?? crictlEndpoint();
  if (!criRunning(endpoint)) {
    const sock = endpoint.replace(/^unix:\/\//, '');
    err(`E1125 crictl validate service connection: validate CRI v1 runtime API for endpoint "${endpoint}": rpc error: code = Unavailable desc = connection error: desc = "transport: Error while dialing: dial unix ${sock}: connect: no such file or directory"`);
    return 1;
  }
  switch (verb) {
    case 'info':
      out(JSON.stringify({ status: { conditions: [{ type: 'RuntimeReady', status: true }, { type: 'NetworkReady', status: exists(hp('/etc/cni/net.d/10-calico.conflist')) }] } }, null, 2));
      return 0;
    case 'version':
      out('Version:  0.1.0\nRuntimeName:  containerd\nRuntimeVersion:  v1.7.28\nRuntimeApiVersion:  v1');
      return 0;
    case 'ps': {
      const name = flag(p, 'name') ?? '';
      const state = (flag(p, 'state') ?? 'running').toLowerCase();
      const list = state === 'running' ? staticPodContainers().filter((c) => !name || new RegExp(name).test(c.name)) : [];
      const o = flag(p, 'o', 'output');
      if (has(p, 'q', 'quiet')) for (const c of list) out(c.id);
      else if (o === 'json') {
        const containers = list.map((c) => ({ id: c.id, metadata: { name: c.name, attempt: 0 }, state: 'CONTAINER_RUNNING', createdAt: String(c.createdNs) }));
        out(JSON.stringify({ containers }, null, 2));
      } else {
        out('CONTAINER           IMAGE               CREATED             STATE               NAME   ATTEMPT   POD ID');
        for (const c of list) out(`${c.id}    ${c.name}    ${Math.max(0, Math.round((Date.now() - Number(c.createdNs / 1_000_000n)) / 1000))} seconds ago    Running    ${c.name}    0    ${c.id.slice(0, 8)}`);
      }
      return 0;
    }
    case 'exec': {
      const rest = p.pos.slice(2);
      if (p.pos[1] === 'e7cd0c1d2f3a4b5c' && etcdContainerRunning() && rest[0] === 'etcdctl') {
        const i = args.indexOf('etcdctl');
        return etcdctl(args.slice(i + 1));
      }
      err(`kha-sim: crictl exec is simulated for etcdctl in the etcd container only`);
      return 1;
    }
    case 'pull':
    case 'images':
    case 'rmi':
    case 'pods':
    case 'rm':
    case 'rmp':
    case 'stop':
    case 'stopp':
      return 0;
    default:
      err(`crictl: '${verb}' is not simulated`);
      return 1;
  }
}

function containerdVersion(): string {
  const i = installed();
  return (i['containerd.io']?.version ?? i['containerd']?.version ?? '1.7.28').replace(/~.*$/, '').replace(/-.*$/, '');
}

export function containerd(args: string[]): number {
  if (args[0] === '--version' || args[0] === '-v') {
    out(`containerd github.com/containerd/containerd/v2 v${containerdVersion()} sim`);
    return 0;
  }
  if (args[0] === 'config' && args[1] === 'default') {
    out(containerdVersion().startsWith('2') ? CONTAINERD_V3 : CONTAINERD_V2);
    return 0;
  }
  err('containerd: the daemon runs as the containerd unit in the lab');
  return 1;
}

export function ctr(args: string[]): number {
  if (args[0] === 'version' || args[0] === '--version') {
    out(`ctr github.com/containerd/containerd v${containerdVersion()}`);
    return runtimeRunning() ? 0 : 1;
  }
  if (!runtimeRunning()) {
    err('ctr: failed to dial "/run/containerd/containerd.sock": connection error: desc = "transport: error while dialing: dial unix:///run/containerd/containerd.sock: timeout"');
    return 1;
  }
  return 0;
}

export function kubelet(args: string[]): number {
  if (args.includes('--version')) {
    out(`Kubernetes ${kubeVersionOfPackage('kubelet') ?? 'v1.35.2'}`);
    return 0;
  }
  err('kubelet: the daemon runs as the kubelet unit in the lab');
  return 1;
}

const CONTAINERD_V2 = `disabled_plugins = []
version = 2

[plugins]
  [plugins."io.containerd.grpc.v1.cri"]
    sandbox_image = "registry.k8s.io/pause:3.8"
    [plugins."io.containerd.grpc.v1.cri".containerd]
      default_runtime_name = "runc"
      [plugins."io.containerd.grpc.v1.cri".containerd.runtimes]
        [plugins."io.containerd.grpc.v1.cri".containerd.runtimes.runc]
          runtime_type = "io.containerd.runc.v2"
          [plugins."io.containerd.grpc.v1.cri".containerd.runtimes.runc.options]
            SystemdCgroup = false
    [plugins."io.containerd.grpc.v1.cri".registry]
      config_path = ""
`;

const CONTAINERD_V3 = `version = 3

[plugins]
  [plugins.'io.containerd.cri.v1.images']
    snapshotter = 'overlayfs'
    [plugins.'io.containerd.cri.v1.images'.pinned_images]
      sandbox = 'registry.k8s.io/pause:3.10'
    [plugins.'io.containerd.cri.v1.images'.registry]
      config_path = ''
  [plugins.'io.containerd.cri.v1.runtime']
    [plugins.'io.containerd.cri.v1.runtime'.containerd]
      default_runtime_name = 'runc'
      [plugins.'io.containerd.cri.v1.runtime'.containerd.runtimes]
        [plugins.'io.containerd.cri.v1.runtime'.containerd.runtimes.runc]
          runtime_type = 'io.containerd.runc.v2'
          [plugins.'io.containerd.cri.v1.runtime'.containerd.runtimes.runc.options]
            SystemdCgroup = false
`;

export { now };

/** The docker CLI: its version, and `info` while the daemon runs (nothing else is run by kha's scripts). */
export function docker(args: string[]): number {
  const v = (installed()['docker-ce-cli']?.version ?? '5:28.5.1-1').replace(/^\d+:/, '').split('-')[0];
  if (args[0] === '--version' || args[0] === '-v') {
    out(`Docker version ${v}, build sim`);
    return 0;
  }
  if (!isActive('docker')) {
    err('Cannot connect to the Docker daemon at unix:///var/run/docker.sock. Is the docker daemon running?');
    return 1;
  }
  if (args[0] === 'info') {
    out(`Server Version: ${v}\nCgroup Driver: ${/native\.cgroupdriver=systemd/.test(readText(hp('/etc/docker/daemon.json')) ?? '') ? 'systemd' : 'cgroupfs'}`);
    return 0;
  }
  if (args[0] === 'version') {
    out(`Client: Docker Engine - Community\n Version: ${v}\nServer: Docker Engine - Community\n Engine:\n  Version: ${v}`);
    return 0;
  }
  err(`docker: '${args[0] ?? ''}' is not simulated in the lab`);
  return 1;
}

/** cri-dockerd --version as the release prints it: "cri-dockerd 0.3.21 (<commit>)". */
export function criDockerd(args: string[]): number {
  if (args[0] === '--version' || args[0] === 'version') {
    const v = (installed()['cri-dockerd']?.version ?? '0.0.0').split('.').slice(0, 3).join('.');
    err(`cri-dockerd ${v} (sim)`);
    return 0;
  }
  err('cri-dockerd: the daemon runs as the cri-docker unit in the lab');
  return 1;
}
