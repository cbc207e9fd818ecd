--- The timeline: append events (checked in C first, then by the database's
-- rules), correct or void them, and read pages of the effective timeline of
-- a vehicle, a garage or a tenant, newest first, keyset-paginated.
local motomind = require "motomind"
local payload = require "motomind.payload"

local null = motomind.null
local unpack = table.unpack or unpack
local M = {}

local EVENT_FIELDS = { id = true, vehicle_id = true, type = true, occurred_at = true, mileage = true,
                       payload = true, notes = true }

local function err(msg) return nil, msg, "22023" end -- invalid_parameter_value

local function check_ctx(ctx)
  if type(ctx) ~= "table" or type(ctx.tenant) ~= "string" then
    error("timeline: ctx must be a table { tenant = <uuid>, user = <uuid> }", 3)
  end
end

-- The same field checks the database makes, before any round trip; returns
-- the row to insert or nil, message.
local function prepare(e, prefix)
  if type(e) ~= "table" then return err(prefix .. ": expected a table") end
  for k in pairs(e) do
    if not EVENT_FIELDS[k] then return err(("%s.%s: unknown field"):format(prefix, tostring(k))) end
  end
  if type(e.vehicle_id) ~= "string" then return err(prefix .. ".vehicle_id: is required") end
  if type(e.type) ~= "string" then return err(prefix .. ".type: is required") end
  if type(e.occurred_at) ~= "string" then
    return err(prefix .. ".occurred_at: is required (ISO 8601 with a time zone, e.g. 2025-01-20T08:30:00Z)")
  end
  if e.mileage ~= nil and (type(e.mileage) ~= "number" or e.mileage < 0 or e.mileage ~= e.mileage) then
    return err(prefix .. ".mileage: expected number >= 0, got " .. tostring(e.mileage))
  end
  local p, perr = payload.decode(e.type, e.payload or {})
  if not p then return err(prefix == "event" and perr or (prefix .. "." .. perr)) end
  return { id = e.id or null, vehicle_id = e.vehicle_id, type = e.type, occurred_at = e.occurred_at,
           mileage = e.mileage or null, payload = p, notes = e.notes or null }
end

local function insert(db, ctx, rows)
  local sql = [[
    INSERT INTO ]] .. db:qualify("vehicle_events") .. [[ (tenant_id, id, vehicle_id, type, occurred_at,
           mileage, payload, notes, correction, corrects_id, corrects_occurred_at)
    SELECT $1, coalesce(x.id, gen_random_uuid()), x.vehicle_id, x.type, x.occurred_at, x.mileage,
           x.payload, x.notes, x.correction, x.corrects_id, x.corrects_occurred_at
      FROM jsonb_to_recordset($2::jsonb) AS x(id uuid, vehicle_id uuid, type text, occurred_at timestamptz,
           mileage numeric, payload jsonb, notes text, correction text, corrects_id uuid,
           corrects_occurred_at timestamptz)
    RETURNING id, occurred_at, vehicle_id]]
  local out, e2, sqlstate, detail = db:query(sql, ctx.tenant, setmetatable(rows, motomind.json.array_mt))
  if not out then return nil, e2, sqlstate, detail end
  -- Flags the rules raised on these events (implausible odometer jumps).
  local flags = motomind.assert(db:query(
    "SELECT f.event_id, f.flag, f.detail FROM " .. db:qualify("vehicle_event_flags") .. " f " ..
    "JOIN jsonb_to_recordset($2::jsonb) AS x(id uuid, occurred_at timestamptz) " ..
    "  ON f.event_id = x.id AND f.occurred_at = x.occurred_at WHERE f.tenant_id = $1",
    ctx.tenant, setmetatable(out, motomind.json.array_mt)))
  local by_id = {}
  for _, r in ipairs(out) do r.flags = setmetatable({}, motomind.json.array_mt); by_id[r.id] = r end
  for _, f in ipairs(flags) do
    local list = by_id[f.event_id].flags
    list[#list + 1] = { flag = f.flag, detail = f.detail }
  end
  return out
end

--- append_batch(db, ctx, events) -> { {id, occurred_at, vehicle_id, flags}, ... }
-- | nil, message, sqlstate, detail. All or nothing, in one statement; an
-- invalid event is named by its index ("events[3].payload.volume: ...").
function M.append_batch(db, ctx, events)
  check_ctx(ctx)
  if type(events) ~= "table" then error("append_batch: events must be an array", 2) end
  local rows = {}
  for i, e in ipairs(events) do
    local row, perr = prepare(e, ("events[%d]"):format(i))
    if not row then return err(perr) end
    rows[i] = row
  end
  if #rows == 0 then return setmetatable({}, motomind.json.array_mt) end
  return insert(db, ctx, rows)
end

--- append(db, ctx, event) -> { id, occurred_at, vehicle_id, flags } | nil, message, sqlstate, detail.
-- event: { vehicle_id, type, occurred_at, mileage?, payload?, notes?, id? }.
function M.append(db, ctx, event)
  check_ctx(ctx)
  local row, perr = prepare(event, "event")
  if not row then return err(perr) end
  local out, e2, sqlstate, detail = insert(db, ctx, { row })
  if not out then return nil, e2, sqlstate, detail end
  return out[1]
end

local function original(db, ctx, ref)
  if type(ref) ~= "table" or not ref.id or not ref.occurred_at then
    error("timeline: the event to correct is { id = ..., occurred_at = ... }", 3)
  end
  local row, e2, sqlstate, detail = db:row(
    "SELECT id, vehicle_id, type, occurred_at, mileage, payload::text AS payload, notes FROM " ..
    db:qualify("vehicle_events") .. " WHERE tenant_id = $1 AND id = $2 AND occurred_at = $3",
    ctx.tenant, ref.id, ref.occurred_at)
  if not row then
    if e2 then return nil, e2, sqlstate, detail end
    return nil, ("corrects_id: no event %s at %s"):format(ref.id, ref.occurred_at), "23503"
  end
  return row
end

--- correct(db, ctx, event_ref, changes) -> the amendment | nil, message, ...
-- The amendment replaces the event in the effective timeline; fields not in
-- changes (occurred_at, mileage, payload, notes) are kept from the original.
function M.correct(db, ctx, ref, changes)
  check_ctx(ctx)
  local o, e2, sqlstate, detail = original(db, ctx, ref)
  if not o then return nil, e2, sqlstate, detail end
  changes = changes or {}
  local function pick(k) if changes[k] ~= nil then return changes[k] end return o[k] end
  local row, perr = prepare({ vehicle_id = o.vehicle_id, type = o.type, occurred_at = pick("occurred_at"),
    mileage = changes.mileage or (o.mileage ~= null and tonumber(o.mileage) or nil),
    payload = changes.payload or o.payload, notes = pick("notes") ~= null and pick("notes") or nil }, "event")
  if not row then return err(perr) end
  row.correction, row.corrects_id, row.corrects_occurred_at = "amend", o.id, o.occurred_at
  local out, e3, s3, d3 = insert(db, ctx, { row })
  if not out then return nil, e3, s3, d3 end
  return out[1]
end

--- void(db, ctx, event_ref, reason) -> the void event | nil, message, ...
-- The event leaves the effective timeline; its history stays readable.
function M.void(db, ctx, ref, reason)
  check_ctx(ctx)
  local o, e2, sqlstate, detail = original(db, ctx, ref)
  if not o then return nil, e2, sqlstate, detail end
  local out, e3, s3, d3 = insert(db, ctx, { { id = null, vehicle_id = o.vehicle_id, type = o.type,
    occurred_at = o.occurred_at, mileage = null, payload = {}, notes = reason or null,
    correction = "void", corrects_id = o.id, corrects_occurred_at = o.occurred_at } })
  if not out then return nil, e3, s3, d3 end
  return out[1]
end

--- history(db, ctx, event_ref) -> the original and all its corrections,
-- oldest first, each with `effective` = whether it shows in the timeline.
function M.history(db, ctx, ref)
  check_ctx(ctx)
  return db:query([[
    SELECT e.id, e.type, e.occurred_at, e.mileage, e.payload, e.notes, e.correction, e.created_at,
           e.created_by, (x.id IS NOT NULL) AS effective
      FROM ]] .. db:qualify("vehicle_events") .. [[ e
      LEFT JOIN ]] .. db:qualify("vehicle_events_effective") .. [[ x
        ON x.tenant_id = e.tenant_id AND x.id = e.id AND x.occurred_at = e.occurred_at
     WHERE e.tenant_id = $1 AND ((e.id = $2 AND e.occurred_at = $3)
                              OR (e.corrects_id = $2 AND e.corrects_occurred_at = $3))
     ORDER BY e.created_at, e.id]], ctx.tenant, ref.id, ref.occurred_at)
end

local function page_limit(opts)
  local limit = opts.limit or 50
  if type(limit) ~= "number" or limit < 1 or limit > 1000 or limit % 1 ~= 0 then
    error("timeline: limit must be a whole number from 1 to 1000", 4)
  end
  return limit
end

local function cursor_parts(cursor)
  if cursor == nil then return null, null end
  local at, id = tostring(cursor):match("^(.-)|(%x+%-%x+%-%x+%-%x+%-%x+)$")
  if not at then error("timeline: malformed cursor", 3) end
  return at, id
end

-- The page query; shared with the EXPLAIN spec.
function M.page_sql(db)
  return [[
    SELECT e.id, e.vehicle_id, e.type, e.occurred_at, e.mileage, e.payload::text AS payload, e.notes,
           e.correction, e.corrects_id, v.nickname, v.odometer_unit,
           to_char(e.occurred_at AT TIME ZONE v.timezone, 'YYYY-MM-DD HH24:MI') AS local_time,
           (SELECT jsonb_agg(jsonb_build_object('flag', f.flag, 'detail', f.detail))
              FROM ]] .. db:qualify("vehicle_event_flags") .. [[ f
             WHERE f.tenant_id = e.tenant_id AND f.event_id = e.id AND f.occurred_at = e.occurred_at) AS flags
      FROM ]] .. db:qualify("vehicle_events_effective") .. [[ e
      JOIN ]] .. db:qualify("vehicles") .. [[ v ON v.tenant_id = e.tenant_id AND v.id = e.vehicle_id
     WHERE e.tenant_id = $1
       AND ($2::uuid IS NULL OR e.vehicle_id = $2)
       AND ($3::uuid IS NULL OR v.garage_id = $3)
       AND ($4::jsonb IS NULL OR e.type IN (SELECT jsonb_array_elements_text($4)))
       AND ($5::timestamptz IS NULL OR e.occurred_at >= $5)
       AND ($6::timestamptz IS NULL OR e.occurred_at < $6)
       AND ($7::timestamptz IS NULL OR (e.occurred_at, e.id) < ($7, $8::uuid))
     ORDER BY e.occurred_at DESC, e.id DESC
     LIMIT $9]]
end

--- The parameters of a page query, in page_sql's order.
function M.page_params(ctx, opts)
  local limit = page_limit(opts)
  local at, id = cursor_parts(opts.cursor)
  return { ctx.tenant, opts.vehicle or null, opts.garage or null,
           opts.types and setmetatable(opts.types, motomind.json.array_mt) or null,
           opts.from or null, opts.to or null, at, id, limit + 1, n = 9 }
end

-- Connections that have the page statement prepared (weak: closed ones go).
local prepared = setmetatable({}, { __mode = "k" })

--- page(db, ctx, { vehicle =, garage =, types = {...}, from =, to =, limit = 50, cursor = })
-- -> { events = {...}, cursor = next page's cursor | nil }. Newest first,
-- corrections applied; each payload decoded by its type's codec; each event
-- carries local_time (in its vehicle's timezone) and flags.
function M.page(db, ctx, opts)
  check_ctx(ctx)
  opts = opts or {}
  local params = M.page_params(ctx, opts)
  -- Prepared once per connection and schema: parsing and rewriting the
  -- query (it reads views) cost more than running it.
  local name = "motomind_page_" .. db:schema()
  if prepared[db] ~= name then
    local ok, e1, s1, d1 = db:prepare(name, M.page_sql(db))
    if not ok then return nil, e1, s1, d1 end
    prepared[db] = name
  end
  local rows, e2, sqlstate, detail = db:query_prepared(name, unpack(params, 1, params.n))
  if not rows then return nil, e2, sqlstate, detail end
  local limit = params[9] - 1
  local page = { events = rows }
  if #rows > limit then
    rows[#rows] = nil
    page.cursor = rows[#rows].occurred_at .. "|" .. rows[#rows].id
  end
  for _, r in ipairs(rows) do
    r.payload = motomind.assert(payload.decode(r.type, r.payload))
    if r.flags == null then r.flags = setmetatable({}, motomind.json.array_mt) end
  end
  return page
end

--- feed(db, ctx, { vehicle =, limit = 50, cursor = }) -> { events, cursor }
-- The tenant's (or a vehicle's) pre-joined feed (vehicle nickname, garage
-- and group names) from the timeline_feed materialized view, newest first:
-- as fresh as its last refresh (see mv_freshness), faster than page().
function M.feed(db, ctx, opts)
  check_ctx(ctx)
  opts = opts or {}
  local limit = page_limit(opts)
  local at, id = cursor_parts(opts.cursor)
  return db:as(ctx, function()
    local rows, e2, sqlstate, detail = db:query("SELECT * FROM " .. db:qualify("timeline_feed_page") ..
      "($1, $2, $3, $4)", limit + 1, at, id, opts.vehicle or null)
    if not rows then return nil, e2, sqlstate, detail end
    local page = { events = rows }
    if #rows > limit then
      rows[#rows] = nil
      page.cursor = rows[#rows].occurred_at .. "|" .. rows[#rows].id
    end
    return page
  end)
end

--- current_mileage(db, ctx, vehicle_id) -> { mileage, occurred_at, odometer_unit } | nil
function M.current_mileage(db, ctx, vehicle_id)
  check_ctx(ctx)
  return db:row("SELECT mileage, occurred_at, odometer_unit FROM " .. db:qualify("vehicle_current_mileage") ..
    " WHERE tenant_id = $1 AND vehicle_id = $2", ctx.tenant, vehicle_id)
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
  local mileage = e.mileage ~= null and (e.mileage .. " " .. (e.odometer_unit or "")) or ""
  if #(e.flags or {}) > 0 then what = what .. "  [" .. e.flags[1].flag .. "]" end
  return ("%s  %-11s %12s  %s"):format(e.local_time, e.type, mileage, what)
end

return M
