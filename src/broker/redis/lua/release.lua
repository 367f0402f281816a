-- release.lua: gives leases back at once (graceful shutdown). The task goes to the head of its
-- level and the attempt does not count.
-- ARGV: 2 now, 3 count, then 2 per task: id, token.
-- Returns: one integer per task: 1 released, 0 stale.
local count = tonumber(ARGV[3])
local out, woke = {}, false
-- Last given first, so that the batch keeps its order at the head of each level.
for i = count - 1, 0, -1 do
  local id, token = ARGV[4 + i * 2], ARGV[5 + i * 2]
  local key = taskKey(id)
  local rec = redis.call('HMGET', key, 's', 'k', 'p', 'a')
  local ok = 0
  if rec[1] == 'processing' and rec[2] == token then
    redis.call('HSET', key, 's', 'queued')
    redis.call('HINCRBY', key, 'a', -1)
    redis.call('ZREM', kLeases, id)
    freeTaskLock(key, id)
    pushReady(id, rec[3], true)
    change({ id = id, status = 'queued', attempt = tonumber(rec[4]) - 1, at = tonumber(ARGV[2]) })
    woke = true
    ok = 1
  end
  out[i + 1] = ok
end
if woke then wake() end
publishChanges()
return out
