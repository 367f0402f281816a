-- retry-dead.lua: moves dead-lettered tasks back to the queue with a fresh attempt budget.
-- ARGV: 2 now, 3 mode ('ids' or 'all'), 4 max (mode 'all'), then ids (mode 'ids').
-- Returns: the ids moved, in order.
local now, mode = ARGV[2], ARGV[3]
local ids
if mode == 'all' then
  ids = redis.call('ZRANGE', kDlq, 0, tonumber(ARGV[4]) - 1)
else
  ids = {}
  for i = 5, #ARGV do ids[#ids + 1] = ARGV[i] end
end
local moved = {}
for _, id in ipairs(ids) do
  if redis.call('ZREM', kDlq, id) == 1 then
    local key = taskKey(id)
    redis.call('HSET', key, 's', 'queued', 'a', 0, 'ra', now)
    redis.call('HDEL', key, 'fa')
    pushReady(id, redis.call('HGET', key, 'p'))
    moved[#moved + 1] = id
    tally('dead_letter_retried', key)
    event('queued', key, id, 0, now, { runAt = tonumber(now) })
    change({ id = id, status = 'queued', attempt = 0, at = tonumber(now), runAt = tonumber(now), revive = true })
  end
end
if #moved > 0 then wake() end
publishChanges()
return moved
