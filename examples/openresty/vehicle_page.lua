--- Runs in nginx's thread pool (app.lua lists it in resty.new's modules):
-- a vehicle's timeline page, or "no such vehicle" (23503) when the caller
-- cannot see it, in one trip to the thread.
local timeline = require "motomind.timeline"
local vehicles = require "motomind.vehicles"

local M = {}

function M.page(db, ctx, vehicle, opts)
  opts.vehicle = vehicle
  local page, err, sqlstate = timeline.page(db, ctx, opts)
  if not page or #page.events > 0 then return page, err, sqlstate end
  local found, e2, s2 = vehicles.resolve(db, ctx, vehicle) -- an empty page, or a vehicle not theirs?
  if not found then return nil, e2, s2 end
  return page
end

return M
