-- complete.lua: marks tasks completed when their fencing token is still current.
-- ARGV: 2 now, 3 retention ms, 4 count, then 3 per task: id, token, result; last, the run_id the
--   caller verified ('' when not fenced).
-- Returns: one integer per task: 1 applied (or already completed with this token), 0 stale; or -1
--   (fenced) when the data is not re-based for this server: nothing is judged until it is.
local now, retention, count = ARGV[2], ARGV[3], tonumber(ARGV[4])
if not rebased(ARGV[5 + count * 3]) then return -1 end
local out, done = {}, {}
for i = 0, count - 1 do
  local b = 4 + i * 3
  local id, token = ARGV[b + 1], ARGV[b + 2]
  local key = taskKey(id)
  local rec = redis.call('HMGET', key, 's', 'k', 'a', 'lc')
  local ok = 0
  if rec[2] == token then
    if rec[1] == 'processing' then
      redis.call('HSET', key, 's', 'completed', 'r', ARGV[b + 3], 'fa', now)
      redis.call('PEXPIRE', key, retention)
      change({ id = id, status = 'completed', attempt = tonumber(rec[3]), at = tonumber(now), result = ARGV[b + 3] })
      done[#done + 1] = id
      tally('completed', key)
      event('completed', key, id, rec[3], now)
      if rec[4] then expireLogs(id, retention) end
      freeTaskLock(key, id)
      settleDependents(prefix, id, 'completed', tonumber(now))
      ok = 1
    elseif rec[1] == 'completed' then
      ok = 1
    end
  end
  out[i + 1] = ok
end
if #done > 0 then redis.call('ZREM', kLeases, unpack(done)) end
publishChanges()
return out
