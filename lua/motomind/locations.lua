--- Location corrections (append-only), as the context user in db:as(ctx):
-- the position a capture recorded, the corrected one (by the user or a
-- geocoder), and the distance between, computed by the database.
local motomind = require "motomind"
local rows = require "motomind.rows"

local M = {}

--- correct(db, ctx, fields) -> the correction row (with distance_m) | nil, message, sqlstate, detail.
-- fields: vehicle_id, recorded_latitude, recorded_longitude, latitude,
-- longitude (required); recorded_accuracy_m, reason (user, geocoder,
-- gps_drift, station_match, other), source, place_name, event_id and
-- event_occurred_at, capture_session_id.
function M.correct(db, ctx, fields)
  motomind.check_ctx(ctx, "locations")
  return rows.insert(db, ctx, "location_corrections", fields)
end

--- stats(db, ctx) -> per reason: corrections, avg/median/p90/max distance_m, over_100_m.
function M.stats(db, ctx)
  motomind.check_ctx(ctx, "locations")
  return rows.list(db, ctx, "location_correction_stats", nil, "reason")
end

return M
