-- enqueue.lua: adds a batch of tasks, honouring idempotency keys.
-- ARGV: 2 now, 3 count, then 14 per task: id, name, tenant, payload, priority index, runAt,
--   timeoutMs, maxRetries, createdAt, idempotency key ('' for none), idempotency ttl ms, attempts spent,
--   lock key ('' for none), trace context ('' for none); then, after the tasks, one flow-control
--   group per task ('' for the tenant).
-- An idempotency key maps to "<id>|<expires at>"; expiry is judged on ARGV now (PX only cleans up).
-- An id that already exists is answered with the stored task, so a retried submit adds nothing.
-- Returns: 4 per task: id, status, createdAt, deduplicated ('1' or '0').
local now = tonumber(ARGV[2])
local count = tonumber(ARGV[3])
local out = {}
for i = 0, count - 1 do
  local b = 3 + i * 14
  local id, tenant, priority, runAt = ARGV[b + 1], ARGV[b + 3], ARGV[b + 5], tonumber(ARGV[b + 6])
  local createdAt, ikey = ARGV[b + 9], ARGV[b + 10]
  local existing = nil
  local same = redis.call('HMGET', taskKey(id), 's', 'ca')
  if same[1] then
    existing = { id, same[1], same[2], '1' }
  elseif ikey ~= '' then
    local idemKey = prefix .. 'idem:' .. string.len(tenant) .. ':' .. tenant .. ':' .. ikey
    local previous = redis.call('GET', idemKey)
    if previous then
      local sep = string.find(previous, '|', 1, true)
      if tonumber(string.sub(previous, sep + 1)) > now then
        local prevId = string.sub(previous, 1, sep - 1)
        local rec = redis.call('HMGET', taskKey(prevId), 's', 'ca')
        if rec[1] then
          existing = { prevId, rec[1], rec[2], '1' }
        end
      end
    end
    local ttl = tonumber(ARGV[b + 11])
    if not existing and ttl > 0 then
      redis.call('SET', idemKey, id .. '|' .. (now + ttl), 'PX', ttl)
    end
  end
  if existing then
    for _, v in ipairs(existing) do out[#out + 1] = v end
  else
    local status = 'queued'
    if runAt > now then status = 'pending' end
    redis.call('HSET', taskKey(id), 'n', ARGV[b + 2], 't', tenant, 'd', ARGV[b + 4], 'p', priority,
      's', status, 'a', ARGV[b + 12], 'mr', ARGV[b + 8], 'to', ARGV[b + 7], 'ca', createdAt, 'ra', runAt, 'ik', ikey)
    if ARGV[b + 13] ~= '' then redis.call('HSET', taskKey(id), 'lk', ARGV[b + 13]) end
    if ARGV[b + 14] ~= '' then redis.call('HSET', taskKey(id), 'tc', ARGV[b + 14]) end
    local group = ARGV[4 + count * 14 + i] or ''
    if group ~= '' then redis.call('HSET', taskKey(id), 'g', group) end
    -- After the hash: with flow lanes, pushReady reads the task's group from it.
    if runAt > now then
      redis.call('ZADD', kDelayed, runAt, id)
    else
      pushReady(id, priority)
    end
    tallyAs('submitted', tenant, ARGV[b + 2], priority)
    event('queued', taskKey(id), id, ARGV[b + 12], now, { runAt = runAt })
    out[#out + 1] = id
    out[#out + 1] = status
    out[#out + 1] = createdAt
    out[#out + 1] = '0'
  end
end
if count > 0 then wake() end
publishTallies()
return out
