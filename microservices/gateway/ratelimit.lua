-- Fixed-window counter, atomic: add what a gateway counted since its last report and tell the total and when the
-- window ends; and, in the same round trip, read when the caller's tokens were last revoked (a key of the
-- identity contract, kept in another database: SELECT in a script affects that script only).
-- KEYS[1] the caller's counter; KEYS[2] (optional) auth:revoked_before:<subject>.
-- ARGV[1] the window in milliseconds; ARGV[2] the database of KEYS[2]; ARGV[3] the requests to add.
-- Returns {count, milliseconds until the window ends, revoked-before time or false}.
local count = redis.call('INCRBY', KEYS[1], ARGV[3])
local ttl = redis.call('PTTL', KEYS[1])
if ttl < 0 then
  redis.call('PEXPIRE', KEYS[1], ARGV[1])
  ttl = tonumber(ARGV[1])
end
local revoked_before = false
if KEYS[2] then
  redis.call('SELECT', ARGV[2])
  revoked_before = redis.call('GET', KEYS[2])
end
return {count, ttl, revoked_before}
