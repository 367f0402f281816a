-- defer.lua: gives leases back without counting the attempt, to run no sooner than runAt (an open
-- circuit breaker). The task is pending until then.
-- ARGV: 2 now, 3 runAt, 4 count, then 2 per task: id, token; then what deferred them (may be '').
-- Returns: one integer per task: 1 deferred, 0 stale.
-- The task keeps why it waits: 'db' (deferred by) and 'du' (deferred until, = its run time then).
local now, runAt, count = tonumber(ARGV[2]), ARGV[3], tonumber(ARGV[4])
local by = ARGV[5 + count * 2] or ''
local out, woke = {}, false
for i = 0, count - 1 do
  local id, token = ARGV[5 + i * 2], ARGV[6 + i * 2]
  local key = taskKey(id)
  local rec = redis.call('HMGET', key, 's', 'k', 'a')
  local ok = 0
  if rec[1] == 'processing' and rec[2] == token then
    redis.call('ZREM', kLeases, id)
    freeTaskLock(key, id)
    redis.call('HSET', key, 's', 'pending', 'ra', runAt, 'db', by, 'du', runAt)
    redis.call('HINCRBY', key, 'a', -1)
    redis.call('ZADD', kDelayed, runAt, id)
    change({ id = id, status = 'pending', attempt = tonumber(rec[3]) - 1, at = now, runAt = tonumber(runAt) })
    woke = true
    ok = 1
  end
  out[i + 1] = ok
end
if woke then wake() end
publishChanges()
return out
