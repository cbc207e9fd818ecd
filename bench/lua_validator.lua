-- The payload rules of sql/payloads.json in plain Lua, applied to a table
-- lua-cjson decoded: what a user without motomind's codec would write. It is
-- the peer `make bench` holds decode+validate to (#17); spec/payload_spec
-- checks its verdicts agree with the codec's. It interprets the same
-- schema document, so a rule added there is checked here too.
-- (lua-cjson decodes {} and [] alike: an empty table passes as either.)
local M = {}

local function is_array(t)
  local n = 0
  for k in pairs(t) do
    if type(k) ~= "number" or k < 1 or k ~= math.floor(k) then return false end
    n = n + 1
  end
  return n == #t
end

local function is_object(t)
  for k in pairs(t) do if type(k) ~= "string" then return false end end
  return true
end

-- Characters of a UTF-8 string, or nil when it is not valid UTF-8.
local utf8_len = utf8 and utf8.len or function(s)
  local n, i = 0, 1
  while i <= #s do
    local c = s:byte(i)
    local size = c < 0x80 and 1 or c >= 0xF0 and c < 0xF5 and 4 or c >= 0xE0 and 3 or c >= 0xC2 and c < 0xE0 and 2
    if not size then return nil end
    for j = i + 1, i + size - 1 do
      local b = s:byte(j)
      if not b or b < 0x80 or b > 0xBF then return nil end
    end
    i, n = i + size, n + 1
  end
  return n
end

local DAYS = { 31, 28, 31, 30, 31, 30, 31, 31, 30, 31, 30, 31 }
local function valid_date(s)
  local y, m, d = s:match("^(%d%d%d%d)%-(%d%d)%-(%d%d)$")
  y, m, d = tonumber(y), tonumber(m), tonumber(d)
  if not y or y < 1 or m < 1 or m > 12 or d < 1 then return false end
  local leap = m == 2 and (y % 4 == 0 and y % 100 ~= 0 or y % 400 == 0)
  return d <= (leap and 29 or DAYS[m])
end

-- Every key and string under x is valid UTF-8 (payload.extra is free-form).
local function texts_ok(x)
  if type(x) == "string" then return utf8_len(x) ~= nil end
  if type(x) ~= "table" then return true end
  for k, y in pairs(x) do
    if not texts_ok(k) or not texts_ok(y) then return false end
  end
  return true
end

local check_value

local function check_object(spec, v, path, top)
  for k, x in pairs(v) do
    if not spec.fields[k] and not (top and k == "extra") then return path .. "." .. k .. ": unknown field" end
    if type(k) == "string" and not utf8_len(k) then return path .. ": a key is not valid UTF-8" end
    if top and k == "extra" and (type(x) ~= "table" or not is_object(x)) then
      return path .. ".extra: expected object"
    end
    if top and k == "extra" and not texts_ok(x) then return path .. ".extra: text is not valid UTF-8" end
  end
  for _, name in ipairs(spec.required or {}) do
    if v[name] == nil then return path .. "." .. name .. ": is required" end
  end
  for name, f in pairs(spec.fields) do
    local x = v[name]
    if x ~= nil then
      local problem = check_value(f, x, path .. "." .. name)
      if problem then return problem end
      for _, r in ipairs(f.requires or {}) do
        if v[r] == nil then return path .. "." .. name .. ": needs " .. path .. "." .. r end
      end
    end
  end
  if spec.any_of then
    for _, name in ipairs(spec.any_of) do if v[name] ~= nil then return nil end end
    return path .. ": needs one of " .. table.concat(spec.any_of, ", ")
  end
end

function check_value(spec, v, path)
  local t = spec.type
  if t == "number" or t == "integer" then
    if type(v) ~= "number" or v ~= v then return path .. ": expected " .. t end
    if t == "integer" and v ~= math.floor(v) then return path .. ": expected integer" end
    if spec.min and (v < spec.min or spec.exclusive_min and v == spec.min) then return path .. ": below its minimum" end
    if spec.max and v > spec.max then return path .. ": above its maximum" end
  elseif t == "string" or t == "date" then
    if type(v) ~= "string" then return path .. ": expected " .. t end
    local n = utf8_len(v)
    if not n then return path .. ": text is not valid UTF-8" end
    if t == "date" then
      if not valid_date(v) then return path .. ": expected date (YYYY-MM-DD)" end
    elseif spec.enum then
      local found = false
      for _, e in ipairs(spec.enum) do if e == v then found = true break end end
      if not found then return path .. ": expected one of " .. table.concat(spec.enum, ", ") end
    elseif spec.format == "currency" and not v:match("^%u%u%u$") then
      return path .. ": expected ISO 4217 currency code"
    elseif spec.format == "url" and not v:match("^%a[%w+.-]*://[^%s]+$") then
      return path .. ": expected URL"
    elseif spec.max_length and n > spec.max_length then
      return path .. ": too long"
    end
  elseif t == "boolean" then
    if type(v) ~= "boolean" then return path .. ": expected boolean" end
  elseif t == "object" then
    if type(v) ~= "table" or not is_object(v) then return path .. ": expected object" end
    return check_object(spec, v, path, false)
  elseif t == "array" then
    if type(v) ~= "table" or not is_array(v) then return path .. ": expected array" end
    if spec.max_items and #v > spec.max_items then return path .. ": too many items" end
    for i, x in ipairs(v) do
      local problem = check_value(spec.items, x, path .. "[" .. (i - 1) .. "]")
      if problem then return problem end
    end
  end
end

--- new(schemas) -> check(type, decoded) -> true | nil, message. schemas is
-- the decoded schema document (sql/payloads.json).
function M.new(schemas)
  return function(event_type, payload)
    local spec = schemas[event_type]
    if not spec then return nil, "type: unknown event type" end
    if type(payload) ~= "table" or not is_object(payload) then return nil, "payload: expected object" end
    local problem = check_object(spec, payload, "payload", true)
    if problem then return nil, problem end
    return true
  end
end

return M
