-- apply.lua: applies a run of decided record events of one tenant, in
-- order, each atomically: the record, its blocks, its edges and every
-- cluster the change touches.
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
-- ARGV[1] tenant (seeds new cluster ids)
-- ARGV[2] fail marker ttl in ms
-- ARGV[3..] per event:
--   ref
--   expected seq of the stored record ("" when absent)
--   new record value (a tombstone has an empty blob and no blocks; ""
--     changes only the bans)
--   neighbours decided by the caller (space separated)
--   review decision: "+ref" bans the pair, "-ref" lifts the ban, "" neither
--   n, then n × (stripe, version the caller read, new version): the stripes
--     of every block the record is in or joins (versions include this
--     batch's own earlier bumps)
--   m, then m × (block, new value; "" deletes): the blocks the record leaves
--     or joins, as the caller computed them from what it read (the stripe
--     check proves that is still what is stored)
--
-- Returns {status, changes of event 1, changes of event 2, ...} for the
-- events applied. status is "ok" (all applied), "conflict" (the event after
-- the last one returned found its record or a stripe changed: it and the
-- rest wrote nothing) or "aborted" (an earlier script of this batch
-- conflicted: nothing applied). A change is {cluster id, version, removed
-- "0"|"1", before, merged_from, merged_into, split_into, split_from,
-- members (all space separated), {member values}}.
--
-- Reads and writes of a hash go out as one HMGET / HSET / HDEL each where
-- the logic allows, and string work the caller can do (stripes, blocks) is
-- done by the caller: in Lua it costs more than the commands themselves.
if redis.call('EXISTS', KEYS[8]) == 1 then
  return {'aborted'}
end
local tenant = ARGV[1]

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
-- meta returns a stored value's seq and created time.
local function meta(v)
  local seq, created = string.match(v, '^(%d*)\t%-?%d*\t(%-?%d*)\t')
  return seq, tonumber(created)
end
-- HMGET in chunks: unpack is limited by Lua's C stack.
local function mget(key, list)
  local out = {}
  for i = 1, #list, 1000 do
    local vals = redis.call('HMGET', key, unpack(list, i, math.min(i + 999, #list)))
    for _, v in ipairs(vals) do out[#out + 1] = v end
  end
  return out
end
-- mset writes the field -> value pairs of t and deletes the fields of del.
local function mset(key, t, del)
  local args = {}
  for f, v in pairs(t) do
    args[#args + 1] = f
    args[#args + 1] = v
    if #args >= 1000 then
      redis.call('HSET', key, unpack(args))
      args = {}
    end
  end
  if #args > 0 then redis.call('HSET', key, unpack(args)) end
  for i = 1, #del, 1000 do
    redis.call('HDEL', key, unpack(del, i, math.min(i + 999, #del)))
  end
end
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
    local id = string.sub(redis.sha1hex(tenant .. '|' .. seed .. '|' .. i), 1, 16)
    if redis.call('HEXISTS', KEYS[5], id) == 0 then return id end
  end
  error('matcher: no free cluster id')
end
local function created_of(members)
  local vals = mget(KEYS[1], members)
  local out = {}
  for i, v in ipairs(vals) do
    local c
    if v then
      local _
      _, c = meta(v)
    end
    out[members[i]] = c or 0
  end
  return out
end

-- apply_one applies one event; nil means it conflicted before any write.
-- Its stripes and blocks are ARGV[s0..] (ns triples) and ARGV[b0..] (nb
-- pairs).
local function apply_one(ref, expseq, nextv, neigh, ban, s0, ns, b0, nb)
  local old = redis.call('HGET', KEYS[1], ref)
  local oldseq = ''
  if old then
    oldseq = meta(old)
  end
  if oldseq ~= expseq then
    return nil
  end

  -- Stripes: check what the caller read, then bump them.
  if ns > 0 then
    local sl = {}
    for j = 0, ns - 1 do sl[j + 1] = ARGV[s0 + 3 * j] end
    local got = redis.call('HMGET', KEYS[7], unpack(sl))
    local up = {}
    for j = 0, ns - 1 do
      if (got[j + 1] or '0') ~= ARGV[s0 + 3 * j + 1] then return nil end
      up[2 * j + 1], up[2 * j + 2] = sl[j + 1], ARGV[s0 + 3 * j + 2]
    end
    redis.call('HSET', KEYS[7], unpack(up))
  end

  if ban ~= '' then
    local add, other = string.sub(ban, 1, 1) == '+', string.sub(ban, 2)
    for _, pair in ipairs({{ref, other}, {other, ref}}) do
      local list = {}
      for _, m in ipairs(words(redis.call('HGET', KEYS[9], pair[1]))) do
        if m ~= pair[2] then list[#list + 1] = m end
      end
      if add then list[#list + 1] = pair[2] end
      if #list == 0 then redis.call('HDEL', KEYS[9], pair[1]) else redis.call('HSET', KEYS[9], pair[1], table.concat(list, ' ')) end
    end
  end
  if nextv == '' then
    return {}
  end

  local _, created = meta(nextv)
  local live = string.find(nextv, '\n.') ~= nil

  -- Blocks, as the caller computed them. A block past the limit keeps
  -- only its count, so a gmail.com-sized block costs a few bytes.
  if nb > 0 then
    local put, del = {}, {}
    for j = 0, nb - 1 do
      local blk, v = ARGV[b0 + 2 * j], ARGV[b0 + 2 * j + 1]
      if v == '' then del[#del + 1] = blk else put[blk] = v end
    end
    mset(KEYS[2], put, del)
  end
  redis.call('HSET', KEYS[1], ref, nextv)

  -- Edges: the caller decided the full neighbour set; store both directions.
  -- A record never stored before has no edges and no cluster: skip the reads.
  local oldn = old and set(words(redis.call('HGET', KEYS[3], ref))) or {}
  local newlist = words(neigh)
  local newn = set(newlist)
  local added, removed = {}, {}
  for _, n in ipairs(newlist) do
    if not oldn[n] then added[#added + 1] = n end
  end
  for n in pairs(oldn) do
    if not newn[n] then removed[#removed + 1] = n end
  end
  table.sort(removed)
  local aput, adel = {}, {}
  if #newlist > 0 then aput[ref] = neigh elseif next(oldn) then adel[1] = ref end
  local touched = {}
  for _, n in ipairs(added) do touched[#touched + 1] = n end
  for _, n in ipairs(removed) do touched[#touched + 1] = n end
  local avals = #touched > 0 and mget(KEYS[3], touched) or {}
  for i, n in ipairs(touched) do
    local v = avals[i]
    if i <= #added then
      aput[n] = v and (v .. ' ' .. ref) or ref
    else
      local rest = {}
      for _, m in ipairs(words(v)) do
        if m ~= ref then rest[#rest + 1] = m end
      end
      if #rest == 0 then adel[#adel + 1] = n else aput[n] = table.concat(rest, ' ') end
    end
  end
  mset(KEYS[3], aput, adel)

  -- Clusters. Cluster-membership writes are gathered and go out at the end.
  local cmput, cmdel = {}, {}
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
    cmput[ref] = cid
  else
    -- A tombstone for a record that never took part: nothing to report.
    return {}
  end

  if not live then
    local rest = {}
    for _, m in ipairs(members) do
      if m ~= ref then rest[#rest + 1] = m end
    end
    members = rest
    cmdel[1] = ref
  end

  -- Join: every cluster an added neighbour belongs to merges with ours. The
  -- larger cluster keeps its id, then the one with the older oldest member.
  if #added > 0 then
    local cands, seen = {}, {}
    seen[cid] = true
    cands[1] = {id = cid, oldest = oldest, members = members}
    local ncs = mget(KEYS[4], added)
    for i = 1, #added do
      local nc = ncs[i]
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
          cmput[m] = win.id
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
    local adj = {}
    local vals = mget(KEYS[3], members)
    for i, m in ipairs(members) do adj[m] = vals[i] end
    local comp = {}
    for _, m in ipairs(members) do
      if not comp[m] then
        local part = {m}
        comp[m] = part
        local i = 1
        while i <= #part do
          for _, n in ipairs(words(adj[part[i]])) do
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
        for _, m in ipairs(part) do cmput[m] = id end
        local v = redis.call('HINCRBY', KEYS[6], id, 1)
        split_into[#split_into + 1] = id
        changes[#changes + 1] = {id, v, '0', '', '', '', '', cid, table.concat(part, ' '), mget(KEYS[1], part)}
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
  mset(KEYS[4], cmput, cmdel)

  table.sort(members)
  local v = redis.call('HINCRBY', KEYS[6], cid, 1)
  if #members == 0 then
    redis.call('HDEL', KEYS[5], cid)
    changes[#changes + 1] = {cid, v, '1', before, table.concat(merged_from, ' '), '', '', '', '', {}}
  else
    save(cid, oldest, members)
    local vals = #members == 1 and members[1] == ref and {nextv} or mget(KEYS[1], members)
    changes[#changes + 1] = {cid, v, '0', before, table.concat(merged_from, ' '), '', table.concat(split_into, ' '), '', table.concat(members, ' '), vals}
  end
  return changes
end

local out = {'ok'}
local i = 3
while i <= #ARGV do
  local s0 = i + 6
  local ns = tonumber(ARGV[i + 5])
  local b0 = s0 + 3 * ns + 1
  local nb = tonumber(ARGV[b0 - 1])
  local res = apply_one(ARGV[i], ARGV[i + 1], ARGV[i + 2], ARGV[i + 3], ARGV[i + 4], s0, ns, b0, nb)
  i = b0 + 2 * nb
  if not res then
    redis.call('SET', KEYS[8], '1', 'PX', ARGV[2])
    out[1] = 'conflict'
    return out
  end
  out[#out + 1] = res
end
return out
