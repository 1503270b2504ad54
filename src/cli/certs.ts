// `kha certs CLUSTER`: kubeadm's certificate expiry on every control-plane node, as a table.
import type { CertsInput } from '../workflows/certs-cluster';
import { CERT_WARN_DAYS } from '../phases/certs';
import { day2Command } from './day2-target';

const USAGE = `usage: kha certs CLUSTER [--json] [--detach]

Runs kubeadm certs check-expiration on every control-plane node, one at a time, and prints a table: node,
certificate, expiry time (UTC), days left. A certificate with fewer than ${CERT_WARN_DAYS} days left is a warning
(on standard error and in kha status CLUSTER --certs). Read-only. CLUSTER is the name of a cluster kha deployed
(its spec comes from the deployment on the server) or a cluster file.
Exit status: 0 checked (warnings included), 1 a node could not be checked, 2 bad usage or invalid file.
`;

export const run = day2Command('certs', USAGE, [], () => undefined, (cluster): CertsInput => ({ cluster }));
