--- Reminders of a tenant's vehicles, as the context user (each call runs
-- inside db:as(ctx)). What is due, and each occurrence's history, is the
-- database's (migration 0010): the reminders_due view and the chain that
-- events and completions rebuild; this module writes definitions, snoozes,
-- dismissals and completions, and reads the due list.
local motomind = require "motomind"

local M = {}

-- The columns add() accepts, with the check each value must pass.
local DATE = "^%d%d%d%d%-%d%d%-%d%d$"
local function date(v) return type(v) == "string" and v:match(DATE) ~= nil, "expected a date YYYY-MM-DD" end
local function count(v) return type(v) == "number" and v > 0 and v % 1 == 0, "expected a whole number above 0" end
local function distance(v) return type(v) == "number" and v >= 0, "expected a number, 0 or more" end
local function positive(v) return type(v) == "number" and v > 0, "expected a number above 0" end
local function text(v) return type(v) == "string" and v:match("%S") ~= nil, "expected a non-empty string" end
local function whole(v) return type(v) == "number" and v >= 0 and v % 1 == 0, "expected a whole number, 0 or more" end
local function uuid(v) return type(v) == "string" and #v == 36, "expected a UUID" end

M.FIELDS = {
  { "vehicle_id", uuid }, { "garage_id", uuid }, { "title", text }, { "description", text },
  { "due_on", date }, { "due_mileage", distance }, { "starts_on", date },
  { "repeat_months", count }, { "repeat_distance", positive },
  { "service_type", text }, { "expiry_of", function(v) return v == "inspection" or v == "document",
    "expected inspection or document" end }, { "expiry_kind", text },
  { "due_soon_days", whole }, { "due_soon_distance", distance },
}
local CHECK = {}
for _, f in ipairs(M.FIELDS) do CHECK[f[1]] = f[2] end

-- The value problems of fields, as "field: reason" (nil when none).
local function problem(fields)
  for k, v in pairs(fields) do
    local check = CHECK[k]
    if not check then return tostring(k) .. ": unknown field" end
    local ok, why = check(v)
    if not ok then return ("%s: %s"):format(k, why) end
  end
  if fields.title == nil then return "title: is required" end
  if fields.vehicle_id == nil and fields.garage_id == nil then return "vehicle_id: is required (or garage_id)" end
  if fields.due_on == nil and fields.due_mileage == nil and fields.service_type == nil and fields.expiry_of == nil then
    return "due_on: give due_on or due_mileage, or a service_type or expiry_of whose events set it"
  end
end

-- Mileages and distances as Lua numbers (numeric(10, 1) arrives as exact
-- text; one decimal is exact enough in a double). Returns rows as given.
local NUMERIC = { "due_mileage", "first_due_mileage", "current_mileage", "distance_left", "repeat_distance",
  "due_soon_distance", "snoozed_until_mileage", "completed_mileage", "mileage" }
local function numbers(rows, ...)
  if type(rows) ~= "table" then return rows, ... end
  local list = rows[1] ~= nil and rows or { rows }
  for _, r in ipairs(list) do
    for _, k in ipairs(NUMERIC) do
      if type(r[k]) == "string" then r[k] = tonumber(r[k]) end
    end
  end
  return rows, ...
end

--- add(db, ctx, fields) -> the reminder row | nil, message, sqlstate.
-- fields: vehicle_id (or garage_id), title, and a first due (due_on and/or
-- due_mileage, whichever comes first) or a tie whose events set it
-- (service_type; expiry_of with expiry_kind); repeat_months and/or
-- repeat_distance make it recur from each completion; due_soon_days and
-- due_soon_distance override the tenant's thresholds; starts_on (default
-- today, with a first due) is the first day a completion counts.
function M.add(db, ctx, fields)
  motomind.check_ctx(ctx, "reminders")
  if type(fields) ~= "table" then error("reminders.add: fields must be a table", 2) end
  local bad = problem(fields)
  if bad then return nil, bad, "22023" end
  local names, values, params = { "tenant_id" }, { ctx.tenant }, { "$1" }
  for _, f in ipairs(M.FIELDS) do
    if fields[f[1]] ~= nil then
      names[#names + 1] = f[1]
      values[#values + 1] = fields[f[1]]
      params[#params + 1] = "$" .. #names
    end
  end
  return numbers(db:as(ctx, function()
    return db:row(("INSERT INTO %s (%s) VALUES (%s) RETURNING *"):format(db:qualify("reminders"),
      table.concat(names, ", "), table.concat(params, ", ")), (table.unpack or unpack)(values, 1, #names))
  end))
end

-- The due list's statuses in its order, each with what the kept days
-- (reminder_alerts) say of its reminders: no timezone's today is earlier
-- than yesterday or later than tomorrow in UTC. They say nothing of
-- snoozes: the snoozed part is read whole.
local UTC_TODAY = "(now() AT TIME ZONE 'UTC')::date"
local BANDS = {
  { "overdue", "overdue_from <= " .. UTC_TODAY .. " + 1" },
  { "due_soon", "soon_from <= " .. UTC_TODAY .. " + 1 AND overdue_from > " .. UTC_TODAY .. " - 1" },
  { "upcoming", "soon_from > " .. UTC_TODAY .. " - 1" },
  { "snoozed" },
}
local ORDER = "d.due_key, d.distance_left NULLS LAST, d.title, d.reminder_id"
local MAX_CANDIDATES = 2000

-- The candidates for the first k reminders of a status, by the kept days'
-- index in the list's first order (due_key): the first k, and every one
-- tied with the k-th; cut is that k-th due_key (NULL: there are no more).
local CANDIDATES = [[
WITH f AS MATERIALIZED (SELECT a.reminder_id, a.due_key FROM %s a WHERE a.tenant_id = $1 AND %s
                         ORDER BY a.due_key LIMIT $2),
     c AS (SELECT max(due_key) AS cut, count(*) = $2 AS more FROM f)
SELECT CASE WHEN c.more THEN c.cut END::text AS cut,
       array(SELECT f.reminder_id FROM f WHERE NOT c.more OR f.due_key < c.cut
             UNION ALL
             SELECT a.reminder_id FROM %s a WHERE c.more AND a.tenant_id = $1 AND %s AND a.due_key = c.cut)::text AS ids
  FROM c]]

--- due(db, ctx, { vehicle = id, group = id, within_days = n, within_distance = n,
-- limit = n, offset = n }) -> rows of reminders_due, most urgent first
-- (overdue, due soon, upcoming, snoozed; then by effective due date, none
-- last, and distance left). With within_*, only reminders overdue, due (or projected)
-- within that many days, or within that distance. A group includes its
-- subgroups. limit/offset page the list (a fleet's first screen).
function M.due(db, ctx, opts)
  motomind.check_ctx(ctx, "reminders")
  opts = opts or {}
  for _, name in ipairs { "limit", "offset" } do
    local n = opts[name]
    if n ~= nil and (type(n) ~= "number" or n % 1 ~= 0 or n < 0) then
      return nil, name .. ": expected a whole number, 0 or more", "22023"
    end
  end
  local where, args = { "d.tenant_id = $1" }, { ctx.tenant }
  local function arg(v) args[#args + 1] = v; return "$" .. #args end
  if opts.vehicle then where[#where + 1] = "d.vehicle_id = " .. arg(opts.vehicle) end
  if opts.group then
    where[#where + 1] = ("d.group_id IN (WITH RECURSIVE g AS (SELECT id FROM %s WHERE tenant_id = $1 AND id = %s " ..
      "UNION SELECT c.id FROM %s c JOIN g ON c.parent_id = g.id WHERE c.tenant_id = $1) SELECT id FROM g)")
      :format(db:qualify("fleet_groups"), arg(opts.group), db:qualify("fleet_groups"))
  end
  local within = {}
  if opts.within_days then within[#within + 1] = "d.effective_due_on <= d.today + " .. arg(opts.within_days) .. "::integer" end
  if opts.within_distance then within[#within + 1] = "d.distance_left <= " .. arg(opts.within_distance) .. "::numeric" end
  if #within > 0 then
    where[#where + 1] = "(d.status = 'overdue' OR " .. table.concat(within, " OR ") .. ")"
  end
  local unpack_ = table.unpack or unpack
  -- The list, or a status's part of it (band), or that part among ids (each
  -- looked up alone: a handful of rows, never a join of the tenant's tables).
  local function list(db, band, ids, limit, offset)
    local a = { unpack_(args) }
    local function more(v) a[#a + 1] = v; return "$" .. #a end
    local from, cond = db:qualify("reminders_due") .. " d", { unpack_(where) }
    if ids then
      from = ("unnest(%s::uuid[]) i (id) CROSS JOIN LATERAL (SELECT * FROM %s d WHERE d.tenant_id = $1 " ..
        "AND d.reminder_id = i.id OFFSET 0) d"):format(more(ids), db:qualify("reminders_due"))
    end
    if band then cond[#cond + 1] = ("d.status = '%s'"):format(band[1]) end
    return db:query(("SELECT d.*, v.nickname FROM %s LEFT JOIN %s v ON v.tenant_id = d.tenant_id AND v.id = d.vehicle_id " ..
      "WHERE %s ORDER BY %s%s LIMIT %s::bigint OFFSET %s::bigint"):format(from, db:qualify("vehicles"),
      table.concat(cond, " AND "), band and "" or "d.urgency, ", ORDER, more(limit or motomind.null), more(offset or 0)),
      unpack_(a, 1, #a))
  end
  -- The first k of a status: from the candidates of the kept days, as many
  -- more as the exact status and the filters turn away; past MAX_CANDIDATES
  -- (a deep page, a small group of a large fleet), or with no kept days to
  -- go by, the status's whole part.
  local function first(db, band, k)
    local want, alerts = k, db:qualify("reminder_alerts")
    while band[2] and want <= MAX_CANDIDATES do
      local c, err, sqlstate, detail = db:row(CANDIDATES:format(alerts, band[2], alerts, band[2]), ctx.tenant, want)
      if not c then return nil, err, sqlstate, detail end
      local rows
      rows, err, sqlstate, detail = list(db, band, c.ids, k)
      if not rows or #rows >= k or c.cut == motomind.null then return rows, err, sqlstate, detail end
      want = want * 2
    end
    return list(db, band, nil, k)
  end
  return numbers(db:read_as(ctx, function(db) -- db: the reader
    if not opts.limit or opts.vehicle then return list(db, nil, nil, opts.limit, opts.offset) end
    -- A page: status by status, most urgent first, until it is full.
    local page, skip, need = {}, opts.offset or 0, opts.limit
    for _, band in ipairs(BANDS) do
      if need == 0 then break end
      local rows, err, sqlstate, detail = first(db, band, skip + need)
      if not rows then return nil, err, sqlstate, detail end
      for i = skip + 1, #rows do page[#page + 1] = rows[i] end
      need = need - math.max(0, #rows - skip)
      skip = math.max(0, skip - #rows)
    end
    return page
  end))
end

-- Updates one reminder the context user may write; nil, message when there
-- is none (or it is not theirs to change).
local function update(db, ctx, id, set, ...)
  local args = { n = select("#", ...), ... }
  args[args.n + 1], args[args.n + 2] = ctx.tenant, id
  local row, err, sqlstate = db:as(ctx, function()
    return db:row(("UPDATE %s SET %s WHERE tenant_id = $%d AND id = $%d RETURNING *"):format(
      db:qualify("reminders"), set, args.n + 1, args.n + 2), (table.unpack or unpack)(args, 1, args.n + 2))
  end)
  if row == nil and err == nil then
    return nil, ("reminder %s: no such live reminder you may change in this tenant"):format(id), "42704"
  end
  return numbers(row, err, sqlstate)
end

--- snooze(db, ctx, id, { until_on = date, until_mileage = n }) -> row:
-- the reminder stays quiet (status snoozed, no notification) until that day
-- or that mileage; snooze(db, ctx, id, {}) wakes it.
function M.snooze(db, ctx, id, opts)
  motomind.check_ctx(ctx, "reminders")
  opts = opts or {}
  if opts.until_on ~= nil and not date(opts.until_on) then return nil, "until_on: expected a date YYYY-MM-DD", "22023" end
  if opts.until_mileage ~= nil and not distance(opts.until_mileage) then
    return nil, "until_mileage: expected a number, 0 or more", "22023"
  end
  return update(db, ctx, id, "snoozed_until = $1, snoozed_until_mileage = $2",
    opts.until_on or motomind.null, opts.until_mileage or motomind.null)
end

--- dismiss(db, ctx, id) -> row: nothing more is due from it (kept, audited).
function M.dismiss(db, ctx, id)
  motomind.check_ctx(ctx, "reminders")
  return update(db, ctx, id, "status = 'dismissed', completed_at = NULL")
end

--- complete(db, ctx, id, { on = date, mileage = n, notes = s }) -> the
-- completion row: done by hand (no event); a recurring reminder schedules its
-- next occurrence from it. on defaults to today in the vehicle's timezone.
function M.complete(db, ctx, id, opts)
  motomind.check_ctx(ctx, "reminders")
  opts = opts or {}
  if opts.on ~= nil and not date(opts.on) then return nil, "on: expected a date YYYY-MM-DD", "22023" end
  if opts.mileage ~= nil and not distance(opts.mileage) then return nil, "mileage: expected a number, 0 or more", "22023" end
  local row, err, sqlstate = db:as(ctx, function()
    return db:row(("INSERT INTO %s (tenant_id, reminder_id, completed_on, mileage, notes) " ..
      "SELECT r.tenant_id, r.id, coalesce($3::date, (now() AT TIME ZONE coalesce(v.timezone, 'UTC'))::date), $4, $5 " ..
      "FROM %s r LEFT JOIN %s v ON v.tenant_id = r.tenant_id AND v.id = r.vehicle_id " ..
      "WHERE r.tenant_id = $1 AND r.id = $2 RETURNING *"):format(db:qualify("reminder_completions"),
      db:qualify("reminders"), db:qualify("vehicles")), ctx.tenant, id, opts.on or motomind.null,
      opts.mileage or motomind.null, opts.notes or motomind.null)
  end)
  if row == nil and err == nil then return nil, ("reminder %s: no such live reminder in this tenant"):format(id), "42704" end
  return numbers(row, err, sqlstate)
end

--- history(db, ctx, id) -> the reminder's occurrences, first first: due_on,
-- due_mileage, completed_on, completed_mileage, event_id or completion_id
-- (the open one, if any, last, with completed_on null).
function M.history(db, ctx, id)
  motomind.check_ctx(ctx, "reminders")
  return numbers(db:as(ctx, function()
    return db:query("SELECT * FROM " .. db:qualify("reminder_occurrences") ..
      " WHERE tenant_id = $1 AND reminder_id = $2 ORDER BY seq", ctx.tenant, id)
  end))
end

-- Records of kind "reminder" from another app's export, staged as
-- { line, json_text }, into reminders of one vehicle. metric ("date",
-- "odometer", else both) says which due counts; the id comes from the
-- content, so importing the file again adds nothing.
local IMPORT = [[
  CREATE TEMP TABLE motomind_import_reminders ON COMMIT DROP AS
  SELECT line, data || jsonb_build_object('vehicle_id', $2::uuid) AS data
    FROM jsonb_to_recordset($1::jsonb) AS r(line bigint, data jsonb)]]
local IMPORT_INSERT = [[
  INSERT INTO %s (tenant_id, id, vehicle_id, title, description, first_due_on, first_due_mileage, repeat_months,
                  repeat_distance, source)
  SELECT $1::uuid, md5(concat_ws('|', 'reminder', $1::text, r.vehicle_id, r.title, d.due_on, d.due_mileage,
                                 r.repeat_months, r.repeat_distance))::uuid,
         r.vehicle_id, r.title, r.description, d.due_on, d.due_mileage, r.repeat_months, r.repeat_distance, 'import'
    FROM pg_temp.motomind_import_reminders s
   CROSS JOIN LATERAL jsonb_populate_record(NULL::%s, s.data) r
   CROSS JOIN LATERAL (SELECT lower(s.data->>'metric') AS metric) m
   CROSS JOIN LATERAL (SELECT CASE WHEN m.metric IS DISTINCT FROM 'odometer' THEN r.first_due_on END AS due_on,
                              CASE WHEN m.metric IS DISTINCT FROM 'date' THEN r.first_due_mileage END AS due_mileage) d
   WHERE s.line BETWEEN $2 AND $3 ORDER BY s.line ON CONFLICT DO NOTHING]]

--- import_records(db, ctx, vehicle, staged, report, insert_range): the
-- reminders a CSV import read (formats with a record = "reminder" section),
-- inserted for the vehicle; refusals reported by line (import.lua's
-- insert_range); report.restored.reminder counts what was added.
function M.import_records(db, ctx, vehicle, staged, report, insert_range)
  local parts = {}
  for i, r in ipairs(staged) do parts[i] = '{"line":' .. r[1] .. ',"data":' .. r[2] .. '}' end
  motomind.assert(db:exec(IMPORT, "[" .. table.concat(parts, ",") .. "]", vehicle))
  report.restored = report.restored or {}
  report.restored.reminder = insert_range(db, IMPORT_INSERT:format(db:qualify("reminders"), db:qualify("reminders")),
    ctx.tenant, staged[1][1], staged[#staged][1], report)
end

return M
