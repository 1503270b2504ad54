// How kha reaches a Temporal service: TEMPORAL_ADDRESS / TEMPORAL_NAMESPACE, mTLS client certificates or an API
// key (Temporal Cloud). The same settings serve the CLI's client and `kha worker`.
import { readFileSync } from 'node:fs';

export interface TemporalSettings {
  address: string;
  namespace: string;
  tls?: { serverName?: string; serverRootCACertificate?: Buffer; clientCertPair?: { crt: Buffer; key: Buffer } } | true;
  apiKey?: string;
}

function file(env: NodeJS.ProcessEnv, name: string): Buffer | undefined {
  const p = env[name];
  if (!p) return undefined;
  try {
    return readFileSync(p);
  } catch (e) {
    throw new Error(`${name}=${p}: cannot read: ${(e as Error).message}`);
  }
}

/** Settings from the environment, or undefined when TEMPORAL_ADDRESS is unset (use the embedded server). */
export function settingsFromEnv(env: NodeJS.ProcessEnv = process.env): TemporalSettings | undefined {
  const address = env.TEMPORAL_ADDRESS;
  if (!address) return undefined;
  const namespace = env.TEMPORAL_NAMESPACE || 'default';
  const crt = file(env, 'TEMPORAL_TLS_CERT');
  const key = file(env, 'TEMPORAL_TLS_KEY');
  if (!!crt !== !!key) throw new Error('TEMPORAL_TLS_CERT and TEMPORAL_TLS_KEY must be set together');
  const ca = file(env, 'TEMPORAL_TLS_CA');
  const apiKey = env.TEMPORAL_API_KEY || undefined;
  const wantTls = crt || ca || apiKey || env.TEMPORAL_TLS === '1' || env.TEMPORAL_TLS === 'true';
  const tls = wantTls
    ? crt || ca || env.TEMPORAL_TLS_SERVER_NAME
      ? { serverName: env.TEMPORAL_TLS_SERVER_NAME, serverRootCACertificate: ca, clientCertPair: crt && key ? { crt, key } : undefined }
      : (true as const)
    : undefined;
  return { address, namespace, tls, apiKey };
}

/** Options accepted by both the client's Connection and the worker's NativeConnection. */
export interface KhaConnectionOptions {
  address: string;
  tls?: TemporalSettings['tls'];
  apiKey?: string;
  metadata?: Record<string, string>;
}

export function connectionOptions(s: TemporalSettings): KhaConnectionOptions {
  return {
    address: s.address,
    tls: s.tls,
    apiKey: s.apiKey,
    metadata: s.apiKey ? { 'temporal-namespace': s.namespace } : undefined,
  };
}
