--- Bulk import: JSON lines of events, whole-tenant backups (backup.lua) and
-- the CSV exports of other apps (formats.lua). The path runs one way: this
-- module streams the file through the C driver (src/import.c: a source reads
-- each record, the event check of src/event.c validates it, rows go through
-- COPY without a Lua table per row), straight into the events table when it
-- can (copy_direct), else into a staging table inserted in one statement;
-- only when the database refuses it are the staged rows screened set-based.
local motomind = require "motomind"
local core = require "motomind.core"
local event = require "motomind.event"
local payload = require "motomind.payload"
local formats = require "motomind.formats"
local layout = require "motomind.layout"
local backup = require "motomind.backup"
local reminders = require "motomind.reminders"
local imports = require "motomind.imports"

local M = {}

-- The id of an event without one is derived from its content: md5 of
-- concat_ws('|', the tenant, these fields' staged texts, a time in UTC),
-- so importing a file twice adds nothing. Kept as written: changing it would
-- give re-imported files new ids (fields added later come last: concat_ws
-- skips NULLs, so a row without them keeps its id). C computes it
-- (src/import.c) from this list for the direct path and typed staging, the
-- SQL (CONTENT_ID) for rows staged as texts.
local CONTENT = { "vehicle_id", "type", "occurred_at", "mileage", "payload", "notes", "correction", "corrects_id",
  "location", "tags" }

-- CONTENT's id of staged row s (tenant $1): the id it gives, or the one C
-- gave it (typed staging gives every row without an id one), or computed
-- here: from C's texts around the one time (a CSV staged typed, whose
-- zoneless time only PostgreSQL places in UTC: content_prefix, the time,
-- content_suffix), or from the staged texts.
local CONTENT_ID = (function()
  local types, texts, time = {}, {}, nil
  for _, f in ipairs(event.FIELDS) do types[f.name] = f.type end
  for i, name in ipairs(CONTENT) do
    texts[i] = types[name] == "timestamptz" and ("(s.%s::timestamptz AT TIME ZONE 'UTC')::text"):format(name)
      or "s." .. name
    if types[name] == "timestamptz" then time = texts[i] end
  end
  return ("coalesce(s.id::uuid, s.content_id::uuid, md5(coalesce(s.content_prefix || '|' || %s || s.content_suffix, " ..
    "concat_ws('|', $1::text, %s)))::uuid)"):format(time, table.concat(texts, ", "))
end)()

-- The upper bound of a range of every staged line (a bigint's text: Lua
-- 5.4's and LuaJIT's numbers both bind it exactly).
local EVERY_LINE = "9223372036854775807"

-- Staged lines $2..$3 into the events of tenant $1, in import batch $4:
-- skipping duplicates (the first of a file's lines wins), or, plain, refused
-- by the first duplicate (no sort, no speculative insertion per row).
local function events_sql(db, plain)
  local casts = event.casts("s"):gsub("^s%.id::uuid", function() return CONTENT_ID end)
  return ("INSERT INTO %s (tenant_id, import_batch_id, %s) SELECT $1::uuid, $4::uuid, %s FROM pg_temp.motomind_import s " ..
    "WHERE s.line BETWEEN $2::bigint AND $3::bigint%s")
    :format(db:qualify("vehicle_events"), event.columns(), casts, plain and "" or " ORDER BY s.line ON CONFLICT DO NOTHING")
end

local RETRYABLE = { ["40001"] = true, ["40P01"] = true, ["08006"] = true, ["57P01"] = true }

local function reject(report, line, reason, sqlstate)
  report.rejected[#report.rejected + 1] = { file = report.file, line = line, reason = reason, sqlstate = sqlstate }
end

-- An earlier import of the same bytes with other options is refused,
-- naming it; with replace it is undone first (in the import's
-- transaction). Returns the undone batches { batch, voided, corrected }.
local function replace_earlier(db, ctx, path, checksum, options, replace)
  local undone = {}
  local earlier = motomind.assert(db:query("SELECT id, created_at, options FROM " .. db:qualify("import_batches") ..
    " WHERE tenant_id = $1 AND checksum = $2 AND undone_at IS NULL AND options IS DISTINCT FROM $3::jsonb" ..
    " ORDER BY created_at", ctx.tenant, checksum, options))
  for _, b in ipairs(earlier) do
    if not replace then
      motomind.raise(("%s: these bytes were imported as batch %s on %s with other options (%s); --replace undoes " ..
        "that import and imports the file again"):format(path, b.id, b.created_at, motomind.json.encode(b.options)),
        "23505", { batch = b.id })
    end
    undone[#undone + 1] = motomind.assert(imports.undo(db, ctx, b.id))
  end
  return undone
end

-- fn() in a savepoint: its two results, or (when its first is falsy) nil
-- and the database's refusal (message, sqlstate), its work undone (raised
-- instead when the transaction cannot go on).
local function in_savepoint(db, fn)
  assert(db:exec("SAVEPOINT motomind_import"))
  local a, b, c = fn()
  if a then
    assert(db:exec("RELEASE SAVEPOINT motomind_import"))
    return a, b
  end
  if RETRYABLE[c] or db:status() ~= "ok" then motomind.raise(b, c) end
  assert(db:exec("ROLLBACK TO SAVEPOINT motomind_import"))
  assert(db:exec("RELEASE SAVEPOINT motomind_import"))
  return nil, b, c
end

local unpack = table.unpack or unpack

-- One try of sql (an INSERT of staged lines $2..$3 for tenant $1, ... its
-- further parameters): the rows added, or nil and the database's refusal.
local function attempt(db, sql, tenant, lo, hi, ...)
  local args = { n = select("#", ...), ... }
  return in_savepoint(db, function() return db:exec(sql, tenant, lo, hi, unpack(args, 1, args.n)) end)
end

--- insert_range(db, sql, tenant, lo, hi, report, ...) runs sql (an INSERT of
-- staged lines $2..$3 for tenant $1, ... its further parameters) over lo..hi; when the database refuses,
-- halves the range until each refused line stands alone, and rejects it with
-- the database's message. Returns the rows added. The screens below leave it
-- what they cannot foresee (corrections, values the database cannot read),
-- so a file's refusals cost O(n) statements only in those cases.
function M.insert_range(db, sql, tenant, lo, hi, report, ...)
  local n, err, sqlstate = attempt(db, sql, tenant, lo, hi, ...)
  if n then return n end
  if lo == hi then
    reject(report, lo, err, sqlstate)
    return 0
  end
  local mid = math.floor((lo + hi) / 2)
  return M.insert_range(db, sql, tenant, lo, mid, report, ...) + M.insert_range(db, sql, tenant, mid + 1, hi, report, ...)
end

-- The vehicles of a set (id_list) passed as $1, as uuid[].
local VEHICLES_PARAM = "ARRAY(SELECT jsonb_array_elements_text($1::jsonb)::uuid)"

-- The keys of a set, as a JSON array.
local function id_list(set)
  local list = setmetatable({}, motomind.json.array_mt)
  for id in pairs(set) do list[#list + 1] = id end
  return list
end

-- Permissions, once per vehicle: every staged line of a vehicle the user
-- cannot see or write is refused with the reason, before any insert. The
-- vehicles are the set C noted while staging (typed staging), or read
-- from the staged lines (a DISTINCT over them: 0.4 s at a million).
-- Returns the number of lines refused.
local function screen_vehicles(db, report, vehicles)
  local sql = ([[
    WITH r AS (SELECT * FROM %s(%s))
    DELETE FROM pg_temp.motomind_import s USING r WHERE s.vehicle_id::uuid = r.vehicle_id
    RETURNING s.line, r.reason, r.sqlstate]]):format(db:qualify("refused_event_vehicles"), vehicles and VEHICLES_PARAM
      or "(SELECT array_agg(DISTINCT vehicle_id::uuid) FROM pg_temp.motomind_import)")
  local rows = motomind.assert(vehicles and db:query(sql, id_list(vehicles)) or db:query(sql))
  for _, r in ipairs(rows) do reject(report, r.line, r.reason, r.sqlstate) end
  return #rows
end

-- The mileage rule, set-based: the staged readings (corrections aside) are
-- merged with each vehicle's effective readings around them, in time order
-- (ties by mileage, as the database's rule). A reading above a later
-- existing one is refused; of the rest, a reading below any earlier one
-- (existing or staged) is refused: the earliest reading wins, whatever the
-- file's line order. A row already imported (same content id) is left to be
-- counted as a duplicate. Returns false when the staged texts cannot be read
-- as their types (the insert then finds and reports those lines itself).
local function screen_mileage(db, tenant, report)
  local sql = [[
    WITH staged AS MATERIALIZED (
      SELECT s.line, s.vehicle_id::uuid AS vehicle_id, s.occurred_at::timestamptz AS at, s.mileage::numeric AS mileage
        FROM pg_temp.motomind_import s WHERE s.mileage IS NOT NULL AND s.correction IS NULL),
    bounds AS MATERIALIZED (
      SELECT t.vehicle_id, v.timezone AS tz,
        coalesce((SELECT e.occurred_at FROM %s e WHERE e.tenant_id = $1 AND e.vehicle_id = t.vehicle_id
                    AND e.mileage IS NOT NULL AND e.occurred_at < t.lo ORDER BY e.occurred_at DESC LIMIT 1),
                 '-infinity') AS from_at,
        coalesce((SELECT e.occurred_at FROM %s e WHERE e.tenant_id = $1 AND e.vehicle_id = t.vehicle_id
                    AND e.mileage IS NOT NULL AND e.occurred_at > t.hi ORDER BY e.occurred_at LIMIT 1),
                 'infinity') AS to_at
        FROM (SELECT vehicle_id, min(at) AS lo, max(at) AS hi FROM staged GROUP BY vehicle_id) t
        JOIN %s v ON v.tenant_id = $1 AND v.id = t.vehicle_id),
    readings AS (
      SELECT s.line, s.vehicle_id, s.at, s.mileage FROM staged s
      UNION ALL
      SELECT NULL, e.vehicle_id, e.occurred_at, e.mileage FROM bounds b JOIN %s e
          ON e.tenant_id = $1 AND e.vehicle_id = b.vehicle_id AND e.mileage IS NOT NULL
         AND e.occurred_at BETWEEN b.from_at AND b.to_at),
    upper AS (
      SELECT r.*, min(ARRAY[r.mileage, extract(epoch FROM r.at)]) FILTER (WHERE r.line IS NULL)
               OVER (PARTITION BY r.vehicle_id ORDER BY r.at DESC, r.mileage DESC
                     ROWS BETWEEN UNBOUNDED PRECEDING AND 1 PRECEDING) AS later
        FROM readings r),
    lower AS (
      SELECT u.*, max(ARRAY[u.mileage, extract(epoch FROM u.at)])
               OVER (PARTITION BY u.vehicle_id ORDER BY u.at, u.mileage
                     ROWS BETWEEN UNBOUNDED PRECEDING AND 1 PRECEDING) AS earlier
        FROM upper u WHERE u.line IS NULL OR u.later IS NULL OR u.mileage <= u.later[1]),
    refused AS (
      SELECT u.line, u.vehicle_id, u.at, u.mileage, u.later[1] AS other, to_timestamp(u.later[2]) AS other_at,
             'above' AS side
        FROM upper u WHERE u.line IS NOT NULL AND u.mileage > u.later[1]
      UNION ALL
      SELECT l.line, l.vehicle_id, l.at, l.mileage, l.earlier[1], to_timestamp(l.earlier[2]), 'below'
        FROM lower l WHERE l.line IS NOT NULL AND l.mileage < l.earlier[1])
    DELETE FROM pg_temp.motomind_import s USING refused r JOIN bounds b ON b.vehicle_id = r.vehicle_id
     WHERE s.line = r.line
       AND NOT EXISTS (SELECT 1 FROM %s e WHERE e.tenant_id = $1 AND e.id = ]] .. CONTENT_ID .. [[
                          AND e.occurred_at = s.occurred_at::timestamptz)
    RETURNING s.line, format('mileage %%s on %%s is %%s %%s recorded on %%s', trim_scale(r.mileage),
      to_char(r.at AT TIME ZONE b.tz, 'YYYY-MM-DD'), r.side, trim_scale(r.other),
      to_char(r.other_at AT TIME ZONE b.tz, 'YYYY-MM-DD')) AS reason]]
  local effective = db:qualify("vehicle_events_effective")
  sql = sql:format(effective, effective, db:qualify("vehicles"), effective, db:qualify("vehicle_events"))
  motomind.assert(db:exec("SAVEPOINT motomind_screen"))
  local rows, err, sqlstate = db:query(sql, tenant)
  if not rows then
    if RETRYABLE[sqlstate] or db:status() ~= "ok" then motomind.raise(err, sqlstate) end
    motomind.assert(db:exec("ROLLBACK TO SAVEPOINT motomind_screen"))
    motomind.assert(db:exec("RELEASE SAVEPOINT motomind_screen"))
    return false
  end
  motomind.assert(db:exec("RELEASE SAVEPOINT motomind_screen"))
  for _, r in ipairs(rows) do reject(report, r.line, r.reason, "23514") end
  return true
end

--- Whether a JSON-lines file is first tried straight into the events table
-- (copy_direct); false stages every file (the specs compare the two paths).
M.direct = true

--- Whether a JSON-lines file that is staged is first staged typed
-- (stage_typed); false stages it as texts (the specs compare the two).
M.typed_staging = true

--- Whether the rows C makes typed (the direct COPY, typed staging) go in
-- COPY's binary format (PostgreSQL reads no text for their UUIDs, times
-- and mileages); false sends them as text (the specs compare the two).
M.binary = true

-- " (FORMAT binary)" when M.binary, for the COPY statements of typed rows.
local function binary_format()
  return M.binary and " (FORMAT binary)" or ""
end

--- Events per chunk of a typed staging (stage_chunked); false stages and
-- inserts the file in one piece (the specs compare the two).
M.chunk_rows = 20000

-- The optimistic path of a JSON-lines file: its events COPYed straight into
-- the events table in a savepoint, ids filled in by C as CONTENT_ID would.
-- Only for a writer the tables' row-level security does not apply to (a
-- superuser, the embedded default's role, a BYPASSRLS maintenance role):
-- PostgreSQL refuses COPY FROM where it applies, so the application role's
-- imports are staged. Whatever the staged path would treat otherwise undoes
-- it and returns nil (the file is then staged): a record the C check
-- refuses or whose time C leaves to PostgreSQL, a row the database refuses
-- (a duplicate of an earlier import, a rule; an event of an undone import
-- too, whose voided row keeps its id: staged, it comes back under another
-- id), a vehicle the screen refuses (deleted, or not writable by the
-- context's user). Returns rows, records.
local function copy_direct(db, ctx, path, opts, report, progress)
  if not M.direct or motomind.assert(db:row("SELECT row_security_active($1::regclass) AS active",
    db:qualify("vehicle_events"))).active then return nil end
  local sql = ("COPY %s (tenant_id, import_batch_id, %s) FROM STDIN%s"):format(db:qualify("vehicle_events"),
    event.columns(), binary_format())
  local screen = "SELECT EXISTS (SELECT 1 FROM " .. db:qualify("refused_event_vehicles") .. "(" .. VEHICLES_PARAM .. "))"
  local vehicles = {}
  return in_savepoint(db, function()
    local sent, records, sqlstate = db:copy_events(sql, path, payload.codec(), {
      on_reject = function() end, on_progress = progress or nil, vehicle = opts.vehicle, binary = M.binary,
      direct = { tenant = ctx.tenant, batch = report.batch, content = CONTENT, vehicles = vehicles } })
    if sent == nil then return nil, records, sqlstate end -- the database refused a row
    if not sent or records == 0 then return nil end
    local refused, err, state = db:value(screen, id_list(vehicles))
    if refused ~= false then return nil, err, state end -- (a refused vehicle: staged, to be reported)
    return sent, records
  end)
end

-- Rows of an undone import come back when imported again: a staged row
-- whose content id is an event voided by the undo of its batch takes the id
-- md5(that id | that batch), following the chain through later undos, so
-- re-importing undone bytes adds them again (once: the next import of the
-- same bytes finds them). Events amended since the undo kept theirs, and stay
-- duplicates. Only a tenant with an undone batch (has_undone) needs it.
local function has_undone(db, tenant)
  return db:value("SELECT EXISTS (SELECT 1 FROM " .. db:qualify("import_batches") ..
    " WHERE tenant_id = $1 AND undone_at IS NOT NULL)", tenant) == true
end

local function reissue_undone(db, tenant)
  local sql = ([[
    WITH RECURSIVE chain AS (
      SELECT s.line, ]] .. CONTENT_ID .. [[ AS id, s.occurred_at::timestamptz AS at, 0 AS depth
        FROM pg_temp.motomind_import s WHERE s.id IS NULL
      UNION ALL
      SELECT c.line, md5(c.id::text || '|' || e.import_batch_id::text)::uuid, c.at, c.depth + 1
        FROM chain c JOIN %s e ON e.tenant_id = $1::uuid AND e.id = c.id AND e.occurred_at = c.at
        JOIN %s b ON b.tenant_id = $1::uuid AND b.id = e.import_batch_id AND b.undone_at IS NOT NULL
       WHERE EXISTS (SELECT 1 FROM %s v WHERE v.tenant_id = $1::uuid AND v.corrects_id = e.id
                        AND v.corrects_occurred_at = e.occurred_at AND v.correction = 'void'))
    UPDATE pg_temp.motomind_import s SET id = c.id
      FROM (SELECT DISTINCT ON (line) line, id, depth FROM chain ORDER BY line, depth DESC) c
     WHERE s.line = c.line AND c.depth > 0]]):format(db:qualify("vehicle_events"), db:qualify("import_batches"),
    db:qualify("vehicle_events"))
  motomind.assert(db:exec("SAVEPOINT motomind_reissue"))
  local ok, err, sqlstate = db:exec(sql, tenant)
  -- texts the casts cannot read (data exceptions, class 22): the insert finds and reports those lines
  if not ok and (not tostring(sqlstate):match("^22") or db:status() ~= "ok") then motomind.raise(err, sqlstate) end
  if not ok then motomind.assert(db:exec("ROLLBACK TO SAVEPOINT motomind_reissue")) end
  motomind.assert(db:exec("RELEASE SAVEPOINT motomind_reissue"))
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

-- The vehicle a CSV file's records belong to (its units and timezone).
local function csv_vehicle(db, ctx, id)
  if not id then motomind.raise("a CSV file holds one vehicle's records: name the vehicle (--vehicle)", "22023") end
  local v = db:row("SELECT odometer_unit, timezone FROM " .. db:qualify("vehicles") ..
    " WHERE tenant_id = $1 AND id = $2::uuid AND deleted_at IS NULL", ctx.tenant, id)
  if not v then motomind.raise("vehicle " .. id .. ": no such vehicle in this tenant", "23503") end
  return v
end

local KM_PER_MI = 1.609344
local UNIT_NAMES = { mi = "miles", km = "kilometres" }

-- The file's distance unit against the vehicle's: a file whose header
-- declares another unit is refused naming both, unless convert, which
-- returns { from, to, factor } for convert_mileage.
local function check_units(path, format, vehicle, convert)
  local declared = formats.distance_unit(format, path)
  if not declared or declared == vehicle.odometer_unit then return nil end
  if not convert then
    motomind.raise(("%s: its header gives distances in %s, the vehicle's odometer is in %s: import it into a vehicle " ..
      "in %s, or convert its mileages (--convert, convert = true)"):format(path, UNIT_NAMES[declared],
      UNIT_NAMES[vehicle.odometer_unit], UNIT_NAMES[declared]), "22023", { declared = declared,
      vehicle = vehicle.odometer_unit })
  end
  return { from = declared, to = vehicle.odometer_unit, factor = declared == "mi" and KM_PER_MI or 1 / KM_PER_MI }
end

-- The staged mileages in the vehicle's unit (to 0.1, the column's scale).
local function convert_mileage(db, converted)
  motomind.assert(db:exec("UPDATE pg_temp.motomind_import SET mileage = round(mileage::numeric * $1::numeric, 1)::text " ..
    "WHERE mileage IS NOT NULL", converted.factor))
end

-- Sets payload.category on the maintenance records a CSV spec makes (the
-- source app's category, e.g. a LubeLogger repair or upgrade file); refuses
-- a spec that makes none.
local function with_category(spec, category)
  local found = false
  for _, s in ipairs(spec.sections or { spec }) do
    if s.type == "maintenance" then
      s.set = s.set or {}
      s.set["payload.category"] = category
      found = true
    end
  end
  if not found then motomind.raise("category: this format holds no maintenance records", "22023") end
end

-- A new staging table, and the COPY statement of its rows: typed
-- (stage_typed, stage_chunked), each with the content id C gave it or (parts:
-- a CSV's, its times as texts) the id's texts around the time, or as texts,
-- the content id's columns left NULL (they are there so that one CONTENT_ID
-- reads every kind).
local function staging_table(db, typed, parts)
  motomind.assert(db:exec(("CREATE TEMP TABLE motomind_import (%s, content_id %s, content_prefix text, " ..
    "content_suffix text) ON COMMIT DROP"):format(typed and "line bigint, " .. event.typed_columns(parts)
    or event.staging_columns(), typed and "uuid" or "text")))
  return ("COPY pg_temp.motomind_import (line, %s%s) FROM STDIN%s"):format(event.columns(),
    parts and ", content_prefix, content_suffix" or typed and ", content_id" or "", typed and binary_format() or "")
end

-- The file COPYed by C (copy_events with opts) into a new staging table
-- (typed, or as texts). Returns what copy_events returns.
local function copy_staged(db, path, typed, opts)
  return db:copy_events(staging_table(db, typed, typed and opts.content_ids.parts), path, payload.codec(), opts)
end

-- Typed staging of a JSON-lines file, in a savepoint: PostgreSQL reads
-- each staged value as its type while C checks the records after it (the
-- staging COPY is bound by the client, the INSERT by the server), and C
-- gives each event without an id its content id, so the INSERT reads no
-- text and hashes nothing (docs/design.md). A CSV file (csv: its spec) is
-- staged typed too, its times as texts (without a zone: the session's,
-- the vehicle's, places them when the INSERT casts them) and, for its
-- content ids, C's texts of the other fields around the time
-- (CONTENT_ID). A record whose time only PostgreSQL reads, or a value it
-- cannot read as its type, undoes it (what C refused meanwhile is reported
-- once, by the staging as texts that follows). Returns whether the file is
-- staged; C notes each staged record's vehicle in the set vehicles, and a
-- CSV's other records in staged_records (on_record).
local function stage_typed(db, ctx, path, opts, report, progress, on_reject, vehicles, csv, on_record)
  local before = #report.rejected
  local staged = in_savepoint(db, function()
    local sent, records, sqlstate = copy_staged(db, path, true, { vehicle = opts.vehicle, csv = csv,
      on_progress = progress or nil, on_reject = on_reject, binary = M.binary, on_record = on_record,
      content_ids = { tenant = ctx.tenant, content = CONTENT, vehicles = vehicles, parts = csv ~= nil } })
    if not sent then return nil, records, sqlstate end
    report.staged, report.records = sent, records
    return true
  end)
  if not staged then
    for i = #report.rejected, before + 1, -1 do report.rejected[i] = nil end
  end
  return staged
end

-- Typed staging in chunks, each inserted while C reads the next (the
-- INSERT sent with db:send): the file's two phases, one bound by the
-- client and one by the server, overlap (docs/design.md). A chunk holds
-- whole vehicles (C ends one only before a vehicle new to the file), and
-- every rule is about one vehicle, so chunks that all go in equal the one
-- INSERT of the whole file. After a refused chunk, it and the rest of the
-- file stay staged for the usual path. Returns the rows inserted, and the
-- sqlstate of the refusal or nil, and the lines the vehicle screen refused;
-- or, the work undone, nil and "apart" when the chunks cannot stand for one
-- INSERT (a vehicle's events apart in the file), else nil (a record whose
-- time only PostgreSQL reads: the file is staged as texts).
local function stage_chunked(db, ctx, path, opts, report, progress, on_reject, vehicles)
  local sql, copy, undone = events_sql(db, true), nil, has_undone(db, ctx.tenant)
  local inserted, sent, refusal, screened = 0, false, nil, 0
  -- The chunk in flight: whether it went in (or none was sent).
  local function collect()
    if not sent then return true end
    sent = false
    local n, err, sqlstate = db:result()
    if n then
      inserted = inserted + n
      motomind.assert(db:exec("RELEASE SAVEPOINT motomind_chunk"))
      motomind.assert(db:exec("TRUNCATE pg_temp.motomind_import"))
      return true
    end
    if RETRYABLE[sqlstate] or db:status() ~= "ok" then motomind.raise(err, sqlstate) end
    motomind.assert(db:exec("ROLLBACK TO SAVEPOINT motomind_chunk"))
    motomind.assert(db:exec("RELEASE SAVEPOINT motomind_chunk"))
    refusal = sqlstate
    return false
  end
  -- A chunk's rows to COPY, or (rows nil: the first chunk, which C's COPY
  -- staged as it read it) the count it staged; its set of vehicles.
  local function on_chunk(rows, copied, mine)
    local went, n, err, sqlstate = refusal == nil and collect(), copied, nil, nil
    if rows then n, err, sqlstate = db:copy_in(copy, function() local r = rows; rows = nil; return r end) end
    if not n and RETRYABLE[sqlstate] then motomind.raise(err, sqlstate) end
    if not n then return false end -- (a value PostgreSQL cannot read as its type: staged as texts)
    if not went then return "rest" end
    local refused = screen_vehicles(db, report, mine)
    screened = screened + refused
    if n - refused > 0 then
      if undone then reissue_undone(db, ctx.tenant) end
      motomind.assert(db:exec("SAVEPOINT motomind_chunk"))
      motomind.assert(db:send(sql, ctx.tenant, 1, EVERY_LINE, report.batch))
      sent = true
    end
    return true
  end
  local before = #report.rejected
  local staged, why = in_savepoint(db, function()
    copy = staging_table(db, true)
    local ok, a, b, c, d = pcall(db.copy_events, db, copy, path, payload.codec(), { vehicle = opts.vehicle,
      on_progress = progress or nil, on_reject = on_reject, chunks = { rows = M.chunk_rows, on_chunk = on_chunk },
      binary = M.binary,
      content_ids = { tenant = ctx.tenant, content = CONTENT, vehicles = vehicles } })
    if sent then
      local drained, err = pcall(collect)
      if ok and not drained then error(err, 0) end
    end
    if not ok then error(a, 0) end
    if a == nil then return nil, b, c end -- (the first chunk's COPY refused: staged as texts)
    if not a then return nil, d end
    report.staged, report.records = a, b
    return true
  end)
  if not staged then
    for i = #report.rejected, before + 1, -1 do report.rejected[i] = nil end
    return nil, why
  end
  return inserted, refusal, screened
end

-- The staged path: the file COPYed into a temporary table (C checks each
-- record; refused ones are reported), screened, and inserted in one
-- statement; only when the database refuses it are the staged lines
-- screened for the mileage rule and bisected (at once when a rule refused
-- the file's direct COPY: direct_refusal, its sqlstate). Returns the records
-- refused before any insert (read from the file).
local function stage(db, ctx, path, format, csv, opts, report, staged_records, progress, direct_refusal)
  local function on_reject(line, reason, column)
    report.rejected[#report.rejected + 1] = { file = path, line = line, column = column, reason = reason }
  end
  local vehicles = {} -- (noted by C in typed staging)
  local on_record = (format == "backup" or csv) and function(line, text)
    staged_records[#staged_records + 1] = { line, text }
  end or nil
  -- (a CSV whose mileages are converted: staged as texts, which the
  -- conversion rewrites before the content ids read them)
  local typed = M.typed_staging and (format == "jsonl" or csv and not report.converted)
  local chunked, screened = nil, 0
  if typed and format == "jsonl" and M.chunk_rows and not direct_refusal then
    local inserted, refusal
    inserted, refusal, screened = stage_chunked(db, ctx, path, opts, report, progress, on_reject, vehicles)
    if inserted and not refusal and report.records > 0 then
      report.inserted = inserted
      return #report.rejected - screened
    end
    if inserted then chunked, direct_refusal = inserted, refusal -- (that chunk and the rest are staged)
    else typed, vehicles, screened = refusal == "apart", {}, 0 end
  end
  if not (chunked or typed and stage_typed(db, ctx, path, opts, report, progress, on_reject, vehicles, csv,
      on_record)) then
    vehicles = nil
    for i = #staged_records, 1, -1 do staged_records[i] = nil end -- (what a typed try read, read again)
    report.staged, report.records = motomind.assert(copy_staged(db, path, false, {
      csv = csv, vehicle = opts.vehicle, on_progress = progress or nil, on_reject = on_reject, on_record = on_record,
    }))
  end
  if report.records == 0 then motomind.raise(path .. ": no records (the file is empty, or holds only a header)", "22023") end
  if format == "backup" then
    backup.stage_records(db, staged_records, report)
    backup.restore_records(db, ctx, staged_records, report, M.insert_range)
  elseif #staged_records > 0 then reminders.import_records(db, ctx, opts.vehicle, staged_records, report, M.insert_range) end
  local refused = #report.rejected - screened
  if report.staged > 0 then
    if report.converted then convert_mileage(db, report.converted) end
    local left = report.staged - screen_vehicles(db, report, vehicles)
    if has_undone(db, ctx.tenant) then reissue_undone(db, ctx.tenant) end
    -- Optimistic: the file's lines in one plain INSERT (every staged line:
    -- no bound, no index needed), then (refused by a duplicate) in one
    -- that skips duplicates; only when the database refuses that does the
    -- mileage screen walk the staged readings (the database's own walk
    -- found them good otherwise), and the lines left are inserted,
    -- bisecting for what no screen foresees.
    -- (A direct COPY refused by a rule or a duplicate: that INSERT would be too.)
    local sql, n, _, sqlstate = events_sql(db), nil, nil, direct_refusal
    if left == 0 then
      n = 0 -- (the screen refused every line)
    elseif sqlstate ~= "23514" and sqlstate ~= "23505" then
      n, _, sqlstate = attempt(db, events_sql(db, true), ctx.tenant, 1, EVERY_LINE, report.batch)
    end
    if not n then
      -- CSV records may span lines: the range is the staged lines'.
      local last = db:value("SELECT max(line) FROM pg_temp.motomind_import")
      motomind.assert(db:exec("CREATE INDEX ON pg_temp.motomind_import (line)"))
      if sqlstate == "23505" then n = attempt(db, sql, ctx.tenant, 1, last, report.batch) end
      if not n then
        screen_mileage(db, ctx.tenant, report)
        n = M.insert_range(db, sql, ctx.tenant, 1, last, report, report.batch)
      end
    end
    report.inserted = n + (chunked or 0)
  end
  return refused
end

--- import(db, ctx, path, opts) -> report | nil, message, sqlstate, detail.
-- opts: format (jsonl, backup, a CSV format of formats.lua, or a CSV
-- layout of one's own, motomind.layout; by default recognised from the
-- first line), vehicle (every event's vehicle; required
-- for CSV formats), unit / currency / dates / category (CSV: the volume
-- unit, the currency, "mdy" or "dmy", the maintenance records' cost
-- category), convert (CSV: a file whose header declares another distance
-- unit than the vehicle's has its mileages converted; without it, it is
-- refused), atomic, errors (a path: refused records as JSON
-- lines), progress (a function(records, bytes_read), or true for a line on
-- stderr; by default shown only when stderr is a terminal), replace (undo
-- an earlier import of the same bytes with other options first), name (the
-- file name its batch records; by default the path's last part).
-- report = { file, format, records, staged, inserted, duplicates, batch,
--   rejected = {{ file, line, column, reason, sqlstate }}, restored = { kind = n },
--   replaced = {{ batch, voided, corrected }}, converted = { from, to, factor } }.
-- Every import records its batch (import_batches: the file's SHA-256, the
-- options, the counts); the events it inserted carry the batch's id, and
-- motomind.imports.undo voids them. The same bytes imported before with
-- other options are refused (sqlstate 23505, detail.batch) unless replace.
-- A failure returns nil, message, sqlstate, detail, with detail.report
-- what was read and refused before it. Valid records land and every refused one is reported; atomic = true lands
-- nothing unless every record is good. One transaction: an import cut off by
-- a lost connection leaves nothing, and the rerun completes it with no
-- duplicates. CSV dates are read in the vehicle's timezone.
function M.import(db, ctx, path, opts)
  opts = opts or {}
  local format, err = opts.format, nil
  local custom = type(format) == "table" and format -- a layout of one's own (motomind.layout)
  if custom then
    local ok, message, sqlstate = motomind.try(layout.check, custom)
    if not ok then return nil, message, sqlstate end
    format = "csv"
  end
  if not format then
    format, err = formats.detect(path)
    if not format then return nil, err, "22023" end
  end
  if format ~= "jsonl" and format ~= "backup" and not formats.get(format) and not custom then
    return nil, ("unknown format %q (one of %s)"):format(format, table.concat(formats.names(), ", ")), "22023"
  end
  if opts.category ~= nil then -- checked by the payload rules themselves
    local ok, why = payload.check("maintenance", { service_type = "-", category = opts.category })
    if not ok then return nil, "category: " .. why:gsub("^payload%.category: ", ""), "22023" end
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
  local checksum, cerr = core.sha256_file(path)
  if not checksum then return nil, cerr, "58030" end
  local options = { format = custom and "custom" or format, vehicle = opts.vehicle, unit = opts.unit,
    currency = opts.currency, dates = opts.dates, category = opts.category, convert = opts.convert or nil }
  local ok, message, sqlstate, detail = motomind.try(db.as, db, ctx, function()
    report.replaced = replace_earlier(db, ctx, path, checksum, options, opts.replace)
    report.batch = motomind.assert(db:value("SELECT gen_random_uuid()"))
    local csv
    if formats.get(format) or custom then
      local vehicle = csv_vehicle(db, ctx, opts.vehicle)
      if not custom then report.converted = check_units(path, format, vehicle, opts.convert) end
      motomind.assert(db:exec("SELECT set_config('TimeZone', $1, true)", vehicle.timezone))
      csv = custom or formats.get(format).spec { unit = opts.unit, currency = opts.currency, dates = opts.dates,
        category = opts.category, vehicle = vehicle, path = path }
      if opts.category ~= nil then with_category(csv, opts.category) end
    end
    local sent, records, sqlstate, refused = nil, nil, nil, 0
    if format == "jsonl" then sent, records, sqlstate = copy_direct(db, ctx, path, opts, report, progress) end
    if sent then
      report.staged, report.records, report.inserted = sent, records, sent
    else -- (staged; with the sqlstate that refused the direct COPY, if it was tried)
      refused = stage(db, ctx, path, format, csv, opts, report, staged_records, progress, sqlstate)
    end
    if drawn then io.stderr:write("\n") end
    if format == "backup" then -- records that may reference the events
      local before = #report.rejected
      backup.restore_records(db, ctx, staged_records, report, M.insert_range, true)
      refused = refused + (#report.rejected - before)
    end
    report.duplicates = report.staged - report.inserted - (#report.rejected - refused)
    table.sort(report.rejected, function(a, b) return a.line < b.line end)
    if opts.atomic and #report.rejected > 0 then
      motomind.raise(("%s: %d of %d records refused; nothing imported (atomic)"):format(path, #report.rejected,
        report.records), "23514")
    end
    motomind.assert(db:exec("SELECT " .. db:qualify("record_import_batch") .. "($1, $2, $3, $4, $5, $6, $7, $8, $9)",
      report.batch, opts.name or path:match("[^/]*$"), checksum, options.format, options, report.records,
      report.inserted, report.duplicates, #report.rejected))
    return true
  end)
  if opts.errors then write_errors(opts.errors, report.rejected) end
  if not ok then
    detail = detail or {}
    detail.report = report
    return nil, message, sqlstate, detail
  end
  return report
end

return M
