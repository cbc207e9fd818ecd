--- Import batches (migration 0022): what each import wrote, listed and
-- undone. Every import records one (motomind.import); its events carry
-- the batch's id.
local motomind = require "motomind"

local M = {}

--- list(db, ctx) -> the tenant's batches, newest first (id, file, checksum,
-- format, options, records, inserted, duplicates, refused, created_at,
-- created_by, undone_at, undone_by) | nil, message, sqlstate, detail.
function M.list(db, ctx)
  motomind.check_ctx(ctx, "imports.list")
  return db:as(ctx, function()
    return db:query("SELECT id, file, checksum, format, options, records, inserted, duplicates, refused, created_at, " ..
      "created_by, undone_at, undone_by FROM " .. db:qualify("import_batches") ..
      " WHERE tenant_id = $1 ORDER BY created_at DESC, id", ctx.tenant)
  end)
end

--- undo(db, ctx, batch) -> { batch, voided = n, corrected = { event ids } }
-- | nil, message, sqlstate, detail. Voids, in one transaction, every event
-- of the batch still effective; those amended since are left as corrected
-- and listed. For the batch's importer or an owner or manager, once.
function M.undo(db, ctx, batch)
  motomind.check_ctx(ctx, "imports.undo")
  return db:as(ctx, function()
    local r, err, sqlstate, detail = db:row("SELECT voided, corrected FROM " .. db:qualify("undo_import_batch") ..
      "($1)", batch)
    if not r then return nil, err, sqlstate, detail end
    return { batch = batch, voided = r.voided, corrected = r.corrected }
  end)
end

return M
