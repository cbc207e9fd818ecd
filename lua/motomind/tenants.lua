--- Tenants, users and memberships. Creating a tenant is a bootstrap (there
-- is no member yet to act as): the connection's role does it, in one
-- transaction with the owner's membership. Everything else runs inside
-- db:as(ctx), where row-level security decides.
local motomind = require "motomind"

local M = {}

--- create(db, { name =, owner = <user uuid>, kind = "solo"|"org" }) ->
-- tenant id | nil, message, sqlstate, detail.
function M.create(db, opts)
  if type(opts) ~= "table" or type(opts.name) ~= "string" or type(opts.owner) ~= "string" then
    error("tenants.create: { name = <text>, owner = <user uuid> } expected", 2)
  end
  return db:transaction(function()
    local id, err, sqlstate, detail = db:value("INSERT INTO " .. db:qualify("tenants") ..
      " (name, kind) VALUES ($1, $2) RETURNING id", opts.name, opts.kind or "solo")
    if not id then return nil, err, sqlstate, detail end
    local ok, e2, s2, d2 = db:exec("INSERT INTO " .. db:qualify("memberships") ..
      " (tenant_id, user_id, role) VALUES ($1, $2, 'owner')", id, opts.owner)
    if not ok then return nil, e2, s2, d2 end
    return id
  end)
end

--- list(db, [user]) -> tenants (id, name, kind, and the user's role when given).
function M.list(db, user)
  if user then
    return db:query("SELECT t.id, t.name, t.kind, m.role FROM " .. db:qualify("tenants") .. " t JOIN " ..
      db:qualify("memberships") .. " m ON m.tenant_id = t.id AND m.user_id = $1 AND m.deleted_at IS NULL " ..
      "WHERE t.deleted_at IS NULL ORDER BY t.name, t.id", user)
  end
  return db:query("SELECT id, name, kind FROM " .. db:qualify("tenants") ..
    " WHERE deleted_at IS NULL ORDER BY name, id")
end

--- add_user(db, email, [display_name]) -> user id | nil, message, sqlstate, detail.
function M.add_user(db, email, display_name)
  return db:value("INSERT INTO " .. db:qualify("users") .. " (email, display_name) VALUES ($1, $2) RETURNING id",
    email, display_name or motomind.null)
end

--- user_id(db, email_or_id) -> the user's id | nil, message, sqlstate.
function M.user_id(db, who)
  local id, err, sqlstate = db:value("SELECT id FROM " .. db:qualify("users") ..
    " WHERE deleted_at IS NULL AND (id::text = lower($1) OR lower(email) = lower($1))", who)
  if id then return id end
  if err then return nil, err, sqlstate end
  return nil, ("user %q: no such user (see `motomind user add`)"):format(who), "23503"
end

--- add_member(db, ctx, user, role) -> true | nil, message, ...: as the
-- context user (an owner adds members).
function M.add_member(db, ctx, user, role)
  return db:as(ctx, function()
    return db:exec("INSERT INTO " .. db:qualify("memberships") .. " (tenant_id, user_id, role) VALUES ($1, $2, $3)",
      ctx.tenant, user, role)
  end)
end

--- remove_member(db, ctx, user) -> true | false | nil, message, ...
function M.remove_member(db, ctx, user)
  return db:as(ctx, function()
    return db:value("SELECT " .. db:qualify("set_deleted") .. "('memberships', $1, true)", user)
  end)
end

--- set_role(db, ctx, user, role) -> true | nil, message, sqlstate, detail:
-- as the context user (owners change roles; a tenant keeps at least one
-- owner, which the database enforces).
function M.set_role(db, ctx, user, role)
  local row, err, sqlstate, detail = db:as(ctx, function()
    return db:row("UPDATE " .. db:qualify("memberships") .. " SET role = $3 WHERE tenant_id = $1 AND user_id = $2 " ..
      "AND deleted_at IS NULL RETURNING role", ctx.tenant, user, role)
  end)
  if row then return true end
  if err then return nil, err, sqlstate, detail end
  return nil, "not a member of this tenant, or not yours to change (owners change roles)", "42501"
end

--- seal_fields(db, ctx, on) -> the number of values rewritten | nil,
-- message, sqlstate: switches sealing of the tenant's sensitive fields
-- (sealed_columns: a vehicle's VIN and plate, conversation content) as its
-- owner, on a connection with a field_key; the values are sealed (or
-- opened again) in the same transaction.
function M.seal_fields(db, ctx, on)
  motomind.check_ctx(ctx, "tenants.seal_fields")
  if type(on) ~= "boolean" then error("tenants.seal_fields: on must be a boolean", 2) end
  return db:as(ctx, function()
    return db:value("SELECT " .. db:qualify("set_field_sealing") .. "($1)", on)
  end)
end

--- users(db) -> every live user (id, email, display_name), as the
-- connection's role: an administrator's listing, like list() without a user.
function M.users(db)
  return db:query("SELECT id, email, display_name FROM " .. db:qualify("users") ..
    " WHERE deleted_at IS NULL ORDER BY lower(email), id")
end

--- members(db, ctx) -> the tenant's members (user id, email, role).
function M.members(db, ctx)
  return db:as(ctx, function()
    return db:query("SELECT m.user_id, u.email, m.role FROM " .. db:qualify("memberships") .. " m JOIN " ..
      db:qualify("users") .. " u ON u.id = m.user_id WHERE m.tenant_id = $1 AND m.deleted_at IS NULL " ..
      "ORDER BY u.email", ctx.tenant)
  end)
end

return M
