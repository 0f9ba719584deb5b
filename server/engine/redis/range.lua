-- range: up to count messages of channel's view (its own and those below
-- it), newest first ("desc", before bound) or oldest first ("asc", after
-- bound); bound "" is open. ARGV: P, channel, dir, bound, count.
-- Returns {last id, lost id of the view, the feed's sequence now, then per
-- message: id, channel, type, sender, body, its feed sequence}. count 0
-- returns the header alone.
local ch, dir, bound, count = ARGV[2], ARGV[3], ARGV[4], tonumber(ARGV[5])
local h, i = P .. 'h:' .. ch, P .. 'i:' .. ch
local own, below = {}, {}
if count == 0 then
elseif dir == 'desc' then
  local hi = '+'
  if bound ~= '' then hi = '(' .. bound end
  own = redis.call('XREVRANGE', h, hi, '-', 'COUNT', count)
  below = redis.call('XREVRANGE', i, hi, '-', 'COUNT', count)
else
  local lo = '-'
  if bound ~= '' then lo = '(' .. bound end
  own = redis.call('XRANGE', h, lo, '+', 'COUNT', count)
  below = redis.call('XRANGE', i, lo, '+', 'COUNT', count)
end
-- A view that holds messages and never lost one has no lost id; one that
-- holds none (never had, or all gone) may have lost anything: the root's.
local lost = redis.call('HGET', P .. 'lost', ch)
if not lost and redis.call('EXISTS', h, i) == 0 then lost = redis.call('HGET', P .. 'lost', '') end
local out = {redis.call('GET', P .. 'last') or '', lost or '', redis.call('GET', P .. 'n') or '0'}

local function emit(eid, c, f)
  local typ, from, body, seq = '', '', '', '0'
  for j = 1, #f, 2 do
    local k = f[j]
    if k == 't' then typ = f[j + 1] elseif k == 'f' then from = f[j + 1] elseif k == 'b' then body = f[j + 1] elseif k == 'n' then seq = f[j + 1] end
  end
  out[#out + 1] = eid
  out[#out + 1] = c
  out[#out + 1] = typ
  out[#out + 1] = from
  out[#out + 1] = body
  out[#out + 1] = seq
end

local x, y, n = 1, 1, 0
while n < count and (x <= #own or y <= #below) do
  local takeOwn
  if x > #own then takeOwn = false
  elseif y > #below then takeOwn = true
  elseif dir == 'desc' then takeOwn = less(below[y][1], own[x][1])
  else takeOwn = less(own[x][1], below[y][1]) end
  if takeOwn then
    emit(own[x][1], ch, own[x][2])
    x = x + 1
    n = n + 1
  else
    local c = below[y][2][2]
    local e = redis.call('XRANGE', P .. 'h:' .. c, below[y][1], below[y][1])[1]
    if e then
      emit(e[1], c, e[2])
      n = n + 1
    end
    y = y + 1
  end
end
return out
