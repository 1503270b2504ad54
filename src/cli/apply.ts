// `kha apply FILE`: converge a running cluster to its file by joining the nodes it lacks, after the operator
// approved the difference; never removes a node or changes the version (kha remove, kha upgrade do).
import type { ApplyInput } from '../workflows/apply-cluster';
import { day2Command } from './day2-target';
import { refreshSchedules } from './schedule';

const USAGE = `usage: kha apply FILE [--auto-approve] [--json] [--detach]

Converges the running cluster FILE describes to FILE. It reads what runs on the first control-plane node of FILE
that is a member (Kubernetes version, Nodes, etcd members by ID and peer URL and their health, which node holds
the VIP) and prints the difference. A node that runs but is missing from FILE is never removed (use kha remove),
another version is never applied (use kha upgrade): both refuse before any host changes, and so does anything
else apply cannot do. Otherwise the new nodes' preflight runs (read-only), the run waits for your approval
(kha approve CLUSTER), then the new control-plane nodes join one at a time (etcd checked after each) and the new
workers in parallel. Nodes that run already are not touched; a rollback (kha abort --rollback) resets only the
new nodes this run touched. A FILE that adds nothing ends with "nothing to do" and asks nothing.
  --auto-approve  approve the difference once it is printed
  --json          one JSON object per line
  --detach        return once the run is started
Exit status: 0 applied or nothing to do, 10 waiting for approval, 11 waiting for an operator decision,
1 failed or refused, 2 bad usage or invalid file.
`;

export const run = day2Command(
  'apply',
  USAGE,
  [],
  (a) => a.flags.has('--auto-approve'),
  (cluster, autoApprove): ApplyInput => ({ cluster, options: autoApprove ? { autoApprove } : undefined }),
  { flags: ['--auto-approve'], fileOnly: true, autoApprove: '--auto-approve', done: refreshSchedules },
);
