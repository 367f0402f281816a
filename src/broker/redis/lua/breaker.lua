-- breaker.lua: circuit-breaker state shared by the fleet, one hash per breaker:
-- prefix.."breaker:"..name {st = 'open' | 'half-open', f = consecutive failures, ou = open until,
-- tu = half-open trial deadline}; no hash means closed with no failures.
-- ARGV: 2 op ('acquire' | 'success' | 'failure' | 'release' | 'state' | 'reset'), 3 name, 4 now,
--   5 failure threshold, 6 reset ms, 7 trial ms, 8 release: the trial's deadline (names the trial).
-- Returns: { state, failures, openUntil ('' when closed), allowed, trial, opened } (flags 0/1).
local op, name, now = ARGV[2], ARGV[3], tonumber(ARGV[4])
local threshold, resetMs, trialMs = tonumber(ARGV[5]), tonumber(ARGV[6]), tonumber(ARGV[7])
local bk = prefix .. 'breaker:' .. name
local h = redis.call('HMGET', bk, 'st', 'f', 'ou', 'tu')
local st, f, ou, tu = h[1] or 'closed', tonumber(h[2]) or 0, tonumber(h[3]) or 0, tonumber(h[4]) or 0
local allowed, trial, opened = 0, 0, 0
if op == 'acquire' then
  if st == 'closed' then
    allowed = 1
  elseif (st == 'open' and now >= ou) or (st == 'half-open' and now >= tu) then
    -- Due (or the last trial's runner vanished): exactly one caller gets the trial.
    st, tu, allowed, trial = 'half-open', now + trialMs, 1, 1
    redis.call('HSET', bk, 'st', st, 'tu', tu)
  end
elseif op == 'success' or op == 'reset' then
  st, f = 'closed', 0
  redis.call('DEL', bk)
elseif op == 'release' then
  -- The trial ended without a verdict (say, a non-retryable error): the next acquire tries at once.
  -- Only the current trial: one that lapsed and was given to another task leaves that one alone.
  if st == 'half-open' and tu == tonumber(ARGV[8]) then
    tu = now
    redis.call('HSET', bk, 'tu', tu)
  end
elseif op == 'failure' then
  f = f + 1
  if st == 'half-open' or (st == 'closed' and f >= threshold) then
    st, ou, opened = 'open', now + resetMs, 1
  end
  -- Already open: a late failure of a task started before it opened; the open time stands.
  redis.call('HSET', bk, 'st', st, 'f', f, 'ou', ou)
end
local untilAt = ''
if st == 'open' then untilAt = string.format('%d', ou) end
if st == 'half-open' then untilAt = string.format('%d', tu) end
return { st, f, untilAt, allowed, trial, opened }
