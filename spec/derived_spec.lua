-- Derived data: metrics (economy done right, incremental = full), the feed's
-- freshness and concurrent refresh, maintain(), retention, health.
local motomind = require "motomind"
local timeline = require "motomind.timeline"
local maintenance = require "motomind.maintenance"
local H = require "spec.helper"

local function q(db, sql, ...) return motomind.assert(db:value(sql, ...)) end

describe("derived data", function()
  local db, tenant, user, ctx

  before_each(function()
    db = H.fresh()
    tenant = H.tenant_with_vehicle(db)
    user = H.user(db, tenant, "owner")
    ctx = { tenant = tenant, user = user }
  end)
  after_each(function() H.drop(db) end)

  local function vehicle(unit, tz)
    return q(db, "INSERT INTO vehicles (tenant_id, odometer_unit, timezone) VALUES ($1, $2, $3) RETURNING id",
      tenant, unit or "km", tz or "UTC")
  end

  local function fill(v, at, mileage, litres, extra)
    local p = { volume = litres, unit = "l", total = 1.5 * litres, currency = "EUR", full = true }
    for k, x in pairs(extra or {}) do p[k] = x end
    return assert(timeline.append(db, ctx, { vehicle_id = v, type = "fuel", occurred_at = at, mileage = mileage, payload = p }))
  end

  -- (a EXCEPT b, b EXCEPT a) row counts: 0 and 0 when the two queries agree.
  local function apart(a, b, ...)
    return q(db, ("SELECT count(*) FROM (%s EXCEPT %s) a"):format(a, b), ...),
      q(db, ("SELECT count(*) FROM (%s EXCEPT %s) b"):format(b, a), ...)
  end

  -- The stored metrics and costs against a full recomputation: 0, 0, 0, 0 when equal.
  local function differences()
    local m1, m2 = apart("SELECT * FROM vehicle_metrics_monthly",
      "SELECT * FROM compute_vehicle_metrics(NULL, NULL, NULL, NULL)")
    local c1, c2 = apart("SELECT * FROM vehicle_costs_monthly", "SELECT * FROM compute_vehicle_costs(NULL, NULL, NULL)")
    return m1, m2, c1, c2
  end

  it("computes economy full-to-full, carrying partial fills and dropping intervals with a missed fill", function()
    local v = vehicle("km", "Europe/Warsaw")
    fill(v, "2020-01-05T08:00:00Z", 163965, 41.2)
    fill(v, "2020-01-19T08:00:00Z", 164412, 24.299, { full = false })
    fill(v, "2020-01-26T08:00:00Z", 164591, 10.342)
    fill(v, "2020-02-09T08:00:00Z", 165210, 38.5, { missed = true }) -- a fill before it went unlogged
    fill(v, "2020-02-20T08:00:00Z", 165800, 40)
    assert.equal(1, maintenance.advance_metrics(db))
    local jan = assert(db:row("SELECT distance::float8, fuel_litres::float8, economy_distance::float8, " ..
      "economy_litres::float8, km_per_l::float8, l_per_100km::float8, fills FROM vehicle_metrics " ..
      "WHERE vehicle_id = $1 AND month = '2020-01-01'", v))
    assert.same({ distance = 626, fuel_litres = 75.841, economy_distance = 626, economy_litres = 34.641,
      km_per_l = 18.07, l_per_100km = 5.53, fills = 3 }, jan)
    -- each fill's cost is rounded to the cent before the sum: 61.80 + 36.45 (36.4485) + 15.51 (15.513)
    assert.equal("113.76", q(db, "SELECT fuel_cost::text FROM vehicle_costs WHERE vehicle_id = $1 AND month = '2020-01-01' " ..
      "AND currency = 'EUR'", v))
    local feb = assert(db:row("SELECT distance::float8, economy_distance::float8, economy_litres::float8 " ..
      "FROM vehicle_metrics WHERE vehicle_id = $1 AND month = '2020-02-01'", v))
    -- only 165210 -> 165800 counts: the interval ending at the missed fill has no figure
    assert.same({ distance = 1209, economy_distance = 590, economy_litres = 40 }, feb)
    local us = q(db, "SELECT mpg_us::float8 FROM vehicle_metrics WHERE vehicle_id = $1 AND month = '2020-02-01'", v)
    assert.equal(34.69, us) -- 590 km / 40 l = 14.75 km/l = 34.69 US mpg
    assert.same({ 0, 0, 0, 0 }, { differences() })
    -- per day on demand: the interval closes on the day of the full fill, and the days add up to the month
    assert.same({ day = "2020-01-26", economy_distance = 626 }, db:row("SELECT day::text, economy_distance::float8 " ..
      "FROM vehicle_metrics_daily($1, '2020-01-01', '2020-01-31') WHERE economy_distance > 0", v))
    local days = assert(db:row("SELECT sum(distance)::float8 AS distance, sum(fuel_litres)::float8 AS fuel_litres, " ..
      "sum(economy_distance)::float8 AS economy_distance, sum(economy_litres)::float8 AS economy_litres, " ..
      "sum(fills)::int AS fills FROM vehicle_metrics_daily($1, '2020-01-01', '2020-01-31')", v))
    assert.same({ distance = 626, fuel_litres = 75.841, economy_distance = 626, economy_litres = 34.641, fills = 3 }, days)
  end)

  it("advances incrementally to exactly what a full recomputation gives, on randomized histories", function()
    math.randomseed(20261121)
    local vehicles = { vehicle("km", "Europe/Berlin"), vehicle("mi", "America/Chicago"), vehicle("km", "Asia/Tokyo") }
    -- a consistent history per vehicle (mileage grows with time), written in shuffled batches
    local pending = {}
    for _, v in ipairs(vehicles) do
      local t, m = 1704067200, 10000
      for i = 1, 60 do
        t = t + math.random(2, 9) * 86400
        m = m + math.random(50, 900)
        local r = math.random()
        local e = { vehicle_id = v, occurred_at = os.date("!%Y-%m-%dT%H:%M:%SZ", t), mileage = m }
        if r < 0.6 then
          e.type, e.payload = "fuel", { volume = math.random(100, 600) / 10, unit = ({ "l", "us_gal", "uk_gal", "kwh" })[math.random(4)],
            price_per_unit = math.random(1000, 2500) / 1000, currency = ({ "EUR", "USD", "JPY" })[math.random(3)],
            full = math.random() < 0.7, missed = math.random() < 0.1 }
          if e.payload.unit == "kwh" then e.payload.volume = math.random(200, 900) end -- charges are rarer: more per interval
        elseif r < 0.75 then
          e.type, e.payload = "maintenance", { service_type = "service", total = math.random(1000, 90000) / 100,
            currency = ({ "EUR", "USD" })[math.random(2)], category = ({ "service", "repair", "tax", "tires" })[math.random(4)] }
        elseif r < 0.8 then
          e.type, e.payload = "damage", { severity = "minor", estimate = 500, repair_cost = math.random(100, 900), currency = "EUR" }
        else
          e.type, e.payload = "odometer", { source = "manual" }
        end
        if i % 17 == 0 then e.payload, e.type = nil, nil end -- a bare reading below
        e.type = e.type or "odometer"
        e.payload = e.payload or { source = "telematics" }
        pending[#pending + 1] = e
      end
    end
    for i = #pending, 2, -1 do
      local j = math.random(i)
      pending[i], pending[j] = pending[j], pending[i]
    end
    local written = {}
    local round = 0
    while #pending > 0 do
      round = round + 1
      local batch = {}
      for _ = 1, math.min(#pending, math.random(5, 40)) do batch[#batch + 1] = table.remove(pending) end
      for _, e in ipairs(assert(timeline.append_batch(db, ctx, batch))) do written[#written + 1] = e end
      -- corrections and voids of random earlier events (back in time)
      for _ = 1, 2 do
        local target = written[math.random(#written)]
        if math.random() < 0.5 then
          timeline.void(db, ctx, target, "spec")
        elseif target.type == "maintenance" then
          timeline.correct(db, ctx, target, { payload = { service_type = "fixed", total = 12.34, currency = "EUR" } })
        end
      end
      maintenance.advance_metrics(db)
      assert.same({ 0, 0, 0, 0 }, { differences() }, "round " .. round)
    end
    assert.is_true(round > 5)
    -- the days computed on demand add up to the stored months
    local by_day = [[SELECT v.id, date_trunc('month', d.day)::date, sum(d.distance), sum(d.fuel_litres),
        sum(d.energy_kwh), sum(d.economy_distance), sum(d.economy_litres), sum(d.fills), sum(d.events)
      FROM vehicles v, vehicle_metrics_daily(v.id, '2023-12-01', '2026-12-31') d WHERE v.tenant_id = $1 GROUP BY 1, 2]]
    local by_month = [[SELECT vehicle_id, month, distance, fuel_litres, energy_kwh, economy_distance, economy_litres,
        fills, events FROM vehicle_metrics_monthly WHERE tenant_id = $1]]
    assert.same({ 0, 0 }, { apart(by_day, by_month, tenant) })
    -- the fills, one row each, add up to the months (economy, volume, count); implausible intervals left out
    -- (fuel and charging intervals apart)
    local by_fill = [[SELECT vehicle_id, month,
        sum(CASE WHEN closes_interval AND NOT implausible AND unit <> 'kwh' THEN interval_distance ELSE 0 END),
        sum(CASE WHEN closes_interval AND NOT implausible AND unit <> 'kwh' THEN interval_volume ELSE 0 END),
        sum(CASE WHEN closes_interval AND NOT implausible AND unit = 'kwh' THEN interval_distance ELSE 0 END),
        sum(CASE WHEN closes_interval AND NOT implausible AND unit = 'kwh' THEN interval_volume ELSE 0 END), count(*)
      FROM vehicle_fills WHERE tenant_id = $1 GROUP BY 1, 2]]
    local fills_by_month = [[SELECT vehicle_id, month, economy_distance, economy_litres, economy_kwh_distance, economy_kwh,
        fills FROM vehicle_metrics_monthly WHERE tenant_id = $1 AND fills > 0]]
    assert.same({ 0, 0 }, { apart(by_fill, fills_by_month, tenant) })
    assert.is_true(q(db, "SELECT count(*) FROM vehicle_fills WHERE tenant_id = $1 AND closes_interval", tenant) > 20)
    assert.is_true(q(db, "SELECT count(*) FROM vehicle_metrics_monthly WHERE tenant_id = $1 AND economy_kwh > 0", tenant) > 3)
    -- and the costs of the events, one by one, add up to the stored costs
    local by_event = [[SELECT e.vehicle_id, date_trunc('month', e.occurred_at AT TIME ZONE v.timezone)::date,
        e.payload->>'currency', c.category, sum(c.amount) FROM vehicle_events_effective e JOIN vehicles v ON v.id = e.vehicle_id,
        cost_of(e.type, e.payload) c WHERE e.tenant_id = $1 GROUP BY 1, 2, 3, 4]]
    assert.same({ 0, 0 }, { apart(by_event, "SELECT vehicle_id, month, currency, category, amount FROM vehicle_costs_monthly " ..
      "WHERE tenant_id = $1", tenant) })
    assert.equal(0, q(db, "SELECT count(*) FROM vehicle_event_heads WHERE dirty_from IS NOT NULL"))
    -- and the full recomputation agrees with itself through the public entry point
    assert.is_true(maintenance.recompute_metrics(db) > 0)
    assert.same({ 0, 0, 0, 0 }, { differences() })
  end)

  -- After a load, each vehicle is marked from its first event: when those
  -- are most of a tenant's vehicles, they are recomputed in one statement
  -- per table (migration 0033), to what the per-vehicle path writes.
  it("advances a loaded tenant in one statement per table, equal to a full recomputation", function()
    local vs = { vehicle("km", "Europe/Berlin"), vehicle("mi", "America/Chicago"), vehicle() }
    local function load(list, year)
      local batch = {}
      for i, v in ipairs(list) do
        for k = 1, 12 do
          batch[#batch + 1] = { vehicle_id = v, type = k % 4 == 0 and "odometer" or "fuel",
            occurred_at = ("%d-%02d-%02dT23:30:00Z"):format(year, k, 3 + i), mileage = 900 * k + i,
            payload = k % 4 == 0 and { source = "manual" }
              or { volume = 40 + k, unit = "l", total = 60 + k, currency = "EUR", full = k % 3 ~= 0 } }
        end
      end
      assert(timeline.append_batch(db, ctx, batch))
    end
    load(vs, 2024)
    assert.equal(3, q(db, "SELECT advance_tenant_metrics()"))
    assert.same({ 0, 0, 0, 0 }, { differences() })
    assert.equal(0, q(db, "SELECT count(*) FROM vehicle_event_heads WHERE dirty_from IS NOT NULL"))
    assert.is_true(q(db, "SELECT count(*) FROM vehicle_metrics_monthly WHERE economy_litres > 0") >= 9)
    assert.is_true(q(db, "SELECT count(*) FROM vehicle_costs_monthly") >= 27)
    -- a later event of one vehicle is not a load: its own pass takes it
    fill(vs[1], "2025-01-05T08:00:00Z", 13500, 42)
    assert.equal(0, q(db, "SELECT advance_tenant_metrics()"))
    assert.equal(1, maintenance.advance_metrics(db))
    assert.same({ 0, 0, 0, 0 }, { differences() })
    -- nor is one vehicle of three back-dated before its first event
    fill(vs[2], "2023-06-01T08:00:00Z", 10, 30)
    assert.equal(0, q(db, "SELECT advance_tenant_metrics()"))
    assert.equal(1, maintenance.advance_metrics(db))
    -- once anything is archived, the retention floor is the per-vehicle path's
    local more = { vehicle(), vehicle(), vehicle(), vehicle() }
    load(more, 2026)
    assert(db:exec("UPDATE settings SET value = '2001-01-01T00:00:00Z' WHERE key = 'archived_before'"))
    assert.equal(0, q(db, "SELECT advance_tenant_metrics()"))
    assert(db:exec("UPDATE settings SET value = '' WHERE key = 'archived_before'"))
    assert.equal(4, maintenance.advance_metrics(db))
    assert.same({ 0, 0, 0, 0 }, { differences() })
  end)

  it("rolls metrics up per fleet group (the whole subtree) and per tenant, never adding two currencies", function()
    local region = q(db, "INSERT INTO fleet_groups (tenant_id, name) VALUES ($1, 'North') RETURNING id", tenant)
    local team = q(db, "INSERT INTO fleet_groups (tenant_id, parent_id, name) VALUES ($1, $2, 'Vans') RETURNING id", tenant, region)
    local a, b = vehicle("km"), vehicle("mi")
    db:exec("UPDATE vehicles SET group_id = $1 WHERE id = $2", team, a)
    db:exec("UPDATE vehicles SET group_id = $1 WHERE id = $2", region, b)
    fill(a, "2024-03-01T00:00:00Z", 1000, 40)
    fill(a, "2024-03-10T00:00:00Z", 1500, 40)
    fill(b, "2024-03-02T00:00:00Z", 100, 40, { currency = "USD" })
    fill(b, "2024-03-11T00:00:00Z", 200, 40)
    assert(timeline.append(db, ctx, { vehicle_id = b, type = "maintenance", occurred_at = "2024-03-12T00:00:00Z",
      payload = { service_type = "toll", category = "parking_tolls", total = 1234.5, currency = "JPY" } }))
    maintenance.advance_metrics(db)
    local north = assert(db:row("SELECT vehicles, distance_km::float8 FROM group_metrics " ..
      "WHERE group_id = $1 AND month = '2024-03-01'", region))
    assert.same({ vehicles = 2, distance_km = 500 + 160.9344 }, north)
    assert.equal(1, q(db, "SELECT vehicles FROM group_metrics WHERE group_id = $1", team))
    local costs = "SELECT currency, category, vehicles, amount::text FROM %s WHERE %s = $1 ORDER BY 1, 2"
    local want = { { currency = "EUR", category = "fuel", vehicles = 2, amount = "180.00" },
      { currency = "JPY", category = "parking_tolls", vehicles = 1, amount = "1235" }, -- yen have no minor unit
      { currency = "USD", category = "fuel", vehicles = 1, amount = "60.00" } }
    assert.same(want, motomind.assert(db:query(costs:format("group_costs", "group_id"), region)))
    assert.same(want, motomind.assert(db:query(costs:format("tenant_costs", "tenant_id"), tenant)))
    assert.same({ { currency = "EUR", category = "fuel", vehicles = 1, amount = "120.00" } },
      motomind.assert(db:query(costs:format("group_costs", "group_id"), team)))
    -- per vehicle: one row per currency, each with its own total and cost per distance
    assert.same({ { currency = "EUR", total_cost = "60.00", cost_per_distance = "0.6000" },
      { currency = "JPY", total_cost = "1235", cost_per_distance = "12.3500" },
      { currency = "USD", total_cost = "60.00", cost_per_distance = "0.6000" } },
      motomind.assert(db:query("SELECT currency, total_cost::text, cost_per_distance::text FROM vehicle_costs " ..
        "WHERE vehicle_id = $1 ORDER BY currency", b)))
  end)

  it("records the feed's freshness in the refresh, refreshes only what is stale, and filters by tenant", function()
    local v = vehicle()
    fill(v, "2024-01-01T00:00:00Z", 100, 30)
    assert.same({ timeline_feed = "refreshed" }, maintenance.refresh(db))
    local r = assert(db:row("SELECT row_count, high_water IS NOT NULL AS marked, finished_at >= started_at AS ordered, " ..
      "behind FROM mv_freshness WHERE view_name = 'timeline_feed'"))
    assert.same({ row_count = 1, marked = true, ordered = true, behind = false }, r)
    assert.same({ timeline_feed = "fresh" }, maintenance.refresh(db)) -- nothing changed
    fill(v, "2024-01-05T00:00:00Z", 200, 30)
    assert.is_true(q(db, "SELECT behind FROM mv_freshness"))
    assert.same({ timeline_feed = "fresh" }, maintenance.refresh(db, { max_age = 300 })) -- young enough
    assert.same({ timeline_feed = "refreshed" }, maintenance.refresh(db, { max_age = 0 }))
    assert.equal(2, q(db, "SELECT row_count FROM mv_refreshes"))
    -- the application reads its own tenant's rows only
    local other = H.tenant_with_vehicle(db, { name = "other" })
    local stranger = H.user(db, other, "owner")
    local app = H.app_connect(db)
    assert.equal(2, app:as(ctx, function() return q(app, "SELECT count(*) FROM timeline_feed") end))
    assert.equal(0, app:as({ tenant = other, user = stranger }, function() return q(app, "SELECT count(*) FROM timeline_feed") end))
    assert.equal(0, q(app, "SELECT count(*) FROM timeline_feed")) -- no context, no rows
    local daily = "SELECT count(*) FROM vehicle_metrics_daily($1, '2024-01-01', '2024-01-31')"
    assert.equal(2, app:as(ctx, function() return q(app, daily, v) end))
    assert.equal(0, app:as({ tenant = other, user = stranger }, function() return q(app, daily, v) end))
    -- pages, newest first, by keyset cursor, of a tenant or one vehicle
    local w = vehicle()
    fill(w, "2024-01-03T00:00:00Z", 10, 30)
    maintenance.refresh(db)
    local first = assert(timeline.feed(app, ctx, { limit = 2 }))
    assert.same({ "2024-01-05T00:00:00+00:00", "2024-01-03T00:00:00+00:00" },
      { first.events[1].occurred_at, first.events[2].occurred_at })
    assert.equal(w, first.events[2].vehicle_id)
    local rest = assert(timeline.feed(app, ctx, { limit = 2, cursor = first.cursor }))
    assert.same({ 1, "2024-01-01T00:00:00+00:00", 30 }, { #rest.events, rest.events[1].occurred_at,
      rest.events[1].payload.volume })
    assert.is_nil(rest.cursor)
    assert.equal(2, #assert(timeline.feed(app, ctx, { vehicle = v })).events)
    assert.equal(0, #assert(timeline.feed(app, { tenant = other, user = stranger }, {})).events)
    app:close()
  end)

  it("never piles up refreshers nor maintainers, and readers go on during a refresh", function()
    local v = vehicle()
    fill(v, "2024-01-01T00:00:00Z", 100, 30)
    assert.is_nil(maintenance.maintain(db).skipped) -- partitions made: the next runs take no table locks
    fill(v, "2024-01-02T00:00:00Z", 150, 30)
    local other = H.connect { schema = db:schema() }
    assert(other:exec("BEGIN"))
    assert.equal("refreshed", q(other, "SELECT refresh_feed()"))  -- still in its transaction
    assert.same({ timeline_feed = "busy" }, maintenance.refresh(db))
    assert(other:exec("SELECT maintain()"))
    assert.is_true(maintenance.maintain(db).skipped)
    -- a reader is not blocked by the open refresh
    assert(db:exec("SET statement_timeout = '2s'"))
    assert.equal(1, q(db, "SELECT count(*) FROM " .. db:escape_identifier(db:schema() .. "_private") .. ".timeline_feed"))
    assert.equal(2, q(other, "SELECT count(*) FROM " .. db:escape_identifier(db:schema() .. "_private") .. ".timeline_feed"))
    assert(db:exec("RESET statement_timeout"))
    assert(other:exec("COMMIT"))
    other:close()
  end)

  it("refreshes the feed vehicle by vehicle: only the changed vehicles' rows, equal to a full build", function()
    local feed = db:escape_identifier(db:schema() .. "_private") .. ".timeline_feed"
    local source = db:escape_identifier(db:schema() .. "_private") .. ".feed_source"
    local function same_as_full() return apart("SELECT * FROM " .. feed, "SELECT * FROM " .. source) end
    local garage = q(db, "INSERT INTO garages (tenant_id, name) VALUES ($1, 'Home') RETURNING id", tenant)
    local group = q(db, "INSERT INTO fleet_groups (tenant_id, name) VALUES ($1, 'North') RETURNING id", tenant)
    local a, b = vehicle(), vehicle()
    assert(db:exec("UPDATE vehicles SET garage_id = $2, group_id = $3, nickname = 'Blue' WHERE id = $1", a, garage, group))
    fill(a, "2024-01-01T00:00:00Z", 100, 30)
    fill(b, "2024-01-02T00:00:00Z", 500, 30)
    assert.equal("refreshed", q(db, "SELECT refresh_feed()"))
    local b_row = q(db, "SELECT ctid::text FROM " .. feed .. " WHERE vehicle_id = $1", b)
    -- an event of a: a's rows are rebuilt, b's are left alone
    fill(a, "2024-01-05T00:00:00Z", 200, 30)
    assert.same({ true, false }, { db:value("SELECT feed_dirty FROM vehicle_event_heads WHERE vehicle_id = $1", a),
      db:value("SELECT feed_dirty FROM vehicle_event_heads WHERE vehicle_id = $1", b) })
    assert.is_true(q(db, "SELECT behind FROM mv_freshness"))
    assert.equal("refreshed", q(db, "SELECT refresh_feed()"))
    assert.equal(b_row, q(db, "SELECT ctid::text FROM " .. feed .. " WHERE vehicle_id = $1", b))
    assert.same({ 3, false }, { q(db, "SELECT row_count FROM mv_refreshes"), db:value("SELECT behind FROM mv_freshness") })
    assert.same({ 0, 0 }, { same_as_full() })
    -- what the feed copies from the vehicle, its garage and its group
    local function names()
      return q(db, "SELECT string_agg(DISTINCT concat_ws('/', vehicle_nickname, garage_name, group_name), ',') FROM " ..
        feed .. " WHERE vehicle_id = $1", a)
    end
    assert.equal("Blue/Home/North", names())
    assert(db:exec("UPDATE garages SET name = 'Barn' WHERE id = $1", garage))
    assert(db:exec("UPDATE fleet_groups SET name = 'South' WHERE id = $1", group))
    assert(db:exec("UPDATE vehicles SET nickname = 'Red' WHERE id = $1", a))
    assert.equal("refreshed", q(db, "SELECT refresh_feed()"))
    assert.equal("Red/Barn/South", names())
    assert(db:exec("UPDATE vehicles SET deleted_at = now() WHERE id = $1", a))
    assert.equal("refreshed", q(db, "SELECT refresh_feed()"))
    assert.same({ 0, 1 }, { q(db, "SELECT count(*) FROM " .. feed .. " WHERE vehicle_id = $1", a),
      q(db, "SELECT row_count FROM mv_refreshes") })
    assert.same({ 0, 0 }, { same_as_full() })
    assert.equal("fresh", q(db, "SELECT refresh_feed()")) -- nothing marked
    -- a writer holding a head is not waited for: its mark stays for the next refresh
    local writer = H.connect { schema = db:schema() }
    assert(writer:exec("BEGIN"))
    fill(b, "2024-01-06T00:00:00Z", 600, 30) -- committed: b is marked
    assert(writer:exec("INSERT INTO vehicle_events (tenant_id, vehicle_id, type, occurred_at, mileage, payload) " ..
      [[VALUES ($1, $2, 'odometer', '2024-01-07T00:00:00Z', 700, '{"source": "manual"}')]], tenant, b))
    assert(db:exec("SET lock_timeout = '2s'"))
    assert.equal("refreshed", q(db, "SELECT refresh_feed()"))
    assert.equal(2, q(db, "SELECT count(*) FROM " .. feed .. " WHERE vehicle_id = $1", b))
    assert(writer:exec("COMMIT"))
    writer:close()
    assert.equal("refreshed", q(db, "SELECT refresh_feed()"))
    assert.same({ 3, 0, 0 }, { q(db, "SELECT count(*) FROM " .. feed .. " WHERE vehicle_id = $1", b), same_as_full() })
    -- a purged tenant's rows go with it
    assert(db:exec("UPDATE tenants SET deleted_at = now() WHERE id = $1", tenant))
    assert.is_true(q(db, "SELECT purge_tenant($1)", tenant) > 0)
    assert.equal(0, q(db, "SELECT count(*) FROM " .. feed))
  end)

  it("maintains: partitions ahead, the DEFAULT drained, metrics advanced, old partitions archived and exported", function()
    local v = vehicle()
    fill(v, "2015-06-01T00:00:00Z", 100, 30) -- lands in the DEFAULT partition
    local findings = maintenance.health(db)
    local text = {}
    for _, f in ipairs(findings) do text[#text + 1] = f.finding end
    text = table.concat(text, "\n")
    assert.matches("1 rows sit in the DEFAULT partition", text)
    assert.matches("missing future partitions", text)
    assert.matches("timeline_feed was never refreshed", text)
    assert.matches("metrics pending for 1 vehicles", text)
    assert.matches("size #1: ", text)

    local report = maintenance.maintain(db, { ahead = 1 })
    assert.is_true(#report.partitions_created >= 3)
    assert.same({ "refreshed", 1 }, { report.feed, report.vehicles_advanced })
    assert.equal(0, q(db, "SELECT count(*) FROM vehicle_events_default"))
    for _, f in ipairs(maintenance.health(db)) do assert.equal("info", f.severity, f.finding) end

    assert(db:exec("UPDATE settings SET value = '12' WHERE key = 'retention_months'"))
    local dir = os.tmpname()
    os.remove(dir)
    assert(os.execute("mkdir " .. dir))
    report = maintenance.maintain(db, { export_dir = dir })
    assert.same({ "vehicle_events_2015" }, report.archived)
    assert.equal(0, q(db, "SELECT count(*) FROM vehicle_events"))
    assert.equal(1, q(db, "SELECT count(*) FROM " .. db:escape_identifier(db:schema() .. "_archive") .. ".vehicle_events_2015"))
    -- the feed lets the archived events go with them (its full build has none)
    assert.equal(0, q(db, "SELECT count(*) FROM " .. db:escape_identifier(db:schema() .. "_private") .. ".timeline_feed"))
    assert.equal(1, q(db, "SELECT count(*) FROM vehicle_metrics_monthly WHERE month = '2015-06-01'"))
    local f = assert(io.open(dir .. "/vehicle_events_2015.jsonl"))
    assert.equal(100, motomind.json.decode(f:read("*l")).mileage)
    f:close()
    os.execute("rm -r " .. dir)
  end)

  it("registers maintain() with pg_cron when it can, and prints a crontab line otherwise", function()
    local how, what = maintenance.schedule(db, { every = "*/10 * * * *", crontab = true })
    assert.equal("crontab", how)
    assert.equal("*/10 * * * * motomind maintain --schema " .. db:schema(), what)
    local cron = db:row("SELECT current_setting('shared_preload_libraries') ~ 'pg_cron' AND " ..
      "current_setting('cron.database_name', true) = current_database() AS usable")
    if not cron.usable then
      pending("pg_cron is not preloaded for this database (make test's own cluster preloads it)")
      return
    end
    how, what = maintenance.schedule(db, { every = "*/10 * * * *" })
    assert.equal("pg_cron", how)
    local job = assert(db:row("SELECT schedule, command FROM cron.job WHERE jobid = $1", what))
    assert.equal("*/10 * * * *", job.schedule)
    assert.equal("SELECT " .. db:qualify("maintain") .. "()", job.command)
    -- scheduling again updates the job instead of adding one
    assert.equal(what, select(2, maintenance.schedule(db, { every = "0 * * * *" })))
    assert.equal("0 * * * *", q(db, "SELECT schedule FROM cron.job WHERE jobid = $1", what))
    -- and what pg_cron will run works (as the owner, outside maintenance mode)
    local plain = H.connect { schema = db:schema(), maintenance = false }
    assert.is_table(q(plain, job.command))
    plain:close()
    assert(db:exec("SELECT cron.unschedule($1::bigint)", what))
  end)
end)
