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
local rotationJoined = false
local function joinRotation(p, g)
  local rk = rotKey(p)
  if redis.call('ZSCORE', rk, g) then return end
  rotationJoined = true
  local first = redis.call('ZRANGE', rk, 0, 0, 'WITHSCORES')
  redis.call('ZADD', rk, first[2] or 0, g)
end

-- (level, group) pairs this script call already put in the rotation (or found blocked): a batch
-- of one group's tasks joins once. Cleared whenever a group leaves a rotation.
local routed = {}
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
  redis.call('HINCRBY', kLaneLen, p, 1)
  local seen = p .. ':' .. g
  if not routed[seen] then
    routed[seen] = true
    redis.call('SADD', kGroups, g)
    if redis.call('HEXISTS', kGBlk, g) == 0 then joinRotation(p, g) end
  end
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
  routed = {}
  redis.call('HSET', kGBlk, g, why)
  for p = 0, 3 do redis.call('ZREM', rotKey(p), g) end
  if untilAt then wakeAt('g:' .. g, untilAt) end
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

-- A task with a group slot left processing. Only a queue with caps can have a group waiting for
-- the slot.
flowLeave = function(key, g)
  redis.call('HDEL', key, 'gs')
  if redis.call('HINCRBY', kGRun, g, -1) <= 0 then redis.call('HDEL', kGRun, g) end
  local cfg = flowConfig()
  if not cfg or (tonumber(cfg.gc or 0) == 0 and (cfg.caps == nil or next(cfg.caps) == nil)) then return end
  if redis.call('HGET', kGBlk, g) == 'cap' then unblock('g:' .. g) end
end

-- Per claim: the queue's flow state, or nil when the queue has no config and no pauses.
-- `pauses`: whether any task name or group is paused or throttled (else nothing is looked up per
-- task); `caps`: whether groups have caps (else running tasks per group are counted all the same,
-- for counts, but never compared).
local function flowClaimState()
  local f = redis.call('HMGET', kFlow, 'cfg', 'q')
  local pauses = redis.call('EXISTS', kPaused) == 1
  if not f[1] and not f[2] and not pauses and redis.call('EXISTS', kWakes) == 0 then return nil end
  local cfg = flowConfig() or {}
  local caps = (tonumber(cfg.gc or 0) > 0) or (cfg.caps ~= nil and next(cfg.caps) ~= nil)
  return { paused = f[2] == '1', lanes = cfg.lanes == true, lim = cfg.lim or {}, pauses = pauses,
    caps = caps, running = {}, started = {} }
end

-- Wakes the scopes whose wait ended; answers nothing.
local function flowMaintain(state, now, limit)
  local due = redis.call('ZRANGEBYSCORE', kWakes, '-inf', now, 'LIMIT', 0, limit)
  if #due == 0 then return end
  redis.call('ZREM', kWakes, unpack(due))
  local lim = state.lim
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
  state.pauses = redis.call('EXISTS', kPaused) == 1
end

-- Whether a popped queued task may start now; if not it is held (no attempt spent) until its
-- task name (or, without lanes, its group) may run again. Groups with lanes are judged when the
-- rotation picks them, not here.
local function flowAdmit(state, id, name, group, now)
  if not state.pauses and not state.lim.n then return true end
  local scopes = { 'n:' .. name }
  if not state.lanes then scopes[2] = 'g:' .. group end
  for i, scope in ipairs(scopes) do
    local w = nil
    if state.pauses then w = scopeWait(scope, now) end
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

-- Tasks of `group` processing now, as this claim sees them (read once, counted locally).
local function runningOf(state, group)
  local n = state.running[group]
  if n == nil then
    n = tonumber(redis.call('HGET', kGRun, group) or '0')
    state.running[group] = n
  end
  return n
end

-- Counts a start against the rate limits and the group's slots (the task's hash already names
-- its group in 'gs'). Answers true when the group is now blocked (at its cap, or window full).
local function flowStarted(state, token, name, group, now)
  local lim = state.lim
  if lim.q then redis.call('ZADD', prefix .. 'rl:q', now, token) end
  if lim.n then
    redis.call('ZADD', prefix .. 'rl:n:' .. name, now, token)
    redis.call('PEXPIRE', prefix .. 'rl:n:' .. name, lim.n[2])
  end
  if not state.lanes then return false end
  local running = runningOf(state, group) + 1
  state.running[group] = running
  state.started[group] = (state.started[group] or 0) + 1
  if state.caps then
    local cap = groupCap(group)
    if cap > 0 and running >= cap then
      blockGroup(group, 'cap', nil)
      return true
    end
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

-- Writes what a claim counted locally: running tasks per group, and the queue window's expiry.
local function flowFinish(state)
  for g, n in pairs(state.started) do redis.call('HINCRBY', kGRun, g, n) end
  if state.lim.q then redis.call('PEXPIRE', prefix .. 'rl:q', state.lim.q[2]) end
end

-- Why a group cannot start a task now ('p' paused, 't' throttled, 'cap', 'rl'), and until when;
-- only what the queue has configured is looked at.
local function groupBlockedIn(state, g, now)
  if state.pauses then
    local w = scopeWait('g:' .. g, now)
    if w == 0 then return 'p', nil end
    if w then return 't', w end
  end
  if state.caps then
    local cap = groupCap(g)
    if cap > 0 and runningOf(state, g) >= cap then return 'cap', nil end
  end
  if state.lim.g then
    local room, at = windowRoom('g:' .. g, state.lim.g, now)
    if room == 0 then return 'rl', at end
  end
  return nil, nil
end

-- Takes up to `need` tasks from the lanes of level p (0-3), one per turn of the rotation, and
-- answers how many it took. The lowest `need` entries of the rotation are read once and turned
-- locally (ties by name, as the zset orders them); every entry not read sorts after the last one
-- read, so the local choice is the global one while it sorts before that boundary. Scores are
-- written back at the end; a rotation changed meanwhile (a task let in) is read again.
-- `lease(id, group)` answers whether the task started and whether that blocked its group.
local function claimLanes(state, p, need, now, lease)
  local rk = rotKey(p)
  local weights = flowConfig().w or {}
  local taken, popped = 0, 0
  while need > 0 do
    local flat = redis.call('ZRANGE', rk, 0, need - 1, 'WITHSCORES')
    if #flat == 0 then break end
    local entries = {}
    for i = 1, #flat, 2 do entries[#entries + 1] = { g = flat[i], s = tonumber(flat[i + 1]) } end
    local boundary = nil
    if #entries == need then boundary = { s = entries[#entries].s, g = entries[#entries].g } end
    local changed, gone = {}, {}
    rotationJoined = false
    local again = false
    while need > 0 and not again do
      local best, bi = nil, nil
      for i, e in ipairs(entries) do
        if not best or e.s < best.s or (e.s == best.s and e.g < best.g) then best, bi = e, i end
      end
      if not best then break end
      if boundary and (best.s > boundary.s or (best.s == boundary.s and best.g > boundary.g)) then
        again = true
      else
        local g = best.g
        local why, untilAt = groupBlockedIn(state, g, now)
        local drop = false
        if why then
          blockGroup(g, why, untilAt)
          drop = true
        else
          local id = redis.call('RPOP', laneKey(p, g))
          if not id then
            redis.call('ZREM', rk, g)
            routed = {}
            drop = true
          else
            popped = popped + 1
            local started, blocked = lease(id, g)
            if started then
              need = need - 1
              taken = taken + 1
              if blocked then
                drop = true
              else
                best.s = best.s + 1 / tonumber(weights[g] or 1)
                changed[g] = best
              end
            end
          end
        end
        if drop then
          table.remove(entries, bi)
          changed[g] = nil
          gone[g] = true
        end
        if rotationJoined then again = true end
      end
    end
    local scores = {}
    for g, e in pairs(changed) do
      if not gone[g] then
        scores[#scores + 1] = e.s
        scores[#scores + 1] = g
      end
    end
    if #scores > 0 then redis.call('ZADD', rk, 'XX', unpack(scores)) end
    if not again then break end
  end
  if popped > 0 then redis.call('HINCRBY', kLaneLen, p, -popped) end
  return taken
end

local function lanesHaveWork()
  return redis.call('EXISTS', rotKey(0), rotKey(1), rotKey(2), rotKey(3)) > 0
end
