-- extend.lua: pushes lease deadlines out when their fencing token is still current.
-- ARGV: 2 new deadline, 3 count, then 2 per task: id, token.
-- Returns: one integer per task: 1 extended, 0 stale.
local deadline, count = ARGV[2], tonumber(ARGV[3])
local out = {}
for i = 0, count - 1 do
  local id, token = ARGV[4 + i * 2], ARGV[5 + i * 2]
  local rec = redis.call('HMGET', taskKey(id), 's', 'k')
  local ok = 0
  if rec[1] == 'processing' and rec[2] == token then
    redis.call('ZADD', kLeases, 'XX', deadline, id)
    ok = 1
  end
  out[i + 1] = ok
end
return out
