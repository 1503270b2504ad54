// kha certs: one cluster-wide, read-only phase: kubeadm's certificate expiry check on every control-plane
// node, one at a time. PURE.
import type { Operation, PhaseDef } from './types';

/** A certificate closer to its expiry than this is a warning (in the table and the status). */
export const CERT_WARN_DAYS = 30;

export const certsCheckPhase: PhaseDef = {
  id: 'certs-check',
  title: 'Certificate expiry',
  mode: 'cluster',
  nodes: 'first-control-plane',
  steps: [{ render: 'day2', script: 'certs-check-expiration', runsOn: 'control-plane', activity: 'certificateExpiry', note: 'on every control-plane node, one at a time' }],
  check: 'read-only',
  rollback: 'nothing: the check changes nothing',
};

export const CERTS: Operation = {
  id: 'certs',
  title: 'Certificates',
  phases: [certsCheckPhase],
  barriers: [],
};

export const certsRenewPhase: PhaseDef = {
  id: 'certs-renew',
  title: 'Renew certificates',
  mode: 'sequential',
  nodes: 'control-planes-first-last',
  steps: [{ render: 'day2', script: 'certs-renew', runsOn: 'node', activity: 'renewCertificates', note: 'renew all, then restart etcd, API server, controller manager, scheduler and kube-vip one at a time' }],
  check: 'none needed: renewing again extends again; a restart counts only once its container is newer than the renewal',
  rollback: 'nothing: the old certificates are replaced, and still valid ones are not needed back',
};

export const kubeconfigRefreshPhase: PhaseDef = {
  id: 'kubeconfig-refresh',
  title: 'Admin kubeconfig',
  mode: 'single',
  nodes: 'first-control-plane',
  steps: [{ render: 'day2', script: 'admin.conf copy', runsOn: 'node', activity: 'fetchKubeconfig', note: 'a plain SSH read of the renewed admin.conf, saved 0600 where kha saved it' }],
  check: 'the copy is written again from the renewed admin.conf',
  rollback: 'nothing',
};

/** One node at a time, the first control plane last, so etcd and the API keep quorum and a VIP holder. */
export const CERTS_RENEW: Operation = {
  id: 'renew',
  title: 'Certificate renewal',
  phases: [certsRenewPhase, kubeconfigRefreshPhase],
  barriers: [{ phase: 'kubeconfig-refresh', after: 'certs-renew', why: 'the admin kubeconfig is copied once every node renewed' }],
};
