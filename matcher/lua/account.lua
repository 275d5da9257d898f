-- account.lua: indexes an account by its normalised name, for account
-- resolution. Accounts never join person clusters.
--
-- KEYS[1] r     hash  ref -> record value (meta only: the key sits in blocks)
-- KEYS[2] acct  hash  account key -> account id
-- KEYS[3] fail  string set when a script of this batch conflicted
-- ARGV[1] ref, ARGV[2] expected seq ("" when absent), ARGV[3] new value,
-- ARGV[4] new account key ("" when deleted), ARGV[5] account id,
-- ARGV[6] fail marker ttl in ms
--
-- Returns {"ok"}, {"conflict"} or {"aborted"}.
if redis.call('EXISTS', KEYS[3]) == 1 then
  return {'aborted'}
end
local old = redis.call('HGET', KEYS[1], ARGV[1])
local seq, oldkey = '', ''
if old then
  seq, oldkey = string.match(old, '^(%d*)\t%-?%d*\t%-?%d*\t([^\n]*)\n')
end
if seq ~= ARGV[2] then
  redis.call('SET', KEYS[3], '1', 'PX', ARGV[6])
  return {'conflict'}
end
if oldkey ~= '' and oldkey ~= ARGV[4] and redis.call('HGET', KEYS[2], oldkey) == ARGV[5] then
  redis.call('HDEL', KEYS[2], oldkey)
end
if ARGV[4] ~= '' then
  redis.call('HSET', KEYS[2], ARGV[4], ARGV[5])
end
redis.call('HSET', KEYS[1], ARGV[1], ARGV[3])
return {'ok'}
