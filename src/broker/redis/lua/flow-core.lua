-- flow-core.lua: flow control (src/flow), prepended to every script after common.lua.
-- prefix.."flow"    hash: cfg (the queue's FlowConfig as JSON, see redis-broker.ts), q ('1': the
--                   whole queue is paused).
-- prefix.."paused"  hash: scope -> 0 (paused until resumed) or the time a throttle ends (ms).
--                   Scopes: 'n:'..task name, 'g:'..group.
-- prefix.."fwake"   zset: scope -> when its waiting tasks should be looked at again (a throttle
--                   ends, a rate-limit window has room).
-- prefix.."held:"..scope  list: tasks popped while their task name (or, without lanes, their
--                   group) could not start; put back at the head of their level when it can.
-- prefix.."rl:"..scope    zset: token -> start time, the starts of a rate-limit window
--                   (scope 'q', 'n:'..name or 'g:'..group).
-- With lanes (fairness, group caps or group limits configured), every ready task sits in its
-- group's lane prefix.."lane:"..priority..":"..group, and prefix.."rot:"..priority (zset group ->
-- virtual time) holds the groups of a level with ready work that may run: claims take from the
-- group with the lowest virtual time and add 1/weight to it (stride scheduling: weighted
-- round-robin). A group that cannot run (paused, throttled, at its cap, out of window) leaves
-- every rotation and is noted in prefix.."gblk" (group -> reason) until what blocks it ends.
-- prefix.."lanelen" hash priority -> tasks in that level's lanes (tombstones included, as in the
-- ready lists). prefix.."grun" hash group -> tasks processing; a claimed task notes the group it counts
-- against in its hash field 'gs'. prefix.."groups": every group that had a lane (for counts).
local kFlow, kPaused, kWakes = prefix .. 'flow', prefix .. 'paused', prefix .. 'fwake'
local kGBlk, kGRun, kGroups = prefix .. 'gblk', prefix .. 'grun', prefix .. 'groups'
local kLaneLen = prefix .. 'lanelen'

-- The config, read once per script call: nil when the queue has none.
local flowCfg = false
local function flowConfig()
  if flowCfg == false then
    local raw = redis.call('HGET', kFlow, 'cfg')
    flowCfg = raw and cjson.decode(raw) or nil
  end
  return flowCfg
end
local function lanesOn()
  local cfg = flowConfig()
  return cfg ~= nil and cfg.lanes == true
end

local function laneKey(p, g)
  return prefix .. 'lane:' .. p .. ':' .. g
end
local function rotKey(p)
  return prefix .. 'rot:' .. p
end
local function taskGroup(key)
  local r = redis.call('HMGET', key, 'g', 't')
  return r[1] or r[2] or ''
end

-- A group joins a level's rotation at the lowest virtual time there (no credit for time away).
local function joinRotation(p, g)
  local rk = rotKey(p)
  if redis.call('ZSCORE', rk, g) then return end
  local first = redis.call('ZRANGE', rk, 0, 0, 'WITHSCORES')
  redis.call('ZADD', rk, first[2] or 0, g)
end

flowRoute = function(id, priority, front)
  if not lanesOn() then return false end
  local p = tostring(tonumber(priority))
  local g = taskGroup(taskKey(id))
  local lane = laneKey(p, g)
  if front then
    redis.call('RPUSH', lane, id)
  else
    redis.call('LPUSH', lane, id)
  end
  redis.call('SADD', kGroups, g)
  redis.call('HINCRBY', kLaneLen, p, 1)
  if redis.call('HEXISTS', kGBlk, g) == 0 then joinRotation(p, g) end
  return true
end

-- When a waiting scope should be looked at again; an earlier time already set stays.
local function wakeAt(scope, at)
  redis.call('ZADD', kWakes, 'LT', at, scope)
end

-- nil: the scope may run; 0: paused until resumed; else the time its throttle ends.
local function scopeWait(scope, now)
  local v = redis.call('HGET', kPaused, scope)
  if not v then return nil end
  v = tonumber(v)
  if v == 0 or v > now then return v end
  redis.call('HDEL', kPaused, scope)
  return nil
end

-- A rate-limit window {max, durationMs}: how many more starts fit now, and when the oldest start
-- leaves the window.
local function windowRoom(scope, lim, now)
  local k = prefix .. 'rl:' .. scope
  redis.call('ZREMRANGEBYSCORE', k, '-inf', now - lim[2])
  local room = lim[1] - redis.call('ZCARD', k)
  if room > 0 then return room, nil end
  local first = redis.call('ZRANGE', k, 0, 0, 'WITHSCORES')
  return 0, tonumber(first[2] or now) + lim[2]
end

local function groupCap(g)
  local cfg = flowConfig()
  local cap = cfg.caps and cfg.caps[g]
  return tonumber(cap or cfg.gc or 0)
end

-- Takes a group out of every rotation until what blocks it ends.
local function blockGroup(g, why, untilAt)
  redis.call('HSET', kGBlk, g, why)
  for p = 0, 3 do redis.call('ZREM', rotKey(p), g) end
  if untilAt then wakeAt('g:' .. g, untilAt) end
end

-- Why a group cannot start a task now ('p' paused, 't' throttled, 'cap', 'rl'), and until when.
local function groupBlocked(g, now)
  local w = scopeWait('g:' .. g, now)
  if w == 0 then return 'p', nil end
  if w then return 't', w end
  local cap = groupCap(g)
  if cap > 0 and tonumber(redis.call('HGET', kGRun, g) or '0') >= cap then return 'cap', nil end
  local lim = flowConfig().lim
  if lim and lim.g then
    local room, at = windowRoom('g:' .. g, lim.g, now)
    if room == 0 then return 'rl', at end
  end
  return nil, nil
end

-- Lets a scope's waiting tasks be claimed again: a group rejoins the rotation of every level
-- where it has ready tasks, and up to `max` tasks held for the scope go back to the head of
-- their level, in the order they were held.
local function unblock(scope, max)
  local woke = false
  if string.sub(scope, 1, 2) == 'g:' then
    local g = string.sub(scope, 3)
    redis.call('HDEL', kGBlk, g)
    if lanesOn() then
      for p = 0, 3 do
        if redis.call('LLEN', laneKey(p, g)) > 0 then
          joinRotation(p, g)
          woke = true
        end
      end
    end
  end
  local held = prefix .. 'held:' .. scope
  local ids = redis.call('LRANGE', held, 0, (max or 0) - 1)
  if #ids > 0 then
    redis.call('LTRIM', held, #ids, -1)
    for i = #ids, 1, -1 do
      local rec = redis.call('HMGET', taskKey(ids[i]), 's', 'p')
      if rec[1] == 'queued' then
        pushReady(ids[i], rec[2], true)
        woke = true
      end
    end
  end
  if woke then wake() end
end

flowLeave = function(key, g)
  redis.call('HDEL', key, 'gs')
  if redis.call('HINCRBY', kGRun, g, -1) <= 0 then redis.call('HDEL', kGRun, g) end
  if redis.call('HGET', kGBlk, g) == 'cap' then unblock('g:' .. g) end
end

-- Per claim: the queue's flow state, or nil when the queue has no config and no pauses.
local function flowClaimState()
  local f = redis.call('HMGET', kFlow, 'cfg', 'q')
  if not f[1] and not f[2] and redis.call('EXISTS', kPaused, kWakes) == 0 then return nil end
  local cfg = flowConfig() or {}
  return { paused = f[2] == '1', lanes = cfg.lanes == true, lim = cfg.lim or {} }
end

-- Wakes the scopes whose wait ended; answers nothing.
local function flowMaintain(now, limit)
  local due = redis.call('ZRANGEBYSCORE', kWakes, '-inf', now, 'LIMIT', 0, limit)
  if #due == 0 then return end
  redis.call('ZREM', kWakes, unpack(due))
  local lim = flowConfig() and flowConfig().lim or {}
  for _, scope in ipairs(due) do
    local w = scopeWait(scope, now)
    if w == nil then
      -- A rate-limited task name lets in one window's worth; the rest wait for the next.
      local max = nil
      if string.sub(scope, 1, 2) == 'n:' and lim.n then max = lim.n[1] end
      unblock(scope, max)
      if max and redis.call('LLEN', prefix .. 'held:' .. scope) > 0 then wakeAt(scope, now + lim.n[2]) end
    elseif w > 0 then
      wakeAt(scope, w)
    end
  end
end

-- Whether a popped queued task may start now; if not it is held (no attempt spent) until its
-- task name (or, without lanes, its group) may run again. Groups with lanes are judged when the
-- rotation picks them, not here.
local function flowAdmit(state, id, name, group, now)
  local scopes = { 'n:' .. name }
  if not state.lanes then scopes[2] = 'g:' .. group end
  for i, scope in ipairs(scopes) do
    local w = scopeWait(scope, now)
    if w == nil and i == 1 and state.lim.n then
      local room, at = windowRoom(scope, state.lim.n, now)
      if room == 0 then w = at end
    end
    if w ~= nil then
      redis.call('RPUSH', prefix .. 'held:' .. scope, id)
      if w > 0 then wakeAt(scope, w) end
      return false
    end
  end
  return true
end

-- Counts a start against the rate limits and the group's slots. Answers true when the group is
-- now blocked (at its cap, or its window full).
local function flowStarted(state, key, token, name, group, now)
  local lim = state.lim
  if lim.q then
    redis.call('ZADD', prefix .. 'rl:q', now, token)
    redis.call('PEXPIRE', prefix .. 'rl:q', lim.q[2])
  end
  if lim.n then
    redis.call('ZADD', prefix .. 'rl:n:' .. name, now, token)
    redis.call('PEXPIRE', prefix .. 'rl:n:' .. name, lim.n[2])
  end
  if not state.lanes then return false end
  redis.call('HSET', key, 'gs', group)
  local running = redis.call('HINCRBY', kGRun, group, 1)
  local cap = groupCap(group)
  if cap > 0 and running >= cap then
    blockGroup(group, 'cap', nil)
    return true
  end
  if lim.g then
    local k = prefix .. 'rl:g:' .. group
    redis.call('ZADD', k, now, token)
    redis.call('PEXPIRE', k, lim.g[2])
    local room, at = windowRoom('g:' .. group, lim.g, now)
    if room == 0 then
      blockGroup(group, 'rl', at)
      return true
    end
  end
  return false
end

-- Takes up to `need` tasks from the lanes of level p (0-3), one per turn of the rotation;
-- `lease(id, group)` answers whether the task started and whether that blocked its group.
local function claimLanes(p, need, now, lease)
  local rk = rotKey(p)
  local weights = flowConfig().w or {}
  while need > 0 do
    local top = redis.call('ZRANGE', rk, 0, 0)
    local g = top[1]
    if not g then break end
    local why, untilAt = groupBlocked(g, now)
    if why then
      blockGroup(g, why, untilAt)
    else
      local lane = laneKey(p, g)
      local id = redis.call('RPOP', lane)
      if id then redis.call('HINCRBY', kLaneLen, p, -1) end
      local emptied = not id or redis.call('LLEN', lane) == 0
      if emptied then redis.call('ZREM', rk, g) end
      if id then
        local started, blocked = lease(id, g)
        if started then
          need = need - 1
          if not emptied and not blocked then
            redis.call('ZINCRBY', rk, 1 / tonumber(weights[g] or 1), g)
          end
        end
      end
    end
  end
  return need
end

local function lanesHaveWork()
  return redis.call('EXISTS', rotKey(0), rotKey(1), rotKey(2), rotKey(3)) > 0
end
