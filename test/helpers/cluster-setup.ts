/**
 * Global setup of the `cluster` test project (vitest.config.ts): one private Redis Cluster for the
 * whole run, its seed URLs handed to the test files (`inject('clusterSeeds')`, see test-redis.ts).
 * Every test uses queue names of its own, so the files share it; tests that kill nodes start a
 * cluster of their own (`useCluster`).
 */
import type { TestProject } from 'vitest/node'
import { type PrivateCluster, startPrivateCluster } from './private-cluster.js'

declare module 'vitest' {
  export interface ProvidedContext {
    clusterSeeds: string[]
  }
}

let cluster: PrivateCluster | undefined

export async function setup(project: TestProject): Promise<void> {
  cluster = await startPrivateCluster()
  project.provide('clusterSeeds', cluster.seeds)
}

export async function teardown(): Promise<void> {
  await cluster?.stop()
}
