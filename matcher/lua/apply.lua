-- apply.lua: checks that the versions a run of decided events of one tenant
-- relied on are unchanged, then writes the run's result. The caller decided
-- everything (records, blocks, edges, clusters, versions); this script only
-- makes check-and-write atomic.
--
-- KEYS[1] r    hash  ref -> record value
-- KEYS[2] b    hash  block -> member refs or "!<count>"
-- KEYS[3] a    hash  ref -> neighbour refs
-- KEYS[4] cm   hash  ref -> cluster id
-- KEYS[5] cl   hash  cluster id -> "oldest_created\tmember refs"
-- KEYS[6] cv   hash  cluster id -> version
-- KEYS[7] sv   hash  stripe -> version
-- KEYS[8] fail string set when a script of this batch conflicted
-- KEYS[9] x    hash  ref -> refs banned from linking with it
-- ARGV[1] fail marker ttl in ms
-- then, each a count followed by its items:
--   stripe checks    n × (stripe, version the caller read; absent reads "0")
--   cluster checks   n × (cluster id, version the caller read)
--   for KEYS[1] to KEYS[7]: n × (field, value) to set, then n × field to delete
--   review decisions n × (ref, "+other" bans the pair, "-other" lifts it)
--
-- Returns {"ok"}, {"conflict"} (a version changed: nothing written) or
-- {"aborted"} (an earlier script of this batch conflicted: nothing written).
if redis.call('EXISTS', KEYS[8]) == 1 then
  return {'aborted'}
end

local i = 2
-- check compares n (field, version) pairs of key with what is stored.
local function check(key)
  local n = tonumber(ARGV[i])
  local first = i + 1
  i = first + 2 * n
  for j = 0, n - 1, 1000 do
    local fields = {}
    for k = j, math.min(j + 999, n - 1) do fields[#fields + 1] = ARGV[first + 2 * k] end
    local got = redis.call('HMGET', key, unpack(fields))
    for k = 1, #fields do
      if (got[k] or '0') ~= ARGV[first + 2 * (j + k - 1) + 1] then return false end
    end
  end
  return true
end

if not check(KEYS[7]) or not check(KEYS[6]) then
  redis.call('SET', KEYS[8], '1', 'PX', ARGV[1])
  return {'conflict'}
end

-- Writes go out in slices of at most 1000 arguments: unpack is limited by
-- Lua's C stack.
for k = 1, 7 do
  local n = tonumber(ARGV[i])
  i = i + 1
  for j = 0, 2 * n - 1, 1000 do
    redis.call('HSET', KEYS[k], unpack(ARGV, i + j, i + math.min(j + 999, 2 * n - 1)))
  end
  i = i + 2 * n
  n = tonumber(ARGV[i])
  i = i + 1
  for j = 0, n - 1, 1000 do
    redis.call('HDEL', KEYS[k], unpack(ARGV, i + j, i + math.min(j + 999, n - 1)))
  end
  i = i + n
end

-- Review decisions edit both refs' ban lists; the caller did not read them
-- under any version, so the edit is made here.
local n = tonumber(ARGV[i])
i = i + 1
for j = 0, n - 1 do
  local ref, op = ARGV[i + 2 * j], ARGV[i + 2 * j + 1]
  local other = string.sub(op, 2)
  for _, pair in ipairs({{ref, other}, {other, ref}}) do
    local list = {}
    local cur = redis.call('HGET', KEYS[9], pair[1])
    if cur then
      for w in string.gmatch(cur, '%S+') do
        if w ~= pair[2] then list[#list + 1] = w end
      end
    end
    if string.sub(op, 1, 1) == '+' then list[#list + 1] = pair[2] end
    if #list == 0 then
      redis.call('HDEL', KEYS[9], pair[1])
    else
      redis.call('HSET', KEYS[9], pair[1], table.concat(list, ' '))
    end
  end
end
return {'ok'}
