//! The server-side scripts: each runs atomically in Redis (no other command runs in
//! between), so a call's epoch check, grant use, limit check and count and marks are
//! one step for the whole fleet.
//!
//! Numbers: Lua's numbers are IEEE-754 binary64, so `sum + add` in the script is the
//! same addition as §6.3's in the memory state. Sums are stored as `%.17g` text,
//! which reads back as exactly the same double; they are returned as that text (a
//! Lua number returned to Redis would be truncated to an integer).

/// The atomic step of a call.
///
/// KEYS: epoch, [grant], limit counters…, [marks]
/// ARGV: epoch, has_grant, grant_expire_at_ms, count, n_limits, has_session, slack_ms,
/// n_marks, then per limit: max_calls (-1: none), max_sum ("": none), add, forced,
/// assumed_exceeded, expire_at_ms; then per mark: label, expiry_ms.
///
/// Replies `{"reset"}` (the epoch is not the caller's); `{"changed", used, {calls,
/// sum, …}}` (a limit is not as assumed, or the grant was used: nothing written); or
/// `{"ok", {calls, sum, …}, {label, expiry, …}}` (written; counters as before the
/// call, the session's marks after it).
pub const STEP: &str = r"
local epoch = redis.call('GET', KEYS[1])
if epoch ~= ARGV[1] then return {'reset'} end
local has_grant = ARGV[2] == '1'
local count = ARGV[4] == '1'
local n = tonumber(ARGV[5])
local has_session = ARGV[6] == '1'
local slack = tonumber(ARGV[7])
local nm = tonumber(ARGV[8])
local k = 2
if has_grant then k = 3 end
local a = 9
local counters = {}
local st = {}
local changed = false
for i = 1, n do
  local key = KEYS[k + i - 1]
  local v = redis.call('HMGET', key, 'c', 's')
  local calls_s = v[1] or '0'
  local sum_s = v[2] or '0'
  local calls = tonumber(calls_s)
  local sum = tonumber(sum_s)
  local maxc = tonumber(ARGV[a])
  local maxs = ARGV[a + 1]
  local add = tonumber(ARGV[a + 2])
  local ex = ARGV[a + 3] == '1'
  if maxc >= 0 and calls + 1 > maxc then ex = true end
  if maxs ~= '' and sum + add > tonumber(maxs) then ex = true end
  if ex ~= (ARGV[a + 4] == '1') then changed = true end
  st[i] = {key, sum + add, ARGV[a + 5]}
  counters[#counters + 1] = calls_s
  counters[#counters + 1] = sum_s
  a = a + 6
end
local used = has_grant and redis.call('EXISTS', KEYS[2]) == 1
if changed or used then
  return {'changed', used and '1' or '0', counters}
end
if has_grant then redis.call('SET', KEYS[2], '1', 'PXAT', ARGV[3]) end
if count then
  for i = 1, n do
    local s = st[i]
    redis.call('HINCRBY', s[1], 'c', 1)
    redis.call('HSET', s[1], 's', string.format('%.17g', s[2]))
    redis.call('PEXPIREAT', s[1], s[3])
  end
end
local marks = {}
if has_session then
  local mk = KEYS[k + n]
  if nm > 0 then
    for j = 1, nm do
      local label = ARGV[a]
      local cur = tonumber(redis.call('HGET', mk, label) or '-1')
      if tonumber(ARGV[a + 1]) > cur then redis.call('HSET', mk, label, ARGV[a + 1]) end
      a = a + 2
    end
  end
  marks = redis.call('HGETALL', mk)
  if nm > 0 then
    local last = 0
    for j = 2, #marks, 2 do
      local e = tonumber(marks[j])
      if e > last then last = e end
    end
    redis.call('PEXPIREAT', mk, last + slack)
  end
end
return {'ok', counters, marks}
";

/// A session's marks, if the epoch is the caller's.
///
/// KEYS: epoch, marks. ARGV: epoch. Replies `{"reset"}` or `{"ok", {label, expiry, …}}`.
pub const READ_MARKS: &str = r"
if redis.call('GET', KEYS[1]) ~= ARGV[1] then return {'reset'} end
return {'ok', redis.call('HGETALL', KEYS[2])}
";

/// Reads and deletes a session's marks. KEYS: marks. Replies `{label, expiry, …}`.
pub const CLEAR_MARKS: &str = r"
local m = redis.call('HGETALL', KEYS[1])
redis.call('DEL', KEYS[1])
return m
";

/// Every counter's fields at once (for `aegis state list`: one reply, so one bounded
/// read). KEYS: limit counters. Replies `{{calls, sum}, …}` (`false`: a field absent).
pub const COUNTERS: &str = r"
local out = {}
for i, k in ipairs(KEYS) do out[i] = redis.call('HMGET', k, 'c', 's') end
return out
";
