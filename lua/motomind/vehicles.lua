--- Vehicles of a tenant, as the context user (each call runs inside
-- db:as(ctx): row-level security decides what the user may see and write).
-- Vehicles are named by id, nickname, plate or VIN.
local motomind = require "motomind"
local naming = require "motomind.names"
local rows = require "motomind.rows"

local unpack = table.unpack or unpack

local M = {}

-- The columns add() and edit() accept: the table's own, as the catalog
-- says (motomind.rows: not the tenant, the stamps or a sealed column's
-- companions), but its id (tags: a list of strings; extended_attributes:
-- values of the tenant's custom fields).
local function accepts(known, k) return k ~= "id" and known[k] ~= nil end

--- fields(db) -> the names of the fields add() and edit() accept, in
-- column order.
function M.fields(db)
  local names, known = rows.fields(db, "vehicles")
  local out = {}
  for _, k in ipairs(names) do
    if accepts(known, k) then out[#out + 1] = k end
  end
  return out
end

-- names and values with the columns and values of fields (those of
-- M.fields) appended, or nil, message, sqlstate for a field it does not know.
local function columns_of(db, fields, names, values)
  local columns, known = rows.fields(db, "vehicles")
  for k in pairs(fields) do
    if not accepts(known, k) then return nil, tostring(k) .. ": unknown field", "22023" end
  end
  for _, k in ipairs(columns) do
    local v = k == "tags" and motomind.json.list(fields[k]) or fields[k]
    if v ~= nil then names[#names + 1] = k; values[#values + 1] = v end
  end
  return names, values
end

-- Vehicle rows as readers see them (alias t): a sealed VIN and plate
-- opened by the connection's field key.
local function opened(db)
  return rows.select_list(db, "vehicles")
end

--- add(db, ctx, fields) -> the vehicle row | nil, message, sqlstate, detail.
-- fields: those of M.fields(db); odometer_unit ("km" or "mi") is required: a
-- vehicle's unit is never guessed.
function M.add(db, ctx, fields)
  motomind.check_ctx(ctx, "vehicles")
  if type(fields) ~= "table" then error("vehicles.add: fields must be a table", 2) end
  if fields.odometer_unit == nil then
    return nil, "odometer_unit: is required (km or mi): every mileage of the vehicle is in it", "22023"
  end
  local names, values, sqlstate = columns_of(db, fields, { "tenant_id" }, { ctx.tenant })
  if not names then return nil, values, sqlstate end
  local params = {}
  for i = 1, #names do params[i] = "$" .. i end
  return db:as(ctx, function()
    return db:row(("INSERT INTO %s AS t (%s) VALUES (%s) RETURNING %s"):format(db:qualify("vehicles"),
      table.concat(names, ", "), table.concat(params, ", "), opened(db)), unpack(values, 1, #names))
  end)
end

--- get(db, ctx, id) -> the vehicle row (live, visible to the user) | nil,
-- message, sqlstate.
function M.get(db, ctx, id)
  motomind.check_ctx(ctx, "vehicles")
  local row, err, sqlstate, detail = db:as(ctx, function()
    return db:row("SELECT " .. opened(db) .. " FROM " .. db:qualify("vehicles") ..
      " t WHERE t.tenant_id = $1 AND t.id = $2::uuid AND t.deleted_at IS NULL", ctx.tenant, id)
  end)
  if row == nil and err == nil then return nil, ("vehicle %s: no such vehicle in this tenant"):format(id), "P0002" end
  return row, err, sqlstate, detail
end

--- edit(db, ctx, id, fields) -> the updated vehicle row | nil, message,
-- sqlstate, detail. fields: those of M.fields(db) to change (motomind.null
-- clears one); the database's rules and the user's rights apply as to any
-- UPDATE (a viewer, or a manager without a write grant on its group, is
-- refused).
function M.edit(db, ctx, id, fields)
  motomind.check_ctx(ctx, "vehicles")
  if type(fields) ~= "table" then error("vehicles.edit: fields must be a table", 2) end
  local names, values, sqlstate = columns_of(db, fields, {}, { ctx.tenant, id })
  if not names then return nil, values, sqlstate end
  if #names == 0 then return nil, "nothing to change: name a field (" .. table.concat(M.fields(db), ", ") .. ")", "22023" end
  local sets = {}
  for i, k in ipairs(names) do sets[i] = ("%s = $%d"):format(k, i + 2) end
  local row, err, state, detail = db:as(ctx, function()
    return db:row(("UPDATE %s AS t SET %s WHERE tenant_id = $1 AND id = $2::uuid AND deleted_at IS NULL RETURNING %s")
      :format(db:qualify("vehicles"), table.concat(sets, ", "), opened(db)), unpack(values, 1, #names + 2))
  end)
  if row == nil and err == nil then
    return nil, ("vehicle %s: no such vehicle in this tenant, or not yours to change"):format(id), "42501"
  end
  return row, err, state, detail
end

--- list(db, ctx [, { tags = {...} }]) -> the tenant's live vehicles the
-- user can see (those carrying every tag given), by nickname.
function M.list(db, ctx, opts)
  motomind.check_ctx(ctx, "vehicles")
  local tags = opts and opts.tags
  if tags ~= nil and type(tags) ~= "table" then error("vehicles.list: tags must be a list of strings", 2) end
  return db:as(ctx, function()
    return db:query("SELECT id, nickname, make, model, year, plate, vin, odometer_unit, timezone, currency, tags, " ..
      "extended_attributes FROM (SELECT " .. opened(db) .. " FROM " .. db:qualify("vehicles") .. " t " ..
      "WHERE t.tenant_id = $1 AND t.deleted_at IS NULL AND ($2::jsonb IS NULL OR t.tags @> $2::jsonb)) v " ..
      "ORDER BY nickname NULLS LAST, id",
      ctx.tenant, tags and motomind.json.list(tags) or motomind.null)
  end)
end

--- resolve(db, ctx, name) -> vehicle id | nil, message, sqlstate: name is an
-- id, a nickname (case-insensitive), a plate or a VIN; an ambiguous name is
-- refused, listing the candidates.
function M.resolve(db, ctx, name)
  motomind.check_ctx(ctx, "vehicles")
  if type(name) ~= "string" or name == "" then error("vehicles.resolve: name must be a string", 2) end
  local found, err, sqlstate = db:as(ctx, function()
    -- (the keyed hash of the name: a scalar subquery, computed once)
    local hash = "(SELECT " .. db:qualify("seal_hash") .. "($2))"
    return db:query("SELECT id, nickname, plate, vin FROM (SELECT " .. opened(db) .. " FROM " ..
      db:qualify("vehicles") .. " t WHERE t.tenant_id = $1 AND t.deleted_at IS NULL AND (t.id::text = lower($2) " ..
      "OR lower(t.nickname) = lower($2) OR upper(t.plate) = upper($2) OR t.vin = upper($2) OR t.plate_hash = " .. hash ..
      " OR t.vin_hash = " .. hash .. ")) v ORDER BY id", ctx.tenant, name)
  end)
  if not found then return nil, err, sqlstate end
  return naming.pick(found, "vehicle", name, "id, nickname, plate or VIN", function(r)
    return ("%s (%s%s)"):format(r.id, r.nickname ~= motomind.null and r.nickname or "no nickname",
      r.plate ~= motomind.null and ", plate " .. r.plate or "")
  end)
end

return M
