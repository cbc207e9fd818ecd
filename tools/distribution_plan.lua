-- What distributing the schema by tenant (Citus) needs, table by table and
-- rule by rule, read from the catalog of a migrated schema: `make
-- distribution-plan` writes it into docs/design.md between the markers
-- below; spec/schema_spec.lua fails when the two differ (a new table, key or
-- trigger changes the plan).
local M = {}

M.BEGIN, M.END = "<!-- distribution-plan -->", "<!-- /distribution-plan -->"

local TABLES = [[
  SELECT c.oid::regclass::text AS rel, c.relname AS name, c.relkind = 'p' AS partitioned,
         EXISTS (SELECT 1 FROM pg_attribute a WHERE a.attrelid = c.oid AND a.attname = 'tenant_id'
                 AND NOT a.attisdropped) AS has_tenant,
         coalesce((SELECT k.kind FROM tenant_table_kinds k WHERE k.rel = c.oid::regclass), '') AS kind,
         (SELECT count(*) FROM pg_policy p WHERE p.polrelid = c.oid)::int AS policies
    FROM pg_class c
   WHERE c.relnamespace = $1::regnamespace AND c.relkind IN ('r', 'p') AND NOT c.relispartition
   ORDER BY c.relname]]

-- Keys, and the references between tables (foreign_keys: the constraints
-- and the ones triggers enforce), with the columns they carry.
local CONSTRAINTS = [[
  SELECT r.contype::text AS type, r.conname AS name, r.conrelid::regclass::text AS rel, NULL AS target,
         ARRAY(SELECT a.attname::text FROM pg_attribute a
                WHERE a.attrelid = r.conrelid AND a.attnum = ANY (r.conkey)) AS columns
    FROM pg_constraint r JOIN pg_class c ON c.oid = r.conrelid
   WHERE c.relnamespace = $1::regnamespace AND r.contype IN ('p', 'u', 'x') AND NOT c.relispartition
  UNION ALL
  SELECT 'f', k.name, k.rel::text, k.target::text, k.columns FROM foreign_keys k
   ORDER BY name]]

local TRIGGERS = [[
  SELECT t.tgrelid::regclass::text AS rel, t.tgname AS name, (t.tgtype & 1) = 1 AS row_level,
         t.tgoldtable IS NOT NULL OR t.tgnewtable IS NOT NULL AS transition
    FROM pg_trigger t JOIN pg_class c ON c.oid = t.tgrelid
   WHERE c.relnamespace = $1::regnamespace AND NOT t.tgisinternal AND t.tgparentid = 0
   ORDER BY t.tgname]]

-- What the private schema keeps (the feed): its tables and materialized views.
local PRIVATE = [[
  SELECT c.relname AS name, c.relkind = 'm' AS materialized FROM pg_class c JOIN pg_namespace n ON n.oid = c.relnamespace
   WHERE n.nspname IN ($1::text, $1::text || '_private') AND (c.relkind = 'm' OR (c.relkind = 'r' AND n.nspname = $1::text || '_private'))
   ORDER BY c.relname]]

local function group(rows, key)
  local out = {}
  for _, r in ipairs(rows) do
    out[r[key]] = out[r[key]] or {}
    table.insert(out[r[key]], r)
  end
  return out
end

--- plan(db) -> the plan as Markdown (a table, then the rules that move).
function M.plan(db)
  local motomind = require "motomind"
  local schema = db:schema()
  local tables = motomind.assert(db:query(TABLES, schema))
  -- tenants is distributed by its id (co-located with every tenant_id)
  local column = {}
  for _, t in ipairs(tables) do
    column[t.rel] = t.name == "tenants" and "id" or t.has_tenant and "tenant_id" or nil
  end
  local cons = group(motomind.assert(db:query(CONSTRAINTS, schema)), "rel")
  local triggers = group(motomind.assert(db:query(TRIGGERS, schema)), "rel")
  local lines = {
    "| table | kind | placement | keys to widen | row triggers | transition-table triggers | policies |",
    "|---|---|---|---|---|---|---|",
  }
  local counts = { distributed = 0, reference = 0, widen = 0, row = 0, moved = 0 }
  local function code(list) return #list > 0 and "`" .. table.concat(list, "`, `") .. "`" or "-" end
  for _, t in ipairs(tables) do
    local col = column[t.rel]
    local widen, rows, moved = {}, {}, {}
    for _, c in ipairs(cons[t.rel] or {}) do
      local has_key = false
      for _, name in ipairs(c.columns) do has_key = has_key or name == col end
      if col and not has_key and (c.type ~= "f" or column[c.target]) then widen[#widen + 1] = c.name end
      if not col and c.type == "f" and column[c.target] then
        widen[#widen + 1] = c.name .. " (from a reference table: not allowed)"
      end
    end
    for _, tr in ipairs(triggers[t.rel] or {}) do
      if col and tr.transition then moved[#moved + 1] = tr.name
      elseif col and tr.row_level then rows[#rows + 1] = tr.name end
    end
    if col then counts.distributed = counts.distributed + 1 else counts.reference = counts.reference + 1 end
    counts.widen, counts.row, counts.moved = counts.widen + #widen, counts.row + #rows, counts.moved + #moved
    lines[#lines + 1] = ("| `%s`%s | %s | %s | %s | %s | %s | %s |"):format(t.name,
      t.partitioned and " (partitioned)" or "", t.kind ~= "" and t.kind or "-",
      col and ("by `%s`"):format(col) or "reference", code(widen), code(rows), code(moved),
      col and t.policies > 0 and t.policies or "-")
  end
  local mv, private = {}, {}
  for _, r in ipairs(motomind.assert(db:query(PRIVATE, schema))) do
    local list = r.materialized and mv or private
    list[#list + 1] = "`" .. r.name .. "`"
  end
  lines[#lines + 1] = ""
  lines[#lines + 1] = ("%d tables: %d distributed (by tenant, co-located), %d reference (copied to every " ..
    "node). Keys that must take the distribution column: %d; %d row triggers need `citus.enable_unsafe_triggers` " ..
    "(each touches only its own tenant's rows, so they stay on one shard); %d statement triggers read a " ..
    "transition table, which Citus does not run on shards: their set-based checks move into the writer's " ..
    "statement (the import path) or become row triggers. Policies are re-created on the shards with their " ..
    "functions. Materialized views (%s) stay on the coordinator: a refresh reads every shard. The private " ..
    "schema's tables (%s), keyed by `tenant_id` and rebuilt vehicle by vehicle, are distributed with their " ..
    "tenants."):format(
    #tables, counts.distributed, counts.reference, counts.widen, counts.row, counts.moved,
    #mv > 0 and table.concat(mv, ", ") or "none", #private > 0 and table.concat(private, ", ") or "none")
  return table.concat(lines, "\n") .. "\n"
end

--- The docs text with its plan section replaced by plan.
function M.splice(doc, plan)
  local b, e = doc:find(M.BEGIN, 1, true), doc:find(M.END, 1, true)
  assert(b and e, "docs/design.md has no " .. M.BEGIN .. " section")
  return doc:sub(1, b - 1) .. M.BEGIN .. "\n" .. plan .. doc:sub(e)
end

-- As a script: migrate a throwaway schema, write the plan into docs/design.md.
if arg and arg[0] and arg[0]:match("distribution_plan%.lua$") then
  local motomind = require "motomind"
  local db = motomind.assert(motomind.connect(nil, { schema = "distribution_plan", maintenance = true }))
  db:exec("DROP SCHEMA IF EXISTS distribution_plan CASCADE")
  motomind.assert(db:migrate())
  local plan = M.plan(db)
  db:exec("DROP SCHEMA distribution_plan CASCADE")
  db:exec("DROP SCHEMA IF EXISTS distribution_plan_private CASCADE")
  db:close()
  local path = arg[1] or "docs/design.md"
  local f = assert(io.open(path, "rb"))
  local doc = f:read("*a")
  f:close()
  f = assert(io.open(path, "wb"))
  f:write(M.splice(doc, plan))
  f:close()
end

return M
