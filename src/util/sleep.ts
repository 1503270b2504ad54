// The one sleep. An aborted signal ends it early: it resolves (callers that loop check the signal themselves), or
// with rejectOnAbort it rejects with the signal's reason (an activity's cancellation must end the activity).
export function sleep(ms: number, signal?: AbortSignal, o: { rejectOnAbort?: boolean } = {}): Promise<void> {
  return new Promise((resolve, reject) => {
    const aborted = () => (o.rejectOnAbort ? reject(signal?.reason ?? new Error('cancelled')) : resolve());
    if (signal?.aborted) return aborted();
    const t = setTimeout(() => {
      signal?.removeEventListener('abort', onAbort);
      resolve();
    }, ms);
    const onAbort = () => {
      clearTimeout(t);
      aborted();
    };
    signal?.addEventListener('abort', onAbort, { once: true });
  });
}
