-- common.lua: prepended to every script of this folder.
-- KEYS (the same nine for every script, all in one hash slot thanks to the {queue} tag):
--   1..4 ready lists per priority (critical, high, normal, low): LPUSH adds, RPOP takes (FIFO)
--   5 delayed  zset  id -> due time (ms)
--   6 leases   zset  id -> lease deadline (ms)
--   7 dlq      zset  id -> time of death (ms)
--   8 marker   zset  one member; idle workers BZPOPMIN it to learn that work may be ready
--   9 fence    string counter of fencing tokens
-- ARGV[1]: '+' or '-' (change feed on or off) followed by the key prefix "tl:{queue}:"; task
--   hashes are prefix .. "task:" .. id, the change feed stream prefix .. "changes".
-- Task hash fields: n name, t tenant, d payload, p priority index, s status, a attempts started,
--   mr max retries, to timeout ms, ca created at, ra runnable at, sa started at, fa finished at,
--   r result, e last error (json), h failed-attempt history (json lines), w worker, k token,
--   ik idempotency key.
local feed = string.sub(ARGV[1], 1, 1) == '+'
local prefix = string.sub(ARGV[1], 2)
local kDelayed, kLeases, kDlq, kMarker, kFence = KEYS[5], KEYS[6], KEYS[7], KEYS[8], KEYS[9]

local function taskKey(id)
  return prefix .. 'task:' .. id
end

local function readyKey(priority)
  return KEYS[tonumber(priority) + 1]
end

-- Flow control (flow-core.lua, prepended after this file): `flowRoute` puts a task into its
-- group's lane when the queue has lanes (answers true), `flowLeave` frees a task's group slot.
local flowRoute, flowLeave

-- Every move of a task into a ready list goes through here: at the back of its level (the next
-- claims take it last), or at the front (`front`: it is claimed next, e.g. a returned lease).
local function pushReady(id, priority, front)
  if flowRoute(id, priority, front) then return end
  if front then
    redis.call('RPUSH', readyKey(priority), id)
  else
    redis.call('LPUSH', readyKey(priority), id)
  end
end

local function wake()
  redis.call('ZADD', kMarker, 0, 'w')
end

-- The change feed (durable mode): every state change of a script call goes into one stream entry,
-- a JSON array of {id, status, attempt, at, ...}, which the store flusher applies to PostgreSQL.
local changes = {}
local function change(c)
  if feed then changes[#changes + 1] = c end
end
-- Fleet-wide event counts (metrics): a script call adds up its events by (event, tenant, task
-- name, detail) and adds them to the queue's totals hash prefix.."stats" in one HINCRBY each. The
-- field is the JSON array [event, tenant, name, detail]; detail is the priority index of a submit
-- and the error name of a failed attempt or a dead-lettered task, '' otherwise.
local tallies, tallyFields = {}, {}
local function tallyAs(event, tenant, name, detail)
  local k = event .. '\0' .. (tenant or '') .. '\0' .. (name or '') .. '\0' .. (detail or '')
  local n = tallies[k]
  if not n then
    tallyFields[#tallyFields + 1] = k
    tallyFields[k] = cjson.encode({ event, tenant or '', name or '', detail or '' })
  end
  tallies[k] = (n or 0) + 1
end
-- Counts an event of the task stored at `key` (its name and tenant read from the hash).
local function tally(event, key, detail)
  local nt = redis.call('HMGET', key, 'n', 't')
  tallyAs(event, nt[2], nt[1], detail)
end
local function errorName(errJson)
  local ok, e = pcall(cjson.decode, errJson)
  if ok and type(e) == 'table' and type(e.name) == 'string' then return e.name end
  return 'Error'
end
local function publishTallies()
  for _, k in ipairs(tallyFields) do
    redis.call('HINCRBY', prefix .. 'stats', tallyFields[k], tallies[k])
  end
end

local function publishChanges()
  if #changes > 0 then
    redis.call('XADD', prefix .. 'changes', '*', 'c', cjson.encode(changes))
  end
  publishTallies()
end

-- Appends one failed attempt (a JSON object) to the task's history; answers the entry.
local function recordAttempt(key, attempt, worker, startedAt, now, outcome, errJson)
  local record = '{"attempt":' .. (tonumber(attempt) or 0) .. ',"workerId":' .. cjson.encode(worker or '')
    .. ',"startedAt":' .. (tonumber(startedAt) or 0) .. ',"endedAt":' .. now
    .. ',"outcome":' .. cjson.encode(outcome) .. ',"error":' .. errJson .. '}'
  local history = redis.call('HGET', key, 'h')
  local all = record
  if history and history ~= '' then
    all = history .. '\n' .. record
  end
  redis.call('HSET', key, 'h', all, 'e', errJson)
  return record
end

-- Dead-letters a task whose attempts are spent.
local function bury(key, id, now)
  redis.call('HSET', key, 's', 'failed', 'fa', now)
  redis.call('ZADD', kDlq, now, id)
end

-- Task lock keys (fleet): a task with lock key lk holds prefix.."tlock:"..lk (its id) while it is
-- processing; tasks claimed while another holds the key wait, without an attempt, in the FIFO list
-- prefix.."parked:"..lk. A holder that is no longer processing holds nothing.
local function lockHeld(lk, id)
  local holder = redis.call('GET', prefix .. 'tlock:' .. lk)
  return holder and holder ~= id and redis.call('HGET', taskKey(holder), 's') == 'processing'
end

-- Puts the first still-queued parked task of lk back at the head of its level.
local function unparkOne(lk)
  local parkedKey = prefix .. 'parked:' .. lk
  while true do
    local pid = redis.call('LPOP', parkedKey)
    if not pid then return end
    local rec = redis.call('HMGET', taskKey(pid), 's', 'p')
    if rec[1] == 'queued' then
      -- Marked 'let in': if it must wait again, it waits first in line.
      redis.call('HSET', taskKey(pid), 'li', '1')
      pushReady(pid, rec[2], true)
      wake()
      return
    end
  end
end

-- Called whenever a task leaves processing: frees its lock key and lets the next waiter in.
local function freeTaskLock(key, id)
  local held = redis.call('HMGET', key, 'lk', 'gs')
  if held[2] then flowLeave(key, held[2]) end
  local lk = held[1]
  if not lk or lk == '' then return end
  local holderKey = prefix .. 'tlock:' .. lk
  if redis.call('GET', holderKey) == id then redis.call('DEL', holderKey) end
  unparkOne(lk)
end

-- True when this server is the one whose run_id the caller verified. The marker alone cannot
-- tell: a server restarted from an older copy of the data brings back a marker naming the server
-- the copy was taken from, and a call the client sent to that server before it went down reaches
-- the new one when the client re-sends it on reconnect, still carrying the old run_id.
local function servedBy(run)
  return string.match(redis.call('INFO', 'server'), 'run_id:(%x+)') == run
end

-- Fenced (durable mode): true when the marker prefix.."base" names `run` (the run_id the caller
-- verified), `run` is this server's, and the marker is past its first phase, i.e. this data was
-- re-based for this server (epoch.lua). A caller without a run_id ('' or nil) is not fenced.
local function rebased(run)
  if not run or run == '' then return true end
  local base = redis.call('HMGET', prefix .. 'base', 'run', 'ph')
  return base[1] == run and base[2] ~= 'r' and servedBy(run)
end

-- Task output and queue events (issue 17; src/events/).
-- A task's log lines (ctx.log) live in the list prefix.."logs:"..id, which goes with its task.
local function expireLogs(id, retention)
  redis.call('PEXPIRE', prefix .. 'logs:' .. id, retention)
end
-- Queue events are written while a listener keeps prefix.."ev:on" (its value: the stream's
-- maximum length; see listenEvents): one entry of the stream prefix.."ev" per event, field 'e' a
-- JSON object {type, taskId, name, tenantId, attempt, at, ...extra}. Nobody listening: one GET per call.
local eventsMax = nil
local function event(type, key, id, attempt, at, extra)
  if eventsMax == nil then eventsMax = redis.call('GET', prefix .. 'ev:on') end
  if not eventsMax then return end
  local nt = redis.call('HMGET', key, 'n', 't')
  local e = extra or {}
  e.type, e.taskId, e.name, e.tenantId = type, id, nt[1] or '', nt[2] or ''
  e.attempt, e.at = tonumber(attempt) or 0, tonumber(at)
  redis.call('XADD', prefix .. 'ev', 'MAXLEN', '~', eventsMax, '*', 'e', cjson.encode(e))
end
