-- restore.lua: makes Redis agree with the store for a batch of tasks, during a re-base (see
-- src/durable/recovery.ts). The store is ahead of a Redis that lost or rolled back its data: every
-- change Redis made either reached the store through the change feed or is still in the feed.
-- A task Redis does not hold is created from its row (unfinished: pending in delayed, queued or
-- in flight at the tail of its level with its attempts counted; dead: in the DLQ). A task Redis
-- holds is rewritten from the row when the row is ahead: the row is completed or cancelled and
-- Redis's copy is not finished; the row is dead and Redis's copy is not (and Redis has not revived
-- it since the row died); the row has more attempts; the row ended the attempt Redis still has processing; the row revived a
-- task Redis has dead. A rewritten in-flight task loses its lease and token, so its old holder's
-- completion is refused. Completed and cancelled tasks Redis holds are never changed.
-- ARGV: 2 now, 3 retention ms, 4 count, then 16 per task: id, name, tenant, payload, priority
--   index, runAt, timeoutMs, maxRetries, createdAt, attempt, lock key, status, updatedAt,
--   finishedAt ('' for none), result or error json ('' for none), idempotency key ('' for none:
--   kept only to show it, and for the handler's ctx.schedule; the store judges keys).
-- Returns: how many tasks were created or rewritten.
local now, retention, count = tonumber(ARGV[2]), ARGV[3], tonumber(ARGV[4])
local changed = 0
local function leaveAll(key, id, status)
  redis.call('ZREM', kLeases, id)
  redis.call('ZREM', kDelayed, id)
  redis.call('ZREM', kDlq, id)
  if status == 'processing' then freeTaskLock(key, id) end
end
for i = 0, count - 1 do
  local b = 4 + i * 16
  local id, st, attempt = ARGV[b + 1], ARGV[b + 12], tonumber(ARGV[b + 10])
  local runAt, updatedAt, fin, extra = tonumber(ARGV[b + 6]), tonumber(ARGV[b + 13]), ARGV[b + 14], ARGV[b + 15]
  local key = taskKey(id)
  local rec = redis.call('HMGET', key, 's', 'a', 'sa', 'fa', 'p', 'ra')
  local rs, ra = rec[1], tonumber(rec[2] or '0')
  local terminal = st == 'completed' or st == 'cancelled' or st == 'failed'
  local apply = false
  if not rs then
    if st ~= 'completed' and st ~= 'cancelled' then
      redis.call('HSET', key, 'n', ARGV[b + 2], 't', ARGV[b + 3], 'd', ARGV[b + 4], 'p', ARGV[b + 5],
        'a', attempt, 'mr', ARGV[b + 8], 'to', ARGV[b + 7], 'ca', ARGV[b + 9], 'ra', runAt, 'ik', ARGV[b + 16])
      if ARGV[b + 11] ~= '' then redis.call('HSET', key, 'lk', ARGV[b + 11]) end
      rs, ra = 'new', attempt
      apply = true
    end
  elseif rs == 'completed' or rs == 'cancelled' then
    apply = false
  elseif rs == 'failed' then
    apply = not terminal and updatedAt > tonumber(rec[4] or '0')
  elseif st == 'completed' or st == 'cancelled' then
    -- Final: nothing Redis did since can be newer (a delayed task's runAt may well be later than
    -- the cancel that the row records).
    apply = true
  elseif terminal then
    -- Unless Redis changed it since (a DLQ retry of the stored dead task, during the re-base).
    apply = updatedAt >= math.max(tonumber(rec[3] or '0'), tonumber(rec[6] or '0'))
  elseif attempt > ra then
    apply = true
  elseif attempt == ra and rs == 'processing' and st ~= 'processing' and updatedAt >= tonumber(rec[3] or '0') then
    apply = true
  end
  if apply then
    changed = changed + 1
    local p = ARGV[b + 5]
    if rs ~= 'new' then leaveAll(key, id, rs) end
    redis.call('HDEL', key, 'k')
    if st == 'completed' or st == 'cancelled' then
      redis.call('HSET', key, 's', st, 'fa', fin, 'a', attempt)
      if st == 'completed' and extra ~= '' then redis.call('HSET', key, 'r', extra) end
      redis.call('PEXPIRE', key, retention)
    elseif st == 'failed' then
      redis.call('HSET', key, 's', 'failed', 'fa', fin, 'a', attempt)
      if extra ~= '' then redis.call('HSET', key, 'e', extra) end
      redis.call('ZADD', kDlq, tonumber(fin), id)
    else
      redis.call('HSET', key, 'a', attempt, 'ra', runAt)
      if st == 'pending' and runAt > now then
        redis.call('HSET', key, 's', 'pending')
        redis.call('ZADD', kDelayed, runAt, id)
      else
        -- A task Redis already has in a ready list stays where it is (one copy of its id there).
        redis.call('HSET', key, 's', 'queued')
        if rs ~= 'queued' then pushReady(id, p) end
      end
      wake()
    end
  end
end
return changed
