-- publish: one atomic step per message. ARGV: P, mode ("m" history
-- message, "b" peer bus, "push" a push), channel, type, sender, key,
-- body, size (message.Size), history size per channel, TTL ms, max bytes,
-- key TTL s, origin (node and subscription, for "b").
-- Returns {"ok", id, n} or {"dup", first id}.
local mode, ch, typ, from, key, body = ARGV[2], ARGV[3], ARGV[4], ARGV[5], ARGV[6], ARGV[7]
local msize, size, ttl, maxbytes, keyttl = tonumber(ARGV[8]), tonumber(ARGV[9]), tonumber(ARGV[10]), tonumber(ARGV[11]), tonumber(ARGV[12])
local origin = ARGV[13]

local kk
if key ~= '' then
  kk = P .. 'k:' .. ch .. '\n' .. key
  local first = redis.call('GET', kk)
  if first then return {'dup', first} end
end

local t = redis.call('TIME')
local ms = tonumber(t[1]) * 1000 + math.floor(tonumber(t[2]) / 1000)
local seq = 0
local last = redis.call('GET', P .. 'last')
if last then
  local lm, ls = parse(last)
  if ms <= lm then ms, seq = lm, ls + 1 end
else
  -- A new Redis, or one that lost its data: ids given before within this
  -- millisecond are unknown here, so start at the next one, after them all
  -- (nodes tell a lost counter by an id after the last they delivered).
  ms = ms + 1
end
local id = string.format('%d-%d', ms, seq)
redis.call('SET', P .. 'last', id)
if mode == 'push' then
  -- A push waits in the topic's list until a node with a puller takes it
  -- (take.lua). ARGV[8..10] are the backlog limits: messages and bytes of
  -- the topic, bytes of all topics.
  local q = P .. 'q:' .. ch
  local item = id .. '\n' .. typ .. '\n' .. from .. '\n' .. body
  local qb = tonumber(redis.call('GET', P .. 'qb:' .. ch) or '0')
  local total = tonumber(redis.call('GET', P .. 'qtotal') or '0')
  if redis.call('LLEN', q) >= tonumber(ARGV[8]) or qb + #item > tonumber(ARGV[9]) or total + #item > tonumber(ARGV[10]) then
    return {'full', id}
  end
  redis.call('RPUSH', q, item)
  redis.call('INCRBY', P .. 'qb:' .. ch, #item)
  redis.call('INCRBY', P .. 'qtotal', #item)
  redis.call('PUBLISH', P .. 'live', 'w ' .. id .. ' 0 -\n' .. ch .. '\n\n\n')
  return {'ok', id, '0'}
end
if mode == 'b' then
  redis.call('PUBLISH', P .. 'live', 'b ' .. id .. ' 0 ' .. origin .. '\n' .. ch .. '\n' .. typ .. '\n' .. from .. '\n' .. body)
  return {'ok', id, '0'}
end

local function setlost(c, eid)
  local cur = redis.call('HGET', P .. 'lost', c)
  if not cur or less(cur, eid) then redis.call('HSET', P .. 'lost', c, eid) end
end

-- evict removes message eid of channel c from history and from the views
-- of c's ancestors, which remember it as lost. f is its fields when the
-- caller has read them.
local function evict(eid, c, f)
  local h = P .. 'h:' .. c
  if not f then
    local e = redis.call('XRANGE', h, eid, eid)[1]
    if e then f = e[2] end
  end
  if f then
    for j = 1, #f, 2 do
      if f[j] == 's' then redis.call('DECRBY', P .. 'bytes', f[j + 1]) end
    end
    redis.call('DECR', P .. 'count')
    redis.call('XDEL', h, eid)
  end
  setlost(c, eid)
  for _, a in ipairs(ancestors(c)) do
    redis.call('XDEL', P .. 'i:' .. a, eid)
    setlost(a, eid)
  end
end

local n = redis.call('INCR', P .. 'n')
if size > 0 then
  local h = P .. 'h:' .. ch
  redis.call('XADD', h, id, 't', typ, 'f', from, 'b', body, 's', msize, 'n', n)
  for _, a in ipairs(ancestors(ch)) do
    redis.call('XADD', P .. 'i:' .. a, id, 'c', ch)
  end
  local bytes = redis.call('INCRBY', P .. 'bytes', msize)
  redis.call('INCR', P .. 'count')
  local over = redis.call('XLEN', h) - size
  if over > 0 then
    for _, e in ipairs(redis.call('XRANGE', h, '-', '+', 'COUNT', over)) do
      evict(e[1], ch, e[2])
      bytes = bytes - msize -- about: enough to skip the byte check below
    end
  end
  -- Past their age or over the byte budget, the oldest go first, a
  -- bounded number per publish. Age is checked every 16th publish (readers
  -- skip what is past its age meanwhile), bytes when over.
  if n % 16 == 0 or (maxbytes > 0 and bytes > maxbytes) then
    local cutoff = ms - ttl
    for _ = 1, 64 do
      local e = redis.call('XRANGE', P .. 'i:', '-', '+', 'COUNT', 1)[1]
      if not e then break end
      local em = parse(e[1])
      if (ttl <= 0 or em >= cutoff) and (maxbytes <= 0 or tonumber(redis.call('GET', P .. 'bytes')) <= maxbytes) then break end
      local c = e[2][2]
      evict(e[1], c)
      if redis.call('XLEN', P .. 'h:' .. c) == 0 then redis.call('DEL', P .. 'h:' .. c) end
    end
  end
end

if kk then redis.call('SET', kk, id, 'EX', keyttl) end
redis.call('PUBLISH', P .. 'live', 'm ' .. id .. ' ' .. n .. ' ' .. origin .. '\n' .. ch .. '\n' .. typ .. '\n' .. from .. '\n' .. body)
return {'ok', id, tostring(n)}
