-- epoch.lua: the re-base marker prefix.."base", a hash: run (the run_id of the Redis server the data
-- was re-based on), ph (phase: 'r' re-basing, claims refused; 'f' filling from the store, claims
-- served; 'd' done), until (the restore lease's deadline while ph is 'r' or 'f'), ceil (the highest
-- fencing token this server may issue: a block the store reserved first), at (when it was set).
-- A marker that is missing (Redis new or emptied) or names another run_id (Redis restarted, from
-- an AOF/RDB file or not, or a failover to another server) means the data must be re-based.
-- ARGV: 2 now, 3 op, 4 run_id the caller verified (INFO server), then per op:
--   'ensure' 5 lease ms: answers 'missing' or 'changed' (the caller re-bases from scratch),
--     'resume-r' or 'resume-f' (the last re-baser's lease lapsed in that phase: the caller takes
--     over), '' (nothing to do: done, or another caller holds the lease), or 'stale' (the run_id
--     is not this server's: the call was meant for a server that restarted since).
--   'renew' 5 lease ms, 'serve' 5 lease ms (phase 'f'), 'done', 'abandon' (the lease lapses now, so
--     the next caller resumes at once): answer 1, or 0 when the marker now names another run_id or
--     the run_id is not this server's (the caller must re-check).
--   'fences' 5 base, 6 ceiling: raises the counter to at least base and the ceiling to at least
--     ceiling; answers 1, or 0 when the marker names another run_id.
local now, op, run = tonumber(ARGV[2]), ARGV[3], ARGV[4]
-- A call meant for another server (one that restarted since the caller verified it): nothing is
-- judged or changed here; the caller verifies the run_id again.
if not servedBy(run) then
  if op == 'ensure' then return 'stale' end
  return 0
end
local key = prefix .. 'base'
local base = redis.call('HMGET', key, 'run', 'ph', 'until')
if op == 'ensure' then
  local lease = string.format('%d', now + tonumber(ARGV[5]))
  if base[1] == run then
    if base[2] == 'd' or tonumber(base[3] or '0') >= now then return '' end
    redis.call('HSET', key, 'until', lease)
    return 'resume-' .. base[2]
  end
  redis.call('DEL', key)
  redis.call('HSET', key, 'run', run, 'ph', 'r', 'until', lease, 'at', ARGV[2])
  if base[1] then return 'changed' end
  return 'missing'
end
if base[1] ~= run then return 0 end
if op == 'fences' then
  local floor, ceil = tonumber(ARGV[5]), tonumber(ARGV[6])
  if tonumber(redis.call('GET', kFence) or '0') < floor then
    redis.call('SET', kFence, string.format('%d', floor))
  end
  if tonumber(redis.call('HGET', key, 'ceil') or '0') < ceil then
    redis.call('HSET', key, 'ceil', string.format('%d', ceil))
  end
elseif op == 'abandon' then
  if base[2] ~= 'd' then redis.call('HSET', key, 'until', '0') end
elseif op == 'done' then
  redis.call('HSET', key, 'ph', 'd', 'at', ARGV[2])
  redis.call('HDEL', key, 'until')
elseif base[2] ~= 'd' then
  local lease = string.format('%d', now + tonumber(ARGV[5]))
  if op == 'serve' then
    redis.call('HSET', key, 'ph', 'f', 'until', lease)
  else
    redis.call('HSET', key, 'until', lease)
  end
end
return 1
