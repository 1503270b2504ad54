// `kha certs CLUSTER`: kubeadm's certificate expiry on every control-plane node, as a table.
// `kha certs renew CLUSTER`: renewal one control-plane node at a time, with the static pods restarted.
import { resolve } from 'node:path';
import { recordKubeconfigChoice } from '../activities/kubeconfig-target';
import type { CertsInput } from '../workflows/certs-cluster';
import type { RenewInput } from '../workflows/renew-cluster';
import { CERT_WARN_DAYS } from '../phases/certs';
import { day2Command } from './day2-target';

const USAGE = `usage: kha certs CLUSTER [--json] [--detach]
       kha certs renew CLUSTER [--kubeconfig PATH] [--json] [--detach]

Runs kubeadm certs check-expiration on every control-plane node, one at a time, and prints a table: node,
certificate, expiry time (UTC), days left. A certificate with fewer than ${CERT_WARN_DAYS} days left is a warning
(on standard error and in kha status CLUSTER --certs). Read-only. CLUSTER is the name of a cluster kha deployed
(its nodes are the ones kha recorded after the last completed deploy, apply, upgrade or remove) or a cluster file.
Exit status: 0 checked (warnings included), 1 a node could not be checked, 2 bad usage or invalid file.
`;

const RENEW_USAGE = `usage: kha certs renew CLUSTER [--kubeconfig PATH] [--json] [--detach]

Renews every certificate kubeadm manages on each control-plane node, one node at a time with the first one
last: kubeadm certs renew all, then etcd, the API server, the controller manager, the scheduler and kube-vip are
restarted (each static pod's sandbox is stopped; the kubelet starts it again) and each must be healthy, with the
API server and etcd serving the new certificates, before the next node starts. etcd keeps quorum; the API
answers on the VIP from the other nodes, except while the VIP moves when kube-vip on its holder restarts. Then the admin kubeconfig kha saved is copied again from the first node
(its client certificate was renewed too).
  --kubeconfig  where to save the renewed admin kubeconfig (default: where kha saves it, see kha kubeconfig)
Status: kha status CLUSTER --renew. A node whose renewal fails waits: kha retry CLUSTER, or kha abort CLUSTER.
Exit status: 0 renewed, 1 failed or aborted, 2 bad usage or invalid file.
`;

const check = day2Command('certs', USAGE, [], () => undefined, (cluster): CertsInput => ({ cluster }));

const renew = day2Command(
  'renew',
  RENEW_USAGE,
  ['--kubeconfig'],
  (a) => {
    const k = a.values.get('--kubeconfig');
    return k === undefined ? undefined : resolve(k);
  },
  (cluster, kubeconfigPath): RenewInput => {
    // As for kha deploy --kubeconfig: the worker writes outside its state directory only where the user chose.
    if (kubeconfigPath) recordKubeconfigChoice(cluster.name, kubeconfigPath);
    return kubeconfigPath ? { cluster, kubeconfigPath } : { cluster };
  },
);

export function run(argv: string[]): Promise<number> {
  return argv[0] === 'renew' ? renew(argv.slice(1)) : check(argv);
}
