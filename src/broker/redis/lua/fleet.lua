-- fleet.lua: worker heartbeats and the reclaim of silent workers' leases.
-- prefix.."workers": hash id -> heartbeat json; prefix.."beats": zset id -> silent-after time
-- (last heartbeat + 3 intervals).
-- ARGV: 2 op ('beat' | 'remove' | 'reap'), 3 now, then
--   beat: 4 id, 5 json, 6 silent-after; remove: 4 id; reap: 4 retain ms (drop entries silent that long).
-- Returns: reap { id, leases made to expire, ... } of workers marked unhealthy by this call; else 1.
local op, now = ARGV[2], tonumber(ARGV[3])
local kWorkers, kBeats = prefix .. 'workers', prefix .. 'beats'
if op == 'beat' then
  redis.call('HSET', kWorkers, ARGV[4], ARGV[5])
  redis.call('ZADD', kBeats, ARGV[6], ARGV[4])
  return 1
end
if op == 'remove' then
  redis.call('HDEL', kWorkers, ARGV[4])
  redis.call('ZREM', kBeats, ARGV[4])
  return 1
end
local retain = tonumber(ARGV[4])
local out = {}
local silent = redis.call('ZRANGEBYSCORE', kBeats, '-inf', now)
local dead = {}
for _, id in ipairs(silent) do
  local json = redis.call('HGET', kWorkers, id)
  local beat = json and cjson.decode(json)
  if not beat or beat.lastHeartbeat + retain < now then
    redis.call('HDEL', kWorkers, id)
    redis.call('ZREM', kBeats, id)
  elseif beat.status ~= 'unhealthy' then
    beat.status = 'unhealthy'
    redis.call('HSET', kWorkers, id, cjson.encode(beat))
    dead[id] = 0
    out[#out + 1] = id
  end
end
if #out == 0 then return out end
-- Their leases expire now: the next claim returns those tasks to the queue (the attempt counts, as
-- for any crashed attempt).
local leased = redis.call('ZRANGE', kLeases, 0, -1)
for _, id in ipairs(leased) do
  local w = redis.call('HGET', taskKey(id), 'w')
  if w and dead[w] then
    redis.call('ZADD', kLeases, 'XX', now, id)
    dead[w] = dead[w] + 1
  end
end
local reply = {}
for _, id in ipairs(out) do
  reply[#reply + 1] = id
  reply[#reply + 1] = dead[id]
end
wake()
return reply
