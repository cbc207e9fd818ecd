--- Photos of a tenant's vehicles (as the context user; each call runs in
-- db:as(ctx)): what a capture stores of a picture (the bytes live in object
-- storage: storage_url), its device metadata, and its place among an
-- event's photos. Fields are the tables' columns (vehicle_images,
-- photo_metadata, event_photos): see docs/design.md.
local motomind = require "motomind"
local rows = require "motomind.rows"

local M = {}

local function without(t, key)
  local out = {}
  for k, v in pairs(t) do if k ~= key then out[k] = v end end
  return out
end

--- add(db, ctx, fields) -> the photo row (with .metadata) | nil, message, sqlstate, detail.
-- fields: vehicle_id, storage_url (required), content_type, byte_size,
-- width, height, checksum (SHA-256 hex: a live photo is stored once),
-- taken_at, detected_kind, ai_model, ai_confidence, ai_fields,
-- capture_session_id, caption, thumbnail_url; metadata = { device_make,
-- device_model, os, app_version, latitude, longitude, gps_accuracy_m,
-- altitude_m, heading_deg, exif } is stored with it, in one transaction.
function M.add(db, ctx, fields)
  motomind.check_ctx(ctx, "photos")
  if type(fields) ~= "table" then error("photos.add: fields must be a table", 2) end
  return motomind.try(db.as, db, ctx, function()
    local photo = motomind.assert(rows.insert(db, ctx, "vehicle_images", without(fields, "metadata")))
    if fields.metadata ~= nil then
      local meta = without(fields.metadata, "image_id")
      meta.image_id, meta.vehicle_id = photo.id, photo.vehicle_id
      local row, err, sqlstate, detail = rows.insert(db, ctx, "photo_metadata", meta)
      if not row then motomind.raise("metadata." .. err, sqlstate, detail) end
      photo.metadata = row
    end
    return photo
  end)
end

--- attach(db, ctx, event, photo_id, [{ role =, position = }]) -> the link row.
-- event: { id =, occurred_at = } (as timeline.append returns it); the photo
-- must be of the event's vehicle. position defaults to after the event's
-- last photo; role to "other".
function M.attach(db, ctx, event, photo_id, opts)
  motomind.check_ctx(ctx, "photos")
  if type(event) ~= "table" or not event.id or not event.occurred_at then
    error("photos.attach: event must be { id =, occurred_at = }", 2)
  end
  opts = opts or {}
  return motomind.try(db.as, db, ctx, function()
    local photo = motomind.assert(rows.get(db, ctx, "vehicle_images", photo_id))
    if photo == nil then motomind.raise("photo " .. tostring(photo_id) .. ": no such photo in this tenant", "23503") end
    local position = opts.position or motomind.assert(db:value("SELECT coalesce(max(position), 0) + 1 FROM " ..
      db:qualify("event_photos") .. " WHERE tenant_id = $1 AND event_id = $2", ctx.tenant, event.id))
    return motomind.assert(rows.insert(db, ctx, "event_photos", { vehicle_id = photo.vehicle_id, event_id = event.id,
      event_occurred_at = event.occurred_at, image_id = photo.id, role = opts.role or "other", position = position }))
  end)
end

--- detach(db, ctx, link_id) -> true | false (no such live link) | nil, message, sqlstate
-- (a soft delete: the link's history stays in the audit log).
function M.detach(db, ctx, link_id)
  motomind.check_ctx(ctx, "photos")
  return db:as(ctx, function()
    return db:value("SELECT " .. db:qualify("set_deleted") .. "('event_photos', $1, true)", link_id)
  end)
end

--- of_event(db, ctx, event_id) -> the event's live photos in order
-- (event_photo_details: position, role, image_id, storage_url, ...).
function M.of_event(db, ctx, event_id)
  motomind.check_ctx(ctx, "photos")
  return rows.list(db, ctx, "event_photo_details", { event_id = event_id }, "position, image_id")
end

--- list(db, ctx, vehicle_id) -> the vehicle's live photos, latest taken first.
function M.list(db, ctx, vehicle_id)
  motomind.check_ctx(ctx, "photos")
  return rows.list(db, ctx, "vehicle_images", { vehicle_id = vehicle_id }, "coalesce(taken_at, created_at) DESC, id")
end

return M
