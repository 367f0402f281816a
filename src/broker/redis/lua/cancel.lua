-- cancel.lua: cancels a pending or queued task. A queued task stays in its list as a tombstone
-- that claim skips (removing it would cost O(n)). Its dependents that need it are cancelled too.
-- ARGV: 2 now, 3 retention ms, 4 id.
-- Returns: the task hash as a flat field/value list, or -1 not found, -2 processing, -3 finished.
local now, retention, id = ARGV[2], ARGV[3], ARGV[4]
local key = taskKey(id)
local status = redis.call('HGET', key, 's')
if not status then return -1 end
if status == 'processing' then return -2 end
if status ~= 'pending' and status ~= 'queued' then return -3 end
if status == 'pending' then redis.call('ZREM', kDelayed, id) end
redis.call('HSET', key, 's', 'cancelled', 'fa', now)
tally('cancelled', key)
event('cancelled', key, id, redis.call('HGET', key, 'a'), now)
redis.call('PEXPIRE', key, retention)
leaveWaiting(key, id)
change({ id = id, status = 'cancelled', attempt = tonumber(redis.call('HGET', key, 'a')), at = tonumber(now) })
settleDependents(prefix, id, 'cancelled', tonumber(now))
publishChanges()
return redis.call('HGETALL', key)
