--- Vision model calls on photos and what users confirmed of them (as the
-- context user, in db:as(ctx)). Both are append-only: a call's figures and
-- a confirmation are history. Accuracy per model, task and field is the
-- vision_accuracy_stats view.
local motomind = require "motomind"
local rows = require "motomind.rows"

local M = {}

--- record(db, ctx, fields) -> the call's row | nil, message, sqlstate, detail.
-- fields: image_id, model, task (odometer, receipt, vin, ...), latency_ms
-- (required); confidence, fields ({ mileage = { value =, confidence = } }),
-- tokens_in, tokens_out, cost and currency, capture_session_id, error.
-- The vehicle is the photo's.
function M.record(db, ctx, fields)
  motomind.check_ctx(ctx, "vision")
  if type(fields) ~= "table" then error("vision.record: fields must be a table", 2) end
  return motomind.try(db.as, db, ctx, function()
    local photo = fields.image_id and motomind.assert(rows.get(db, ctx, "vehicle_images", fields.image_id))
    if not photo then motomind.raise("image_id: no such photo in this tenant", "23503") end
    local own = {}
    for k, v in pairs(fields) do own[k] = v end
    own.vehicle_id = photo.vehicle_id
    return motomind.assert(rows.insert(db, ctx, "vision_metrics", own))
  end)
end

-- A model's value of a field as text (what vision_accuracy compares).
local function extracted(call, field)
  local f = type(call.fields) == "table" and call.fields[field]
  if type(f) ~= "table" or f.value == nil or f.value == motomind.null then return motomind.null end
  return tostring(f.value)
end

--- confirm(db, ctx, call_id, confirmed, [event]) -> the result rows, one per
-- field ({ mileage = 48210 }: the values the user confirmed), each with
-- whether the model read it right; event ({ id, occurred_at }) is the
-- event made from them. Confirming a field twice is refused.
function M.confirm(db, ctx, call_id, confirmed, event)
  motomind.check_ctx(ctx, "vision")
  if type(confirmed) ~= "table" then error("vision.confirm: confirmed must be a table of field = value", 2) end
  return motomind.try(db.as, db, ctx, function()
    local call = motomind.assert(rows.get(db, ctx, "vision_metrics", call_id))
    if not call then motomind.raise("vision call " .. tostring(call_id) .. ": no such call in this tenant", "23503") end
    local names = {}
    for field in pairs(confirmed) do names[#names + 1] = field end
    table.sort(names)
    local out = {}
    for i, field in ipairs(names) do
      out[i] = motomind.assert(rows.insert(db, ctx, "vision_accuracy", { vehicle_id = call.vehicle_id,
        vision_metric_id = call.id, field = field, extracted = extracted(call, field),
        confirmed = tostring(confirmed[field]), event_id = event and event.id or motomind.null,
        event_occurred_at = event and event.occurred_at or motomind.null }))
    end
    return out
  end)
end

--- accuracy(db, ctx, [where]) -> per model, task and field: results,
-- correct, accuracy, avg_confidence, avg_latency_ms (where: e.g. { task = "odometer" }).
function M.accuracy(db, ctx, where)
  motomind.check_ctx(ctx, "vision")
  return rows.list(db, ctx, "vision_accuracy_stats", where, "model, task, field")
end

return M
