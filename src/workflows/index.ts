// Every workflow the worker registers.
export { deployCluster } from './deploy-cluster';
export { resetCluster } from './reset-cluster';
export { backupCluster } from './backup-cluster';
export { certsCluster } from './certs-cluster';
export { removeNode } from './remove-node';
