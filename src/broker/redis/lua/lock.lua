-- lock.lua: distributed locks with fencing tokens (queue.lock / withLock).
-- ARGV: 2 op ('acquire' | 'extend' | 'release'), 3 lock key, 4 now, 5 ttl ms, 6 token,
--   7 the run_id the caller verified ('' when not fenced).
-- The hold is prefix.."lock:"..key, a hash {t = token, e = expires at} that expires with the hold.
-- Tokens come from the queue's one fencing counter (kFence, shared with task claims), so they grow
-- for the queue's whole life without a key per lock name. Fenced (durable mode): an acquisition is
-- refused while the data is not re-based for this server or the counter is at its ceiling, like a
-- claim (see claim.lua). A counter left by an older version (prefix.."lockfence:"..key) is folded
-- into the shared one on the key's next acquisition and deleted.
-- Returns: acquire { 1, token, expiresAt }, { 0, heldUntil } or { 2, 'epoch' | 'fence' } (refused);
--   extend and release 1 or 0 (lost).
local op, name, now, ttl = ARGV[2], ARGV[3], tonumber(ARGV[4]), tonumber(ARGV[5])
local holdKey = prefix .. 'lock:' .. name
local hold = redis.call('HMGET', holdKey, 't', 'e')
local live = hold[2] and tonumber(hold[2]) > now
if op == 'acquire' then
  if live then return { 0, hold[2] } end
  local fence = tonumber(redis.call('GET', kFence) or '0')
  if ARGV[7] ~= '' then
    local base = redis.call('HMGET', prefix .. 'base', 'run', 'ph', 'ceil')
    if base[1] ~= ARGV[7] or base[2] == 'r' or not servedBy(ARGV[7]) then return { 2, 'epoch' } end
    if fence >= tonumber(base[3] or '0') then return { 2, 'fence' } end
  end
  local legacyKey = prefix .. 'lockfence:' .. name
  local legacy = redis.call('GET', legacyKey)
  if legacy then
    if tonumber(legacy) > fence then redis.call('SET', kFence, legacy) end
    redis.call('DEL', legacyKey)
  end
  local token = string.format('%d', redis.call('INCR', kFence))
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
