-- write.lua: the fenced write of one batch of one tenant. The owner decided
-- everything in memory; this script makes "still the owner, then write it
-- all" one atomic step, so a stale owner (a paused process whose partition
-- moved) can never write after its successor took the tenant.
--
-- KEYS[1] epoch string the tenant's owner epoch (INCR by each new owner)
-- KEYS[2] r     hash   ref -> record value
-- KEYS[3] b     hash   block -> member refs or "!<count>"
-- KEYS[4] a     hash   ref -> neighbour refs
-- KEYS[5] cm    hash   ref -> cluster id
-- KEYS[6] cl    hash   cluster id -> "oldest_created\tmember refs"
-- KEYS[7] cv    hash   cluster id -> version
-- KEYS[8] x     hash   ref -> refs banned from linking with it
-- KEYS[9] acct  hash   account key -> account id
-- KEYS[10] side hash   the owner's side state read at take, opaque to the
--                      matcher (the tenant's lifecycle: its open entries,
--                      the claims of its settled ones)
-- KEYS[11] shelf hash  the owner's side state read by field (the settled
--                      entries)
-- ARGV[1] the writer's epoch
-- then, for KEYS[2] to KEYS[11]: n × (field, value) to set, then n × field
-- to delete (each list preceded by its count n)
--
-- Returns 1 when written, 0 when the epoch moved, -1 when it is gone (Redis
-- lost the state under its owner); nothing written in both cases.
local epoch = redis.call('GET', KEYS[1])
if not epoch then
  return -1
end
if epoch ~= ARGV[1] then
  return 0
end
local i = 2
-- Slices of at most 1000 arguments: unpack is limited by Lua's C stack.
for k = 2, #KEYS do
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
return 1
