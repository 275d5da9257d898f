-- clusters.lua: reads the cluster membership of records together with what
-- it points to, atomically, so a record's cluster id, that cluster's
-- members and version, and the records' edges are one consistent picture
-- (read with plain HMGETs, a write landing between them could pair a
-- record with a cluster it already left). Only short values pass through:
-- record values are read without Lua.
--
-- KEYS[1] cm  hash  ref -> cluster id
-- KEYS[2] cv  hash  cluster id -> version
-- KEYS[3] cl  hash  cluster id -> "oldest_created\tmember refs"
-- KEYS[4] a   hash  ref -> neighbour refs
-- ARGV[1] n, then n refs, then cluster ids wanted besides theirs
--
-- Returns {cluster ids of the refs, edges of the refs, ids, their
-- versions, their clusters}; absent values are nil.
local n = tonumber(ARGV[1])
local function mget(key, list)
  local out = {}
  for i = 1, #list, 1000 do
    local vals = redis.call('HMGET', key, unpack(list, i, math.min(i + 999, #list)))
    for j = 1, #vals do out[#out + 1] = vals[j] end
  end
  return out
end
local refs = {}
for i = 1, n do refs[i] = ARGV[i + 1] end
local cms, adj = {}, {}
if n > 0 then
  cms = mget(KEYS[1], refs)
  adj = mget(KEYS[4], refs)
end
local ids, seen = {}, {}
local function want(id)
  if id and not seen[id] then
    seen[id] = true
    ids[#ids + 1] = id
  end
end
for i = 1, n do want(cms[i]) end
for i = n + 2, #ARGV do want(ARGV[i]) end
local cvs, cls = {}, {}
if #ids > 0 then
  cvs = mget(KEYS[2], ids)
  cls = mget(KEYS[3], ids)
end
return {cms, adj, ids, cvs, cls}
