// A deployment and a reset of one cluster never run side by side. Before its first activity each sends a probe
// signal to the other's workflow id: the server delivers it only while that one runs, and then the starting one
// refuses. Two that start at the same moment may both refuse; both never run. Workflow code.
import { ApplicationFailure, getExternalWorkflowHandle, log, setHandler, workflowInfo } from '@temporalio/workflow';
import { exclusiveProbeSignal } from './definitions';

/** Throws ClusterBusy (after `record(message)`) when the workflow `otherId` runs. */
export async function refuseBeside(otherId: string, message: string, record: (message: string) => void): Promise<void> {
  setHandler(exclusiveProbeSignal, (from: string) => log.info('a workflow of this cluster tried to start beside this one and refused', { from }));
  const runs = await getExternalWorkflowHandle(otherId)
    .signal(exclusiveProbeSignal, workflowInfo().workflowId)
    .then(
      () => true,
      () => false,
    );
  if (!runs) return;
  record(message);
  throw ApplicationFailure.nonRetryable(message, 'ClusterBusy');
}
