-- epoch.lua: marks this Redis's data as known. A missing marker means Redis is new or lost its data
-- (restarted empty): the caller that creates it restores unfinished tasks from the store. While it
-- restores, the marker is 'r|<deadline>' (a restore lease); when it is done, the time it finished.
-- A restorer that dies leaves a lapsed lease, and the next caller takes the restore over. The
-- fencing counter is raised to now * 1000 so tokens stay above those issued before the loss.
-- ARGV: 2 now, 3 op ('ensure', 'renew' or 'done'), 4 restore lease ms.
-- Returns: for 'ensure', 1 when the caller must restore, else 0; otherwise 1.
local now = tonumber(ARGV[2])
local op = ARGV[3]
local lease = 'r|' .. string.format('%d', now + tonumber(ARGV[4]))
local key = prefix .. 'epoch'
if op == 'done' then
  redis.call('SET', key, ARGV[2])
  return 1
end
local current = redis.call('GET', key)
local restoring = current and string.sub(current, 1, 2) == 'r|'
if op == 'renew' then
  if restoring or not current then redis.call('SET', key, lease) end
  return 1
end
if current and not (restoring and tonumber(string.sub(current, 3)) < now) then return 0 end
redis.call('SET', key, lease)
local floor = now * 1000
local fence = tonumber(redis.call('GET', kFence) or '0')
if fence < floor then redis.call('SET', kFence, string.format('%d', floor)) end
return 1
