-- The capture flow (issue #15): photo -> vision -> confirm -> event, with
-- capture sessions, conversations, locations and vehicle profiles, as the
-- application role (row-level security on).
local motomind = require "motomind"
local H = require "spec.helper"
local photos = require "motomind.photos"
local captures = require "motomind.captures"
local vision = require "motomind.vision"
local locations = require "motomind.locations"
local conversations = require "motomind.conversations"
local profiles = require "motomind.profiles"
local timeline = require "motomind.timeline"

local null = motomind.null

local function sha(n) return ("%064x"):format(n) end

describe("captures", function()
  local owner, app, tenant, car, van, boss, viewer, ctx

  setup(function()
    owner, tenant, car, boss = H.fresh_tenant()
    van = owner:value("INSERT INTO vehicles (tenant_id, nickname) VALUES ($1, 'van') RETURNING id", tenant)
    viewer = H.user(owner, tenant, "viewer")
    app = H.app_connect(owner)
    ctx = { tenant = tenant, user = boss }
  end)
  teardown(function() app:close() H.drop(owner) end)

  it("turns a photographed odometer into an event: photo, vision call, confirmation, session", function()
    local session = motomind.assert(captures.start(app, ctx, { vehicle_id = car, flow = "odometer",
      client = { platform = "ios", app_version = "2.4.1" } }))
    assert.equal("in_progress", session.status)
    assert.equal(boss, session.created_by)
    local photo = motomind.assert(photos.add(app, ctx, { vehicle_id = car, storage_url = "s3://b/odo.jpg",
      content_type = "image/jpeg", byte_size = 183211, width = 3024, height = 4032, checksum = sha(1),
      taken_at = "2025-05-01T08:00:00Z", detected_kind = "odometer", capture_session_id = session.id,
      metadata = { device_make = "Apple", device_model = "iPhone 15", latitude = 48.8566, longitude = 2.3522,
                   gps_accuracy_m = 8, exif = { iso = 100 } } }))
    assert.equal("Apple", photo.metadata.device_make)
    assert.equal(100, photo.metadata.exif.iso)
    session = motomind.assert(captures.step(app, ctx, session.id, "photo", 1))
    local call = motomind.assert(vision.record(app, ctx, { image_id = photo.id, model = "gpt-4o", task = "odometer",
      latency_ms = 840, confidence = 0.93, tokens_in = 1200, tokens_out = 40, cost = 0.0061, currency = "USD",
      capture_session_id = session.id, fields = { mileage = { value = 48210, confidence = 0.93 } } }))
    assert.equal(car, call.vehicle_id) -- the photo's vehicle
    session = motomind.assert(captures.step(app, ctx, session.id, "review"))
    local done = motomind.assert(captures.complete(app, ctx, session.id, {
      event = { type = "odometer", occurred_at = "2025-05-01T08:00:00Z", mileage = 48210,
                payload = { source = "photo_ocr", ocr_confidence = 93 } },
      photos = { { id = photo.id, role = "odometer" } },
      confirmations = { { call = call.id, fields = { mileage = "48210.0" } } } }))
    assert.equal("completed", done.session.status)
    assert.equal(done.event.id, done.session.event_id)
    assert.same({ "photo", "review" }, done.session.steps)
    assert.equal("review", done.session.last_step)
    assert.equal(1, done.session.photos_taken)
    assert.is_true(tonumber(done.session.duration_s) >= 0)
    assert.is_true(done.results[1].correct) -- 48210 read, 48210.0 confirmed
    assert.equal(done.event.id, done.results[1].event_id)
    local shown = motomind.assert(photos.of_event(app, ctx, done.event.id))
    assert.equal(1, #shown)
    assert.equal("odometer", shown[1].role)
    assert.equal("s3://b/odo.jpg", shown[1].storage_url)
    -- the timeline page carries the event's photos
    local page = motomind.assert(timeline.page(app, ctx, { vehicle = car }))
    local found
    for _, e in ipairs(page.events) do if e.id == done.event.id then found = e end end
    assert.equal(1, #found.photos)
    assert.equal(photo.id, found.photos[1].image_id)
    -- and the feed too, once refreshed
    assert(owner:value("SELECT refresh_feed()"))
    local feed = motomind.assert(timeline.feed(app, ctx, { vehicle = car }))
    found = nil
    for _, e in ipairs(feed.events) do if e.id == done.event.id then found = e end end
    assert.equal(photo.id, found.photos[1].image_id)
    -- an ended session does not reopen
    local _, err = captures.step(app, ctx, session.id, "again")
    assert.matches("no such session in progress", err, 1, true)
  end)

  it("refuses what does not fit: other vehicles' events, a photo stored twice, bad fields by name", function()
    local theirs = motomind.assert(timeline.append(app, ctx, { vehicle_id = van, type = "odometer",
      occurred_at = "2025-05-02T08:00:00Z", mileage = 100, payload = { source = "manual" } }))
    local photo = motomind.assert(photos.add(app, ctx, { vehicle_id = car, storage_url = "s3://b/2.jpg", checksum = sha(2) }))
    local _, err, sqlstate = photos.attach(app, ctx, theirs, photo.id)
    assert.equal("23503", sqlstate)
    assert.matches("event_id: event .* is not one of vehicle", err)
    _, err, sqlstate = photos.add(app, ctx, { vehicle_id = car, storage_url = "s3://b/again.jpg", checksum = sha(2) })
    assert.equal("23505", sqlstate)
    assert.matches("vehicle_images_checksum_key", err, 1, true)
    _, err, sqlstate = photos.add(app, ctx, { vehicle_id = car, storage_url = "s3://b/3.jpg", width = -4 })
    assert.equal("23514", sqlstate)
    assert.matches("^width: ", err)
    _, err, sqlstate = photos.add(app, ctx, { vehicle_id = car, storage_url = "s3://b/3.jpg", byte_size = "big" })
    assert.equal("22P02", sqlstate)
    assert.matches("^byte_size: ", err)
    _, err = photos.add(app, ctx, { vehicle_id = car, storage_url = "s3://b/3.jpg", colour = "red" })
    assert.matches("^colour: unknown field of vehicle_images", err)
    _, err = photos.add(app, ctx, { vehicle_id = car, storage_url = "s3://b/4.jpg", metadata = { latitude = 95, longitude = 0 } })
    assert.matches("^metadata%.latitude: ", err)
    -- the failed metadata left no photo behind
    assert.equal(0, owner:value("SELECT count(*) FROM vehicle_images WHERE storage_url = 's3://b/4.jpg'"))
    _, err = vision.record(app, ctx, { image_id = photo.id, model = "m", task = "odometer", latency_ms = 5,
      fields = { mileage = { value = 1, confidence = 1.5 } } })
    assert.matches("^fields: ", err)
    -- viewers read photos but add none
    _, _, sqlstate = photos.add(app, { tenant = tenant, user = viewer }, { vehicle_id = car, storage_url = "s3://b/v.jpg" })
    assert.equal("42501", sqlstate)
    assert.is_true(#motomind.assert(photos.list(app, { tenant = tenant, user = viewer }, car)) >= 1)
  end)

  it("detaches a photo by soft delete: gone from the event, its history kept", function()
    local e = motomind.assert(timeline.append(app, ctx, { vehicle_id = car, type = "damage",
      occurred_at = "2025-05-03T08:00:00Z", payload = { severity = "minor" } }))
    local a = motomind.assert(photos.add(app, ctx, { vehicle_id = car, storage_url = "s3://b/dent1.jpg" }))
    local b = motomind.assert(photos.add(app, ctx, { vehicle_id = car, storage_url = "s3://b/dent2.jpg" }))
    local la = motomind.assert(photos.attach(app, ctx, e, a.id, { role = "damage" }))
    local lb = motomind.assert(photos.attach(app, ctx, e, b.id, { role = "damage" }))
    assert.same({ 1, 2 }, { la.position, lb.position })
    assert.is_true(motomind.assert(photos.detach(app, ctx, la.id)))
    local shown = motomind.assert(photos.of_event(app, { tenant = tenant, user = viewer }, e.id))
    assert.equal(1, #shown)
    assert.equal(b.id, shown[1].image_id)
    assert.equal(1, owner:value("SELECT count(*) FROM audit_log WHERE table_name = 'event_photos' " ..
      "AND record_id = $1 AND operation = 'soft_delete'", la.id))
    -- the same photo may be attached again
    assert.truthy(motomind.assert(photos.attach(app, ctx, e, a.id, { role = "damage" })))
  end)

  it("tells where capture flows finish and where users drop out", function()
    local function session(flow, steps, status)
      local s = motomind.assert(captures.start(app, ctx, { vehicle_id = car, flow = flow,
        started_at = "2025-06-01T10:00:00Z" }))
      for _, st in ipairs(steps) do motomind.assert(captures.step(app, ctx, s.id, st)) end
      if status == "abandoned" then motomind.assert(captures.abandon(app, ctx, s.id, "blurry")) end
      return s
    end
    session("fuel", { "photo" }, "abandoned")
    session("fuel", { "photo", "review" }, "abandoned")
    session("fuel", { "photo", "review" }, "abandoned")
    session("fuel", {}, "in_progress")
    local rows = motomind.assert(captures.analytics(app, ctx, { flow = "fuel" }))
    assert.equal(1, #rows)
    assert.same({ 4, 0, 3, 1 }, { rows[1].sessions, rows[1].completed, rows[1].abandoned, rows[1].in_progress })
    assert.equal(0, tonumber(rows[1].completion_rate))
    local drop = motomind.assert(captures.abandonment(app, ctx, { flow = "fuel" }))
    assert.same({ "review", "photo" }, { drop[1].last_step, drop[2].last_step })
    assert.same({ 2, 1 }, { drop[1].abandoned, drop[2].abandoned })
    assert.equal(0.667, tonumber(drop[1].share_of_flow))
    assert.equal("blurry", drop[1].common_reason)
  end)

  it("measures vision accuracy per model and task from confirmed values", function()
    local photo = motomind.assert(photos.add(app, ctx, { vehicle_id = car, storage_url = "s3://b/r.jpg" }))
    local function call(model, read, confirmed)
      local c = motomind.assert(vision.record(app, ctx, { image_id = photo.id, model = model, task = "receipt",
        latency_ms = 100, confidence = 0.8, fields = { total = { value = read } } }))
      motomind.assert(vision.confirm(app, ctx, c.id, { total = confirmed }))
      return c
    end
    call("small", "41.20", "41.2")
    call("small", "14.20", "41.2")
    local c = call("large", "41.20", "41.20")
    local _, err, sqlstate = vision.confirm(app, ctx, c.id, { total = "41.2" })
    assert.equal("23505", sqlstate, err) -- a field is confirmed once
    local acc = {}
    for _, r in ipairs(motomind.assert(vision.accuracy(app, ctx, { task = "receipt" }))) do acc[r.model] = r end
    assert.equal(0.5, tonumber(acc.small.accuracy))
    assert.equal(1, tonumber(acc.large.accuracy))
    -- results are history: no one changes them
    local ok, e2, s2 = app:as(ctx, function(db) return db:exec("UPDATE vision_accuracy SET confirmed = 'x'") end)
    assert.is_nil(ok)
    assert.equal("42501", s2, e2)
  end)

  it("computes how far a corrected position was from the recorded one", function()
    local fix = motomind.assert(locations.correct(app, ctx, { vehicle_id = car, recorded_latitude = 48.8566,
      recorded_longitude = 2.3522, latitude = 48.8656, longitude = 2.3522, reason = "geocoder", place_name = "Total Access" }))
    -- 0.009 degrees of latitude: 1,000.8 m on the mean sphere
    assert.is_true(math.abs(tonumber(fix.distance_m) - 1000.8) < 0.2, tostring(fix.distance_m))
    motomind.assert(locations.correct(app, ctx, { vehicle_id = car, recorded_latitude = 0, recorded_longitude = 0,
      latitude = 0, longitude = 0.0001, reason = "geocoder" }))
    local stats = motomind.assert(locations.stats(app, ctx))
    assert.equal("geocoder", stats[1].reason)
    assert.equal(2, stats[1].corrections)
    assert.equal(1, stats[1].over_100_m)
  end)

  it("keeps conversations append-only, numbered by the database, with usage per currency", function()
    local thread = motomind.assert(conversations.start(app, ctx, { vehicle_id = car, title = "Brakes?" }))
    local e = motomind.assert(timeline.append(app, ctx, { vehicle_id = car, type = "maintenance",
      occurred_at = "2025-04-01T08:00:00Z", payload = { service_type = "brakes", total = 320, currency = "EUR" } }))
    local m1 = motomind.assert(conversations.say(app, ctx, thread.id, { role = "user", content = "When were the brakes done?" }))
    local m2 = motomind.assert(conversations.say(app, ctx, thread.id, { role = "assistant", content = "On 1 April 2025.",
      model = "claude", tokens_in = 900, tokens_out = 30, cost = 0.004, currency = "USD", latency_ms = 700,
      event_ids = { e.id } }))
    assert.same({ 1, 2 }, { m1.seq, m2.seq })
    assert.same({ e.id }, m2.event_ids)
    assert.equal(boss, m2.created_by)
    local _, err = conversations.say(app, ctx, thread.id, { role = "assistant", content = "hm" })
    assert.matches("conversation_messages_model_of_assistant", err, 1, true)
    _, err = conversations.say(app, ctx, thread.id, { role = "user", content = "x", event_ids = { "00000000-0000-0000-0000-000000000001" } })
    assert.matches("event_ids: no event", err, 1, true)
    local ok, _, sqlstate = app:as(ctx, function(db) return db:exec("DELETE FROM conversation_messages") end)
    assert.is_nil(ok)
    assert.equal("42501", sqlstate)
    local msgs = motomind.assert(conversations.messages(app, ctx, thread.id))
    assert.same({ m1.id, m2.id }, { msgs[1].id, msgs[2].id })
    local usage = {}
    for _, u in ipairs(motomind.assert(conversations.usage(app, ctx))) do usage[u.source .. "/" .. u.model] = u end
    assert.equal(930, usage["conversation/claude"].tokens_in + usage["conversation/claude"].tokens_out)
    assert.equal("USD", usage["conversation/claude"].currency)
  end)

  it("keeps a vehicle's specs per source and preferences from the most specific", function()
    local spec = motomind.assert(profiles.set_spec(app, ctx, { vehicle_id = car, source = "vin_decoder",
      engine = "2.0 TDI", fuel_types = { "diesel" }, tank_litres = 50, confidence = 0.9 }))
    local again = motomind.assert(profiles.set_spec(app, ctx, { vehicle_id = car, source = "vin_decoder", tank_litres = 55 }))
    assert.equal(spec.id, again.id)
    assert.equal(55, tonumber(again.tank_litres))
    assert.same({ "diesel" }, again.fuel_types)
    local _, err = profiles.set_spec(app, ctx, { vehicle_id = car, source = "manual", fuel_types = { "coal" } })
    assert.matches("^fuel_types: ", err)
    motomind.assert(profiles.set_preferences(app, ctx, { due_soon_days = 30, currency = "EUR" }))
    motomind.assert(profiles.set_preferences(app, ctx, { vehicle_id = car, due_soon_days = 14 }))
    motomind.assert(profiles.set_preferences(app, ctx, { vehicle_id = car, due_soon_days = 10 })) -- updates
    local prefs = motomind.assert(profiles.preferences(app, ctx, { vehicle = car }))
    assert.equal(2, #prefs)
    assert.equal(10, prefs[1].due_soon_days)
    assert.equal("EUR", prefs[2].currency)
  end)
end)
