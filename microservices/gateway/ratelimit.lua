-- Fixed-window counter, atomic: count this request and tell how many remain and when the window ends.
-- KEYS[1] the caller's counter; ARGV[1] the window in milliseconds.
-- Returns {count, milliseconds until the window ends}.
local count = redis.call('INCR', KEYS[1])
local ttl = redis.call('PTTL', KEYS[1])
if ttl < 0 then
  redis.call('PEXPIRE', KEYS[1], ARGV[1])
  ttl = tonumber(ARGV[1])
end
return {count, ttl}
