/** A private Redis Cluster (private-cluster.ts) for one test file or `describe`. */
import { afterAll, beforeAll } from 'vitest'
import { type PrivateCluster, type PrivateClusterOptions, startPrivateCluster } from './private-cluster.js'

/** Call inside a `describe` (or at a file's top level): one cluster for the file's tests. */
export function useCluster(options: PrivateClusterOptions = {}): () => PrivateCluster {
  let cluster: PrivateCluster | undefined
  beforeAll(async () => {
    cluster = await startPrivateCluster(options)
  }, 60_000)
  afterAll(async () => {
    await cluster?.stop()
  })
  return () => {
    if (!cluster) throw new Error('the private cluster did not start (see the beforeAll error)')
    return cluster
  }
}
