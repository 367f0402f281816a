-- Token bucket for one API key, on Redis's clock so every API process shares one bucket.
-- KEYS[1]  the bucket hash (fields: t = tokens, ts = last refill, microseconds)
-- ARGV[1]  capacity (tokens; the per-minute limit)
-- ARGV[2]  refill window in microseconds (60,000,000: a full bucket per minute)
-- ARGV[3]  tokens this request costs (1)
-- KEYS[2]  optional: a counter to add 1 to in the same call (the monthly quota; same hash tag)
-- ARGV[4]  with KEYS[2]: the counter's time to live in milliseconds
-- Returns  { allowed (1|0), tokens left (floor), microseconds until one token is available,
--            microseconds until the bucket is full again, the counter's new value (or -1) }
local capacity = tonumber(ARGV[1])
local window = tonumber(ARGV[2])
local cost = tonumber(ARGV[3])
local clock = redis.call('TIME')
local now = tonumber(clock[1]) * 1000000 + tonumber(clock[2])
local rate = capacity / window

local state = redis.call('HMGET', KEYS[1], 't', 'ts')
local tokens = tonumber(state[1])
local stamp = tonumber(state[2])
if tokens == nil or stamp == nil then
  tokens = capacity
  stamp = now
end
if now > stamp then
  tokens = math.min(capacity, tokens + (now - stamp) * rate)
  stamp = now
end

local allowed = 0
if tokens >= cost then
  tokens = tokens - cost
  allowed = 1
end
redis.call('HSET', KEYS[1], 't', tostring(tokens), 'ts', tostring(stamp))
local full_in = math.ceil((capacity - tokens) / rate)
redis.call('PEXPIRE', KEYS[1], math.max(1, math.ceil(full_in / 1000)) + 1000)
local next_in = 0
if tokens < cost then next_in = math.ceil((cost - tokens) / rate) end
local counted = -1
if KEYS[2] then
  counted = redis.call('INCR', KEYS[2])
  redis.call('PEXPIRE', KEYS[2], tonumber(ARGV[4]))
end
return { allowed, math.floor(tokens), next_in, full_in, counted }
