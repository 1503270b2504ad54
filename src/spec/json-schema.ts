// JSON Schema of the cluster file for editors (yaml-language-server), derived from the zod schema
// on its input side: fields with defaults are optional, unknown fields are refused.
import { z } from 'zod';
import { API_VERSION, ClusterFile } from './schema';

export const SCHEMA_ID = `https://kha.dev/schemas/cluster-${API_VERSION.split('/')[1]}.json`;

export function clusterJsonSchema(): Record<string, unknown> {
  const generated = z.toJSONSchema(ClusterFile, { target: 'draft-2020-12', io: 'input' }) as Record<string, unknown>;
  const { $schema, ...rest } = generated;
  return {
    $schema,
    $id: SCHEMA_ID,
    title: 'kha cluster file',
    description: `An HA kubeadm cluster for kha (apiVersion ${API_VERSION}, kind Cluster). Check a file with: kha validate FILE`,
    ...rest,
  };
}
