-- Shared by every script. ARGV[1] is the key prefix (P). Keys:
--   P.."last"        the newest id given, "<ms>-<seq>"
--   P.."n"           counts history messages: the live feed's sequence
--   P.."h:"..c       stream of channel c's own messages: t type, f sender, b body, s size
--   P.."i:"..a       stream indexing the messages below a (a proper ancestor
--                    of their channel; "" is the root): c channel
--   P.."lost"        hash: channel -> the newest id evicted from its view
--   P.."bytes", P.."count"   what history holds
--   P.."k:"..c.."\n"..key    an idempotency key's first id
local P = ARGV[1]

local function parse(id)
  local a, b = string.match(id, '^(%d+)%-(%d+)$')
  return tonumber(a), tonumber(b)
end

local function less(x, y)
  local xa, xb = parse(x)
  local ya, yb = parse(y)
  return xa < ya or (xa == ya and xb < yb)
end

-- ancestors returns the proper ancestors of channel c, the root ("") first.
local function ancestors(c)
  local out = {''}
  local i = 1
  while true do
    local j = string.find(c, '/', i, true)
    if not j then break end
    out[#out + 1] = string.sub(c, 1, j - 1)
    i = j + 1
  end
  return out
end
