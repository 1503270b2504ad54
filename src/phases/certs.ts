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
