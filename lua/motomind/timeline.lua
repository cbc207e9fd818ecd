--- The timeline: append events (checked in C first, then by the database's
-- rules), correct or void them, and read pages of the effective timeline of
-- a vehicle, a garage or a tenant, newest first, keyset-paginated.
local motomind = require "motomind"
local payload = require "motomind.payload"
local event = require "motomind.event"
local internal = require "motomind.internal"

local null = motomind.null
local unpack = table.unpack or unpack
local M = {}

local function err(msg) return nil, msg, "22023" end -- invalid_parameter_value


-- Corrections are made by correct() and void(), not appended.
local CORRECTION_FIELDS = { "correction", "corrects_id", "corrects_occurred_at" }

-- The importer's check of an event (src/event.c), before any round trip:
-- returns the row to insert, or nil, message (prefixed for batches).
local function prepare(e, prefix)
  if type(e) ~= "table" then return err((prefix or "event") .. ": expected a table") end
  for _, k in ipairs(CORRECTION_FIELDS) do
    if e[k] ~= nil then
      return err((prefix and prefix .. "." or "") .. k .. ": use timeline.correct or timeline.void")
    end
  end
  if motomind.json.list(e.tags) ~= e.tags then -- {}: no tags, a JSON array
    local copy = {}
    for k, v in pairs(e) do copy[k] = v end
    copy.tags, e = motomind.json.list(e.tags), copy
  end
  local row, msg = payload.codec():check_event(e)
  if not row then return err(prefix and prefix .. "." .. msg or msg) end
  for _, f in ipairs(event.FIELDS) do
    if row[f.name] == nil then row[f.name] = null end
  end
  return row
end

local function insert(db, ctx, rows)
  local sql = ("INSERT INTO %s (tenant_id, %s) SELECT $1, %s FROM jsonb_to_recordset($2::jsonb) AS x(%s) " ..
    "RETURNING id, occurred_at, vehicle_id"):format(db:qualify("vehicle_events"), event.columns(),
    event.columns("x"):gsub("^x%.id", "coalesce(x.id, gen_random_uuid())"), event.typed_columns())
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
  motomind.check_ctx(ctx, "timeline")
  if type(events) ~= "table" then error("append_batch: events must be an array", 2) end
  local rows = {}
  for i, e in ipairs(events) do
    local row, perr = prepare(e, ("events[%d]"):format(i))
    if not row then return err(perr) end
    rows[i] = row
  end
  if #rows == 0 then return setmetatable({}, motomind.json.array_mt) end
  return db:as(ctx, insert, ctx, rows)
end

--- append(db, ctx, e) -> { id, occurred_at, vehicle_id, flags } | nil, message, sqlstate, detail.
-- e: { vehicle_id, type, occurred_at, mileage?, payload?, notes?, id? }.
function M.append(db, ctx, e)
  motomind.check_ctx(ctx, "timeline")
  local row, perr = prepare(e)
  if not row then return err(perr) end
  return db:as(ctx, function()
    local out, e2, sqlstate, detail = insert(db, ctx, { row })
    if not out then return nil, e2, sqlstate, detail end
    return out[1]
  end)
end

local function original(db, ctx, ref)
  local row, e2, sqlstate, detail = db:row(
    "SELECT " .. event.columns() .. " FROM " ..
    db:qualify("vehicle_events") .. " WHERE tenant_id = $1 AND id = $2 AND occurred_at = $3",
    ctx.tenant, ref.id, ref.occurred_at)
  if not row then
    if e2 then return nil, e2, sqlstate, detail end
    return nil, ("corrects_id: no event %s at %s"):format(ref.id, ref.occurred_at), "23503"
  end
  return row
end

local function check_ref(ref)
  if type(ref) ~= "table" or not ref.id or not ref.occurred_at then
    error("timeline: the event to correct is { id = ..., occurred_at = ... }", 3)
  end
end

-- What an amendment may change: every event field but its identity, its
-- vehicle and type, and the correction fields.
local AMENDABLE, FIXED = {}, { id = true, vehicle_id = true, type = true }
for _, k in ipairs(CORRECTION_FIELDS) do FIXED[k] = true end
for _, f in ipairs(event.FIELDS) do
  if not FIXED[f.name] then AMENDABLE[#AMENDABLE + 1] = f.name end
end

--- correct(db, ctx, event_ref, changes) -> the amendment | nil, message, ...
-- The amendment replaces the event in the effective timeline; fields not in
-- changes (occurred_at, mileage, payload, notes, location, tags) are kept
-- from the original (motomind.null clears one).
function M.correct(db, ctx, ref, changes)
  motomind.check_ctx(ctx, "timeline")
  check_ref(ref)
  changes = changes or {}
  return db:as(ctx, function()
    local o, e2, sqlstate, detail = original(db, ctx, ref)
    if not o then return nil, e2, sqlstate, detail end
    local amended = { vehicle_id = o.vehicle_id, type = o.type }
    for _, k in ipairs(AMENDABLE) do
      local v = changes[k]
      if v == nil then v = o[k] end
      if v ~= null then amended[k] = v end
    end
    amended.mileage = amended.mileage and tonumber(amended.mileage) -- (numeric comes back as text)
    local row, perr = prepare(amended)
    if not row then return err(perr) end
    row.correction, row.corrects_id, row.corrects_occurred_at = "amend", o.id, o.occurred_at
    local out, e3, s3, d3 = insert(db, ctx, { row })
    if not out then return nil, e3, s3, d3 end
    return out[1]
  end)
end

--- void(db, ctx, event_ref, reason) -> the void event | nil, message, ...
-- The event leaves the effective timeline; its history stays readable.
function M.void(db, ctx, ref, reason)
  motomind.check_ctx(ctx, "timeline")
  check_ref(ref)
  return db:as(ctx, function()
    local o, e2, sqlstate, detail = original(db, ctx, ref)
    if not o then return nil, e2, sqlstate, detail end
    local out, e3, s3, d3 = insert(db, ctx, { { id = null, vehicle_id = o.vehicle_id, type = o.type,
      occurred_at = o.occurred_at, mileage = null, payload = {}, notes = reason or null,
      correction = "void", corrects_id = o.id, corrects_occurred_at = o.occurred_at } })
    if not out then return nil, e3, s3, d3 end
    return out[1]
  end)
end

--- history(db, ctx, event_ref) -> the original and all its corrections,
-- oldest first, each with `effective` = whether it shows in the timeline.
function M.history(db, ctx, ref)
  motomind.check_ctx(ctx, "timeline")
  check_ref(ref)
  return db:as(ctx, function()
    return db:query([[
      SELECT ]] .. event.columns("e") .. [[, e.created_at, e.created_by, (x.id IS NOT NULL) AS effective
        FROM ]] .. db:qualify("vehicle_events") .. [[ e
        LEFT JOIN ]] .. db:qualify("vehicle_events_effective") .. [[ x
          ON x.tenant_id = e.tenant_id AND x.id = e.id AND x.occurred_at = e.occurred_at
       WHERE e.tenant_id = $1 AND ((e.id = $2 AND e.occurred_at = $3)
                                OR (e.corrects_id = $2 AND e.corrects_occurred_at = $3))
       ORDER BY e.created_at, e.id]], ctx.tenant, ref.id, ref.occurred_at)
  end)
end

--- page(db, ctx, { vehicle =, garage =, types = {...}, from =, to =, limit = 50, cursor = })
-- -> { events = {...}, cursor = next page's cursor | nil }, read from
-- db:reader() (a standby when configured). Newest first,
-- corrections applied; payloads as stored (checked when written); each
-- event carries local_time (in its vehicle's timezone), flags and photos.
function M.page(db, ctx, opts)
  motomind.check_ctx(ctx, "timeline")
  local q = internal.page_query(db, ctx, opts or {})
  -- Generic plans: the best plan is the same for every vehicle, and
  -- planning a custom one each call cost 1.4 ms, more than running it.
  -- Prepared once per connection, schema and shape of filters: parsing
  -- and rewriting the query (it reads views) cost more than running it.
  local rows, err, sqlstate, detail = db:read_prepared_as(ctx, q.name, q.sql, unpack(q.params, 1, q.params.n))
  if not rows then return nil, err, sqlstate, detail end
  local page = { events = rows }
  if #rows >= q.params[2] then
    rows[#rows] = nil
    page.cursor = rows[#rows].occurred_at .. "|" .. rows[#rows].id
  end
  for _, r in ipairs(rows) do
    if r.flags == null then r.flags = setmetatable({}, motomind.json.array_mt) end
    if r.photos == null then r.photos = setmetatable({}, motomind.json.array_mt) end
  end
  return page
end

-- The feed's events get their photos (live: the feed itself is refreshed
-- later) in one query for the page.
local function with_photos(db, ctx, page)
  local ids = {}
  for i, r in ipairs(page.events) do ids[i] = r.id end
  local by_event = {}
  if #ids > 0 then
    local photos, err, sqlstate, detail = db:query("SELECT e.id, " .. internal.photos_sql(db, "$1", "e.id") ..
      " AS photos FROM (SELECT jsonb_array_elements_text($2::jsonb)::uuid AS id) e", ctx.tenant, ids)
    if not photos then return nil, err, sqlstate, detail end
    for _, r in ipairs(photos) do by_event[r.id] = r.photos end
  end
  for _, r in ipairs(page.events) do
    local p = by_event[r.id]
    r.photos = p ~= nil and p ~= null and p or setmetatable({}, motomind.json.array_mt)
  end
  return page
end

--- feed(db, ctx, { vehicle =, limit = 50, cursor = }) -> { events, cursor }
-- The tenant's (or a vehicle's) pre-joined feed (vehicle nickname, garage
-- and group names) from the timeline_feed table, newest first:
-- as fresh as its last refresh (see mv_freshness), faster than page().
function M.feed(db, ctx, opts)
  motomind.check_ctx(ctx, "timeline")
  opts = opts or {}
  local limit = internal.page_limit(opts)
  local at, id = internal.cursor_parts(opts.cursor)
  return db:read_as(ctx, function(db) -- db: the reader
    local rows, e2, sqlstate, detail = db:query("SELECT * FROM " .. db:qualify("timeline_feed_page") ..
      "($1, $2, $3, $4)", limit + 1, at, id, opts.vehicle or null)
    if not rows then return nil, e2, sqlstate, detail end
    local page = { events = rows }
    if #rows > limit then
      rows[#rows] = nil
      page.cursor = rows[#rows].occurred_at .. "|" .. rows[#rows].id
    end
    return with_photos(db, ctx, page)
  end)
end

--- current_mileage(db, ctx, vehicle_id) -> { mileage, occurred_at, odometer_unit } | nil
function M.current_mileage(db, ctx, vehicle_id)
  motomind.check_ctx(ctx, "timeline")
  return db:as(ctx, function()
    return db:row("SELECT mileage, occurred_at, odometer_unit FROM " .. db:qualify("vehicle_current_mileage") ..
      " WHERE tenant_id = $1 AND vehicle_id = $2", ctx.tenant, vehicle_id)
  end)
end

return M
