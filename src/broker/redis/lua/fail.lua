-- fail.lua: ends failed attempts when their fencing token is still current: back to the delayed
-- set until retryAt, straight back to the queue, or into the dead-letter queue.
-- ARGV: 2 now, 3 count, then 5 per task: id, token, error json, outcome, retryAt ('' = dead-letter);
--   last, the run_id the caller verified ('' when not fenced).
-- Returns: one integer per task: 1 applied, 0 stale; or -1 (fenced) when the data is not re-based
--   for this server (see complete.lua).
local now, count = tonumber(ARGV[2]), tonumber(ARGV[3])
if not rebased(ARGV[4 + count * 5]) then return -1 end
local out, woke = {}, false
for i = 0, count - 1 do
  local b = 3 + i * 5
  local id, token, errJson, outcome, retryAt = ARGV[b + 1], ARGV[b + 2], ARGV[b + 3], ARGV[b + 4], ARGV[b + 5]
  local key = taskKey(id)
  local rec = redis.call('HMGET', key, 's', 'k', 'a', 'w', 'sa', 'p')
  local ok = 0
  if rec[1] == 'processing' and rec[2] == token then
    local record = recordAttempt(key, rec[3], rec[4], rec[5], now, outcome, errJson)
    redis.call('ZREM', kLeases, id)
    freeTaskLock(key, id)
    local status, runAt = 'failed', nil
    local errName = errorName(errJson)
    tally('attempt_failed', key, errName)
    if retryAt == '' then
      bury(key, id, now)
      tally('dead_lettered', key, errName)
      settleDependents(prefix, id, 'failed', now)
    elseif tonumber(retryAt) > now then
      status, runAt = 'pending', tonumber(retryAt)
      redis.call('HSET', key, 's', 'pending', 'ra', retryAt)
      redis.call('ZADD', kDelayed, retryAt, id)
      woke = true
      tally('retried', key)
    else
      status, runAt = 'queued', now
      redis.call('HSET', key, 's', 'queued', 'ra', now)
      pushReady(id, rec[6])
      woke = true
      tally('retried', key)
    end
    change({ id = id, status = status, attempt = tonumber(rec[3]), at = now, runAt = runAt, error = errJson,
      failedAttempt = record })
    event(status == 'failed' and 'dead' or 'retrying', key, id, rec[3], now, { runAt = runAt, error = errJson })
    ok = 1
  end
  out[i + 1] = ok
end
if woke then wake() end
publishChanges()
return out
