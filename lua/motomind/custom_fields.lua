--- Custom fields, as the context user in db:as(ctx): the typed fields a
-- tenant defines for its vehicles (cost center, asset tag, ...), whose
-- values vehicles carry in extended_attributes. A field's spec is a rule of
-- the payload vocabulary of sql/payloads.json ({ type = "string",
-- max_length = 40 }, { type = "integer", min = 0 }, { type = "string",
-- enum = { "a", "b" } }, { type = "boolean" }, { type = "date" }); the
-- database checks every vehicle against the live definitions, for every
-- writer, and refuses a definition change that a vehicle would break.
local motomind = require "motomind"
local rows = require "motomind.rows"
local records = require "motomind.records"

local M = {}

local TABLE = "custom_fields"

local function field(db, ctx, name)
  if type(name) ~= "string" then error("custom_fields: name must be a string", 3) end
  local found, err, sqlstate = rows.list(db, ctx, TABLE, { name = name })
  if not found then return nil, err, sqlstate end
  if not found[1] then return nil, ("custom field %s: no such field in this tenant"):format(name), "P0002" end
  return found[1]
end

--- define(db, ctx, { name =, spec =, label =, required = }) -> the field row
-- | nil, message, sqlstate, detail. name: lower case letters, digits and
-- underscores (1 to 64); spec: default a text of at most 200 characters; a
-- required field needs a value on every live vehicle first.
function M.define(db, ctx, fields)
  motomind.check_ctx(ctx, "custom_fields")
  if type(fields) ~= "table" then error("custom_fields.define: fields must be a table", 2) end
  return rows.insert(db, ctx, TABLE, fields)
end

--- change(db, ctx, name, { spec =, label =, required = }) -> the field row |
-- nil, message, sqlstate, detail (refused when a live vehicle's value
-- would break the new rule, naming it).
function M.change(db, ctx, name, changes)
  motomind.check_ctx(ctx, "custom_fields")
  return motomind.try(db.as, db, ctx, function()
    local f = motomind.assert(field(db, ctx, name))
    return motomind.assert(rows.update(db, ctx, TABLE, f.id, changes))
  end)
end

--- remove(db, ctx, name) -> true | nil, message, sqlstate (refused while a
-- live vehicle holds a value for it: clear those first).
function M.remove(db, ctx, name)
  motomind.check_ctx(ctx, "custom_fields")
  return motomind.try(db.as, db, ctx, function()
    local f = motomind.assert(field(db, ctx, name))
    return motomind.assert(records.soft_delete(db, TABLE, f.id))
  end)
end

--- list(db, ctx) -> the tenant's live custom fields, by name.
function M.list(db, ctx)
  motomind.check_ctx(ctx, "custom_fields")
  return rows.list(db, ctx, TABLE, nil, "name")
end

return M
