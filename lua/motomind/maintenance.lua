--- Derived data and upkeep: the feed's refresh, metrics, maintain() and the
-- health report. The work is in SQL (migration 0007), so pg_cron can run it
-- too; these are the Lua entry points. Run them as the owner.
local motomind = require "motomind"

local M = {}

--- refresh(db, { max_age = seconds }) -> { timeline_feed = "refreshed" | "fresh" | "busy" }
-- Refreshes the feed when it is stale: never refreshed, or older than
-- max_age (default: any age) with vehicles marked since; only the marked
-- vehicles' rows are rebuilt.
function M.refresh(db, opts)
  opts = opts or {}
  local state, err, sqlstate = db:value("SELECT " .. db:qualify("refresh_feed") .. "($1::text::interval)",
    opts.max_age and (opts.max_age .. " seconds") or motomind.null)
  if not state then return nil, err, sqlstate end
  return { timeline_feed = state }
end

--- advance_metrics(db, { max_vehicles = n }) -> vehicles advanced
function M.advance_metrics(db, opts)
  opts = opts or {}
  return db:value("SELECT " .. db:qualify("advance_metrics") .. "($1)", opts.max_vehicles or motomind.null)
end

--- recompute_metrics(db) -> rows: every vehicle's metrics from scratch.
function M.recompute_metrics(db)
  return db:value("SELECT " .. db:qualify("recompute_metrics") .. "()")
end

--- maintain(db, { ahead = 2, max_age = 300, export_dir = path }) -> report
-- Every job at once (see maintain() in SQL): partitions ahead, DEFAULT
-- drained, stale views refreshed, metrics advanced, old partitions archived
-- (first exported as JSON lines into export_dir when given). A second
-- caller meanwhile gets { skipped = true }.
function M.maintain(db, opts)
  opts = opts or {}
  return db:transaction(function()
    if opts.export_dir then
      for _, p in ipairs(motomind.assert(db:query("SELECT p AS partition FROM " ..
          db:qualify("partitions_to_archive") .. "() p"))) do
        local f = assert(io.open(opts.export_dir .. "/" .. p.partition .. ".jsonl", "w"))
        local ok, err = pcall(function()
          motomind.assert(db:copy_out("COPY (SELECT row_to_json(p)::text FROM " .. db:qualify(p.partition) ..
            " p ORDER BY p.tenant_id, p.vehicle_id, p.occurred_at) TO STDOUT WITH (FORMAT csv, " ..
            "DELIMITER E'\\x02', QUOTE E'\\x01')", function(chunk) f:write(chunk) end))
        end)
        f:close()
        if not ok then error(err, 0) end
      end
    end
    return motomind.assert(db:value("SELECT " .. db:qualify("maintain") .. "($1, $2::text::interval)",
      opts.ahead or 2, (opts.max_age or 300) .. " seconds"))
  end)
end

local function finding(list, severity, what, detail)
  list[#list + 1] = { severity = severity, finding = what, detail = detail }
end

--- health(db, { max_age = 3600, ahead = 1, failures_window = 86400 }) -> findings, each
-- { severity = "warning" | "info", finding = text, detail = table }:
-- missing future partitions, rows in the DEFAULT partition, stale views,
-- metrics pending, maintain() failures (of the last failures_window
-- seconds), dead rows, and the sizes of the largest tables.
function M.health(db, opts)
  opts = opts or {}
  local out = {}
  local coverage = motomind.assert(db:query("SELECT * FROM partition_coverage"))
  local covered_to
  for _, p in ipairs(coverage) do
    if p.kind == "default" and p.row_count > 0 then
      finding(out, "warning", ("%d rows sit in the DEFAULT partition"):format(p.row_count), { partition = p.partition })
    elseif p.kind == "gap" then
      finding(out, "info", ("no partition from %s to %s"):format(p.range_from, p.range_to), p)
    elseif p.kind == "partition" then
      covered_to = p.range_to
    end
  end
  local ahead_ok = covered_to and motomind.assert(db:value([[
    SELECT $1::timestamptz >= now() + CASE (SELECT value FROM settings WHERE key = 'events_partition_interval')
             WHEN 'month' THEN make_interval(months => $2) ELSE make_interval(years => $2) END]],
    covered_to, opts.ahead or 1))
  if not ahead_ok then
    finding(out, "warning", "missing future partitions: new events will land in the DEFAULT partition",
      { covered_to = covered_to or motomind.null })
  end
  local views = motomind.assert(db:query("SELECT view_name, finished_at, extract(epoch FROM age)::float8 AS age, " ..
    "behind FROM mv_freshness"))
  if #views == 0 then finding(out, "warning", "timeline_feed was never refreshed", {}) end
  for _, v in ipairs(views) do
    if v.behind and v.age > (opts.max_age or 3600) then
      finding(out, "warning", ("%s is stale: refreshed %d s ago, changes since"):format(v.view_name, v.age), v)
    end
  end
  local pending = motomind.assert(db:value("SELECT count(*) FROM vehicle_event_heads WHERE dirty_from IS NOT NULL"))
  if pending > 0 then
    finding(out, "info", ("metrics pending for %d vehicles"):format(pending), { vehicles = pending })
  end
  for _, f in ipairs(motomind.assert(db:query("SELECT step, object, message, sqlstate, at FROM maintenance_failures " ..
      "WHERE at > now() - make_interval(secs => $1) ORDER BY id", opts.failures_window or 86400))) do
    finding(out, "warning", ("maintain() failed at %s%s: %s"):format(f.step,
      f.object ~= motomind.null and (" (" .. f.object .. ")") or "", f.message), f)
  end
  local tables = motomind.assert(db:query("SELECT * FROM db_health_stats ORDER BY total_bytes DESC"))
  for _, t in ipairs(tables) do
    if t.dead_rows ~= motomind.null and t.dead_rows > 1000 and t.dead_rows > 0.2 * (t.live_rows + t.dead_rows) then
      finding(out, "warning", ("%s: %d dead rows of %d (vacuum)"):format(t.relation, t.dead_rows,
        t.live_rows + t.dead_rows), t)
    end
  end
  for i = 1, math.min(5, #tables) do
    local t = tables[i]
    finding(out, "info", ("size #%d: %s, %d kB (table %d kB, indexes %d kB)"):format(i, t.relation,
      math.floor(t.total_bytes / 1024), math.floor(t.table_bytes / 1024), math.floor(t.index_bytes / 1024)), t)
  end
  return out
end

-- Five fields of cron's own characters: nothing a shell would read.
local function valid_cron(every)
  local n = 0
  for field in tostring(every):gmatch("%S+") do
    if not field:match("^[%d%*/,%-]+$") then return false end
    n = n + 1
  end
  return n == 5
end

local function shell_quote(s)
  if s:match("^[%w%./_%-]+$") then return s end
  return "'" .. s:gsub("'", "'\\''") .. "'"
end

--- schedule(db, { every = "*/5 * * * *", crontab = false }) ->
--   "pg_cron", job id | "crontab", line
-- Registers maintain() with pg_cron when the extension is installed in this
-- database, or can be (preloaded, and this is its cron.database_name; the
-- owner creates it); the job is named per schema, so scheduling again
-- updates it. Otherwise (or with crontab = true) returns the crontab line.
function M.schedule(db, opts)
  opts = opts or {}
  local every = opts.every or "*/5 * * * *"
  if not valid_cron(every) then
    return nil, ("every: %q is not a cron schedule (five fields of digits, *, /, - and ,)"):format(every), "22023"
  end
  local cron = not opts.crontab and motomind.assert(db:row([[
    SELECT EXISTS (SELECT 1 FROM pg_extension WHERE extname = 'pg_cron') AS installed,
           EXISTS (SELECT 1 FROM pg_available_extensions WHERE name = 'pg_cron')
             AND current_setting('shared_preload_libraries') ~ 'pg_cron'
             AND current_setting('cron.database_name', true) = current_database() AS possible]]))
  if cron and (cron.installed or cron.possible) then
    if not cron.installed then motomind.assert(db:exec("CREATE EXTENSION pg_cron")) end
    return "pg_cron", motomind.assert(db:value("SELECT cron.schedule($1, $2, $3)", "motomind-maintain-" .. db:schema(),
      every, "SELECT " .. db:qualify("maintain") .. "()"))
  end
  return "crontab", ("%s %s maintain --schema %s"):format(every, shell_quote(opts.command or "motomind"),
    shell_quote(db:schema()))
end

return M
