--- Internals that specs and benchmarks reach (not API: may change at any
-- release): the timeline page query and its parameters, for EXPLAIN.
local motomind = require "motomind"

local null = motomind.null
local M = {}

--- The page size of opts (1..1000, default 50); raises on misuse.
function M.page_limit(opts)
  local limit = opts.limit or 50
  if type(limit) ~= "number" or limit < 1 or limit > 1000 or limit % 1 ~= 0 then
    error("timeline: limit must be a whole number from 1 to 1000", 4)
  end
  return limit
end

--- A keyset cursor's time and id (nulls when absent); raises when malformed.
function M.cursor_parts(cursor)
  if cursor == nil then return null, null end
  local at, id = tostring(cursor):match("^(.-)|(%x+%-%x+%-%x+%-%x+%-%x+)$")
  if not at then error("timeline: malformed cursor", 3) end
  return at, id
end

--- The photos of the event whose id is ids_expr (SQL of a uuid, or of a
-- set of them), in order, as a JSON array (NULL when none): an amended
-- event shows the photos of the event it corrects too.
function M.photos_sql(db, tenant_expr, ids_expr)
  return "(SELECT jsonb_agg(to_jsonb(p) - 'tenant_id' ORDER BY p.position, p.image_id) FROM " ..
    db:qualify("event_photo_details") .. " p WHERE p.tenant_id = " .. tenant_expr .. " AND p.event_id IN (" ..
    ids_expr .. "))"
end

--- The timeline page query.
function M.page_sql(db)
  return [[
    SELECT e.id, e.vehicle_id, e.type, e.occurred_at, e.mileage, e.payload::text AS payload, e.notes,
           e.correction, e.corrects_id, v.nickname, v.odometer_unit,
           to_char(e.occurred_at AT TIME ZONE v.timezone, 'YYYY-MM-DD HH24:MI') AS local_time,
           (SELECT jsonb_agg(jsonb_build_object('flag', f.flag, 'detail', f.detail))
              FROM ]] .. db:qualify("vehicle_event_flags") .. [[ f
             WHERE f.tenant_id = e.tenant_id AND f.event_id = e.id AND f.occurred_at = e.occurred_at) AS flags,
           ]] .. M.photos_sql(db, "e.tenant_id", "e.id, e.corrects_id") .. [[ AS photos
      FROM ]] .. db:qualify("vehicle_events_effective") .. [[ e
      JOIN ]] .. db:qualify("vehicles") .. [[ v ON v.tenant_id = e.tenant_id AND v.id = e.vehicle_id
     WHERE e.tenant_id = $1
       AND ($2::uuid IS NULL OR e.vehicle_id = $2)
       AND ($3::uuid IS NULL OR v.garage_id = $3)
       AND ($4::jsonb IS NULL OR e.type IN (SELECT jsonb_array_elements_text($4)))
       AND ($5::timestamptz IS NULL OR e.occurred_at >= $5)
       AND ($6::timestamptz IS NULL OR e.occurred_at < $6)
       AND ($7::timestamptz IS NULL OR (e.occurred_at, e.id) < ($7, $8::uuid))
     ORDER BY e.occurred_at DESC, e.id DESC
     LIMIT $9]]
end

--- The parameters of a page query, in page_sql's order.
function M.page_params(ctx, opts)
  local limit = M.page_limit(opts)
  local at, id = M.cursor_parts(opts.cursor)
  return { ctx.tenant, opts.vehicle or null, opts.garage or null,
           opts.types and setmetatable(opts.types, motomind.json.array_mt) or null,
           opts.from or null, opts.to or null, at, id, limit + 1, n = 9 }
end

return M
