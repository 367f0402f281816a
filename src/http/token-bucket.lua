-- Token buckets of one tenant (the tenant's, and a key's own when it has one), taken from together
-- on Redis's clock, so every API process shares them: a request passes only if every bucket has a
-- token, and then takes one from each; a refused request takes none. When it passes, the counters
-- (the monthly quota's, the tenant's and the key's) are incremented in the same call.
-- All keys carry the tenant's hash tag, so the script touches one slot.
-- KEYS[1..n]     the bucket hashes (fields: t = tokens, ts = last refill, microseconds)
-- KEYS[n+1..]    counters to add 1 to when the request passes
-- ARGV[1]        n, the number of buckets
-- ARGV[2]        refill window in microseconds (60,000,000: a full bucket per minute)
-- ARGV[3]        tokens the request costs (1)
-- ARGV[4..3+n]   each bucket's capacity (its per-minute limit)
-- ARGV[4+n..]    each counter's time to live in milliseconds
-- Returns  { allowed (1|0), then per bucket: tokens left (floor), microseconds until one token is
--            available, microseconds until the bucket is full again; then per counter: its new
--            value (-1 when refused) }
local n = tonumber(ARGV[1])
local window = tonumber(ARGV[2])
local cost = tonumber(ARGV[3])
local clock = redis.call('TIME')
local now = tonumber(clock[1]) * 1000000 + tonumber(clock[2])

local tokens = {}
local stamps = {}
local allowed = 1
for i = 1, n do
  local capacity = tonumber(ARGV[3 + i])
  local rate = capacity / window
  local state = redis.call('HMGET', KEYS[i], 't', 'ts')
  local t = tonumber(state[1])
  local ts = tonumber(state[2])
  if t == nil or ts == nil then
    t = capacity
    ts = now
  end
  if now > ts then
    t = math.min(capacity, t + (now - ts) * rate)
    ts = now
  end
  -- A lowered limit takes effect at once.
  if t > capacity then t = capacity end
  tokens[i] = t
  stamps[i] = ts
  if t < cost then allowed = 0 end
end

local out = { allowed }
for i = 1, n do
  local capacity = tonumber(ARGV[3 + i])
  local rate = capacity / window
  local t = tokens[i]
  if allowed == 1 then t = t - cost end
  redis.call('HSET', KEYS[i], 't', tostring(t), 'ts', tostring(stamps[i]))
  local full_in = math.ceil((capacity - t) / rate)
  redis.call('PEXPIRE', KEYS[i], math.max(1, math.ceil(full_in / 1000)) + 1000)
  local next_in = 0
  if t < cost then next_in = math.ceil((cost - t) / rate) end
  out[#out + 1] = math.floor(t)
  out[#out + 1] = next_in
  out[#out + 1] = full_in
end
for i = n + 1, #KEYS do
  local value = -1
  if allowed == 1 then
    value = redis.call('INCR', KEYS[i])
    redis.call('PEXPIRE', KEYS[i], tonumber(ARGV[3 + i]))
  end
  out[#out + 1] = value
end
return out
