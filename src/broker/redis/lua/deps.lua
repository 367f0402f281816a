-- deps.lua: prepended after common.lua to every script: task dependencies (src/task/dependency-model.ts).
-- Keys beside a task's hash, in the task's own queue:
--   prefix.."waits:"..id  set of "<queue>|<id>": the dependencies a waiting task still waits for
--   prefix.."deps:"..id   set of "<policy>|<queue>|<id>": the tasks that depend on it
-- Task hash fields: dp its dependencies (json [[queue, id, policy], ...]), dw '1' while it waits,
--   fl the flow that created it.
-- A dependency may live in another queue of the same Redis (not a cluster: its keys are in another
-- slot). A dependent of another queue is released through that queue's delayed set (due at once),
-- which its next claim promotes into a ready list with pushReady.
local function queuePrefix(q)
  return 'tl:{' .. q .. '}:'
end
-- "tl:{name}:" -> "name"
local function queueOf(pfx)
  return string.sub(pfx, 5, -3)
end
local ownQueue = queueOf(prefix)

-- A change of a task in queue `pfx`: this script's feed, or that queue's stream.
local function feedChange(pfx, c)
  if pfx == prefix then
    change(c)
  elseif feed then
    redis.call('XADD', pfx .. 'changes', '*', 'c', cjson.encode({ c }))
  end
end

-- The error a dependent ends with when dependency `id` (at `pfx`) ended `status` (see
-- dependencyFailure in src/task/dependency-model.ts).
local function dependencyError(pfx, id, status)
  local rec = redis.call('HMGET', pfx .. 'task:' .. id, 'n', 'e')
  local what = 'failed'
  if status == 'cancelled' then what = 'was cancelled' end
  local msg = 'dependency ' .. id .. ' (' .. (rec[1] or '?') .. ') ' .. what
  if rec[2] then
    local ok, e = pcall(cjson.decode, rec[2])
    if ok and type(e) == 'table' and type(e.message) == 'string' and e.message ~= '' then
      msg = msg .. ': ' .. e.message
    end
  end
  return cjson.encode({ name = 'DependencyFailedError', message = msg })
end

-- Ends a task that has not run because a dependency it needed ended `status` ('failed': into its
-- queue's DLQ; 'cancelled': kept for `ttl` ms, the cause's own time left).
local function endUnrun(pfx, id, status, errJson, now, ttl)
  local key = pfx .. 'task:' .. id
  redis.call('HDEL', key, 'dw')
  redis.call('DEL', pfx .. 'waits:' .. id)
  redis.call('HSET', key, 's', status, 'fa', now, 'e', errJson)
  if status == 'failed' then
    redis.call('ZADD', pfx .. 'dlq', now, id)
  elseif ttl and ttl > 0 then
    redis.call('PEXPIRE', key, ttl)
  end
  if pfx == prefix then
    if status == 'failed' then tally('dead_lettered', key, 'DependencyFailedError') else tally('cancelled', key) end
    -- Queue events (docs/events.md): a dependent ended by its dependency is final like any other.
    event(status == 'failed' and 'dead' or 'cancelled', key, id, redis.call('HGET', key, 'a'), now, { error = errJson })
  end
  feedChange(pfx, { id = id, status = status, attempt = tonumber(redis.call('HGET', key, 'a') or '0'),
    at = tonumber(now), error = errJson })
end

-- A waiting task whose last dependency finished: queued (due now) or delayed (a later runAt).
local function releaseWaiting(pfx, id, now)
  local key = pfx .. 'task:' .. id
  redis.call('HDEL', key, 'dw')
  redis.call('DEL', pfx .. 'waits:' .. id)
  local rec = redis.call('HMGET', key, 'p', 'ra', 'a')
  local runAt = tonumber(rec[2]) or 0
  local attempt = tonumber(rec[3] or '0')
  if runAt > now or pfx ~= prefix then
    -- Another queue's ready lists are not this script's: its claim promotes the task from there.
    if runAt < now then
      runAt = now
      redis.call('HSET', key, 'ra', now)
    end
    redis.call('ZADD', pfx .. 'delayed', runAt, id)
    redis.call('ZADD', pfx .. 'marker', 0, 'w')
    feedChange(pfx, { id = id, status = 'pending', attempt = attempt, at = tonumber(now), runAt = runAt })
  else
    redis.call('HSET', key, 's', 'queued', 'ra', now)
    pushReady(id, rec[1])
    wake()
    event('queued', key, id, attempt, now, { runAt = tonumber(now) })
    change({ id = id, status = 'queued', attempt = attempt, at = tonumber(now), runAt = tonumber(now) })
  end
end

-- Task `id` of queue `pfx` reached a final state (`status` 'completed', 'failed' or 'cancelled'):
-- each dependent that waits drops it and is released once it waits for nothing, or, when the
-- dependency failed or was cancelled and the edge's policy is 'fail', ends the same way, and its
-- own dependents follow. O(1) per edge; a task without dependents costs one SMEMBERS.
local function settleDependents(pfx, id, status, now)
  local stack = { { pfx, id, status } }
  while #stack > 0 do
    local top = table.remove(stack)
    local fpfx, fid, fstatus = top[1], top[2], top[3]
    local depsKey = fpfx .. 'deps:' .. fid
    local members = redis.call('SMEMBERS', depsKey)
    local errJson = nil
    -- A task without dependents (the common case) costs the SMEMBERS alone.
    local ttl = 0
    if #members > 0 then ttl = redis.call('PTTL', fpfx .. 'task:' .. fid) end
    for _, m in ipairs(members) do
      local s1 = string.find(m, '|', 1, true)
      local s2 = string.find(m, '|', s1 + 1, true)
      local policy, dq, did = string.sub(m, 1, s1 - 1), string.sub(m, s1 + 1, s2 - 1), string.sub(m, s2 + 1)
      local dpfx = queuePrefix(dq)
      if redis.call('HGET', dpfx .. 'task:' .. did, 'dw') == '1' then
        local waitsKey = dpfx .. 'waits:' .. did
        redis.call('SREM', waitsKey, queueOf(fpfx) .. '|' .. fid)
        if fstatus ~= 'completed' and policy == 'fail' then
          errJson = errJson or dependencyError(fpfx, fid, fstatus)
          endUnrun(dpfx, did, fstatus, errJson, now, ttl)
          stack[#stack + 1] = { dpfx, did, fstatus }
        elseif redis.call('SCARD', waitsKey) == 0 then
          releaseWaiting(dpfx, did, now)
        end
      end
    end
    -- The dependents stay listed as long as the task's record does.
    if #members > 0 and ttl > 0 then redis.call('PEXPIRE', depsKey, ttl) end
  end
end

-- A task that waits for dependencies leaves that wait (it is cancelled).
local function leaveWaiting(key, id)
  if redis.call('HGET', key, 'dw') then
    redis.call('HDEL', key, 'dw')
    redis.call('DEL', prefix .. 'waits:' .. id)
  end
end
