--- Capture sessions: one per capture flow on a device (photo -> vision ->
-- confirm -> event), as the context user in db:as(ctx). A session records
-- the steps reached and the photos taken, and ends completed (with the
-- event it produced) or abandoned (where, and why), so completion and
-- drop-out are plain views (capture_session_analytics,
-- capture_abandonment_analysis).
local motomind = require "motomind"
local rows = require "motomind.rows"
local timeline = require "motomind.timeline"
local photos = require "motomind.photos"
local vision = require "motomind.vision"

local M = {}

--- start(db, ctx, fields) -> the session row | nil, message, sqlstate, detail.
-- fields: vehicle_id, flow (fuel, service, odometer, damage, document,
-- inspection, receipt, other); started_at (the device's, for offline
-- captures; default now), client ({ platform =, app_version = }).
function M.start(db, ctx, fields)
  motomind.check_ctx(ctx, "captures")
  return rows.insert(db, ctx, "capture_sessions", fields)
end

--- step(db, ctx, id, name, [photos_taken]) -> the session row: name is
-- appended to the steps reached, photos_taken (default 0) added to its count.
-- An ended session is refused.
function M.step(db, ctx, id, name, taken)
  motomind.check_ctx(ctx, "captures")
  if type(name) ~= "string" or name == "" then error("captures.step: name must be a non-empty string", 2) end
  return db:as(ctx, function()
    local row, err, sqlstate, detail = db:row("UPDATE " .. db:qualify("capture_sessions") ..
      " SET steps = steps || $3::text, photos_taken = photos_taken + $4 WHERE tenant_id = $1 AND id = $2::uuid " ..
      "AND status = 'in_progress' RETURNING *", ctx.tenant, id, name, taken or 0)
    if row or err then return row, err, sqlstate, detail end
    return nil, ("capture session %s: no such session in progress"):format(tostring(id)), "P0002"
  end)
end

--- abandon(db, ctx, id, [reason]) -> the session row, ended now.
function M.abandon(db, ctx, id, reason)
  motomind.check_ctx(ctx, "captures")
  return rows.update(db, ctx, "capture_sessions", id, { status = "abandoned", abandon_reason = reason or motomind.null })
end

--- complete(db, ctx, id, { event =, photos =, confirmations = }) ->
-- { session =, event =, photos =, results = } | nil, message, sqlstate, detail.
-- In one transaction: appends event (as timeline.append; its vehicle_id
-- defaults to the session's), attaches photos ({ { id =, role = }, ... })
-- to it, records what the user confirmed of each vision call
-- ({ { call =, fields = { mileage = 48210 } }, ... }) against the event,
-- and ends the session completed with the event. Nothing lands on a failure.
function M.complete(db, ctx, id, opts)
  motomind.check_ctx(ctx, "captures")
  if type(opts) ~= "table" or type(opts.event) ~= "table" then
    error("captures.complete: opts.event (an event for timeline.append) is required", 2)
  end
  return motomind.try(db.as, db, ctx, function()
    local session = motomind.assert(rows.get(db, ctx, "capture_sessions", id))
    if not session then motomind.raise("capture session " .. tostring(id) .. ": no such session in this tenant", "P0002") end
    local e = {}
    for k, v in pairs(opts.event) do e[k] = v end
    e.vehicle_id = e.vehicle_id or session.vehicle_id
    local event = motomind.assert(timeline.append(db, ctx, e))
    local out = { event = event, photos = {}, results = {} }
    for i, p in ipairs(opts.photos or {}) do
      out.photos[i] = motomind.assert(photos.attach(db, ctx, event, p.id, { role = p.role, position = p.position }))
    end
    for _, c in ipairs(opts.confirmations or {}) do
      for _, r in ipairs(motomind.assert(vision.confirm(db, ctx, c.call, c.fields, event))) do
        out.results[#out.results + 1] = r
      end
    end
    out.session = motomind.assert(rows.update(db, ctx, "capture_sessions", id, { status = "completed",
      event_id = event.id, event_occurred_at = event.occurred_at }))
    return out
  end)
end

--- analytics(db, ctx, [where]) -> per flow and month: sessions, completed,
-- abandoned, in_progress, completion_rate, median_duration_s, avg_photos.
function M.analytics(db, ctx, where)
  motomind.check_ctx(ctx, "captures")
  return rows.list(db, ctx, "capture_session_analytics", where, "month, flow")
end

--- abandonment(db, ctx, [where]) -> per flow and last step reached: abandoned,
-- share_of_flow, median_duration_s, common_reason.
function M.abandonment(db, ctx, where)
  motomind.check_ctx(ctx, "captures")
  return rows.list(db, ctx, "capture_abandonment_analysis", where, "flow, abandoned DESC, last_step")
end

return M
