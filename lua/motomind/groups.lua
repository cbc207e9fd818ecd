--- Fleet groups (a tree per tenant: regions, hubs, teams) and the grants
-- that give members rights on a group and everything below it, as the
-- context user: every call runs inside db:as(ctx); the database's policies
-- decide who may add groups and grant (owners, managers, admin grants).
local motomind = require "motomind"
local naming = require "motomind.names"

local M = {}

--- add(db, ctx, name, { parent = group id, kind = text }) -> the group row |
-- nil, message, sqlstate, detail.
function M.add(db, ctx, name, opts)
  motomind.check_ctx(ctx, "groups")
  opts = opts or {}
  return db:as(ctx, function()
    return db:row("INSERT INTO " .. db:qualify("fleet_groups") .. " (tenant_id, name, parent_id, kind) " ..
      "VALUES ($1, $2, $3, $4) RETURNING id, name, parent_id, kind", ctx.tenant, name,
      opts.parent == nil and motomind.null or opts.parent, opts.kind == nil and motomind.null or opts.kind)
  end)
end

--- list(db, ctx) -> the groups the user sees, each with its path from the
-- root ("Europe / Berlin hub") and its depth, in tree order.
function M.list(db, ctx)
  motomind.check_ctx(ctx, "groups")
  return db:as(ctx, function()
    return db:query("WITH RECURSIVE tree AS (" ..
      "SELECT g.id, g.name, g.kind, g.parent_id, g.name AS path, 0 AS depth, ARRAY[lower(g.name)] AS sort FROM " ..
      db:qualify("fleet_groups") .. " g WHERE g.tenant_id = $1 AND g.deleted_at IS NULL AND (g.parent_id IS NULL " ..
      "OR NOT EXISTS (SELECT 1 FROM " .. db:qualify("fleet_groups") .. " p WHERE p.tenant_id = g.tenant_id " ..
      "AND p.id = g.parent_id AND p.deleted_at IS NULL)) " ..
      "UNION ALL SELECT c.id, c.name, c.kind, c.parent_id, t.path || ' / ' || c.name, t.depth + 1, " ..
      "t.sort || lower(c.name) FROM tree t JOIN " .. db:qualify("fleet_groups") .. " c ON c.tenant_id = $1 " ..
      "AND c.parent_id = t.id AND c.deleted_at IS NULL) " ..
      "SELECT id, name, kind, parent_id, path, depth FROM tree ORDER BY sort", ctx.tenant)
  end)
end

--- resolve(db, ctx, name) -> group id | nil, message, sqlstate: name is an
-- id, a group's name or its path ("Europe / Berlin hub"); an ambiguous name
-- is refused, listing the candidates' paths.
function M.resolve(db, ctx, name)
  local groups, err, sqlstate = M.list(db, ctx)
  if not groups then return nil, err, sqlstate end
  local found = {}
  for _, g in ipairs(groups) do
    if g.id == name:lower() or g.name:lower() == name:lower() or g.path:lower() == name:lower() then
      found[#found + 1] = g
    end
  end
  return naming.pick(found, "group", name, "id, name or path", function(g) return ("%s (%s)"):format(g.path, g.id) end)
end

--- grant(db, ctx, group, user, level) -> true | nil, message, ...: gives
-- the member user read, write or admin on the group and its subgroups (a
-- grant already there takes the new level).
function M.grant(db, ctx, group, user, level)
  motomind.check_ctx(ctx, "groups")
  return db:as(ctx, function()
    return db:exec("INSERT INTO " .. db:qualify("group_permissions") .. " (tenant_id, group_id, user_id, level) " ..
      "VALUES ($1, $2, $3, $4) ON CONFLICT (tenant_id, group_id, user_id) DO UPDATE SET level = EXCLUDED.level",
      ctx.tenant, group, user, level)
  end)
end

--- revoke(db, ctx, group, user) -> true | nil, message, sqlstate: the
-- user's grant on the group removed (nil, message, "P0002" when there is
-- none the context user may remove).
function M.revoke(db, ctx, group, user)
  motomind.check_ctx(ctx, "groups")
  local n, err, sqlstate, detail = db:as(ctx, function()
    return db:exec("DELETE FROM " .. db:qualify("group_permissions") ..
      " WHERE tenant_id = $1 AND group_id = $2 AND user_id = $3", ctx.tenant, group, user)
  end)
  if not n then return nil, err, sqlstate, detail end
  if n == 0 then return nil, "no grant of that user on that group (or not yours to revoke)", "P0002" end
  return true
end

return M
