-- enqueue-flow.lua: adds tasks that depend on others, all or none (queue.flow, submit with
-- dependsOn). A dependency is a task of this or another queue of the same Redis, or an earlier
-- task of this batch; it must belong to the dependent's tenant.
-- ARGV: 2 now, 3 retention ms, 4 flow id ('' for none), 5 flow json ('' for none), 6 flow key
--   (the tenant-scoped idempotency key of the whole flow, '' for none), 7 its ttl ms, 8 count,
--   then 15 per task: the 14 of enqueue.lua, then its dependencies as json [[queue, id, policy,
--   known status], ...]; the known status ('' for none; recovery's, from the store) stands for a
--   dependency Redis does not hold.
-- A task with dependencies that are not all finished waits (status pending, field dw) until they
-- are (see deps.lua); one whose dependency already failed or was cancelled under 'fail' ends so.
-- Returns: { 'ok', then 4 per task: id, status, createdAt, deduplicated ('1' or '0') };
--   { 'flow', flow json } when the flow key was seen within its ttl (nothing added);
--   { 'missing', task index (0-based), dependency queue, dependency id } (nothing added).
local now, retention, flowId, flowJson = tonumber(ARGV[2]), ARGV[3], ARGV[4], ARGV[5]
local flowKey, flowTtl, count = ARGV[6], tonumber(ARGV[7]), tonumber(ARGV[8])
local FIELDS = 15

if flowKey ~= '' then
  local held = redis.call('GET', flowKey)
  if held then
    local json = redis.call('GET', prefix .. 'flow:' .. held)
    if json then return { 'flow', json } end
  end
end

-- Everything is checked before anything is written.
local deps, batch = {}, {}
for i = 0, count - 1 do
  local b = 8 + i * FIELDS
  local id, tenant = ARGV[b + 1], ARGV[b + 3]
  local list = cjson.decode(ARGV[b + 15])
  deps[i] = list
  if redis.call('EXISTS', taskKey(id)) == 0 then
    for _, d in ipairs(list) do
      local ref = d[1] .. '|' .. d[2]
      local t = batch[ref] or redis.call('HGET', queuePrefix(d[1]) .. 'task:' .. d[2], 't')
      if t ~= tenant and not (t == false and d[4] ~= '') then return { 'missing', i, d[1], d[2] } end
    end
  end
  batch[ownQueue .. '|' .. id] = tenant
end

local out = { 'ok' }
local added = false
for i = 0, count - 1 do
  local b = 8 + i * FIELDS
  local id, name, tenant, priority, runAt = ARGV[b + 1], ARGV[b + 2], ARGV[b + 3], ARGV[b + 5], tonumber(ARGV[b + 6])
  local createdAt, ikey = ARGV[b + 9], ARGV[b + 10]
  local key = taskKey(id)
  local existing = nil
  local same = redis.call('HMGET', key, 's', 'ca')
  if same[1] then
    existing = { id, same[1], same[2], '1' }
  elseif ikey ~= '' then
    local idemKey = prefix .. 'idem:' .. string.len(tenant) .. ':' .. tenant .. ':' .. ikey
    local previous = redis.call('GET', idemKey)
    if previous then
      local sep = string.find(previous, '|', 1, true)
      local prevId = string.sub(previous, 1, sep - 1)
      local rec = redis.call('HMGET', taskKey(prevId), 's', 'ca')
      if tonumber(string.sub(previous, sep + 1)) > now and rec[1] then existing = { prevId, rec[1], rec[2], '1' } end
    end
    local ttl = tonumber(ARGV[b + 11])
    if not existing and ttl > 0 then redis.call('SET', idemKey, id .. '|' .. (now + ttl), 'PX', ttl) end
  end
  if existing then
    for _, v in ipairs(existing) do out[#out + 1] = v end
  else
    added = true
    redis.call('HSET', key, 'n', name, 't', tenant, 'd', ARGV[b + 4], 'p', priority, 's', 'pending',
      'a', ARGV[b + 12], 'mr', ARGV[b + 8], 'to', ARGV[b + 7], 'ca', createdAt, 'ra', runAt, 'ik', ikey,
      'dp', ARGV[b + 15])
    if ARGV[b + 13] ~= '' then redis.call('HSET', key, 'lk', ARGV[b + 13]) end
    if ARGV[b + 14] ~= '' then redis.call('HSET', key, 'tc', ARGV[b + 14]) end
    if flowId ~= '' then redis.call('HSET', key, 'fl', flowId) end
    tallyAs('submitted', tenant, name, priority)
    local waiting, cause = 0, nil
    for _, d in ipairs(deps[i]) do
      local dpfx = queuePrefix(d[1])
      local st = redis.call('HGET', dpfx .. 'task:' .. d[2], 's') or d[4]
      if st == 'failed' or st == 'cancelled' then
        if d[3] == 'fail' and not cause then cause = { dpfx, d[2], st } end
      elseif st ~= 'completed' then
        redis.call('SADD', prefix .. 'waits:' .. id, d[1] .. '|' .. d[2])
        redis.call('SADD', dpfx .. 'deps:' .. d[2], d[3] .. '|' .. ownQueue .. '|' .. id)
        waiting = waiting + 1
      end
    end
    local status = 'pending'
    if cause then
      status = cause[3]
      endUnrun(prefix, id, status, dependencyError(cause[1], cause[2], status), now, tonumber(retention))
    elseif waiting > 0 then
      redis.call('HSET', key, 'dw', '1')
    elseif runAt > now then
      redis.call('ZADD', kDelayed, runAt, id)
    else
      status = 'queued'
      redis.call('HSET', key, 's', 'queued')
      pushReady(id, priority)
    end
    out[#out + 1] = id
    out[#out + 1] = status
    out[#out + 1] = createdAt
    out[#out + 1] = '0'
  end
end
if flowId ~= '' and added then
  redis.call('SET', prefix .. 'flow:' .. flowId, flowJson, 'PX', math.max(flowTtl, tonumber(retention)))
  if flowKey ~= '' then redis.call('SET', flowKey, flowId, 'PX', flowTtl) end
end
if added then wake() end
publishChanges()
return out
