-- epoch.lua: marks this Redis's data as known. A missing marker means Redis is new or lost its data
-- (restarted empty): the one caller that creates it restores unfinished tasks from the store. The
-- fencing counter is raised to now * 1000 so tokens stay above those issued before the loss.
-- ARGV: 2 now.
-- Returns: 1 when this call created the marker, else 0.
local now = tonumber(ARGV[2])
if not redis.call('SET', prefix .. 'epoch', ARGV[2], 'NX') then return 0 end
local floor = now * 1000
local current = tonumber(redis.call('GET', kFence) or '0')
if current < floor then redis.call('SET', kFence, string.format('%d', floor)) end
return 1
