-- lock.lua: distributed locks with a fencing token per key (queue.lock / withLock).
-- ARGV: 2 op ('acquire' | 'extend' | 'release'), 3 lock key, 4 now, 5 ttl ms, 6 token.
-- The hold is prefix.."lock:"..key, a hash {t = token, e = expires at}; the token counter
-- prefix.."lockfence:"..key outlives every hold, so tokens only grow.
-- Returns: acquire { 1, token, expiresAt } or { 0, heldUntil }; extend and release 1 or 0 (lost).
local op, name, now, ttl = ARGV[2], ARGV[3], tonumber(ARGV[4]), tonumber(ARGV[5])
local holdKey = prefix .. 'lock:' .. name
local hold = redis.call('HMGET', holdKey, 't', 'e')
local live = hold[2] and tonumber(hold[2]) > now
if op == 'acquire' then
  if live then return { 0, hold[2] } end
  local token = string.format('%d', redis.call('INCR', prefix .. 'lockfence:' .. name))
  local expires = string.format('%d', now + ttl)
  redis.call('HSET', holdKey, 't', token, 'e', expires)
  redis.call('PEXPIRE', holdKey, ttl)
  return { 1, token, expires }
end
if not live or hold[1] ~= ARGV[6] then return 0 end
if op == 'extend' then
  redis.call('HSET', holdKey, 'e', string.format('%d', now + ttl))
  redis.call('PEXPIRE', holdKey, ttl)
else
  redis.call('DEL', holdKey)
end
return 1
