--- Bulk import and export of events as JSON lines (one event per line, the
-- fields of the events table; exports import back exactly). The heavy path is
-- C: the file is streamed, each line parsed and its payload validated by the
-- codec, and rows sent through COPY without a Lua table per row.
local motomind = require "motomind"
local core = require "motomind.core"
local payload = require "motomind.payload"

local M = {}

local STAGE = [[
  CREATE TEMP TABLE motomind_import (line bigint, id text, vehicle_id text, type text, occurred_at text,
    mileage text, payload text, notes text, correction text, corrects_id text, corrects_occurred_at text)
  ON COMMIT DROP]]

-- Staged lines lo..hi into the events. Rows without an id get one derived
-- from their content, so importing a file twice adds nothing.
local function insert_sql(db)
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

-- Inserts lines lo..hi; when the database refuses, halves the range until
-- each refused line stands alone, and rejects it with the database's message.
local function insert_range(db, tenant, lo, hi, report)
  assert(db:exec("SAVEPOINT motomind_import"))
  local n, err, sqlstate = db:exec(insert_sql(db), tenant, lo, hi)
  if n then
    assert(db:exec("RELEASE SAVEPOINT motomind_import"))
    report.inserted = report.inserted + n
    return
  end
  if RETRYABLE[sqlstate] or db:status() ~= "ok" then
    error(setmetatable({ message = err, sqlstate = sqlstate }, motomind.Error), 0)
  end
  assert(db:exec("ROLLBACK TO SAVEPOINT motomind_import"))
  assert(db:exec("RELEASE SAVEPOINT motomind_import"))
  if lo == hi then
    report.rejected[#report.rejected + 1] = { file = report.file, line = lo, reason = err, sqlstate = sqlstate }
    return
  end
  local mid = math.floor((lo + hi) / 2)
  insert_range(db, tenant, lo, mid, report)
  insert_range(db, tenant, mid + 1, hi, report)
end

local function write_errors(path, rejected)
  local f = assert(io.open(path, "w"))
  for _, r in ipairs(rejected) do
    f:write(motomind.json.encode { file = r.file, line = r.line, reason = r.reason, sqlstate = r.sqlstate }, "\n")
  end
  f:close()
end

-- A progress line on stderr: lines, lines/s and the time left.
local function terminal_progress(path)
  local f = io.open(path, "rb")
  local total = f and f:seek("end") or 0
  if f then f:close() end
  local started = os.time()
  return function(lines, bytes)
    local elapsed = math.max(os.time() - started, 1)
    local left = bytes > 0 and (total - bytes) * elapsed / bytes or 0
    io.stderr:write(("\r%s: %d lines, %d lines/s, %ds left  "):format(path, lines,
      math.floor(lines / elapsed), math.floor(left)))
  end
end

--- import_jsonl(db, ctx, path, { vehicle =, atomic = false, errors = path, progress = })
-- progress: a function(lines, bytes_read), or true for a line on stderr; by
-- default the line shows only when stderr is a terminal.
-- -> report { file, lines, staged, inserted, duplicates, rejected = {{file, line, reason}} }
-- | nil, message, sqlstate, report. Valid lines land and every refused line is
-- reported (also as JSON lines in opts.errors); atomic = true lands nothing
-- unless every line is good. One transaction: an import cut off by a lost
-- connection leaves nothing, and the rerun completes it with no duplicates.
function M.import_jsonl(db, ctx, path, opts)
  opts = opts or {}
  local report = { file = path, lines = 0, staged = 0, inserted = 0, duplicates = 0, rejected = {} }
  local refused_in_c = 0
  local progress = opts.progress
  if progress == nil then progress = core.isatty(2) end
  local drawn = progress == true
  if drawn then progress = terminal_progress(path) end
  local ok, err = pcall(db.as, db, ctx, function()
    motomind.assert(db:exec(STAGE))
    local staged, lines = motomind.assert(db:copy_jsonl("COPY pg_temp.motomind_import FROM STDIN", path,
      payload.codec(), function(line, reason)
        report.rejected[#report.rejected + 1] = { file = path, line = line, reason = reason }
        refused_in_c = refused_in_c + 1
      end, opts.vehicle, progress or nil))
    if drawn then io.stderr:write("\n") end
    report.staged, report.lines = staged, lines
    if staged > 0 then
      motomind.assert(db:exec("CREATE INDEX ON pg_temp.motomind_import (line)"))
      insert_range(db, ctx.tenant, 1, lines, report)
    end
    table.sort(report.rejected, function(a, b) return a.line < b.line end)
    report.duplicates = staged - report.inserted - (#report.rejected - refused_in_c)
    if opts.atomic and #report.rejected > 0 then
      error(setmetatable({ message = ("%s: %d of %d lines refused; nothing imported (atomic)")
        :format(path, #report.rejected, lines), sqlstate = "23514" }, motomind.Error), 0)
    end
  end)
  if opts.errors then write_errors(opts.errors, report.rejected) end
  if not ok then
    if getmetatable(err) == motomind.Error then return nil, err.message, err.sqlstate, report end
    error(err, 0)
  end
  return report
end

--- export_jsonl(db, ctx, sink) -> rows | nil, message, sqlstate.
-- Streams the tenant's events (all of them: corrections and voids included)
-- as JSON lines, ordered by vehicle and time, through COPY TO: sink(line) is
-- called per event, or sink is a file path.
function M.export_jsonl(db, ctx, sink)
  local file
  if type(sink) == "string" then
    file = assert(io.open(sink, "w"))
    sink = function(chunk) file:write(chunk) end
  end
  -- CSV with a delimiter and a quote that JSON text never holds: each line is
  -- the JSON text as is (COPY's text format would escape its backslashes).
  -- COPY takes no parameters: the tenant comes from the context.
  local sql = [[
    COPY (SELECT jsonb_strip_nulls(jsonb_build_object('id', e.id, 'vehicle_id', e.vehicle_id, 'type', e.type,
            'occurred_at', e.occurred_at, 'mileage', e.mileage, 'payload', e.payload, 'notes', e.notes,
            'correction', e.correction, 'corrects_id', e.corrects_id,
            'corrects_occurred_at', e.corrects_occurred_at))::text
          FROM ]] .. db:qualify("vehicle_events") .. [[ e
         WHERE e.tenant_id = nullif(current_setting('motomind.tenant_id', true), '')::uuid
         ORDER BY e.vehicle_id, e.occurred_at, e.created_at, e.id)
    TO STDOUT WITH (FORMAT csv, DELIMITER E'\x02', QUOTE E'\x01')]]
  local ok, n, err, sqlstate = pcall(db.as, db, ctx, function()
    return db:copy_out(sql, sink)
  end)
  if file then file:close() end
  if not ok then error(n, 0) end
  return n, err, sqlstate
end

return M
