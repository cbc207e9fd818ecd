--- Whole-tenant backups: the tenant's records besides events (garages, fleet
-- groups, vehicles, reminders and their completions by hand) as JSON lines
-- before its events (reminders' occurrences are rebuilt from them). Written by
-- export.lua, restored by import.lua (which stages the file's lines).
local motomind = require "motomind"

local M = {}

-- The kinds of record a backup holds, in the order they are restored (each
-- may reference the ones before it).
M.KINDS = { { "garage", "garages" }, { "fleet_group", "fleet_groups" }, { "vehicle", "vehicles" },
  { "reminder", "reminders" }, { "reminder_completion", "reminder_completions" } }
M.VERSION = 1
-- Columns a backup leaves out: the tenant and the audit stamps (the
-- database stamps restored rows itself).
M.AUDIT = "{tenant_id,created_at,created_by,updated_at,updated_by,deleted_at,deleted_by}"

-- The columns a backup carries for a table, from the catalog.
local function columns(db, tbl)
  local rows = motomind.assert(db:query([[
    SELECT attname FROM pg_attribute WHERE attrelid = $1::regclass AND attnum > 0 AND NOT attisdropped
       AND attname <> ALL ($2::text[]) ORDER BY attnum]], db:qualify(tbl), M.AUDIT))
  local names = {}
  for i, r in ipairs(rows) do names[i] = r.attname end
  return names
end

local RECORDS = [[
  CREATE TEMP TABLE motomind_import_records ON COMMIT DROP AS
  SELECT line, data->>'record' AS kind, data FROM jsonb_to_recordset($1::jsonb) AS r(line bigint, data jsonb)]]

--- restore_records(db, ctx, staged, report, insert_range) restores a
-- backup's records ({ line, json_text } each) before its events: unknown
-- kinds and fields are refused by line, the rest inserted kind by kind
-- through insert_range (import.lua), which reports what the database refuses.
function M.restore_records(db, ctx, staged, report, insert_range)
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
  for _, k in ipairs(M.KINDS) do
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

-- Parents before children, so a restore can insert them in file order.
local ORDER = {
  fleet_group = [[(WITH RECURSIVE d AS (
      SELECT g.id, 0 AS depth FROM %s g WHERE g.tenant_id = t.tenant_id AND g.parent_id IS NULL
      UNION ALL SELECT g.id, d.depth + 1 FROM %s g JOIN d ON g.parent_id = d.id AND g.tenant_id = t.tenant_id)
    SELECT max(depth) FROM d WHERE d.id = t.id), t.id]],
}

--- record_queries(db, tenant_expr) -> the header line and, per kind, the
-- query of its live records as JSON texts (in restore order).
function M.record_queries(db, tenant_expr)
  local queries = {}
  for i, k in ipairs(M.KINDS) do
    local kind, tbl = k[1], k[2]
    local order = ORDER[kind] and ORDER[kind]:format(db:qualify(tbl), db:qualify(tbl)) or "t.id"
    queries[i] = ("SELECT jsonb_strip_nulls(jsonb_build_object('record', '%s') || " ..
      "(to_jsonb(t) - '%s'::text[]))::text FROM %s t WHERE t.tenant_id = %s AND t.deleted_at IS NULL " ..
      "ORDER BY %s"):format(kind, M.AUDIT, db:qualify(tbl), tenant_expr, order)
  end
  return motomind.json.encode { record = "backup", version = M.VERSION } .. "\n", queries
end

return M
