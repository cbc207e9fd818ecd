--- Whole-tenant backups: the tenant's records besides events (garages, fleet
-- groups, custom fields, vehicles, reminders and their completions by hand, vehicle
-- profiles, photos, captures, vision results, location corrections and
-- AI conversations) as JSON lines around its events (reminders'
-- occurrences are rebuilt from them). Written by export.lua, restored by
-- import.lua (which stages the file's lines).
local motomind = require "motomind"

local M = {}

-- The kinds of record a backup holds, in the order they are restored (each
-- may reference the ones before it); after_events: restored once the
-- events are, as they may reference them.
M.KINDS = { { "garage", "garages" }, { "fleet_group", "fleet_groups" }, { "custom_field", "custom_fields" },
  { "vehicle", "vehicles" },
  { "reminder", "reminders" }, { "reminder_completion", "reminder_completions" },
  { "vehicle_spec", "vehicle_spec_enhancements" }, { "maintenance_preference", "user_maintenance_preferences" },
  { "conversation_thread", "conversation_threads" },
  { "capture_session", "capture_sessions", after_events = true }, { "photo", "vehicle_images", after_events = true },
  { "photo_metadata", "photo_metadata", after_events = true }, { "event_photo", "event_photos", after_events = true },
  { "vision_call", "vision_metrics", after_events = true }, { "vision_result", "vision_accuracy", after_events = true },
  { "location_correction", "location_corrections", after_events = true },
  { "conversation_message", "conversation_messages", after_events = true } }
-- The tables a user writes that a backup leaves out, and why. Every other
-- table the application role may write is in KINDS (a spec reads the
-- catalog: a new one fails the suite until it is in one list or the other);
-- events are the backup's plain lines, and tables only motomind's triggers
-- write are derived again on restore.
M.NOT_CARRIED = {
  memberships = "who may act in the tenant: people's accounts, not their vehicles' records " ..
    "(a restore into another tenant keeps that tenant's members)",
  group_permissions = "a member's rights on a fleet group, which go with the memberships",
  import_batches = "the tenant's import history; a restore is itself one new batch",
}
M.VERSION = 1
-- Columns a backup leaves out: the tenant and the audit stamps (the
-- database stamps restored rows itself), and generated columns (the
-- database computes them again). Messages are numbered again in file order.
local STAMPS = { "tenant_id", "created_at", "created_by", "updated_at", "updated_by", "deleted_at", "deleted_by", "seq" }

-- A table's columns: those a backup carries, and those it leaves out (as a
-- text[] literal); whether it has soft delete; and the SQL that restores
-- each carried column from record r (a NOT NULL column with a default takes
-- the default when the record lacks it: a backup written before the column
-- existed).
local function columns(db, tbl)
  local rows = motomind.assert(db:query([[
    SELECT a.attname, a.attname = ANY ($2::text[]) OR a.attgenerated <> '' AS left_out,
           CASE WHEN a.attnotnull THEN pg_get_expr(d.adbin, d.adrelid) END AS fallback
      FROM pg_attribute a LEFT JOIN pg_attrdef d ON d.adrelid = a.attrelid AND d.adnum = a.attnum
     WHERE a.attrelid = $1::regclass AND a.attnum > 0 AND NOT a.attisdropped ORDER BY a.attnum]], db:qualify(tbl),
    "{" .. table.concat(STAMPS, ",") .. "}"))
  local carried, out, soft, values = {}, {}, false, {}
  for _, r in ipairs(rows) do
    if r.left_out then
      out[#out + 1] = r.attname
    else
      carried[#carried + 1] = r.attname
      values[#values + 1] = r.fallback ~= motomind.null and ("coalesce(r.%s, %s)"):format(r.attname, r.fallback)
        or "r." .. r.attname
    end
    soft = soft or r.attname == "deleted_at"
  end
  return carried, "{" .. table.concat(out, ",") .. "}", soft, values
end

local RECORDS = [[
  CREATE TEMP TABLE motomind_import_records ON COMMIT DROP AS
  SELECT line, data->>'record' AS kind, data FROM jsonb_to_recordset($1::jsonb) AS r(line bigint, data jsonb)]]

--- stage_records(db, staged, report) stages a backup's records ({ line,
-- json_text } each): a file that is not a backup of this version is
-- refused; unknown kinds are refused by line.
function M.stage_records(db, staged, report)
  local parts = {}
  for i, r in ipairs(staged) do parts[i] = '{"line":' .. r[1] .. ',"data":' .. r[2] .. '}' end
  motomind.assert(db:exec(RECORDS, "[" .. table.concat(parts, ",") .. "]"))
  local header = db:row("SELECT line, data FROM pg_temp.motomind_import_records WHERE kind = 'backup'")
  if not header or header.data.version ~= M.VERSION then
    motomind.raise(report.file .. ": not a motomind backup of version " .. M.VERSION, "22023")
  end
  local known = { "backup" }
  for _, k in ipairs(M.KINDS) do known[#known + 1] = k[1] end
  for _, r in ipairs(motomind.assert(db:query("DELETE FROM pg_temp.motomind_import_records " ..
      "WHERE kind IS NULL OR kind <> ALL ($1::text[]) RETURNING line, kind", "{" .. table.concat(known, ",") .. "}"))) do
    report.rejected[#report.rejected + 1] = { file = report.file, line = r.line,
      reason = ("record: unknown kind %s"):format(motomind.json.encode(r.kind)) }
  end
  report.restored = {}
end

--- restore_records(db, ctx, staged, report, insert_range, after_events)
-- inserts the staged records of the kinds restored before the events (or
-- after them), kind by kind through insert_range (import.lua), which
-- reports what the database refuses; a record with a field the table lacks
-- is refused, naming the field.
function M.restore_records(db, ctx, staged, report, insert_range, after_events)
  for _, k in ipairs(M.KINDS) do
    if (k.after_events or false) == (after_events or false) then
      local kind, tbl = k[1], k[2]
      local cols, _, _, values = columns(db, tbl)
      local list = table.concat(cols, ", ")
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
        "ORDER BY s.line ON CONFLICT DO NOTHING"):format(db:qualify(tbl), list, table.concat(values, ", "),
        db:qualify(tbl), kind)
      report.restored[kind] = #staged > 0 and insert_range(db, sql, ctx.tenant, 1, staged[#staged][1], report) or 0
    end
  end
end

-- Parents before children, so a restore can insert them in file order.
local ORDER = {
  fleet_group = [[(WITH RECURSIVE d AS (
      SELECT g.id, 0 AS depth FROM %s g WHERE g.tenant_id = t.tenant_id AND g.parent_id IS NULL
      UNION ALL SELECT g.id, d.depth + 1 FROM %s g JOIN d ON g.parent_id = d.id AND g.tenant_id = t.tenant_id)
    SELECT max(depth) FROM d WHERE d.id = t.id), t.id]],
  conversation_message = "t.thread_id, t.seq",
}

--- record_queries(db, tenant_expr) -> the header line and, per kind, the
-- query of its live records as JSON texts (in restore order), the ones
-- restored before the events first; and the number of those.
function M.record_queries(db, tenant_expr)
  local before, after = {}, {}
  for _, k in ipairs(M.KINDS) do
    local kind, tbl = k[1], k[2]
    local _, left_out, soft = columns(db, tbl)
    local order = ORDER[kind] and ORDER[kind]:format(db:qualify(tbl), db:qualify(tbl)) or "t.id"
    local list = k.after_events and after or before
    list[#list + 1] = ("SELECT jsonb_strip_nulls(jsonb_build_object('record', '%s') || " ..
      "(to_jsonb(t) - '%s'::text[]))::text FROM %s t WHERE t.tenant_id = %s%s ORDER BY %s"):format(kind, left_out,
      db:qualify(tbl), tenant_expr, soft and " AND t.deleted_at IS NULL" or "", order)
  end
  local n = #before
  for _, q in ipairs(after) do before[#before + 1] = q end
  return motomind.json.encode { record = "backup", version = M.VERSION } .. "\n", before, n
end

return M
