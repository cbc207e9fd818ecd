--- Internals that specs and benchmarks reach (not API: may change at any
-- release): the timeline page statements and their parameters, for EXPLAIN.
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
  return "(SELECT " .. M.photos_agg("p") .. " FROM " ..
    db:qualify("event_photo_details") .. " p WHERE p.tenant_id = " .. tenant_expr .. " AND p.event_id IN (" ..
    ids_expr .. "))"
end

--- The aggregate of photos (rows of event_photo_details as alias) into
-- that JSON array.
function M.photos_agg(alias)
  return ("jsonb_agg(to_jsonb(%s) - 'tenant_id' ORDER BY %s.position, %s.image_id)"):format(alias, alias, alias)
end

-- The filters a page may have, in a fixed order: each adds its condition
-- (its parameters numbered from n) only when present, so each shape of
-- filters gets its own statement and plan (a catch-all "$2 IS NULL OR ..."
-- gave the planner one generic plan for every shape).
local FILTERS = {
  { key = "vehicle", sql = "e.vehicle_id = $%d::uuid" },
  { key = "garage", sql = "v.garage_id = $%d::uuid" },
  { key = "types", sql = "e.type IN (SELECT jsonb_array_elements_text($%d::jsonb))" },
  { key = "tags", sql = "e.tags @> $%d::jsonb" },
  { key = "from", sql = "e.occurred_at >= $%d::timestamptz" },
  { key = "to", sql = "e.occurred_at < $%d::timestamptz" },
  { key = "cursor", sql = "(e.occurred_at, e.id) < ($%d::timestamptz, $%d::uuid)" },
}

-- The page statements' SQL by name (schema and shape): written once.
local page_sql = {}

--- page_query(db, ctx, opts) -> { name =, sql =, params = { n = } }: the
-- timeline page statement of the shape of opts' filters (its name is the
-- same for every page of that shape and schema) and its parameters.
-- Payloads come back as jsonb, decoded without re-validation: the database
-- checked them when they were written, and a later rule change must not
-- make old history unreadable.
function M.page_query(db, ctx, opts)
  local limit = M.page_limit(opts)
  local params, where, shape = { ctx.tenant, limit + 1 }, {}, {}
  for _, f in ipairs(FILTERS) do
    local value = opts[f.key]
    if value ~= nil and value ~= null then
      local n = #params + 1
      if f.key == "cursor" then
        params[n], params[n + 1] = M.cursor_parts(value)
      elseif f.key == "types" or f.key == "tags" then
        params[n] = motomind.json.list(value)
      else
        params[n] = value
      end
      where[#where + 1] = f.sql:format(n, n + 1)
      shape[#shape + 1] = f.key
    end
  end
  params.n = #params
  local name = "motomind_page_" .. db:schema() .. "_" .. (#shape > 0 and table.concat(shape, "_") or "all")
  -- The page's rows first (LIMIT), then their flags and photos each in one
  -- join over the page: a subquery per row cost 0.1 ms more a page of 50
  -- (docs/design.md, the page's cost). local_time: date_trunc and the ISO
  -- text (the connection's DateStyle), not to_char, 1 us a row cheaper.
  local sql = page_sql[name] or [[
    WITH page AS MATERIALIZED (
      SELECT e.tenant_id, e.id, e.vehicle_id, e.type, e.occurred_at, e.mileage, e.payload, e.notes, e.location,
             e.tags, e.correction, e.corrects_id, v.nickname, v.odometer_unit, v.timezone
        FROM ]] .. db:qualify("vehicle_events_effective") .. [[ e
        JOIN ]] .. db:qualify("vehicles") .. [[ v ON v.tenant_id = e.tenant_id AND v.id = e.vehicle_id
       WHERE e.tenant_id = $1]] .. (#where > 0 and " AND " .. table.concat(where, " AND ") or "") .. [[

       ORDER BY e.occurred_at DESC, e.id DESC
       LIMIT $2),
    flags AS (
      SELECT p.id, p.occurred_at, jsonb_agg(jsonb_build_object('flag', f.flag, 'detail', f.detail) ORDER BY f.flag) AS flags
        FROM page p JOIN ]] .. db:qualify("vehicle_event_flags") .. [[ f
          ON f.tenant_id = p.tenant_id AND f.event_id = p.id AND f.occurred_at = p.occurred_at
       GROUP BY p.id, p.occurred_at),
    photos AS (
      SELECT p.id, p.occurred_at, ]] .. M.photos_agg("d") .. [[ AS photos
        FROM page p JOIN ]] .. db:qualify("event_photo_details") .. [[ d
          ON d.tenant_id = p.tenant_id AND d.event_id IN (p.id, p.corrects_id)
       GROUP BY p.id, p.occurred_at)
    SELECT p.id, p.vehicle_id, p.type, p.occurred_at, p.mileage, p.payload, p.notes, p.location, p.tags,
           p.correction, p.corrects_id, p.nickname, p.odometer_unit,
           left(date_trunc('minute', p.occurred_at AT TIME ZONE p.timezone)::text, -3) AS local_time,
           f.flags, ph.photos
      FROM page p
      LEFT JOIN flags f ON f.id = p.id AND f.occurred_at = p.occurred_at
      LEFT JOIN photos ph ON ph.id = p.id AND ph.occurred_at = p.occurred_at
     ORDER BY p.occurred_at DESC, p.id DESC]]
  page_sql[name] = sql
  return { name = name, sql = sql, params = params }
end

return M
