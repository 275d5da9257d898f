-- read.lua: everything the matcher needs to decide one event, in one trip.
--
-- KEYS[1] r   hash  ref -> record value ("meta\nblob", see codec.go)
-- KEYS[2] x   hash  ref -> refs banned from linking with it (space separated)
-- KEYS[3] b   hash  block -> member refs (space separated) or "!<count>"
-- KEYS[4] sv  hash  stripe -> version
-- ARGV[1]     ref of the event's record
-- ARGV[2..n]  block keys to read; each followed by its stripe number
--
-- Returns {value|false, bans|false, {block values}, {stripe versions},
--          {candidate refs}, {candidate values}}. Candidates are the members
-- of the blocks that are not over the size limit, without the record itself.
local ref = ARGV[1]
local value = redis.call('HGET', KEYS[1], ref)
local bans = redis.call('HGET', KEYS[2], ref)
local blocks, stripes, cands, seen = {}, {}, {}, {}
seen[ref] = true
local bkeys, skeys = {}, {}
for i = 2, #ARGV, 2 do
  bkeys[#bkeys + 1] = ARGV[i]
  skeys[#skeys + 1] = ARGV[i + 1]
end
-- One HMGET per hash rather than a call per block: each call from Lua has
-- a fixed cost that dominates these small reads. A record has few blocks.
local bvals, svals = {}, {}
if #bkeys > 0 then
  bvals = redis.call('HMGET', KEYS[3], unpack(bkeys))
  svals = redis.call('HMGET', KEYS[4], unpack(skeys))
end
for i = 1, #bkeys do
  local v = bvals[i]
  blocks[i] = v or ''
  stripes[i] = svals[i] or '0'
  if v and string.sub(v, 1, 1) ~= '!' then
    for m in string.gmatch(v, '%S+') do
      if not seen[m] then
        seen[m] = true
        cands[#cands + 1] = m
      end
    end
  end
end
-- HMGET in chunks: unpack is limited by Lua's C stack.
local vals = {}
for i = 1, #cands, 1000 do
  local got = redis.call('HMGET', KEYS[1], unpack(cands, i, math.min(i + 999, #cands)))
  for _, v in ipairs(got) do vals[#vals + 1] = v end
end
return {value or false, bans or false, blocks, stripes, cands, vals}
