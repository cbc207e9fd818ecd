--- Rows of a tenant table written and read through the catalog: the
-- columns a caller may write are the table's own (not the tenant, not the
-- audit stamps, not generated ones), so the capture nouns (photos,
-- captures, vision, locations, conversations, profiles) define no field
-- lists of their own. Call inside db:as(ctx): row-level security decides.
local motomind = require "motomind"

local unpack = table.unpack or unpack
local M = {}

-- Never written by a caller: the database stamps them.
local STAMPED = { tenant_id = true, created_at = true, created_by = true, updated_at = true, updated_by = true,
                  deleted_at = true, deleted_by = true }

-- Per connection: each table's (or view's) writable columns { name = type }
-- and their names in column order, its CHECK constraints' columns
-- { constraint = column }, whether it has soft delete, and the SELECT list
-- its readers use. A sealable column's companions (c_sealed, c_hash: 0029)
-- are the database's to write, from c; a caller never names them.
local cache = setmetatable({}, { __mode = "k" })

local function catalog(db, tbl)
  cache[db] = cache[db] or {}
  local known = cache[db][tbl]
  if known then return known end
  local rel = db:qualify(tbl)
  -- The sealable columns (0029's sealed_columns: the convention's one
  -- definition): { c = hashed }, and their companions c_sealed and c_hash.
  local sealed, companion = {}, {}
  for _, r in ipairs(motomind.assert(db:query("SELECT column_name, hashed FROM " .. db:qualify("sealed_columns") ..
      " WHERE rel = $1::regclass", rel))) do
    sealed[r.column_name] = r.hashed
    companion[r.column_name .. "_sealed"] = true
    if r.hashed then companion[r.column_name .. "_hash"] = true end
  end
  local columns, names, soft, list = {}, {}, false, {}
  for _, r in ipairs(motomind.assert(db:query("SELECT attname, format_type(atttypid, atttypmod) AS type, " ..
      "attgenerated <> '' AS generated FROM pg_attribute WHERE attrelid = $1::regclass AND attnum > 0 " ..
      "AND NOT attisdropped ORDER BY attnum", rel))) do
    local name = r.attname
    if not (STAMPED[name] or r.generated or companion[name]) then
      columns[name], names[#names + 1] = r.type, name
    end
    soft = soft or name == "deleted_at"
    -- What a reader selects: a sealable column opened by the connection's
    -- field key.
    if sealed[name] ~= nil then
      assert(name:match("^[%w_]+$"), name .. ": a sealable column's name is a plain word (it is written as a literal)")
      list[#list + 1] = ("coalesce(t.%s, %s(t.%s, '%s')) AS %s"):format(db:escape_identifier(name),
        db:qualify("unseal_text"), db:escape_identifier(name .. "_sealed"), name, db:escape_identifier(name))
    else
      list[#list + 1] = "t." .. db:escape_identifier(name)
    end
  end
  local checks = {}
  for _, r in ipairs(motomind.assert(db:query("SELECT k.conname, a.attname FROM pg_constraint k JOIN pg_attribute a " ..
      "ON a.attrelid = k.conrelid AND a.attnum = k.conkey[1] WHERE k.conrelid = $1::regclass AND k.contype = 'c' " ..
      "AND cardinality(k.conkey) = 1", rel))) do
    checks[r.conname] = r.attname
  end
  known = { columns = columns, names = names, checks = checks, soft = soft, select = table.concat(list, ", ") }
  cache[db][tbl] = known
  return known
end

--- fields(db, tbl) -> the names of the columns of tbl a caller may write,
-- in column order, and the same as a set.
function M.fields(db, tbl)
  local info = catalog(db, tbl)
  return info.names, info.columns
end

--- select_list(db, tbl) -> the SELECT list of tbl's rows (aliased t) as
-- the caller sees them: sealed values opened by the connection's field key
-- (NULL without one), the table's columns in order.
function M.select_list(db, tbl)
  return catalog(db, tbl).select
end

-- The SQL that reads rows of tbl (aliased t) as the caller sees them.
local function reading(db, tbl)
  return ("SELECT %s FROM %s t"):format(catalog(db, tbl).select, db:qualify(tbl))
end

-- The SQL of one bound value for a column: arrays come as Lua arrays (JSON).
local function placeholder(n, ctype)
  if ctype:match("%[%]$") then
    return ("coalesce((SELECT array_agg(x) FROM jsonb_array_elements_text($%d::jsonb) x), '{}')::%s"):format(n, ctype)
  end
  return ("$%d::%s"):format(n, ctype)
end

-- A failed write's message, naming the field: a value that is not of its
-- column's type (found by casting each value alone) or a CHECK of one column.
local function explain(db, tbl, fields, message, sqlstate, detail)
  local info = catalog(db, tbl)
  if sqlstate == "23514" then
    local column = info.checks[message:match('constraint "([^"]+)"') or ""]
    if column then return nil, column .. ": " .. message, sqlstate, detail end
  elseif sqlstate and sqlstate:match("^22") then
    for name, value in pairs(fields) do
      local ctype = info.columns[name]
      if ctype and value ~= motomind.null then
        local ok, why = db:value("SELECT " .. placeholder(1, ctype) .. " IS NOT NULL", value)
        if not ok then return nil, name .. ": " .. why, sqlstate, detail end
      end
    end
  end
  return nil, message, sqlstate, detail
end

local function check_fields(db, tbl, fields)
  if type(fields) ~= "table" then error(tbl .. ": fields must be a table", 3) end
  local columns = catalog(db, tbl).columns
  for k in pairs(fields) do
    if not columns[k] then return nil, tostring(k) .. ": unknown field of " .. tbl, "22023" end
  end
  return columns
end

-- Runs a write as the context user; a failure is explained afterwards
-- (the write's transaction, or savepoint, is rolled back by then).
local function write(db, ctx, tbl, fields, sql, args)
  local row, err, sqlstate, detail = db:as(ctx, function() return db:row(sql, unpack(args, 1, args.n)) end)
  if row then return row end
  if not err then return nil, "no such row in " .. tbl .. " (or not yours to change)", "P0002" end
  return explain(db, tbl, fields, err, sqlstate, detail)
end

--- insert(db, ctx, tbl, fields) -> the new row | nil, message, sqlstate, detail.
function M.insert(db, ctx, tbl, fields)
  local columns, err, sqlstate = check_fields(db, tbl, fields)
  if not columns then return nil, err, sqlstate end
  local names, values, args = { "tenant_id" }, { "$1::uuid" }, { ctx.tenant }
  for name, value in pairs(fields) do
    args[#args + 1] = value
    names[#names + 1], values[#values + 1] = db:escape_identifier(name), placeholder(#args, columns[name])
  end
  args.n = #args
  return write(db, ctx, tbl, fields, ("INSERT INTO %s AS t (%s) VALUES (%s) RETURNING %s"):format(db:qualify(tbl),
    table.concat(names, ", "), table.concat(values, ", "), M.select_list(db, tbl)), args)
end

--- update(db, ctx, tbl, id, fields) -> the changed row | nil, message, sqlstate, detail
-- (P0002 when no live row of the tenant has that id, or it is not yours to change).
function M.update(db, ctx, tbl, id, fields)
  local columns, err, sqlstate = check_fields(db, tbl, fields)
  if not columns then return nil, err, sqlstate end
  local sets, args = {}, { ctx.tenant, id }
  for name, value in pairs(fields) do
    args[#args + 1] = value
    sets[#sets + 1] = db:escape_identifier(name) .. " = " .. placeholder(#args, columns[name])
  end
  if #sets == 0 then return M.get(db, ctx, tbl, id) end
  args.n = #args
  return write(db, ctx, tbl, fields, ("UPDATE %s AS t SET %s WHERE tenant_id = $1 AND id = $2::uuid RETURNING %s")
    :format(db:qualify(tbl), table.concat(sets, ", "), M.select_list(db, tbl)), args)
end

--- get(db, ctx, tbl, id) -> the row | nil (none visible) | nil, message, sqlstate.
function M.get(db, ctx, tbl, id)
  return db:as(ctx, function()
    return db:row(reading(db, tbl) .. " WHERE t.tenant_id = $1 AND t.id = $2::uuid", ctx.tenant, id)
  end)
end

--- list(db, ctx, rel, where, order) -> the tenant's live rows of a table
-- or view (read with the user's rights) whose columns equal where's values
-- ({ vehicle_id = v }; motomind.null: IS NULL), in order (SQL of its
-- columns; default its first).
function M.list(db, ctx, rel, where, order)
  local conds, args = { "t.tenant_id = $1" }, { ctx.tenant }
  local info = catalog(db, rel)
  if info.soft then conds[2] = "t.deleted_at IS NULL" end
  for name, value in pairs(where or {}) do
    if not info.columns[name] then error(rel .. ": no column " .. tostring(name), 2) end
    if value == motomind.null then
      conds[#conds + 1] = "t." .. db:escape_identifier(name) .. " IS NULL"
    else
      args[#args + 1] = value
      conds[#conds + 1] = "t." .. db:escape_identifier(name) .. " = " .. placeholder(#args, info.columns[name])
    end
  end
  return db:as(ctx, function()
    return db:query(("%s WHERE %s ORDER BY %s"):format(reading(db, rel), table.concat(conds, " AND "),
      order or "1"), unpack(args, 1, #args))
  end)
end

return M
