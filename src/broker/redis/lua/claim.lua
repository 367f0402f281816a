-- claim.lua: the worker's one call per batch. Promotes due delayed tasks, returns expired leases
-- to the queue (or dead-letters them when their attempts are spent), then leases up to `max`
-- tasks in strict priority order with fresh fencing tokens.
-- ARGV: 2 now, 3 max, 4 lease deadline, 5 worker id, 6 maintenance limit (items per kind per call),
--   7 error json for expired leases, 8 the run_id the caller verified ('' when not fenced),
--   9 low-water mark of tokens left below the ceiling.
-- Fenced (durable mode, ARGV 8 given): served only when the marker prefix.."base" names that run_id,
-- it is this server's (see servedBy in common.lua) and the marker is past its first phase (see
-- epoch.lua), and tokens only up to the marker's ceiling.
-- Returns: { nextWakeAt or '', flag, then 15 per task: id, name, tenant, payload, priority index,
--   attempt, maxRetries, timeoutMs, createdAt, runAt, token, lock key ('' for none),
--   trace context ('' for none), idempotency key ('' for none), group ('' for the tenant) }. flag: '' normal; 'epoch' refused
--   (not re-based for this server); 'fence' refused (no token left below the ceiling); 'low' served,
--   but the ceiling is near.
-- A task whose lock key another processing task holds is parked (no attempt spent) until it is freed.
-- Flow control (flow-core.lua) may stop the whole claim (queue paused or out of its rate window),
-- hold a task whose task name cannot start, and with lanes rotates between groups in each level.
local now, max, deadline = tonumber(ARGV[2]), tonumber(ARGV[3]), ARGV[4]
local worker, limit, expiredErr = ARGV[5], tonumber(ARGV[6]), ARGV[7]
local flag = ''
local need = max
if ARGV[8] ~= '' then
  local base = redis.call('HMGET', prefix .. 'base', 'run', 'ph', 'ceil')
  if base[1] ~= ARGV[8] or base[2] == 'r' or not servedBy(ARGV[8]) then return { '', 'epoch' } end
  local left = tonumber(base[3] or '0') - tonumber(redis.call('GET', kFence) or '0')
  if left <= 0 then return { '', 'fence' } end
  if left - max < tonumber(ARGV[9]) then flag = 'low' end
  if left < need then need = left end
end

local due = redis.call('ZRANGEBYSCORE', kDelayed, '-inf', now, 'LIMIT', 0, limit)
for _, id in ipairs(due) do
  local key = taskKey(id)
  local rec = redis.call('HMGET', key, 's', 'p')
  if rec[1] == 'pending' then
    redis.call('HSET', key, 's', 'queued')
    pushReady(id, rec[2])
  end
end
if #due > 0 then redis.call('ZREM', kDelayed, unpack(due)) end

-- Expired leases go back to the head of their level, earliest expiry first.
local expired = redis.call('ZRANGEBYSCORE', kLeases, '-inf', now, 'LIMIT', 0, limit)
for i = #expired, 1, -1 do
  local id = expired[i]
  local key = taskKey(id)
  local rec = redis.call('HMGET', key, 's', 'p', 'a', 'mr', 'w', 'sa')
  if rec[1] == 'processing' then
    local record = recordAttempt(key, rec[3], rec[5], rec[6], now, 'lease-expired', expiredErr)
    freeTaskLock(key, id)
    tally('lease_expired', key)
    local status = 'queued'
    if tonumber(rec[3]) > tonumber(rec[4]) then
      status = 'failed'
      bury(key, id, now)
      tally('dead_lettered', key, 'LeaseExpiredError')
      settleDependents(prefix, id, 'failed', now)
    else
      redis.call('HSET', key, 's', 'queued')
      pushReady(id, rec[2], true)
    end
    change({ id = id, status = status, attempt = tonumber(rec[3]), at = now, error = expiredErr, failedAttempt = record })
    event(status == 'failed' and 'dead' or 'retrying', key, id, rec[3], now, { runAt = now, error = expiredErr })
  end
end
if #expired > 0 then redis.call('ZREM', kLeases, unpack(expired)) end

-- The marker means "ready work nobody is claiming": this call is claiming, so it takes the marker
-- and puts it back below if it leaves work behind.
redis.call('DEL', kMarker)

-- Flow control (flow-core.lua): nil on a queue with no config and no pauses (the plain path).
local flow = flowClaimState()
local flowWake = nil
if flow then
  flowMaintain(flow, now, limit)
  if flow.paused then need = 0 end
  if flow.lim.q and need > 0 then
    local room, at = windowRoom('q', flow.lim.q, now)
    if room < need then need = room end
    flowWake = at
  end
end

local out = { '', flag }
local leases = {}
-- Leases one popped task unless it is a tombstone, waits for its lock key or (flow) its task name
-- or group. Answers whether it started, and whether that start blocked its group (lanes).
local function lease(id, p, laneGroup)
  local key = taskKey(id)
  local rec = redis.call('HMGET', key, 's', 'n', 't', 'd', 'a', 'mr', 'to', 'ca', 'ra', 'lk', 'li', 'tc', 'ik', 'g')
  local group = laneGroup or rec[14] or rec[3]
  if flow and rec[1] == 'queued' and not flowAdmit(flow, id, rec[2], group, now) then return false, false end
  local lk = rec[10] or ''
  local parked = false
  if lk ~= '' then
    if rec[1] ~= 'queued' then
      -- A cancelled waiter that was let in: let the next one in unless the key is held.
      if not lockHeld(lk, id) then unparkOne(lk) end
    elseif lockHeld(lk, id) then
      parked = true
      if rec[11] then
        redis.call('LPUSH', prefix .. 'parked:' .. lk, id)
      else
        redis.call('RPUSH', prefix .. 'parked:' .. lk, id)
      end
    else
      redis.call('SET', prefix .. 'tlock:' .. lk, id)
    end
    if rec[11] then redis.call('HDEL', key, 'li') end
  end
  if rec[1] ~= 'queued' or parked then return false, false end
  -- As text: Lua would print a 16-digit number as 1.7e+15 and lose digits.
  local token = string.format('%d', redis.call('INCR', kFence))
  local attempt = tonumber(rec[5]) + 1
  if flow and flow.lanes then
    redis.call('HSET', key, 's', 'processing', 'a', attempt, 'k', token, 'w', worker, 'sa', now, 'gs', group)
  else
    redis.call('HSET', key, 's', 'processing', 'a', attempt, 'k', token, 'w', worker, 'sa', now)
  end
  change({ id = id, status = 'processing', attempt = attempt, at = now, startedAt = now, workerId = worker })
  leases[#leases + 1] = deadline
  leases[#leases + 1] = id
  local n = #out
  out[n + 1], out[n + 2], out[n + 3], out[n + 4] = id, rec[2], rec[3], rec[4]
  out[n + 5], out[n + 6], out[n + 7], out[n + 8] = tostring(p - 1), tostring(attempt), rec[6], rec[7]
  out[n + 9], out[n + 10], out[n + 11], out[n + 12] = rec[8], rec[9], token, lk
  out[n + 13], out[n + 14], out[n + 15] = rec[12] or '', rec[13] or '', rec[14] or ''
  need = need - 1
  if flow then return true, flowStarted(flow, token, rec[2], group, now) end
  return true, false
end

for p = 1, 4 do
  -- With lanes, the level's list holds only tasks queued before lanes came on: they go first.
  while need > 0 do
    local ids = redis.call('RPOP', KEYS[p], need)
    if not ids then break end
    for _, id in ipairs(ids) do lease(id, p) end
  end
  if flow and flow.lanes and need > 0 then
    claimLanes(flow, p - 1, need, now, function(id, g)
      return lease(id, p, g)
    end)
  end
  if need == 0 then break end
end
if #leases > 0 then redis.call('ZADD', kLeases, unpack(leases)) end
if flow then flowFinish(flow) end
-- More may be waiting than this worker took: pass the baton to the next idle worker.
if need == 0 and (redis.call('EXISTS', KEYS[1], KEYS[2], KEYS[3], KEYS[4]) > 0 or (flow and lanesHaveWork())) then
  if not (flow and (flow.paused or flowWake)) then wake() end
end

local nextWake = nil
local d = redis.call('ZRANGE', kDelayed, 0, 0, 'WITHSCORES')
if d[2] then nextWake = tonumber(d[2]) end
local l = redis.call('ZRANGE', kLeases, 0, 0, 'WITHSCORES')
if l[2] and (not nextWake or tonumber(l[2]) < nextWake) then nextWake = tonumber(l[2]) end
if flow then
  local f = redis.call('ZRANGE', kWakes, 0, 0, 'WITHSCORES')
  if f[2] and (not nextWake or tonumber(f[2]) < nextWake) then nextWake = tonumber(f[2]) end
  if flowWake and (not nextWake or flowWake < nextWake) then nextWake = flowWake end
end
if nextWake then out[1] = string.format('%d', nextWake) end
publishChanges()
return out
