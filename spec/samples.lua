-- Rows made from the catalog, for the matrices that must cover every table
-- (spec/security_spec.lua, spec/hardening_sql_spec.lua): a table added by a
-- later migration gets a valid row without a fixture written for it.
local motomind = require "motomind"

local M = {}

-- Per connection and table: its columns and foreign keys.
local catalogued = setmetatable({}, { __mode = "k" })

-- A table's columns (name, type, allowed: the first value a CHECK (column
-- IN (...)) of it or of its domain allows, needed: NOT NULL with no
-- default, or held in plaintext or sealed (0029), generated, key: in the
-- primary key) and its foreign keys to other tables (parent, cols and refs
-- as comma lists, scoped: the parent has a tenant_id).
function M.catalog(db, tbl)
  catalogued[db] = catalogued[db] or {}
  local known = catalogued[db][tbl]
  if known then return known[1], known[2] end
  local cols = motomind.assert(db:query([[
    SELECT a.attname AS name, regexp_replace(format_type(a.atttypid, a.atttypmod), '\(.*\)', '') AS type,
           (SELECT substring(pg_get_constraintdef(k.oid) FROM '= ANY \(ARRAY\[(''[^'']*'')')
              FROM pg_constraint k WHERE k.contype = 'c'
               AND ((k.conrelid = a.attrelid AND k.conkey = ARRAY[a.attnum]) OR k.contypid = a.atttypid)
               AND pg_get_constraintdef(k.oid) LIKE '%= ANY (ARRAY[%' LIMIT 1) AS allowed,
           (a.attnotnull AND NOT a.atthasdef AND a.attgenerated = '' OR EXISTS (SELECT 1 FROM pg_constraint k
              WHERE k.conrelid = a.attrelid AND k.contype = 'c' AND pg_get_constraintdef(k.oid) =
                    format('CHECK (((%I IS NOT NULL) OR (%I IS NOT NULL)))', a.attname, a.attname || '_sealed')))
             AS needed, a.attgenerated <> '' AS generated,
           EXISTS (SELECT 1 FROM pg_constraint k WHERE k.conrelid = a.attrelid AND k.contype = 'p'
                                                   AND a.attnum = ANY (k.conkey)) AS key
      FROM pg_attribute a WHERE a.attrelid = $1::regclass AND a.attnum > 0 AND NOT a.attisdropped
     ORDER BY a.attnum]], tbl))
  -- (foreign_keys: the constraints and the references triggers enforce)
  local fks = motomind.assert(db:query([[
    SELECT c.relname AS parent, array_to_string(k.columns, ',') AS cols, array_to_string(k.target_columns, ',') AS refs,
           EXISTS (SELECT 1 FROM pg_attribute t WHERE t.attrelid = k.target AND t.attname = 'tenant_id') AS scoped
      FROM foreign_keys k JOIN pg_class c ON c.oid = k.target
     WHERE k.rel = $1::regclass AND k.target <> k.rel]], tbl))
  catalogued[db][tbl] = { cols, fks }
  return cols, fks
end

local function split(list)
  local out = {}
  for name in list:gmatch("[^,]+") do out[#out + 1] = name end
  return out
end

-- A value of each type for a required column nobody references (the text
-- one reads as a SHA-256 too, as checksums must).
local SAMPLE = { text = "encode(sha256('probe'), 'hex')", integer = "1", smallint = "1", bigint = "1", numeric = "1", boolean = "false",
  date = "'2025-01-01'", ["timestamp with time zone"] = "now()", uuid = "gen_random_uuid()", jsonb = "'{}'" }

--- insert(db, tbl, tenant, user) -> sql, args: an INSERT of a new row of
-- tbl for tenant: each required foreign key (and the vehicle, which decides
-- who may write) pointing at a row of the tenant's (its users: user), each
-- other required column a sample of its type (or the first value its CHECK
-- allows).
function M.insert(db, tbl, tenant, user)
  local cols, fks = M.catalog(db, tbl)
  local given, required = { tenant_id = tenant }, {}
  for _, c in ipairs(cols) do required[c.name] = c.needed end
  for _, fk in ipairs(fks) do
    local from, to = split(fk.cols), split(fk.refs)
    local row
    if fk.parent == "users" then row = { id = user }
    elseif fk.scoped then
      row = db:row(("SELECT %s FROM %s WHERE tenant_id = $1 LIMIT 1"):format(fk.refs, fk.parent), tenant)
    end
    for i, c in ipairs(from) do
      if row and given[c] == nil and (required[c] or c == "vehicle_id") then given[c] = row[to[i]] end
    end
  end
  local names, values, args = {}, {}, {}
  for _, c in ipairs(cols) do
    if given[c.name] ~= nil then
      args[#args + 1] = given[c.name]
      names[#names + 1], values[#values + 1] = c.name, ("$%d::%s"):format(#args, c.type)
    elseif c.needed then
      names[#names + 1] = c.name
      values[#values + 1] = c.allowed ~= motomind.null and c.allowed or c.type:match("%[%]$") and "'{}'"
        or assert(SAMPLE[c.type], tbl .. "." .. c.name .. ": no sample of type " .. c.type)
    end
  end
  return ("INSERT INTO %s (%s) VALUES (%s)"):format(tbl, table.concat(names, ", "), table.concat(values, ", ")), args
end

--- seed(db, tenant, user, [from]): a row in each tenant table (of the
-- view or table from, e.g. soft_delete_tables) that has none of the
-- tenant's yet (parents first), as db (the owner, in maintenance mode).
function M.seed(db, tenant, user, from)
  for _, r in ipairs(motomind.assert(db:query("SELECT t.table_name FROM tenant_tables t WHERE t.table_name IN " ..
      "(SELECT table_name FROM " .. (from or "tenant_tables") .. ") ORDER BY t.depth, t.table_name"))) do
    if db:value(("SELECT count(*) FROM %s WHERE tenant_id = $1"):format(r.table_name), tenant) == 0 then
      local sql, args = M.insert(db, r.table_name, tenant, user)
      motomind.assert(db:exec(sql, (table.unpack or unpack)(args)))
    end
  end
end

return M
