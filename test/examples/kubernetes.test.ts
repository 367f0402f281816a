/**
 * The Kubernetes example's manifests refer to real things: the Deployment the scalers target, the
 * queue and port the worker uses, files that exist, and the metric the worker actually serves.
 */
import { existsSync, readFileSync } from 'node:fs'
import { join } from 'node:path'
import { describe, expect, it } from 'vitest'
import { parseAllDocuments } from 'yaml'
import { z } from 'zod'
// @ts-expect-error: plain JavaScript module of the example, no type declarations
import { renderMetrics } from '../../examples/kubernetes/metrics.mjs'
import { createQueue, createWorker, defineTask } from '../../src/index.js'
import { silent } from '../helpers/backends.js'

const dir = 'examples/kubernetes'
type Doc = Record<string, any>

function load(file: string): Doc[] {
  const docs = parseAllDocuments(readFileSync(join(dir, file), 'utf8'))
  for (const d of docs) expect(d.errors, `${file} parses`).toEqual([])
  return docs.map((d) => d.toJS() as Doc)
}

const [deployment, service] = load('deployment.yaml')
const [scaledObject] = load('keda-scaledobject.yaml')
const [hpa] = load('hpa.yaml')
const [adapter] = load('prometheus-adapter-rules.yaml')
const container = deployment!.spec.template.spec.containers[0]
const env = Object.fromEntries(
  (container.env as { name: string; value?: string }[]).map((e) => [e.name, e.value]),
) as Record<string, string | undefined>

describe('examples/kubernetes manifests', () => {
  it('the Deployment and its Service agree on labels and the metrics port', () => {
    expect(deployment).toMatchObject({ apiVersion: 'apps/v1', kind: 'Deployment' })
    const labels = deployment!.spec.template.metadata.labels
    expect(deployment!.spec.selector.matchLabels).toEqual(labels)
    expect(service).toMatchObject({ kind: 'Service', spec: { selector: labels } })
    const port = Number(env.METRICS_PORT)
    expect(container.ports[0]).toMatchObject({ name: 'metrics', containerPort: port })
    expect(Number(deployment!.spec.template.metadata.annotations['prometheus.io/port'])).toBe(port)
    expect(service!.spec.ports[0]).toMatchObject({ port, targetPort: 'metrics' })
    expect(Number(env.GRACE_MS) / 1000).toBeLessThan(
      deployment!.spec.template.spec.terminationGracePeriodSeconds,
    )
    expect(Number(env.CONCURRENCY_MIN)).toBeLessThanOrEqual(Number(env.CONCURRENCY_MAX))
  })

  it('KEDA and the HPA scale that Deployment on task_queue_depth of its queue', () => {
    const target = { apiVersion: 'apps/v1', kind: 'Deployment', name: deployment!.metadata.name }
    expect(scaledObject).toMatchObject({
      apiVersion: 'keda.sh/v1alpha1',
      kind: 'ScaledObject',
      spec: { scaleTargetRef: target },
    })
    expect(hpa).toMatchObject({
      apiVersion: 'autoscaling/v2',
      kind: 'HorizontalPodAutoscaler',
      spec: { scaleTargetRef: target },
    })
    const trigger = scaledObject!.spec.triggers[0]
    expect(trigger.type).toBe('prometheus')
    expect(trigger.metadata.query).toContain(`task_queue_depth{queue="${env.QUEUE_NAME}"}`)
    expect(trigger.metadata.query).toContain('by (priority)')
    const metric = hpa!.spec.metrics[0].external.metric
    expect(metric).toEqual({ name: 'task_queue_depth', selector: { matchLabels: { queue: env.QUEUE_NAME } } })
    expect(adapter!.data['config.yaml']).toContain('as: task_queue_depth')
    expect(scaledObject!.spec.minReplicaCount).toBeLessThanOrEqual(scaledObject!.spec.maxReplicaCount)
    expect(hpa!.spec.minReplicas).toBeLessThanOrEqual(hpa!.spec.maxReplicas)
  })

  it('the image runs the worker file the Deployment names, and every copied path exists', () => {
    const dockerfile = readFileSync(join(dir, 'Dockerfile'), 'utf8')
    const script = container.command.at(-1) as string
    expect(existsSync(script)).toBe(true)
    expect(dockerfile).toContain(`CMD ["node", "${script}"]`)
    for (const line of dockerfile.split('\n').filter((l) => l.startsWith('COPY ') && !l.includes('--from'))) {
      const sources = line.split(/\s+/).slice(1, -1)
      for (const source of sources) expect(existsSync(source), `${source} (Dockerfile COPY)`).toBe(true)
    }
    const worker = readFileSync(script, 'utf8')
    const pkg = JSON.parse(readFileSync('package.json', 'utf8'))
    for (const [, name] of worker.matchAll(/from '([^./][^']*)'/g)) {
      if (name!.startsWith('node:')) continue
      expect(name === pkg.name || name! in pkg.dependencies, `${name} is a runtime dependency`).toBe(true)
    }
    for (const key of [
      'QUEUE_NAME',
      'METRICS_PORT',
      'CONCURRENCY_MIN',
      'CONCURRENCY_MAX',
      'GRACE_MS',
      'REDIS_URL',
      'DATABASE_URL',
    ]) {
      expect(worker, `worker.mjs reads ${key}`).toContain(`env.${key}`)
      expect(
        container.env.some((e: { name: string }) => e.name === key),
        `the Deployment sets ${key}`,
      ).toBe(true)
    }
  })

  it("the liveness probe asks the worker's liveness check, which fails a worker that stopped beating", async () => {
    const worker = readFileSync(container.command.at(-1) as string, 'utf8')
    const path = container.livenessProbe.httpGet.path as string
    expect(container.livenessProbe.httpGet.port).toBe('metrics')
    expect(worker).toContain(`req.url === '${path}'`)
    expect(worker).toMatch(/livenessHandler\(worker, \{ thresholdMs: [\d_]+ \}\)/)
    expect(worker).toContain('liveness(req, res)')
    // The threshold outlasts the probe's own tolerance, so one slow probe never restarts a worker.
    const threshold = Number(/thresholdMs: ([\d_]+)/.exec(worker)![1]!.replaceAll('_', ''))
    const probe = container.livenessProbe
    expect(threshold / 1000).toBeGreaterThanOrEqual(probe.periodSeconds * probe.failureThreshold)
  })

  it('the worker serves the metric, with the labels, that the scalers query', async () => {
    const queue = createQueue({ name: env.QUEUE_NAME!, postgres: false, logger: silent })
    const task = defineTask({ name: 't', input: z.object({}) })
    await queue.submitMany([
      { task, input: {}, options: { priority: 'high' } },
      { task, input: {}, options: { priority: 'high' } },
      { task, input: {}, options: { priority: 'low' } },
    ])
    const worker = createWorker({ queue, concurrency: { min: 10, max: 100 } })
    const text: string = await renderMetrics(queue, worker)
    expect(text).toContain(`task_queue_depth{queue="${env.QUEUE_NAME}",priority="high"} 2`)
    expect(text).toContain(`task_queue_depth{queue="${env.QUEUE_NAME}",priority="low"} 1`)
    expect(text).toContain(`task_queue_depth{queue="${env.QUEUE_NAME}",priority="critical"} 0`)
    expect(text).toMatch(/taskloom_worker_concurrency\{queue="orders",worker_id="[^"]+"\} 10/)
    // Every metric the manifests query is one the worker serves.
    const queried = [scaledObject!.spec.triggers[0].metadata.query, hpa!.spec.metrics[0].external.metric.name]
    for (const q of queried) {
      for (const [name] of String(q).matchAll(/task_[a-z_]+/g)) expect(text).toContain(`# TYPE ${name} gauge`)
    }
    await queue.close()
  })
})
