--- Export: a tenant's events as JSON lines, whole-tenant backups
-- (backup.lua), and one vehicle's records as another app's CSV (the formats
-- of formats.lua that have an `export`). Streamed through COPY TO in one
-- snapshot: constant memory.
local motomind = require "motomind"
local event = require "motomind.event"
local formats = require "motomind.formats"
local backup = require "motomind.backup"

local M = {}

-- A sink function (and the file to close) from a path or a function.
local function open_sink(sink)
  if type(sink) ~= "string" then return sink end
  local file, err = io.open(sink, "w")
  if not file then motomind.raise(err, "58030") end
  return function(chunk) file:write(chunk) end, file
end

-- COPY of one JSON text per row, as lines: CSV with a delimiter and a quote
-- that JSON text never holds, so each line is the JSON text as is (COPY's
-- text format would escape its backslashes).
local function copy_json_lines(db, query, sink)
  return motomind.assert(db:copy_out("COPY (" .. query ..
    ") TO STDOUT WITH (FORMAT csv, DELIMITER E'\\x02', QUOTE E'\\x01')", sink))
end

-- COPY takes no parameters: the tenant (and vehicle, and period) come from
-- the context, each read once per statement (a sub-select: an InitPlan), not
-- per row (a setting looked up and parsed per row cost 0.1 s an export of
-- 200,000 events).
local TENANT = "(SELECT nullif(current_setting('motomind.tenant_id', true), '')::uuid)"
local VEHICLE = "(SELECT current_setting('motomind.export_vehicle')::uuid)"
-- The period (opts.from, opts.to: days in each vehicle's timezone, both
-- included) over the events e and their vehicle v.
local PERIOD = " AND (e.occurred_at AT TIME ZONE v.timezone)::date BETWEEN " ..
  "(SELECT coalesce(nullif(current_setting('motomind.export_from'), '')::date, '-infinity')) AND " ..
  "(SELECT coalesce(nullif(current_setting('motomind.export_to'), '')::date, 'infinity'))"

-- The events' columns (of live vehicles only (backups), of one vehicle
-- (opts.vehicle) or of the whole tenant; in a period or all) as COPY
-- rows, which db:copy_out_events writes as JSON lines: the server prints
-- the columns, the client the JSON (docs/design.md).
local function export_events(db, sink, live_vehicles_only, one_vehicle, period)
  return motomind.assert(db:copy_out_events("COPY (SELECT " .. event.columns("e") .. " FROM " ..
    db:qualify("vehicle_events") .. " e" ..
    (period and " JOIN " .. db:qualify("vehicles") .. " v ON v.tenant_id = e.tenant_id AND v.id = e.vehicle_id" or "") ..
    " WHERE e.tenant_id = " .. TENANT ..
    (one_vehicle and " AND e.vehicle_id = " .. VEHICLE or "") .. (period and PERIOD or "") ..
    (live_vehicles_only and " AND EXISTS (SELECT 1 FROM " .. db:qualify("vehicles") ..
      " v WHERE v.tenant_id = e.tenant_id AND v.id = e.vehicle_id AND v.deleted_at IS NULL)" or "") ..
    " ORDER BY e.vehicle_id, e.occurred_at, e.created_at, e.id) TO STDOUT", sink))
end

local function export_backup(db, sink)
  local header, queries, before_events = backup.record_queries(db, TENANT)
  sink(header)
  local n = 0
  for i, q in ipairs(queries) do
    if i == before_events + 1 then n = n + export_events(db, sink, true) end
    n = n + copy_json_lines(db, q, sink)
  end
  return n
end

-- Sets the export's period for COPY from opts.from and opts.to (dates);
-- returns whether there is one.
local function export_period(db, opts)
  if opts.from == nil and opts.to == nil then return false end
  for _, k in ipairs { "from", "to" } do
    local day, err = db:value("SELECT set_config('motomind.export_' || $1, coalesce($2::date::text, ''), true)", k,
      opts[k] == nil and motomind.null or tostring(opts[k]))
    if not day then motomind.raise(("%s: expected a date (YYYY-MM-DD): %s"):format(k, err), "22007") end
  end
  return true
end

-- The vehicle of an export, checked visible in the tenant, set for COPY;
-- returns its odometer unit.
local function export_vehicle(db, ctx, vehicle)
  local unit = db:value("SELECT odometer_unit FROM " .. db:qualify("vehicles") ..
    " WHERE tenant_id = $1 AND id = $2::uuid", ctx.tenant, vehicle)
  if not unit then motomind.raise("vehicle " .. vehicle .. ": no such vehicle in this tenant", "23503") end
  motomind.assert(db:exec("SELECT set_config('motomind.export_vehicle', $1::uuid::text, true)", vehicle))
  return unit
end

-- One vehicle's events of the spec's type as CSV (the spec's columns over
-- the events e, their vehicle v and, when spec.fills, each fill's economy
-- f from vehicle_fills), in the vehicle's local
-- days, same-day rows by odometer (apps without times read them in order).
-- Every effective fuel event has its row in vehicle_fills, so with fills the
-- fills are computed once (a MATERIALIZED CTE) and each looks its event up
-- by the primary key (LATERAL, kept apart by OFFSET 0 so the vehicle's
-- conditions cannot turn it into a scan of its events): joined
-- the other way, on tables not analyzed yet (right after an import) the
-- planner expected one event and ran the fills' windows once per event,
-- 57 s for 30,000 fills.
local function export_csv(db, spec, unit, period, sink)
  local columns = type(spec.columns) == "function" and spec.columns(unit) or spec.columns
  local events = spec.fills and
    ("(SELECT * FROM %s x WHERE x.tenant_id = f.tenant_id AND x.id = f.event_id AND x.occurred_at = f.occurred_at " ..
     "OFFSET 0) e")
      :format(db:qualify("vehicle_events_effective"))
    or db:qualify("vehicle_events_effective") .. " e"
  return motomind.assert(db:copy_out("COPY (" ..
    (spec.fills and "WITH f AS MATERIALIZED (SELECT * FROM " .. db:qualify("vehicle_fills") ..
      " WHERE tenant_id = " .. TENANT .. " AND vehicle_id = " .. VEHICLE .. ") " or "") ..
    "SELECT " .. columns .. " FROM " .. (spec.fills and "f CROSS JOIN LATERAL " or "") .. events ..
    " JOIN " .. db:qualify("vehicles") .. " v ON v.tenant_id = e.tenant_id AND v.id = e.vehicle_id" ..
    " WHERE e.tenant_id = " .. TENANT .. " AND e.vehicle_id = " .. VEHICLE .. " AND e.type = '" .. spec.type .. "'" ..
    (spec.where and " AND " .. spec.where or "") .. (period and PERIOD or "") ..
    " ORDER BY (e.occurred_at AT TIME ZONE v.timezone)::date, e.mileage, e.occurred_at, e.id)" ..
    " TO STDOUT WITH (FORMAT csv, HEADER)", sink))
end

--- export(db, ctx, sink, opts) -> records | nil, message, sqlstate, detail.
-- sink: a path, or a function(chunk). opts.format: "jsonl" (default: the
-- events of the tenant, or of opts.vehicle, corrections and voids included,
-- by vehicle and time), "backup" (the tenant's live garages, fleet groups,
-- vehicles, reminders and their vehicles' events, read in one snapshot), or
-- a CSV format of formats.lua with an export (fuelly, lubelogger-fuel, ...; one
-- vehicle, opts.vehicle). opts.from, opts.to (YYYY-MM-DD, both included, in
-- each vehicle's timezone): only the events of those days (jsonl and CSV).
function M.export(db, ctx, sink, opts)
  opts = opts or {}
  local format = opts.format or "jsonl"
  local csv = formats.get(format) and formats.get(format).export
  if format ~= "jsonl" and format ~= "backup" and not csv then
    return nil, ("unknown export format %q (jsonl, backup, %s)"):format(format,
      table.concat(formats.export_names(), ", ")), "22023"
  end
  if csv and not opts.vehicle then
    return nil, ("a %s file holds one vehicle's records: name the vehicle (--vehicle)"):format(format), "22023"
  end
  if format == "backup" and (opts.vehicle or opts.from or opts.to) then
    return nil, ("a backup holds the whole tenant: --%s does not apply"):format(opts.vehicle and "vehicle"
      or opts.from and "from" or "to"), "22023"
  end
  local outer = db:transaction_status() == "idle"
  -- One snapshot for the whole file.
  if outer then motomind.assert(db:exec("BEGIN ISOLATION LEVEL REPEATABLE READ READ ONLY")) end
  local file
  -- (a raise that is not a motomind error, a bug, still ends the snapshot)
  local ok, n, message, sqlstate, detail = pcall(motomind.try, db.as, db, ctx, function()
    local unit = opts.vehicle and export_vehicle(db, ctx, opts.vehicle)
    local period = export_period(db, opts)
    local write
    write, file = open_sink(sink)
    if format == "backup" then return export_backup(db, write) end
    if format == "jsonl" then return export_events(db, write, false, opts.vehicle ~= nil, period) end
    return export_csv(db, csv, unit, period, write)
  end)
  if outer then db:exec(ok and n and "COMMIT" or "ROLLBACK") end
  if file then file:close() end
  if not ok then error(n, 0) end
  if not n then return nil, message, sqlstate, detail or {} end
  return n
end

return M
