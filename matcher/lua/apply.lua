-- apply.lua: applies one decided record event atomically: the record, its
-- blocks, its edges and every cluster the change touches.
--
-- KEYS[1] r    hash  ref -> record value ("seq\tmodified\tcreated\tblocks\nblob")
-- KEYS[2] b    hash  block -> member refs (space separated) or "!<count>"
-- KEYS[3] a    hash  ref -> neighbour refs (space separated), linked records only
-- KEYS[4] cm   hash  ref -> cluster id
-- KEYS[5] cl   hash  cluster id -> "oldest_created\tmember refs"
-- KEYS[6] cv   hash  cluster id -> version (never deleted: versions only grow)
-- KEYS[7] sv   hash  stripe -> version
-- KEYS[8] fail string set when a script of this batch conflicted
-- KEYS[9] x    hash  ref -> refs banned from linking with it
-- ARGV[1] ref
-- ARGV[2] expected seq of the stored record ("" when absent)
-- ARGV[3] new record value (a tombstone has an empty blob and no blocks;
--         "" changes only the bans)
-- ARGV[4] neighbours decided by the caller (space separated)
-- ARGV[5] max block size
-- ARGV[6] tenant (seeds new cluster ids)
-- ARGV[7] stripe checks "stripe:version ..." (versions the caller read,
--         plus this batch's own earlier bumps)
-- ARGV[8] stripes to bump "stripe ..."
-- ARGV[9] fail marker ttl in ms
-- ARGV[10] review decision: "+ref" bans the pair ARGV[1]/ref, "-ref" lifts
--         the ban, "" neither
--
-- Returns {"conflict"} or {"aborted"} without writing anything, else
-- {"ok", change...} where change = {cluster id, version, removed "0"|"1",
-- before, merged_from, merged_into, split_into, split_from, members (all
-- space separated), {member values}}.
local ref = ARGV[1]
if redis.call('EXISTS', KEYS[8]) == 1 then
  return {'aborted'}
end

local function words(s)
  local t = {}
  if s then
    for w in string.gmatch(s, '%S+') do t[#t + 1] = w end
  end
  return t
end
local function set(list)
  local t = {}
  for _, w in ipairs(list) do t[w] = true end
  return t
end
local function meta(v)
  local seq, mod, created, blocks = string.match(v, '^(%d*)\t(%-?%d*)\t(%-?%d*)\t([^\n]*)\n')
  return seq, tonumber(created), blocks
end
local function fail()
  redis.call('SET', KEYS[8], '1', 'PX', ARGV[9])
  return {'conflict'}
end

local old = redis.call('HGET', KEYS[1], ref)
local oldseq, oldblocks = '', ''
if old then
  local _
  oldseq, _, oldblocks = meta(old)
end
if oldseq ~= ARGV[2] then
  return fail()
end
local cs, cv = {}, {}
for s, v in string.gmatch(ARGV[7], '(%d+):(%d+)') do
  cs[#cs + 1], cv[#cv + 1] = s, v
end
if #cs > 0 then
  local got = redis.call('HMGET', KEYS[7], unpack(cs))
  for i = 1, #cs do
    if (got[i] or '0') ~= cv[i] then
      return fail()
    end
  end
end
for s in string.gmatch(ARGV[8], '%S+') do
  redis.call('HINCRBY', KEYS[7], s, 1)
end

if ARGV[10] ~= '' then
  local add, other = string.sub(ARGV[10], 1, 1) == '+', string.sub(ARGV[10], 2)
  for _, pair in ipairs({{ref, other}, {other, ref}}) do
    local list = {}
    for _, m in ipairs(words(redis.call('HGET', KEYS[9], pair[1]))) do
      if m ~= pair[2] then list[#list + 1] = m end
    end
    if add then list[#list + 1] = pair[2] end
    if #list == 0 then redis.call('HDEL', KEYS[9], pair[1]) else redis.call('HSET', KEYS[9], pair[1], table.concat(list, ' ')) end
  end
end
if ARGV[3] == '' then
  return {'ok'}
end

local _, created, newblocks = meta(ARGV[3])
local live = string.find(ARGV[3], '\n.') ~= nil
local max = tonumber(ARGV[5])

-- Blocks: leave the old ones, join the new ones. A block past the limit
-- keeps only its count, so a gmail.com-sized block costs a few bytes.
local oldset, newset = set(words(oldblocks)), set(words(newblocks))
for blk in pairs(oldset) do
  if not newset[blk] then
    local v = redis.call('HGET', KEYS[2], blk)
    if v then
      if string.sub(v, 1, 1) == '!' then
        local n = tonumber(string.sub(v, 2)) - 1
        if n <= 0 then redis.call('HDEL', KEYS[2], blk) else redis.call('HSET', KEYS[2], blk, '!' .. n) end
      else
        local rest = {}
        for _, m in ipairs(words(v)) do
          if m ~= ref then rest[#rest + 1] = m end
        end
        if #rest == 0 then redis.call('HDEL', KEYS[2], blk) else redis.call('HSET', KEYS[2], blk, table.concat(rest, ' ')) end
      end
    end
  end
end
for blk in pairs(newset) do
  if not oldset[blk] then
    local v = redis.call('HGET', KEYS[2], blk)
    if not v then
      redis.call('HSET', KEYS[2], blk, ref)
    elseif string.sub(v, 1, 1) == '!' then
      redis.call('HSET', KEYS[2], blk, '!' .. (tonumber(string.sub(v, 2)) + 1))
    else
      local n = select(2, string.gsub(v, ' ', ' ')) + 2
      if n > max then
        redis.call('HSET', KEYS[2], blk, '!' .. n)
      else
        redis.call('HSET', KEYS[2], blk, v .. ' ' .. ref)
      end
    end
  end
end
redis.call('HSET', KEYS[1], ref, ARGV[3])

-- Edges: the caller decided the full neighbour set; store both directions.
-- A record never stored before has no edges and no cluster: skip the reads.
local oldn = old and set(words(redis.call('HGET', KEYS[3], ref))) or {}
local newlist = words(ARGV[4])
local newn = set(newlist)
local added, removed = {}, {}
for _, n in ipairs(newlist) do
  if not oldn[n] then added[#added + 1] = n end
end
for n in pairs(oldn) do
  if not newn[n] then removed[#removed + 1] = n end
end
table.sort(removed)
if #newlist == 0 then redis.call('HDEL', KEYS[3], ref) else redis.call('HSET', KEYS[3], ref, ARGV[4]) end
for _, n in ipairs(added) do
  local v = redis.call('HGET', KEYS[3], n)
  redis.call('HSET', KEYS[3], n, v and (v .. ' ' .. ref) or ref)
end
for _, n in ipairs(removed) do
  local rest = {}
  for _, m in ipairs(words(redis.call('HGET', KEYS[3], n))) do
    if m ~= ref then rest[#rest + 1] = m end
  end
  if #rest == 0 then redis.call('HDEL', KEYS[3], n) else redis.call('HSET', KEYS[3], n, table.concat(rest, ' ')) end
end

-- Clusters.
local function cluster(id)
  local v = redis.call('HGET', KEYS[5], id)
  local c, m = string.match(v, '^(%-?%d*)\t(.*)$')
  return tonumber(c), words(m)
end
local function save(id, oldest, members)
  -- %d: a microsecond timestamp would otherwise print as 1.7e+15.
  redis.call('HSET', KEYS[5], id, string.format('%d', oldest) .. '\t' .. table.concat(members, ' '))
end
local function newid(seed)
  for i = 0, 99 do
    local id = string.sub(redis.sha1hex(ARGV[6] .. '|' .. seed .. '|' .. i), 1, 16)
    if redis.call('HEXISTS', KEYS[5], id) == 0 then return id end
  end
  return redis.error_reply('matcher: no free cluster id')
end
-- HMGET in chunks: unpack is limited by Lua's C stack.
local function mget(list)
  local out = {}
  for i = 1, #list, 1000 do
    local vals = redis.call('HMGET', KEYS[1], unpack(list, i, math.min(i + 999, #list)))
    for _, v in ipairs(vals) do out[#out + 1] = v end
  end
  return out
end
local function created_of(members)
  local vals = mget(members)
  local out = {}
  for i, v in ipairs(vals) do
    local c, _ = 0, nil
    if v then
      _, c = meta(v)
    end
    out[members[i]] = c or 0
  end
  return out
end

local changes = {}
local cid = old and redis.call('HGET', KEYS[4], ref) or nil
local members, oldest, before = {}, 0, ''
local merged_from = {}

if cid then
  oldest, members = cluster(cid)
  before = table.concat(members, ' ')
elseif live then
  cid = newid(ref)
  members, oldest = {ref}, created
  redis.call('HSET', KEYS[4], ref, cid)
else
  -- A tombstone for a record that never took part: nothing to report.
  return {'ok'}
end

if not live then
  local rest = {}
  for _, m in ipairs(members) do
    if m ~= ref then rest[#rest + 1] = m end
  end
  members = rest
  redis.call('HDEL', KEYS[4], ref)
end

-- Join: every cluster an added neighbour belongs to merges with ours. The
-- larger cluster keeps its id, then the one with the older oldest member.
if #added > 0 then
  local cands, seen = {}, {}
  seen[cid] = true
  cands[1] = {id = cid, oldest = oldest, members = members}
  for _, n in ipairs(added) do
    local nc = redis.call('HGET', KEYS[4], n)
    if nc and not seen[nc] then
      seen[nc] = true
      local o, m = cluster(nc)
      cands[#cands + 1] = {id = nc, oldest = o, members = m}
    end
  end
  if #cands > 1 then
    table.sort(cands, function(p, q)
      if #p.members ~= #q.members then return #p.members > #q.members end
      if p.oldest ~= q.oldest then return p.oldest < q.oldest end
      return p.id < q.id
    end)
    local win = cands[1]
    local all = {}
    for _, m in ipairs(win.members) do all[#all + 1] = m end
    for i = 2, #cands do
      local lose = cands[i]
      for _, m in ipairs(lose.members) do
        all[#all + 1] = m
        redis.call('HSET', KEYS[4], m, win.id)
      end
      if lose.oldest < win.oldest then win.oldest = lose.oldest end
      merged_from[#merged_from + 1] = lose.id
      redis.call('HDEL', KEYS[5], lose.id)
      local v = redis.call('HINCRBY', KEYS[6], lose.id, 1)
      if lose.id == cid then
        changes[#changes + 1] = {lose.id, v, '1', before, '', win.id, '', '', '', {}}
        before = ''
      else
        changes[#changes + 1] = {lose.id, v, '1', table.concat(lose.members, ' '), '', win.id, '', '', '', {}}
      end
    end
    if win.id ~= cid then
      before = table.concat(win.members, ' ')
    end
    cid, oldest, members = win.id, win.oldest, all
  end
end

-- Split: removed edges (or a removed record) may disconnect the cluster.
-- Components come from the stored edges of this cluster's members only.
local split_into, parts = {}, {}
if (#removed > 0 or not live) and #members > 1 then
  local inside = set(members)
  local comp = {}
  for _, m in ipairs(members) do
    if not comp[m] then
      local part = {m}
      comp[m] = part
      local i = 1
      while i <= #part do
        for _, n in ipairs(words(redis.call('HGET', KEYS[3], part[i]))) do
          if inside[n] and not comp[n] then
            comp[n] = part
            part[#part + 1] = n
          end
        end
        i = i + 1
      end
      parts[#parts + 1] = part
    end
  end
end
if #parts > 1 then
  local cr = created_of(members)
  local function oldest_of(part)
    local best, bref
    for _, m in ipairs(part) do
      local c = cr[m]
      if not best or c < best or (c == best and m < bref) then best, bref = c, m end
    end
    return best, bref
  end
  local keep, kc, kr
  for i, part in ipairs(parts) do
    local c, r = oldest_of(part)
    if not keep or c < kc or (c == kc and r < kr) then keep, kc, kr = i, c, r end
  end
  local version = redis.call('HGET', KEYS[6], cid) or '0'
  for i, part in ipairs(parts) do
    if i ~= keep then
      table.sort(part)
      local c = oldest_of(part)
      local id = newid(cid .. '|' .. version .. '|' .. part[1])
      save(id, c, part)
      for _, m in ipairs(part) do redis.call('HSET', KEYS[4], m, id) end
      local v = redis.call('HINCRBY', KEYS[6], id, 1)
      split_into[#split_into + 1] = id
      local vals = mget(part)
      changes[#changes + 1] = {id, v, '0', '', '', '', '', cid, table.concat(part, ' '), vals}
    end
  end
  members, oldest = parts[keep], kc
elseif not live and #members > 0 then
  -- The record left: the cluster's oldest member may have changed.
  local cr = created_of(members)
  oldest = nil
  for _, m in ipairs(members) do
    if not oldest or cr[m] < oldest then oldest = cr[m] end
  end
end

table.sort(members)
local v = redis.call('HINCRBY', KEYS[6], cid, 1)
if #members == 0 then
  redis.call('HDEL', KEYS[5], cid)
  changes[#changes + 1] = {cid, v, '1', before, table.concat(merged_from, ' '), '', '', '', '', {}}
else
  save(cid, oldest, members)
  local vals = #members == 1 and members[1] == ref and {ARGV[3]} or mget(members)
  changes[#changes + 1] = {cid, v, '0', before, table.concat(merged_from, ' '), '', table.concat(split_into, ' '), '', table.concat(members, ' '), vals}
end
local out = {'ok'}
for _, c in ipairs(changes) do out[#out + 1] = c end
return out
