-- flow.lua: flow-control administration (see flow-core.lua for the keys).
-- ARGV: 2 op, 3 now, then per op:
--   'config' 4 the FlowConfig JSON: stores it. When lanes go off, the lanes' tasks move back to
--     the ready lists (oldest first); when they come on, claims take the lists' tasks first.
--   'pause' 4 scope ('q', 'n:'..name, 'g:'..group); 'resume' 4 scope.
--   'throttle' 4 scope, 5 until, 6 count, then 2 per task: id, token. Gives the leases back
--     without counting the attempt (head of their level) and stops the scope until `until`.
--   'state' 4 most groups to report.
-- Returns: 'throttle' one integer per task (1 given back, 0 stale); 'state' a JSON object;
--   else 1.
local op, now = ARGV[2], tonumber(ARGV[3])

if op == 'config' then
  local before = lanesOn()
  redis.call('HSET', kFlow, 'cfg', ARGV[4])
  flowCfg = false
  if before and not lanesOn() then
    for _, g in ipairs(redis.call('SMEMBERS', kGroups)) do
      for p = 0, 3 do
        local lane = laneKey(p, g)
        while redis.call('LMOVE', lane, KEYS[p + 1], 'RIGHT', 'LEFT') do end
      end
    end
    redis.call('DEL', kGroups, kGBlk, kLaneLen, rotKey(0), rotKey(1), rotKey(2), rotKey(3))
    wake()
  end
  return 1
end

if op == 'pause' then
  local scope = ARGV[4]
  if scope == 'q' then
    redis.call('HSET', kFlow, 'q', '1')
  else
    redis.call('HSET', kPaused, scope, '0')
  end
  return 1
end

if op == 'resume' then
  local scope = ARGV[4]
  if scope == 'q' then
    redis.call('HDEL', kFlow, 'q')
    wake()
  else
    redis.call('HDEL', kPaused, scope)
    redis.call('ZREM', kWakes, scope)
    unblock(scope)
  end
  return 1
end

if op == 'throttle' then
  local scope, untilAt, count = ARGV[4], tonumber(ARGV[5]), tonumber(ARGV[6])
  local out = {}
  for i = count - 1, 0, -1 do
    local id, token = ARGV[7 + i * 2], ARGV[8 + i * 2]
    local key = taskKey(id)
    local rec = redis.call('HMGET', key, 's', 'k', 'p', 'a')
    out[i + 1] = 0
    if rec[1] == 'processing' and rec[2] == token then
      redis.call('ZREM', kLeases, id)
      freeTaskLock(key, id)
      redis.call('HSET', key, 's', 'queued')
      redis.call('HINCRBY', key, 'a', -1)
      change({ id = id, status = 'queued', attempt = tonumber(rec[4]) - 1, at = now })
      out[i + 1] = 1
    end
  end
  -- A manual pause (0) or a longer throttle stays.
  local current = tonumber(redis.call('HGET', kPaused, scope) or '-1')
  if current ~= 0 and current < untilAt then redis.call('HSET', kPaused, scope, string.format('%d', untilAt)) end
  wakeAt(scope, untilAt)
  if string.sub(scope, 1, 2) == 'g:' and lanesOn() then blockGroup(string.sub(scope, 3), 't', nil) end
  for i = count - 1, 0, -1 do
    if out[i + 1] == 1 then
      local id = ARGV[7 + i * 2]
      pushReady(id, redis.call('HGET', taskKey(id), 'p'), true)
    end
  end
  wake()
  publishChanges()
  return out
end

-- 'state'
local state = { lanes = lanesOn(), queuePaused = redis.call('HGET', kFlow, 'q') == '1', paused = {},
  waits = {}, groups = {} }
local pausedAll = redis.call('HGETALL', kPaused)
for i = 1, #pausedAll, 2 do
  local v = tonumber(pausedAll[i + 1])
  if v == 0 then
    state.paused[#state.paused + 1] = pausedAll[i]
  elseif v > now then
    state.waits[#state.waits + 1] = { pausedAll[i], v }
  end
end
local wakes = redis.call('ZRANGE', kWakes, 0, -1, 'WITHSCORES')
for i = 1, #wakes, 2 do
  local scope = wakes[i]
  if not redis.call('HGET', kPaused, scope) and tonumber(wakes[i + 1]) > now then
    state.waits[#state.waits + 1] = { scope, tonumber(wakes[i + 1]) }
  end
end
local lim = flowConfig() and flowConfig().lim or {}
if lim.q then
  local room, at = windowRoom('q', lim.q, now)
  if room == 0 then state.waits[#state.waits + 1] = { 'q', at } end
end
if state.lanes then
  local most = tonumber(ARGV[4])
  local groups = redis.call('SRANDMEMBER', kGroups, most)
  for _, g in ipairs(groups) do
    local ready = 0
    for p = 0, 3 do ready = ready + redis.call('LLEN', laneKey(p, g)) end
    local running = tonumber(redis.call('HGET', kGRun, g) or '0')
    if ready == 0 and running == 0 then
      redis.call('SREM', kGroups, g)
    else
      state.groups[#state.groups + 1] = { g, ready, running, redis.call('HGET', kGBlk, g) or '' }
    end
  end
end
return cjson.encode(state)
