--- Garages of a tenant (where vehicles are kept), as the context user:
-- every call runs inside db:as(ctx), row-level security decides.
local motomind = require "motomind"
local naming = require "motomind.names"

local M = {}

--- add(db, ctx, name, description) -> the garage row | nil, message,
-- sqlstate, detail (a name the tenant already uses is refused, 23505).
function M.add(db, ctx, name, description)
  motomind.check_ctx(ctx, "garages")
  return db:as(ctx, function()
    return db:row("INSERT INTO " .. db:qualify("garages") .. " (tenant_id, name, description) VALUES ($1, $2, $3) " ..
      "RETURNING id, name, description", ctx.tenant, name, description == nil and motomind.null or description)
  end)
end

--- list(db, ctx) -> the tenant's live garages, by name, with their live
-- vehicles' count.
function M.list(db, ctx)
  motomind.check_ctx(ctx, "garages")
  return db:as(ctx, function()
    return db:query("SELECT g.id, g.name, g.description, (SELECT count(*)::integer FROM " .. db:qualify("vehicles") ..
      " v WHERE v.tenant_id = g.tenant_id AND v.garage_id = g.id AND v.deleted_at IS NULL) AS vehicles FROM " ..
      db:qualify("garages") .. " g WHERE g.tenant_id = $1 AND g.deleted_at IS NULL ORDER BY lower(g.name), g.id",
      ctx.tenant)
  end)
end

--- resolve(db, ctx, name) -> garage id | nil, message, sqlstate: name is an
-- id or a garage's name (unique in the tenant, case-insensitive).
function M.resolve(db, ctx, name)
  motomind.check_ctx(ctx, "garages")
  local rows, err, sqlstate = db:as(ctx, function()
    return db:query("SELECT id, name FROM " .. db:qualify("garages") .. " WHERE tenant_id = $1 AND deleted_at IS NULL " ..
      "AND (id::text = lower($2) OR lower(name) = lower($2))", ctx.tenant, name)
  end)
  if not rows then return nil, err, sqlstate end
  return naming.pick(rows, "garage", name, "id or name", function(g) return ("%s (%s)"):format(g.name, g.id) end)
end

return M
