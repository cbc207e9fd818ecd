--- Bulk import and export: JSON lines of events, whole-tenant backups, and
-- the CSV exports of other apps (formats.lua). The heavy path is C: the file
-- is streamed, each record parsed and its payload validated by the codec,
-- and rows sent through COPY without a Lua table per row.
local motomind = require "motomind"
local core = require "motomind.core"
local payload = require "motomind.payload"
local formats = require "motomind.formats"

local M = {}

local STAGE = [[
  CREATE TEMP TABLE motomind_import (line bigint, id text, vehicle_id text, type text, occurred_at text,
    mileage text, payload text, notes text, correction text, corrects_id text, corrects_occurred_at text)
  ON COMMIT DROP]]

-- Staged lines $2..$3 into the events of tenant $1. Rows without an id get
-- one derived from their content, so importing a file twice adds nothing.
local function events_sql(db)
  return [[
    INSERT INTO ]] .. db:qualify("vehicle_events") .. [[ (tenant_id, id, vehicle_id, type, occurred_at, mileage,
           payload, notes, correction, corrects_id, corrects_occurred_at)
    SELECT $1::uuid, coalesce(s.id::uuid, md5(concat_ws('|', $1::text, s.vehicle_id, s.type,
             (s.occurred_at::timestamptz AT TIME ZONE 'UTC')::text, s.mileage, s.payload, s.notes,
             s.correction, s.corrects_id))::uuid),
           s.vehicle_id::uuid, s.type, s.occurred_at::timestamptz, s.mileage::numeric, s.payload::jsonb,
           s.notes, s.correction, s.corrects_id::uuid, s.corrects_occurred_at::timestamptz
      FROM pg_temp.motomind_import s WHERE s.line BETWEEN $2::bigint AND $3::bigint ORDER BY s.line
    ON CONFLICT DO NOTHING]]
end

local RETRYABLE = { ["40001"] = true, ["40P01"] = true, ["08006"] = true, ["57P01"] = true }

local function fail(message, sqlstate)
  error(setmetatable({ message = message, sqlstate = sqlstate }, motomind.Error), 0)
end

-- Runs sql (an INSERT of staged lines $2..$3 for tenant $1) over lo..hi;
-- when the database refuses, halves the range until each refused line stands
-- alone, and rejects it with the database's message. Returns the rows added.
local function insert_range(db, sql, tenant, lo, hi, report)
  assert(db:exec("SAVEPOINT motomind_import"))
  local n, err, sqlstate = db:exec(sql, tenant, lo, hi)
  if n then
    assert(db:exec("RELEASE SAVEPOINT motomind_import"))
    return n
  end
  if RETRYABLE[sqlstate] or db:status() ~= "ok" then fail(err, sqlstate) end
  assert(db:exec("ROLLBACK TO SAVEPOINT motomind_import"))
  assert(db:exec("RELEASE SAVEPOINT motomind_import"))
  if lo == hi then
    report.rejected[#report.rejected + 1] = { file = report.file, line = lo, reason = err, sqlstate = sqlstate }
    return 0
  end
  local mid = math.floor((lo + hi) / 2)
  return insert_range(db, sql, tenant, lo, mid, report) + insert_range(db, sql, tenant, mid + 1, hi, report)
end

local function write_errors(path, rejected)
  local f = assert(io.open(path, "w"))
  for _, r in ipairs(rejected) do
    f:write(motomind.json.encode { file = r.file, line = r.line, column = r.column, reason = r.reason,
      sqlstate = r.sqlstate }, "\n")
  end
  f:close()
end

-- A progress line on stderr: records, records/s and the time left.
local function terminal_progress(path)
  local f = io.open(path, "rb")
  local total = f and f:seek("end") or 0
  if f then f:close() end
  local started = os.time()
  return function(records, bytes)
    local elapsed = math.max(os.time() - started, 1)
    local left = bytes > 0 and (total - bytes) * elapsed / bytes or 0
    io.stderr:write(("\r%s: %d records, %d records/s, %ds left  "):format(path, records,
      math.floor(records / elapsed), math.floor(left)))
  end
end

-- ---- backups: the tenant's records besides events ------------------------

-- The kinds of record a backup holds, in the order they are restored (each
-- may reference the ones before it).
local KINDS = { { "garage", "garages" }, { "fleet_group", "fleet_groups" }, { "vehicle", "vehicles" },
  { "reminder", "reminders" } }
local BACKUP_VERSION = 1
local AUDIT = "{tenant_id,created_at,created_by,updated_at,updated_by,deleted_at,deleted_by}"

-- The columns a backup carries for a table: all but the tenant and the
-- audit stamps (the database stamps restored rows itself).
local function columns(db, tbl)
  local rows = motomind.assert(db:query([[
    SELECT attname FROM pg_attribute WHERE attrelid = $1::regclass AND attnum > 0 AND NOT attisdropped
       AND attname <> ALL ($2::text[]) ORDER BY attnum]], db:qualify(tbl), AUDIT))
  local names = {}
  for i, r in ipairs(rows) do names[i] = r.attname end
  return names
end

local RECORDS = [[
  CREATE TEMP TABLE motomind_import_records ON COMMIT DROP AS
  SELECT line, data->>'record' AS kind, data FROM jsonb_to_recordset($1::jsonb) AS r(line bigint, data jsonb)]]

-- Restores a backup's records (staged from on_record) before its events:
-- unknown kinds and fields are refused by line, the rest inserted kind by
-- kind, bisected like events when the database refuses some.
local function restore_records(db, ctx, staged, report)
  local parts = {}
  for i, r in ipairs(staged) do parts[i] = '{"line":' .. r[1] .. ',"data":' .. r[2] .. '}' end
  motomind.assert(db:exec(RECORDS, "[" .. table.concat(parts, ",") .. "]"))
  local header = db:row("SELECT line, data FROM pg_temp.motomind_import_records WHERE kind = 'backup'")
  if not header or header.data.version ~= BACKUP_VERSION then
    fail(report.file .. ": not a motomind backup of version " .. BACKUP_VERSION, "22023")
  end
  local known = { "backup" }
  for _, k in ipairs(KINDS) do known[#known + 1] = k[1] end
  for _, r in ipairs(motomind.assert(db:query("DELETE FROM pg_temp.motomind_import_records " ..
      "WHERE kind IS NULL OR kind <> ALL ($1::text[]) RETURNING line, kind", "{" .. table.concat(known, ",") .. "}"))) do
    report.rejected[#report.rejected + 1] = { file = report.file, line = r.line,
      reason = ("record: unknown kind %s"):format(motomind.json.encode(r.kind)) }
  end
  report.restored = {}
  for _, k in ipairs(KINDS) do
    local kind, tbl = k[1], k[2]
    local cols = columns(db, tbl)
    local list = table.concat(cols, ", ")
    -- records with a field the table lacks: refused, with the first such field
    local rows = motomind.assert(db:query([[
      DELETE FROM pg_temp.motomind_import_records s
       WHERE s.kind = $1 AND EXISTS (SELECT 1 FROM jsonb_object_keys(s.data) k WHERE k <> 'record' AND k <> ALL ($2::text[]))
      RETURNING s.line, (SELECT min(k) FROM jsonb_object_keys(s.data) k WHERE k <> 'record' AND k <> ALL ($2::text[])) AS k]],
      kind, "{" .. list .. "}"))
    for _, r in ipairs(rows) do
      report.rejected[#report.rejected + 1] = { file = report.file, line = r.line, reason = r.k .. ": unknown field" }
    end
    local sql = ("INSERT INTO %s (tenant_id, %s) SELECT $1::uuid, %s FROM pg_temp.motomind_import_records s, " ..
      "jsonb_populate_record(NULL::%s, s.data) r WHERE s.kind = '%s' AND s.line BETWEEN $2 AND $3 " ..
      "ORDER BY s.line ON CONFLICT DO NOTHING"):format(db:qualify(tbl), list, "r." .. table.concat(cols, ", r."),
      db:qualify(tbl), kind)
    report.restored[kind] = #staged > 0 and insert_range(db, sql, ctx.tenant, 1, staged[#staged][1], report) or 0
  end
end

-- The vehicle a CSV file's records belong to (its units and timezone).
local function csv_vehicle(db, ctx, id)
  if not id then fail("a CSV export holds one vehicle's records: name the vehicle (--vehicle)", "22023") end
  local v = db:row("SELECT odometer_unit, timezone FROM " .. db:qualify("vehicles") ..
    " WHERE tenant_id = $1 AND id = $2::uuid AND deleted_at IS NULL", ctx.tenant, id)
  if not v then fail("vehicle " .. id .. ": no such vehicle in this tenant", "23503") end
  return v
end

--- import(db, ctx, path, opts) -> report | nil, message, sqlstate, report.
-- opts: format (jsonl, backup, a CSV format of formats.lua, or a CSV spec
-- table of one's own as src/csv.c describes; by default recognised from the
-- first line), vehicle (every event's vehicle; required
-- for CSV formats), unit / currency / dates (CSV: the volume unit, the
-- currency, "mdy" or "dmy"), atomic, errors (a path: refused records as JSON
-- lines), progress (a function(records, bytes_read), or true for a line on
-- stderr; by default shown only when stderr is a terminal).
-- report = { file, format, records, staged, inserted, duplicates,
--   rejected = {{ file, line, column, reason, sqlstate }}, restored = { kind = n } }.
-- Valid records land and every refused one is reported; atomic = true lands
-- nothing unless every record is good. One transaction: an import cut off by
-- a lost connection leaves nothing, and the rerun completes it with no
-- duplicates. CSV dates are read in the vehicle's timezone.
function M.import(db, ctx, path, opts)
  opts = opts or {}
  local format, err = opts.format, nil
  local custom = type(format) == "table" and format -- a CSV spec of one's own (see src/csv.c)
  if custom then format = "csv" end
  if not format then
    format, err = formats.detect(path)
    if not format then return nil, err, "22023" end
  end
  if format ~= "jsonl" and format ~= "backup" and not formats.get(format) and not custom then
    return nil, ("unknown format %q (one of %s)"):format(format, table.concat(formats.names(), ", ")), "22023"
  end
  if opts.errors then -- a path we cannot write is said before anything lands
    local f, ferr = io.open(opts.errors, "a")
    if not f then return nil, "errors: " .. ferr, "58030" end
    f:close()
  end
  local report = { file = path, format = format, records = 0, staged = 0, inserted = 0, duplicates = 0,
    rejected = {} }
  local staged_records = {}
  local progress = opts.progress
  if progress == nil then progress = core.isatty(2) end
  local drawn = progress == true
  if drawn then progress = terminal_progress(path) end
  local ok, e = pcall(db.as, db, ctx, function()
    local csv
    if formats.get(format) or custom then
      local vehicle = csv_vehicle(db, ctx, opts.vehicle)
      motomind.assert(db:exec("SELECT set_config('TimeZone', $1, true)", vehicle.timezone))
      csv = custom or formats.get(format).spec { unit = opts.unit, currency = opts.currency, dates = opts.dates,
        vehicle = vehicle }
    end
    motomind.assert(db:exec(STAGE))
    local staged, records = motomind.assert(db:copy_events("COPY pg_temp.motomind_import FROM STDIN", path,
      payload.codec(), {
        csv = csv, vehicle = opts.vehicle, on_progress = progress or nil,
        on_reject = function(line, reason, column)
          report.rejected[#report.rejected + 1] = { file = path, line = line, column = column, reason = reason }
        end,
        on_record = format == "backup" and function(line, text)
          staged_records[#staged_records + 1] = { line, text }
        end or nil,
      }))
    if drawn then io.stderr:write("\n") end
    report.staged, report.records = staged, records
    if format == "backup" then restore_records(db, ctx, staged_records, report) end
    local refused = #report.rejected
    if staged > 0 then
      -- CSV records may span lines: the range is the staged lines'.
      local last = db:value("SELECT max(line) FROM pg_temp.motomind_import")
      motomind.assert(db:exec("CREATE INDEX ON pg_temp.motomind_import (line)"))
      report.inserted = insert_range(db, events_sql(db), ctx.tenant, 1, last, report)
    end
    report.duplicates = staged - report.inserted - (#report.rejected - refused)
    table.sort(report.rejected, function(a, b) return a.line < b.line end)
    if opts.atomic and #report.rejected > 0 then
      fail(("%s: %d of %d records refused; nothing imported (atomic)"):format(path, #report.rejected,
        report.records), "23514")
    end
  end)
  if opts.errors then write_errors(opts.errors, report.rejected) end
  if not ok then
    if getmetatable(e) == motomind.Error then return nil, e.message, e.sqlstate, report end
    error(e, 0)
  end
  return report
end

-- ---- export -------------------------------------------------------------

-- A sink function (and the file to close) from a path or a function.
local function open_sink(sink)
  if type(sink) ~= "string" then return sink end
  local file = assert(io.open(sink, "w"))
  return function(chunk) file:write(chunk) end, file
end

-- COPY of one JSON text per row, as lines: CSV with a delimiter and a quote
-- that JSON text never holds, so each line is the JSON text as is (COPY's
-- text format would escape its backslashes).
local function copy_json_lines(db, query, sink)
  return motomind.assert(db:copy_out("COPY (" .. query ..
    ") TO STDOUT WITH (FORMAT csv, DELIMITER E'\\x02', QUOTE E'\\x01')", sink))
end

-- COPY takes no parameters: the tenant (and vehicle) come from the context.
local TENANT = "nullif(current_setting('motomind.tenant_id', true), '')::uuid"

local function events_query(db, live_vehicles_only)
  return [[
    SELECT jsonb_strip_nulls(jsonb_build_object('id', e.id, 'vehicle_id', e.vehicle_id, 'type', e.type,
            'occurred_at', e.occurred_at, 'mileage', e.mileage, 'payload', e.payload, 'notes', e.notes,
            'correction', e.correction, 'corrects_id', e.corrects_id,
            'corrects_occurred_at', e.corrects_occurred_at))::text
      FROM ]] .. db:qualify("vehicle_events") .. [[ e
     WHERE e.tenant_id = ]] .. TENANT .. (live_vehicles_only and [[
       AND EXISTS (SELECT 1 FROM ]] .. db:qualify("vehicles") .. [[ v
                    WHERE v.tenant_id = e.tenant_id AND v.id = e.vehicle_id AND v.deleted_at IS NULL)]] or "") .. [[
     ORDER BY e.vehicle_id, e.occurred_at, e.created_at, e.id]]
end

-- Parents before children, so a restore can insert them in file order.
local ORDER = {
  fleet_group = [[(WITH RECURSIVE d AS (
      SELECT g.id, 0 AS depth FROM %s g WHERE g.tenant_id = t.tenant_id AND g.parent_id IS NULL
      UNION ALL SELECT g.id, d.depth + 1 FROM %s g JOIN d ON g.parent_id = d.id AND g.tenant_id = t.tenant_id)
    SELECT max(depth) FROM d WHERE d.id = t.id), t.id]],
}

local function export_backup(db, sink)
  sink(motomind.json.encode { record = "backup", version = BACKUP_VERSION } .. "\n")
  local n = 0
  for _, k in ipairs(KINDS) do
    local kind, tbl = k[1], k[2]
    local order = ORDER[kind] and ORDER[kind]:format(db:qualify(tbl), db:qualify(tbl)) or "t.id"
    n = n + copy_json_lines(db, ("SELECT jsonb_strip_nulls(jsonb_build_object('record', '%s') || " ..
      "(to_jsonb(t) - '%s'::text[]))::text FROM %s t WHERE t.tenant_id = %s AND t.deleted_at IS NULL " ..
      "ORDER BY %s"):format(kind, AUDIT, db:qualify(tbl), TENANT, order), sink)
  end
  return n + copy_json_lines(db, events_query(db, true), sink)
end

-- LubeLogger's CSV columns, from the vehicle's effective timeline (dates in
-- its timezone, as LubeLogger's en-US MM/DD/YYYY; LubeLogger keeps no time).
local DATE = [[to_char(e.occurred_at AT TIME ZONE v.timezone, 'MM/DD/YYYY') AS "Date"]]
local TAGS = [[e.payload->'extra'->>'tags' AS "Tags"]]
local LUBELOGGER = {
  ["lubelogger-fuel"] = { "fuel", DATE .. [[, trim_scale(e.mileage) AS "Odometer",
    e.payload->'volume' AS "FuelConsumed",
    coalesce((e.payload->>'total')::numeric,
             round((e.payload->>'volume')::numeric * (e.payload->>'price_per_unit')::numeric, 2)) AS "Cost",
    NULL AS "FuelEconomy",
    CASE WHEN coalesce((e.payload->>'full')::boolean, true) THEN 'True' ELSE 'False' END AS "IsFillToFull",
    CASE WHEN coalesce((e.payload->>'missed')::boolean, false) THEN 'True' ELSE 'False' END AS "MissedFuelUp",
    e.notes AS "Notes", ]] .. TAGS },
  ["lubelogger-service"] = { "maintenance", DATE .. [[, e.payload->>'service_type' AS "Description",
    (e.payload->>'total')::numeric AS "Cost", e.notes AS "Notes", trim_scale(e.mileage) AS "Odometer", ]] .. TAGS },
  ["lubelogger-odometer"] = { "odometer", DATE .. [[,
    trim_scale(coalesce(lag(e.mileage) OVER (ORDER BY e.occurred_at, e.id), e.mileage)) AS "InitialOdometer",
    trim_scale(e.mileage) AS "Odometer", e.notes AS "Notes", ]] .. TAGS },
}

local function export_lubelogger(db, format, vehicle, sink)
  if not vehicle then fail("a LubeLogger CSV holds one vehicle's records: name the vehicle (--vehicle)", "22023") end
  motomind.assert(db:exec("SELECT set_config('motomind.export_vehicle', $1::uuid::text, true)", vehicle))
  local type, cols = LUBELOGGER[format][1], LUBELOGGER[format][2]
  return motomind.assert(db:copy_out("COPY (SELECT " .. cols .. " FROM " ..
    db:qualify("vehicle_events_effective") .. " e JOIN " .. db:qualify("vehicles") ..
    " v ON v.tenant_id = e.tenant_id AND v.id = e.vehicle_id WHERE e.tenant_id = " .. TENANT ..
    " AND e.vehicle_id = current_setting('motomind.export_vehicle')::uuid AND e.type = '" .. type ..
    "' ORDER BY e.occurred_at, e.id) TO STDOUT WITH (FORMAT csv, HEADER)", sink))
end

--- export(db, ctx, sink, opts) -> records | nil, message, sqlstate.
-- sink: a path, or a function(chunk). opts.format: "jsonl" (default: every
-- event of the tenant, corrections and voids included, by vehicle and time),
-- "backup" (the tenant's live garages, fleet groups, vehicles, reminders and
-- their vehicles' events, read in one snapshot), or "lubelogger-fuel" /
-- "lubelogger-service" / "lubelogger-odometer" (one vehicle, opts.vehicle).
-- Streamed through COPY TO: constant memory.
function M.export(db, ctx, sink, opts)
  opts = opts or {}
  local format = opts.format or "jsonl"
  if format ~= "jsonl" and format ~= "backup" and not LUBELOGGER[format] then
    return nil, ("unknown export format %q (jsonl, backup, lubelogger-fuel, lubelogger-service, " ..
      "lubelogger-odometer)"):format(format), "22023"
  end
  local write, file = open_sink(sink)
  local outer = db:transaction_status() == "idle"
  -- One snapshot for the whole file.
  if outer then motomind.assert(db:exec("BEGIN ISOLATION LEVEL REPEATABLE READ READ ONLY")) end
  local ok, n = pcall(db.as, db, ctx, function()
    if format == "backup" then return export_backup(db, write) end
    if format == "jsonl" then return copy_json_lines(db, events_query(db, false), write) end
    return export_lubelogger(db, format, opts.vehicle, write)
  end)
  if outer then db:exec(ok and "COMMIT" or "ROLLBACK") end
  if file then file:close() end
  if not ok then
    if getmetatable(n) == motomind.Error then return nil, n.message, n.sqlstate end
    error(n, 0)
  end
  return n
end

return M
