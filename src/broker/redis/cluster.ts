/**
 * What a queue needs to know about the server behind its hash slot, on one server and on a Redis
 * Cluster alike: the server's run_id (fenced claims compare it with the re-base marker), when the
 * server behind the slot may have changed (a failover), and WAIT on the connection that wrote.
 *
 * On one server, commands without keys (INFO, WAIT) go to that server. On a Cluster, ioredis sends
 * a keyless command to any node, so these are routed to the master of the queue's slot.
 */
import { Command } from 'ioredis'
import { TaskloomError } from '../../errors.js'
import { isCluster, type RedisClient } from './connection.js'

/** The slot's server's run_id, read inside a script so that it runs where the queue's keys are. */
const RUN_ID = "return string.match(redis.call('INFO', 'server'), 'run_id:(%x+)')"

export class SlotServer {
  private readonly slot: number
  private owner: string | undefined

  /** `key`: any key of the queue (they all share one hash tag, so one slot). */
  constructor(
    private readonly redis: RedisClient,
    private readonly key: string,
  ) {
    this.slot = new Command('exists', [key]).getSlot() ?? 0
  }

  /**
   * Calls `listener` whenever the server behind the slot may have changed: the connection closed
   * (one server, Sentinel) or, on a Cluster, a node connection ended or the slot's master moved.
   */
  onChange(listener: () => void): void {
    const redis = this.redis
    redis.on('close', listener)
    if (!isCluster(redis)) return
    redis.on('-node', listener)
    redis.on('refresh', () => {
      const owner = redis.slots[this.slot]?.[0]
      if (owner !== this.owner) {
        this.owner = owner
        listener()
      }
    })
  }

  /** The run_id of the server that serves the queue's slot, read now. */
  async runId(): Promise<string> {
    const reply = isCluster(this.redis)
      ? await this.redis.eval(RUN_ID, 1, this.key)
      : /run_id:([0-9a-f]+)/.exec(await this.redis.info('server'))?.[1]
    if (typeof reply !== 'string' || reply === '') {
      throw new TaskloomError('BROKER_UNAVAILABLE', 'Redis did not report its run_id (INFO server)')
    }
    return reply
  }

  /**
   * WAIT: resolves once `replicas` replicas acknowledged every write this connection made to the
   * slot's server, or rejects with the retryable BROKER_UNAVAILABLE when fewer did within
   * `timeoutMs`.
   */
  async waitReplicas(replicas: number, timeoutMs: number): Promise<void> {
    const command = new Command('wait', [replicas, timeoutMs], { replyEncoding: 'utf8' })
    // Cluster: the third argument routes the command to the slot's master (the one that wrote).
    const sent = isCluster(this.redis)
      ? this.redis.sendCommand(command, undefined, { slot: this.slot })
      : this.redis.sendCommand(command)
    const acknowledged = Number(await (sent as Promise<unknown>))
    if (acknowledged >= replicas) return
    throw new TaskloomError(
      'BROKER_UNAVAILABLE',
      `Redis: only ${acknowledged} of ${replicas} replicas acknowledged the write within ${timeoutMs} ms`,
      { retryable: true },
    )
  }
}
