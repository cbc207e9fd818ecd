--- Soft delete, restore, purge and change history of records, as the user
-- of a tenant (call inside db:as). The database decides who may: owners and
-- managers soft-delete and restore, owners purge, owners and managers read
-- the history.
local motomind = require "motomind"

local M = {}

--- soft_delete(db, table, id) -> true (done) | false (no such live row) | nil, message, sqlstate
function M.soft_delete(db, tbl, id)
  return db:value("SELECT " .. db:qualify("set_deleted") .. "($1, $2, true)", tbl, id)
end

--- restore(db, table, id) -> true | false | nil, message, sqlstate
function M.restore(db, tbl, id)
  return db:value("SELECT " .. db:qualify("set_deleted") .. "($1, $2, false)", tbl, id)
end

--- purge(db, table) -> number of soft-deleted rows removed for good | nil, message, sqlstate
function M.purge(db, tbl)
  return db:value("SELECT " .. db:qualify("purge_deleted") .. "($1)", tbl)
end

--- history(db, table, id) -> the audit entries of one record, oldest first:
-- { operation, old_values, new_values, actor, request_id, at }.
function M.history(db, tbl, id)
  return db:query("SELECT operation, old_values, new_values, actor, request_id, at FROM " ..
    db:qualify("audit_log") .. " WHERE table_name = $1 AND record_id = $2 ORDER BY id", tbl, id)
end

--- vehicle_history(db, vehicle_id) -> the audit entries of a vehicle and of
-- every audited record of it (any table whose rows carry its vehicle_id:
-- photos, reminders, capture sessions, ...), oldest first (events are their
-- own history: see motomind.timeline.history).
function M.vehicle_history(db, vehicle_id)
  return db:query("SELECT table_name, record_id, operation, old_values, new_values, actor, request_id, at FROM " ..
    db:qualify("audit_log") .. " WHERE (table_name = 'vehicles' AND record_id = $1) " ..
    "OR (new_values ->> 'vehicle_id')::uuid = $1 OR (old_values ->> 'vehicle_id')::uuid = $1 ORDER BY id",
    vehicle_id)
end

return M
