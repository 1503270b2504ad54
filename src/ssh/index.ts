// The SSH executor's public surface.
export * from './types';
export * from './errors';
export { SshSession, withSession } from './executor';
export { IdleSessions } from './reuse';
export type { ConnectOptions, RebootOptions } from './executor';
export { fingerprint, parseKnownHosts, knownHostsName, defaultKnownHostsFile } from './hostkeys';
