/**
 * The Prometheus text this example worker serves on /metrics: the queue depth per priority (the
 * metric KEDA and the HPA scale on) and this process's worker stats. Plain JavaScript with no
 * imports, so it runs in the image and in the tests alike.
 *
 * When the observability module (`createMetrics`) is wired in, serve its registry instead: it
 * exports the same `task_queue_depth{queue,priority}`.
 */

/** Label values escaped as the exposition format wants them. */
const label = (v) => String(v).replace(/\\/g, '\\\\').replace(/"/g, '\\"').replace(/\n/g, '\\n')

/**
 * @param {{ name: string, counts(): Promise<{ ready: Record<string, number> }> }} queue
 * @param {{ stats(): { id: string, concurrency: number, inFlight: number, processed: number, failed: number, eventLoopBlockedMs: number } } | undefined} worker
 */
export async function renderMetrics(queue, worker) {
  const counts = await queue.counts()
  const q = label(queue.name)
  const lines = [
    '# HELP task_queue_depth Tasks ready to run, per priority.',
    '# TYPE task_queue_depth gauge',
    ...Object.entries(counts.ready).map(
      ([priority, n]) => `task_queue_depth{queue="${q}",priority="${label(priority)}"} ${n}`,
    ),
  ]
  if (worker) {
    const s = worker.stats()
    const w = label(s.id)
    lines.push(
      '# HELP taskloom_worker_concurrency Handler slots of this worker (moves when autoscaling).',
      '# TYPE taskloom_worker_concurrency gauge',
      `taskloom_worker_concurrency{queue="${q}",worker_id="${w}"} ${s.concurrency}`,
      '# HELP taskloom_worker_in_flight Handlers running now.',
      '# TYPE taskloom_worker_in_flight gauge',
      `taskloom_worker_in_flight{queue="${q}",worker_id="${w}"} ${s.inFlight}`,
      '# HELP taskloom_worker_event_loop_blocked_ms Longest event loop stall lately.',
      '# TYPE taskloom_worker_event_loop_blocked_ms gauge',
      `taskloom_worker_event_loop_blocked_ms{queue="${q}",worker_id="${w}"} ${s.eventLoopBlockedMs}`,
    )
  }
  return `${lines.join('\n')}\n`
}
