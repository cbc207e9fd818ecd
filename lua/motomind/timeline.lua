--- A vehicle's timeline: newest first, keyset-paginated on (occurred_at, id)
-- so pages stay fast and stable while events are added.
local motomind = require "motomind"

local M = {}

--- timeline.vehicle(db, tenant_id, vehicle_id, { limit = 50, before = cursor })
-- -> { events = {...}, next = cursor | nil }. Each event carries local_time,
-- its occurred_at rendered in the vehicle's timezone.
function M.vehicle(db, tenant_id, vehicle_id, opts)
  opts = opts or {}
  local limit = opts.limit or 50
  if type(limit) ~= "number" or limit < 1 or limit > 1000 then
    error("timeline: limit must be a number from 1 to 1000", 2)
  end
  local before_at, before_id = motomind.null, motomind.null
  if opts.before then
    before_at, before_id = opts.before:match("^(.-)|(.+)$")
    if not before_at then error("timeline: malformed cursor", 2) end
  end
  local sql = [[
    SELECT e.id, e.type, e.occurred_at, e.mileage, e.payload, e.notes,
           to_char(e.occurred_at AT TIME ZONE v.timezone, 'YYYY-MM-DD HH24:MI') AS local_time,
           v.odometer_unit
      FROM ]] .. db:qualify("vehicle_events") .. [[ e
      JOIN ]] .. db:qualify("vehicles") .. [[ v ON v.tenant_id = e.tenant_id AND v.id = e.vehicle_id
     WHERE e.tenant_id = $1 AND e.vehicle_id = $2
       AND ($3::timestamptz IS NULL OR (e.occurred_at, e.id) < ($3::timestamptz, $4::uuid))
     ORDER BY e.occurred_at DESC, e.id DESC
     LIMIT $5]]
  local rows, err, sqlstate, detail = db:query(sql, tenant_id, vehicle_id, before_at, before_id, limit + 1)
  if not rows then return nil, err, sqlstate, detail end
  local page = { events = rows }
  if #rows > limit then
    rows[#rows] = nil
    local last = rows[#rows]
    page.next = last.occurred_at .. "|" .. last.id
  end
  return page
end

local function money(p)
  if p.total == nil then return "" end
  return (" %.2f %s"):format(tonumber(p.total), p.currency or "")
end

--- One line of text for an event, as the command line prints it.
function M.describe(e)
  local p = type(e.payload) == "table" and e.payload or {}
  local what
  if e.type == "fuel" then
    what = ("%s %s%s%s"):format(p.volume or "?", p.unit or "", money(p),
      p.full == false and " (partial)" or "")
  elseif e.type == "maintenance" then
    what = (p.service_type or "service") .. money(p)
  elseif e.type == "inspection" then
    what = "inspection: " .. tostring(p.result or "?")
  else
    what = e.type
  end
  local mileage = e.mileage ~= motomind.null and (e.mileage .. " " .. (e.odometer_unit or "")) or ""
  return ("%s  %-11s %12s  %s"):format(e.local_time, e.type, mileage, what)
end

return M
