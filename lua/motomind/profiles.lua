--- Vehicle profiles, as the context user in db:as(ctx): specs as each
-- source knows them (VIN decoder, manual, AI, ...) and maintenance
-- preferences per user and/or vehicle (units, currency, reminder lead
-- times, service intervals).
local motomind = require "motomind"
local rows = require "motomind.rows"

local M = {}

-- Sets the live row of tbl matching key (its columns' values in fields;
-- absent: NULL): updates it, or inserts one.
local function upsert(db, ctx, tbl, key, fields)
  return motomind.try(db.as, db, ctx, function()
    local match, changes = {}, {}
    for k, v in pairs(fields) do changes[k] = v end
    for _, k in ipairs(key) do
      match[k] = fields[k] == nil and motomind.null or fields[k]
      changes[k] = nil
    end
    local found = motomind.assert(rows.list(db, ctx, tbl, match))[1]
    if found then return motomind.assert(rows.update(db, ctx, tbl, found.id, changes)) end
    return motomind.assert(rows.insert(db, ctx, tbl, fields))
  end)
end

--- set_spec(db, ctx, fields) -> the vehicle's spec row of fields.source
-- (default "manual"), created or updated. fields: vehicle_id (required),
-- source, confidence, engine, displacement_l, power_kw, fuel_types,
-- tank_litres, battery_kwh, drivetrain, transmission, body, specs.
function M.set_spec(db, ctx, fields)
  motomind.check_ctx(ctx, "profiles")
  if type(fields) ~= "table" then error("profiles.set_spec: fields must be a table", 2) end
  local own = {}
  for k, v in pairs(fields) do own[k] = v end
  own.source = own.source or "manual"
  return upsert(db, ctx, "vehicle_spec_enhancements", { "vehicle_id", "source" }, own)
end

--- specs(db, ctx, vehicle_id) -> the vehicle's specs, one row per source, most confident first.
function M.specs(db, ctx, vehicle_id)
  motomind.check_ctx(ctx, "profiles")
  return rows.list(db, ctx, "vehicle_spec_enhancements", { vehicle_id = vehicle_id },
    "confidence DESC NULLS LAST, source")
end

--- set_preferences(db, ctx, fields) -> the preferences row of
-- (fields.user_id, fields.vehicle_id) (either may be absent: everyone,
-- every vehicle), created or updated. fields: distance_unit, volume_unit,
-- currency, due_soon_days, due_soon_distance, service_intervals.
function M.set_preferences(db, ctx, fields)
  motomind.check_ctx(ctx, "profiles")
  if type(fields) ~= "table" then error("profiles.set_preferences: fields must be a table", 2) end
  return upsert(db, ctx, "user_maintenance_preferences", { "user_id", "vehicle_id" }, fields)
end

--- preferences(db, ctx, { user =, vehicle = }) -> the preferences that
-- apply, most specific first (user and vehicle, vehicle, user, everyone).
function M.preferences(db, ctx, who)
  motomind.check_ctx(ctx, "profiles")
  who = who or {}
  return db:as(ctx, function()
    return db:query("SELECT * FROM " .. db:qualify("user_maintenance_preferences") ..
      " WHERE tenant_id = $1 AND (user_id IS NULL OR user_id = $2::uuid) AND (vehicle_id IS NULL OR vehicle_id = $3::uuid)" ..
      " ORDER BY (vehicle_id IS NULL), (user_id IS NULL)", ctx.tenant, who.user or motomind.null,
      who.vehicle or motomind.null)
  end)
end

return M
