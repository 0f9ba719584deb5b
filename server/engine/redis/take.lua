-- take: the oldest push of a topic, or nil; "back" puts one back at the
-- head (a node took it and could not hand it to a puller). ARGV: P, topic,
-- op ("take" or "back"), item for "back".
local q = P .. 'q:' .. ARGV[2]
local item
if ARGV[3] == 'back' then
  item = ARGV[4]
  redis.call('LPUSH', q, item)
  redis.call('INCRBY', P .. 'qb:' .. ARGV[2], #item)
  redis.call('INCRBY', P .. 'qtotal', #item)
  return 'ok'
end
item = redis.call('LPOP', q)
if not item then return false end
if redis.call('DECRBY', P .. 'qb:' .. ARGV[2], #item) <= 0 then redis.call('DEL', P .. 'qb:' .. ARGV[2]) end
redis.call('DECRBY', P .. 'qtotal', #item)
return item
