--- A small generated fleet for trying motomind out: one tenant, two garages,
-- three vehicles and two years of fill-ups, services, readings and
-- inspections (whose expiry makes reminders), a recurring oil-change
-- reminder per vehicle, and a capture: two photos of the first vehicle's
-- dashboard, its odometer read by a vision model and confirmed, which made
-- an odometer event. Generated from a seed, so every run loads the same rows, and
-- loading twice adds nothing.
local motomind = require "motomind"

local M = {}

-- Park–Miller generator: exact in doubles, so Lua 5.4 and LuaJIT agree.
local function generator(seed)
  local x = seed % 2147483646 + 1
  return function(lo, hi)
    x = x * 48271 % 2147483647
    return lo + x % (hi - lo + 1)
  end
end

local function uuid(rand)
  local hex = {}
  for i = 1, 32 do hex[i] = ("%x"):format(rand(0, 15)) end
  hex[13] = "4"
  hex[17] = ("%x"):format(8 + rand(0, 3))
  local s = table.concat(hex)
  return ("%s-%s-%s-%s-%s"):format(s:sub(1, 8), s:sub(9, 12), s:sub(13, 16), s:sub(17, 20), s:sub(21))
end

local VEHICLES = {
  { nickname = "Taco", year = 2019, make = "Toyota", model = "Tacoma", unit = "mi",
    timezone = "America/Denver", volume_unit = "us_gal", currency = "USD", tank = 21, price = 3.4,
    start = 31200, per_day = 38 },
  { nickname = "Bee", year = 2016, make = "Honda", model = "CB500X", unit = "km",
    timezone = "Europe/Berlin", volume_unit = "l", currency = "EUR", tank = 17, price = 1.75,
    start = 41800, per_day = 30 },
  { nickname = "Van 7", year = 2021, make = "Ford", model = "Transit", unit = "mi",
    timezone = "America/Chicago", volume_unit = "us_gal", currency = "USD", tank = 25, price = 3.9,
    start = 12050, per_day = 95 },
}

local DAY = 86400
local START = 1704096000 -- 2024-01-01T08:00:00Z

local function iso(t) return os.date("!%Y-%m-%dT%H:%M:%SZ", t) end

local function history(rand, tenant, vehicle, spec, days)
  local events, mileage, since_service, t = {}, spec.start, 0, START
  local last = { at = 0 }
  local function add(type, at, payload)
    events[#events + 1] = { tenant_id = tenant, id = uuid(rand), vehicle_id = vehicle, type = type,
                            occurred_at = iso(at), mileage = mileage, payload = payload }
    if at > last.at then last = { at = at, mileage = mileage } end
  end
  local inspection_at = START + 120 * DAY
  while t < START + days * DAY do
    local gap = rand(5, 12)
    t = t + gap * DAY + rand(0, 600) * 60
    if t > inspection_at then -- yearly, at the mileage of the last fill-up
      add("inspection", inspection_at, { result = "pass", kind = "safety",
                                         expires_on = os.date("!%Y-%m-%d", inspection_at + 365 * DAY) })
      inspection_at = inspection_at + 365 * DAY
    end
    local driven = math.floor(spec.per_day * gap * rand(70, 130) / 100)
    mileage, since_service = mileage + driven, since_service + driven
    local volume = spec.tank * rand(55, 95) / 100
    local price = spec.price * rand(90, 115) / 100
    local full = rand(1, 10) > 1
    add("fuel", t, { volume = math.floor(volume * 1000 + 0.5) / 1000, unit = spec.volume_unit,
                     price_per_unit = math.floor(price * 1000 + 0.5) / 1000,
                     total = math.floor(volume * price * 100 + 0.5) / 100,
                     currency = spec.currency, full = full })
    if since_service > (spec.unit == "km" and 8000 or 5000) then
      since_service = 0
      add("maintenance", t + 3 * DAY, { service_type = "oil_change", currency = spec.currency,
                                        total = rand(6000, 14000) / 100 })
    end
    if rand(1, 8) == 1 then add("odometer", t + DAY, { source = "manual" }) end
  end
  return events, last
end

-- The capture flow on the first vehicle, a day after its last event, as
-- the demo's owner: photo -> vision -> confirm -> event (once: a session
-- already there is left as it is).
local function capture(db, rand, ctx, vehicle, last)
  local ids = { session = uuid(rand), dash = uuid(rand), odo = uuid(rand), call = uuid(rand), event = uuid(rand) }
  if db:value("SELECT 1 FROM " .. db:qualify("capture_sessions") .. " WHERE tenant_id = $1 AND id = $2",
      ctx.tenant, ids.session) then
    return ids
  end
  local captures, photos, vision = require "motomind.captures", require "motomind.photos", require "motomind.vision"
  local at, reading = iso(last.at + DAY), last.mileage + 41
  motomind.assert(captures.start(db, ctx, { id = ids.session, vehicle_id = vehicle, flow = "odometer",
    started_at = at, client = { platform = "android", app_version = "1.0.0" } }))
  for i, p in ipairs { { ids.dash, "vehicle", "dashboard.jpg" }, { ids.odo, "odometer", "odometer.jpg" } } do
    motomind.assert(photos.add(db, ctx, { id = p[1], vehicle_id = vehicle, storage_url = "s3://motomind-demo/" .. p[3],
      content_type = "image/jpeg", width = 4032, height = 3024, byte_size = 2100000 + i * 1000, taken_at = at,
      detected_kind = p[2], capture_session_id = ids.session,
      metadata = { device_make = "Google", device_model = "Pixel 8", latitude = 39.7392, longitude = -104.9903,
                   gps_accuracy_m = 6 } }))
  end
  motomind.assert(captures.step(db, ctx, ids.session, "photo", 2))
  motomind.assert(vision.record(db, ctx, { id = ids.call, image_id = ids.odo, model = "demo-vision-1", task = "odometer",
    latency_ms = 820, confidence = 0.94, tokens_in = 1150, tokens_out = 12, cost = 0.0031, currency = "USD",
    capture_session_id = ids.session, fields = { mileage = { value = reading, confidence = 0.94 } } }))
  motomind.assert(captures.step(db, ctx, ids.session, "review"))
  motomind.assert(captures.complete(db, ctx, ids.session, {
    event = { id = ids.event, type = "odometer", occurred_at = at, mileage = reading,
              payload = { source = "photo_ocr", ocr_confidence = 94 } },
    photos = { { id = ids.odo, role = "odometer" }, { id = ids.dash, role = "vehicle" } },
    confirmations = { { call = ids.call, fields = { mileage = reading } } } }))
  return ids
end

--- demo.load(db, { seed = 1, days = 730 }) -> { tenant_id, vehicles = {ids},
-- events = n, added = n, capture = { session =, event =, ... ids } }
function M.load(db, opts)
  opts = opts or {}
  local rand = generator(opts.seed or 1)
  local days = opts.days or 730
  local tenant, user = uuid(rand), uuid(rand)
  local garages = { uuid(rand), uuid(rand) }
  local q = function(name) return db:qualify(name) end
  return db:transaction(function()
    motomind.assert(db:exec("INSERT INTO " .. q("tenants") ..
      " (id, name, kind, plan) VALUES ($1, 'Demo Fleet', 'org', 'demo') ON CONFLICT DO NOTHING", tenant))
    motomind.assert(db:exec("INSERT INTO " .. q("users") ..
      " (id, email, display_name) VALUES ($1, $2, 'Demo Owner') ON CONFLICT DO NOTHING",
      user, ("demo+%d@motomind.example"):format(opts.seed or 1)))
    motomind.assert(db:exec("INSERT INTO " .. q("memberships") ..
      " (tenant_id, user_id, role) VALUES ($1, $2, 'owner') ON CONFLICT DO NOTHING", tenant, user))
    for i, name in ipairs { "Home", "Depot" } do
      motomind.assert(db:exec("INSERT INTO " .. q("garages") ..
        " (tenant_id, id, name) VALUES ($1, $2, $3) ON CONFLICT DO NOTHING", tenant, garages[i], name))
    end
    local ids, events, latest = {}, {}, nil
    for i, spec in ipairs(VEHICLES) do
      ids[i] = uuid(rand)
      motomind.assert(db:exec("INSERT INTO " .. q("vehicles") ..
        " (tenant_id, id, garage_id, year, make, model, nickname, timezone, odometer_unit)" ..
        " VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9) ON CONFLICT DO NOTHING",
        tenant, ids[i], garages[(i - 1) % 2 + 1], spec.year, spec.make, spec.model,
        spec.nickname, spec.timezone, spec.unit))
      local made, last = history(rand, tenant, ids[i], spec, days)
      for _, e in ipairs(made) do events[#events + 1] = e end
      latest = latest or last
    end
    -- All events in one statement: the batch is a single bound JSON parameter.
    local added = motomind.assert(db:exec("INSERT INTO " .. q("vehicle_events") ..
      " (tenant_id, id, vehicle_id, type, occurred_at, mileage, payload)" ..
      " SELECT tenant_id, id, vehicle_id, type, occurred_at, mileage, payload" ..
      "   FROM jsonb_to_recordset($1::jsonb) AS x(tenant_id uuid, id uuid, vehicle_id uuid," ..
      "        type text, occurred_at timestamptz, mileage numeric, payload jsonb)" ..
      " ON CONFLICT DO NOTHING", events))
    -- An oil change every 12 months or 5,000 mi / 8,000 km, whichever comes
    -- first, due from the last one logged (its chain comes from the history).
    for i, spec in ipairs(VEHICLES) do
      motomind.assert(db:exec("INSERT INTO " .. q("reminders") ..
        " (tenant_id, id, vehicle_id, title, service_type, repeat_months, repeat_distance)" ..
        " VALUES ($1, $2, $3, 'Oil change', 'oil_change', 12, $4) ON CONFLICT DO NOTHING",
        tenant, uuid(rand), ids[i], spec.unit == "km" and 8000 or 5000))
    end
    local shot = capture(db, rand, { tenant = tenant, user = user }, ids[1], latest)
    return { tenant_id = tenant, vehicles = ids, events = #events, added = added, capture = shot }
  end)
end

return M
