-- report.lua: records progress values (ctx.progress) and log lines (ctx.log) of running attempts
-- when their fencing token is still current. Progress: the task hash field 'pg' (JSON text). Lines:
-- the list prefix.."logs:"..id, capped to the last ARGV[4], each entry the JSON array
-- [token, seq, at, line]; the hash field 'lc' counts the lines written (seq). With the change feed
-- on, the output also goes on the feed as one entry whose field 'o' is a JSON array of
-- {id, token, at, progress} and {id, token, at, seq, line} (token as text: it may exceed 2^53).
-- ARGV: 2 now, 3 count, 4 max lines per task, then 4 per item: id, token, kind ('p' progress,
--   'l' log line), value; last, the run_id the caller verified ('' when not fenced).
-- Returns: one integer per item: 1 written, 0 stale; or -1 (fenced) when the data is not re-based
--   for this server (see complete.lua).
local now, count, maxLines = ARGV[2], tonumber(ARGV[3]), tonumber(ARGV[4])
if not rebased(ARGV[5 + count * 4]) then return -1 end
local out, lists, outputs = {}, {}, {}
for i = 0, count - 1 do
  local b = 4 + i * 4
  local id, token, kind, value = ARGV[b + 1], ARGV[b + 2], ARGV[b + 3], ARGV[b + 4]
  local key = taskKey(id)
  local rec = redis.call('HMGET', key, 's', 'k', 'a')
  local ok = 0
  if rec[1] == 'processing' and rec[2] == token then
    local head = '{"id":' .. cjson.encode(id) .. ',"token":"' .. token .. '","at":' .. now
    if kind == 'p' then
      redis.call('HSET', key, 'pg', value)
      event('progress', key, id, rec[3], now, { progress = value })
      outputs[#outputs + 1] = head .. ',"progress":' .. cjson.encode(value) .. '}'
    else
      local seq = redis.call('HINCRBY', key, 'lc', 1)
      local logs = prefix .. 'logs:' .. id
      redis.call('RPUSH', logs, '[' .. token .. ',' .. seq .. ',' .. now .. ',' .. cjson.encode(value) .. ']')
      lists[logs] = true
      outputs[#outputs + 1] = head .. ',"seq":' .. seq .. ',"line":' .. cjson.encode(value) .. '}'
    end
    ok = 1
  end
  out[i + 1] = ok
end
for logs in pairs(lists) do redis.call('LTRIM', logs, -maxLines, -1) end
if feed and #outputs > 0 then
  redis.call('XADD', prefix .. 'changes', '*', 'o', '[' .. table.concat(outputs, ',') .. ']')
end
return out
