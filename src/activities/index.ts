// Every activity the worker registers. The workflow imports only the types of these.
export { preflightNode } from './preflight';
export { hostPrep, containerRuntime, installPackages } from './nodes';
export {
  kubeVipFirstNode,
  kubeadmInit,
  waitForVip,
  switchKubeVipToAdminConf,
  installCalico,
  joinControlPlane,
  joinWorker,
  waitEtcdHealthy,
} from './controlplane';
export { resetNode, removeNodeFromCluster, rebootNode } from './compensation';
export { verifyCluster, fetchKubeconfig } from './verify';
export { checkKubeconfigTarget } from './kubeconfig-target';
export { etcdBackup, etcdMembers, certificateExpiry, renewCertificates, discoverCluster } from './day2';
export { removalCheck, drainNode, removeKubeVip, removeEtcdMember, deleteNodeObject } from './remove';
export { restoreCheck, stageSnapshot, stopControlPlane, moveEtcdDataAside, restoreEtcdMember, startEtcd, waitRestoredQuorum, startApiServer, restartAfterRestore, verifyRestore } from './restore';
export { upgradeRepository, upgradeKubeadm, drainForUpgrade, upgradeKubelet, uncordonNode } from './upgrade';
