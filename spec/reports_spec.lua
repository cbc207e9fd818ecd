-- Money per currency, each fill's economy, reports and their renderings
-- (text, JSON, CSV, SVG charts drawn by a real SVG renderer, HTML), and the
-- report command.
local motomind = require "motomind"
local timeline = require "motomind.timeline"
local maintenance = require "motomind.maintenance"
local vehicles = require "motomind.vehicles"
local reports = require "motomind.reports"
local render = require "motomind.report_render"
local H = require "spec.helper"

local null = motomind.null
local GOLDEN = H.root .. "/spec/fixtures/reports/vehicle.svg"

describe("money and reports", function()
  local db, tenant, owner, ctx

  before_each(function()
    db = H.fresh()
    tenant = motomind.assert(db:value("INSERT INTO tenants (name, currency) VALUES ('Ada', 'EUR') RETURNING id"))
    owner = H.user(db, tenant, "owner")
    ctx = { tenant = tenant, user = owner }
  end)
  after_each(function() H.drop(db) end)

  local function add(v, type, at, mileage, payload)
    return assert(timeline.append(db, ctx, { vehicle_id = v, type = type, occurred_at = at, mileage = mileage,
      payload = payload }))
  end

  -- A km car in EUR with a fixed history: fills (one partial, one after a
  -- typo'd odometer), a service, a repair, a toll in another currency.
  local function fixed_car()
    local v = motomind.assert(vehicles.add(db, ctx, { nickname = "Golf", odometer_unit = "km", timezone = "Europe/Berlin",
      purchased_on = "2023-12-01", purchase_price = 18000, purchase_mileage = 9000 })).id
    local function fill(at, km, litres, extra)
      local p = { volume = litres, unit = "l", price_per_unit = 1.799, currency = "EUR" }
      for k, x in pairs(extra or {}) do p[k] = x end
      add(v, "fuel", at, km, p)
    end
    fill("2024-01-03T08:00:00Z", 10000, 40)
    fill("2024-01-20T08:00:00Z", 10600, 20, { full = false })
    fill("2024-02-02T08:00:00Z", 11000, 36)                      -- 1000 km on 56 l: 5.6 L/100 km
    fill("2024-02-20T08:00:00Z", 11700, 42)                      -- 700 km on 42 l: 6.0
    add(v, "odometer", "2024-03-01T08:00:00Z", 117500, { source = "manual" }) -- a typo (flagged, but counted as read)
    fill("2024-03-05T08:00:00Z", 118000, 40)                     -- 106,300 km on 40 l: implausible
    fill("2024-03-25T08:00:00Z", 118650, 39)                     -- 650 km on 39 l: 6.0
    add(v, "maintenance", "2024-02-10T08:00:00Z", 11300, { service_type = "oil", total = 189.9, currency = "EUR" })
    add(v, "damage", "2024-03-10T08:00:00Z", nil, { severity = "minor", estimate = 400, repair_cost = 351.5, currency = "EUR" })
    add(v, "maintenance", "2024-03-12T08:00:00Z", nil, { service_type = "vignette", category = "parking_tolls",
      total = 42.5, currency = "CHF" })
    maintenance.advance_metrics(db)
    return v
  end

  it("gives a vehicle its tenant's currency unless told, and keeps purchase and sale in order", function()
    local v = motomind.assert(vehicles.add(db, ctx, { nickname = "a", odometer_unit = "km" }))
    assert.equal("EUR", v.currency)
    assert.equal("JPY", motomind.assert(vehicles.add(db, ctx, { nickname = "b", odometer_unit = "km", currency = "JPY" })).currency)
    local ok, err = vehicles.add(db, ctx, { nickname = "c", odometer_unit = "km", purchased_on = "2024-05-01",
      sold_on = "2024-04-01" })
    assert.is_nil(ok)
    assert.matches("vehicles_sold_after_purchase", err)
    ok, err = vehicles.add(db, ctx, { nickname = "d", odometer_unit = "km", currency = "euro" })
    assert.is_nil(ok)
    assert.matches("vehicles_currency_check", err)
  end)

  it("computes each fill's economy, flags an implausible interval and keeps it out of the month", function()
    local v = fixed_car()
    local fills = motomind.assert(db:query("SELECT to_char(occurred_at, 'MM-DD') AS day, distance::float8, " ..
      "closes_interval, implausible, l_per_100km::float8, price_per_unit::float8, cost::text " ..
      "FROM vehicle_fills WHERE vehicle_id = $1 ORDER BY occurred_at", v))
    assert.same({
      { day = "01-03", distance = null, closes_interval = false, implausible = false, l_per_100km = null,
        price_per_unit = 1.799, cost = "71.96" },
      { day = "01-20", distance = 600, closes_interval = false, implausible = false, l_per_100km = null,
        price_per_unit = 1.799, cost = "35.98" },
      { day = "02-02", distance = 400, closes_interval = true, implausible = false, l_per_100km = 5.6,
        price_per_unit = 1.799, cost = "64.76" },
      { day = "02-20", distance = 700, closes_interval = true, implausible = false, l_per_100km = 6,
        price_per_unit = 1.799, cost = "75.56" },
      { day = "03-05", distance = 106300, closes_interval = true, implausible = true, l_per_100km = 0.04,
        price_per_unit = 1.799, cost = "71.96" },
      { day = "03-25", distance = 650, closes_interval = true, implausible = false, l_per_100km = 6,
        price_per_unit = 1.799, cost = "70.16" },
    }, fills)
    -- March's economy is the plausible interval alone
    assert.same({ economy_distance = 650, economy_litres = 39 }, db:row("SELECT economy_distance::float8, " ..
      "economy_litres::float8 FROM vehicle_metrics WHERE vehicle_id = $1 AND month = '2024-03-01'", v))
    -- an electric car's charges: kWh per 100 km
    local ev = motomind.assert(vehicles.add(db, ctx, { nickname = "e", odometer_unit = "km" })).id
    add(ev, "fuel", "2024-01-01T00:00:00Z", 100, { volume = 40, unit = "kwh" })
    add(ev, "fuel", "2024-01-09T00:00:00Z", 350, { volume = 45, unit = "kwh" })
    assert.equal(18, db:value("SELECT kwh_per_100km::float8 FROM vehicle_fills WHERE vehicle_id = $1 " ..
      "AND closes_interval", ev))
    -- and its month: the charging interval, apart from any fuel
    maintenance.advance_metrics(db)
    assert.same({ economy_kwh_distance = 250, economy_kwh = 45, kwh_per_100km = 18, economy_litres = 0 },
      db:row("SELECT economy_kwh_distance::float8, economy_kwh::float8, kwh_per_100km::float8, economy_litres::float8 " ..
        "FROM vehicle_metrics WHERE vehicle_id = $1 AND month = '2024-01-01'", ev))
  end)

  it("prices a litre by the fills that state their litres, and a kWh by the charges that state theirs", function()
    local phev = motomind.assert(vehicles.add(db, ctx, { nickname = "Outlander", odometer_unit = "km" })).id
    add(phev, "fuel", "2024-05-02T08:00:00Z", 1000, { volume = 40, unit = "l", total = 72, currency = "EUR" })
    add(phev, "fuel", "2024-05-09T08:00:00Z", 1300, { total = 50, currency = "EUR" }) -- no volume: priced nothing
    add(phev, "fuel", "2024-05-12T08:00:00Z", 1400, { volume = 20, unit = "kwh", total = 8, currency = "EUR",
      fuel_type = "electric" })
    add(phev, "fuel", "2024-05-20T08:00:00Z", 1500, { volume = 10, unit = "us_gal", total = 68.14, currency = "EUR" })
    maintenance.advance_metrics(db)
    local r = motomind.assert(reports.build(db, ctx, { vehicle = phev, from = "2024-05-01", to = "2024-05-31" }))
    -- (72 + 68.14) / (40 + 37.854...) l, not (72 + 50 + 8 + 68.14) / the litres
    assert.same({ { month = "2024-05", currency = "EUR", price = 1.8 } }, r.tables.fuel_prices.rows)
    assert.same({ { month = "2024-05", currency = "EUR", price = 0.4 } }, r.tables.charging_prices.rows)
    assert.equal("198.14", r.tables.costs_by_month.rows[1].amount) -- every fill's money is still its cost
    -- the incremental months equal a full recomputation
    assert.same(db:query("SELECT * FROM vehicle_costs_monthly ORDER BY month, currency, category"),
      db:query("SELECT tenant_id, vehicle_id, period AS month, currency, category, amount, entries, litres, energy_kwh, " ..
        "litres_amount, kwh_amount FROM compute_vehicle_costs(NULL, NULL, NULL) ORDER BY 3, 4, 5"))
  end)

  it("reports a vehicle: costs per currency and category, annual totals, fills, ownership, economy", function()
    local v = fixed_car()
    local app = H.app_connect(db)
    local r = motomind.assert(reports.build(app, ctx, { vehicle = v, from = "2024-01-01", to = "2024-12-31" }))
    assert.same({ "Golf", "vehicle", "km", "l_per_100km", 1 }, { r.title, r.scope, r.distance_unit, r.economy_unit, r.vehicles })
    local function rows(name, ...)
      local cols, out = { ... }, {}
      for i, row in ipairs(r.tables[name].rows) do
        out[i] = {}
        for j, c in ipairs(cols) do out[i][j] = row[c] end
      end
      return out
    end
    assert.same({
      { "2024-01", "EUR", "fuel", "107.94" },
      { "2024-02", "EUR", "fuel", "140.32" }, { "2024-02", "EUR", "service", "189.90" },
      { "2024-03", "CHF", "parking_tolls", "42.50" },
      { "2024-03", "EUR", "fuel", "142.12" }, { "2024-03", "EUR", "repair", "351.50" },
    }, rows("costs_by_month", "month", "currency", "category", "amount"))
    -- two currencies, two rows: never one sum
    assert.same({ { 2024, "CHF", "42.50", "42.50" }, { 2024, "EUR", "931.78", "541.40" } },
      rows("annual", "year", "currency", "total", "other"))
    local eur = r.tables.annual.rows[2]
    assert.equal(118650 - 10000, eur.distance) -- the typo'd reading is still a reading
    assert.equal(("%.4f"):format(931.78 / 108650), eur.cost_per_distance)
    assert.equal(("%.2f"):format(931.78 / 366), eur.cost_per_day)
    assert.same({ { "2024-02-02", 5.6 }, { "2024-02-20", 6 }, { "2024-03-05", null }, { "2024-03-25", 6 } },
      { table.unpack(rows("fills", "day", "economy"), 3) })
    local own = r.tables.ownership.rows[1]
    assert.same({ "EUR", "18000", "18931.78", 118650 - 9000 }, { own.currency, own.purchase_price, own.total, own.distance })
    -- lifetime economy: 1000 + 700 + 650 km on 56 + 42 + 39 l; best and worst fill
    assert.same({ { "lifetime", 5.83 }, { "last 12 months", 5.83 }, { "2024", 5.83 }, { "best fill 2024-02-02", 5.6 },
      { "worst fill 2024-02-20", 6 } }, rows("economy", "period", "economy"))
    assert.same({ { "2024-01", "EUR", 1.799 }, { "2024-02", "EUR", 1.799 }, { "2024-03", "EUR", 1.799 } },
      rows("fuel_prices", "month", "currency", "price"))
    -- a later period: its own months, lifetime figures from every month before its end
    r = motomind.assert(reports.build(app, ctx, { vehicle = v, from = "2024-02-15", to = "2024-03-31" }))
    assert.same({ { "2024-02", 1100 }, { "2024-03", 106950 } }, rows("months", "month", "distance"))
    assert.same({ { "2024-02", "EUR", 1.799 }, { "2024-03", "EUR", 1.799 } }, rows("fuel_prices", "month", "currency", "price"))
    assert.same({ "lifetime", 5.83 }, { r.tables.economy.rows[1].period, r.tables.economy.rows[1].economy })
    -- another tenant's user sees no such vehicle
    local other = motomind.assert(db:value("INSERT INTO tenants (name) VALUES ('Bo') RETURNING id"))
    local stranger = { tenant = other, user = H.user(db, other, "owner") }
    local none, err = reports.build(app, stranger, { vehicle = v })
    assert.is_nil(none)
    assert.matches("vehicle: no such vehicle", err)
    assert.matches("from: expected a date", (select(2, reports.build(app, ctx, { from = "2024-1-1" }))))
    assert.matches("economy: expected one of", (select(2, reports.build(app, ctx, { economy = "furlongs" }))))
    assert.matches("vehicle, group: give one of them", (select(2, reports.build(app, ctx, { vehicle = v, group = v }))))
    assert.matches("from: is after to", (select(2, reports.build(app, ctx, { from = "2024-02-01", to = "2024-01-31" }))))
    -- by default the 12 months up to the end: from the first of the month 11 months before
    local default = motomind.assert(reports.build(app, ctx, { vehicle = v, to = "2024-03-15" }))
    assert.same({ "2023-04-01", "2024-03-15" }, { default.from, default.to })
    app:close()
  end)

  it("reports a group and a tenant per currency, a mile fleet in miles", function()
    local north = motomind.assert(db:value("INSERT INTO fleet_groups (tenant_id, name) VALUES ($1, 'North') RETURNING id", tenant))
    local vans = motomind.assert(db:value("INSERT INTO fleet_groups (tenant_id, parent_id, name) VALUES ($1, $2, 'Vans') " ..
      "RETURNING id", tenant, north))
    local a = motomind.assert(vehicles.add(db, ctx, { nickname = "a", odometer_unit = "mi", group_id = vans })).id
    local b = motomind.assert(vehicles.add(db, ctx, { nickname = "b", odometer_unit = "mi", group_id = north })).id
    local c = motomind.assert(vehicles.add(db, ctx, { nickname = "c", odometer_unit = "km" })).id
    add(a, "fuel", "2025-05-01T00:00:00Z", 1000, { volume = 10, unit = "us_gal", total = 40, currency = "USD" })
    add(a, "fuel", "2025-05-08T00:00:00Z", 1300, { volume = 10, unit = "us_gal", total = 41, currency = "USD" })
    add(b, "fuel", "2025-05-02T00:00:00Z", 500, { volume = 30, unit = "l", total = 55, currency = "EUR" })
    add(c, "fuel", "2025-05-03T00:00:00Z", 800, { volume = 30, unit = "l", total = 54, currency = "EUR" })
    maintenance.advance_metrics(db)
    local g = motomind.assert(reports.build(db, ctx, { group = north, from = "2025-05-01", to = "2025-05-31" }))
    assert.same({ "Group North", 2, "mi", "mpg_us" }, { g.title, g.vehicles, g.distance_unit, g.economy_unit })
    assert.same({ { currency = "EUR", total = "55.00" }, { currency = "USD", total = "81.00" } },
      { { currency = g.tables.annual.rows[1].currency, total = g.tables.annual.rows[1].total },
        { currency = g.tables.annual.rows[2].currency, total = g.tables.annual.rows[2].total } })
    assert.same({ { month = "2025-05", distance = 300, economy = 30 } },
      { { month = g.tables.months.rows[1].month, distance = g.tables.months.rows[1].distance,
          economy = g.tables.months.rows[1].economy } })
    local t = motomind.assert(reports.build(db, ctx, { from = "2025-05-01", to = "2025-05-31" }))
    assert.same({ "Fleet of Ada", 3, "km" }, { t.title, t.vehicles, t.distance_unit }) -- mixed units: km
    assert.same({ "109.00", "81.00" }, { t.tables.annual.rows[1].total, t.tables.annual.rows[2].total })
    assert.is_nil(t.tables.fills)
    assert.is_nil(select(1, reports.build(db, ctx, { group = "00000000-0000-0000-0000-000000000000" })))
  end)

  it("shows an all-electric scope in kWh (its charges as its fills), a mixed one in fuel unless asked", function()
    local ev = motomind.assert(vehicles.add(db, ctx, { nickname = "Zoe", odometer_unit = "km" })).id
    local us = motomind.assert(vehicles.add(db, ctx, { nickname = "Bolt", odometer_unit = "mi" })).id
    add(ev, "fuel", "2025-03-01T00:00:00Z", 1000, { volume = 30, unit = "kwh", total = 9, currency = "EUR" })
    add(ev, "fuel", "2025-03-10T00:00:00Z", 1250, { volume = 40, unit = "kwh", total = 12, currency = "EUR" }) -- 16 kWh/100 km
    add(ev, "fuel", "2025-04-02T00:00:00Z", 1450, { volume = 36, unit = "kwh", total = 11, currency = "EUR" }) -- 18
    add(us, "fuel", "2025-03-01T00:00:00Z", 500, { volume = 20, unit = "kwh", total = 5, currency = "EUR" })
    add(us, "fuel", "2025-03-05T00:00:00Z", 620, { volume = 40, unit = "kwh", total = 9, currency = "EUR" })  -- 3 mi/kWh
    maintenance.advance_metrics(db)
    local r = motomind.assert(reports.build(db, ctx, { vehicle = ev, from = "2025-01-01", to = "2025-12-31" }))
    assert.same({ "kwh_per_100km", "kWh/100 km" }, { r.economy_unit, r.economy_label })
    assert.same({ 16, 18 }, { r.tables.months.rows[1].economy, r.tables.months.rows[2].economy })
    assert.same({ null, 16, 18 }, { r.tables.fills.rows[1].economy, r.tables.fills.rows[2].economy,
      r.tables.fills.rows[3].economy })
    assert.same({ period = "lifetime", economy = 16.89 }, r.tables.economy.rows[1]) -- 76 kWh over 450 km
    local m = motomind.assert(reports.build(db, ctx, { vehicle = us, from = "2025-01-01", to = "2025-12-31" }))
    assert.same({ "mi_per_kwh", 3 }, { m.economy_unit, m.tables.months.rows[1].economy })
    -- a fleet with a liquid-fuel car: fuel unless asked
    local golf = motomind.assert(vehicles.add(db, ctx, { nickname = "Golf", odometer_unit = "km" })).id
    add(golf, "fuel", "2025-03-01T00:00:00Z", 100, { volume = 40, unit = "l", total = 70, currency = "EUR" })
    add(golf, "fuel", "2025-03-09T00:00:00Z", 900, { volume = 48, unit = "l", total = 84, currency = "EUR" }) -- 6 L/100 km
    maintenance.advance_metrics(db)
    local fleet = motomind.assert(reports.build(db, ctx, { from = "2025-03-01", to = "2025-03-31" }))
    assert.same({ "l_per_100km", 6 }, { fleet.economy_unit, fleet.tables.months.rows[1].economy })
    local charged = motomind.assert(reports.build(db, ctx, { from = "2025-03-01", to = "2025-03-31",
      economy = "kwh_per_100km" }))
    -- 250 km on 40 kWh, and 120 mi (193.1 km) on 40 kWh: 80 kWh over 443.1 km
    assert.same({ "kWh/100 km", 18.05 }, { charged.economy_label, charged.tables.months.rows[1].economy })
    local _, err = reports.build(db, ctx, { economy = "furlongs" })
    assert.equal("economy: expected one of km_per_l, kwh_per_100km, l_per_100km, mi_per_kwh, mpg_uk, mpg_us", err)
  end)

  it("renders text, JSON, CSV and HTML; the SVG charts draw in a real renderer and match the golden file", function()
    local v = fixed_car()
    local r = motomind.assert(reports.build(db, ctx, { vehicle = v, from = "2024-01-01", to = "2024-06-30" }))
    local text = render.text(r)
    assert.matches("Golf: 2024%-01%-01 to 2024%-06%-30 %(1 vehicle; distances in km, economy in L/100 km%)", text)
    assert.matches("\n  2024%-03%s+CHF%s+parking_tolls%s+42.50%s+1\n", text)
    local decoded = motomind.json.decode(render.json(r))
    assert.equal("142.12", decoded.tables.costs_by_month.rows[5].amount)
    local csv = render.csv(r)
    assert.matches("## costs_by_month\r\nmonth,currency,category,amount,entries\r\n2024%-01,EUR,fuel,107.94,2\r\n", csv)
    -- same data, same bytes
    assert.equal(render.svg(r), render.svg(motomind.assert(reports.build(db, ctx, { vehicle = v, from = "2024-01-01",
      to = "2024-06-30" }))))
    local svg = render.svg(r)
    if os.getenv("MOTOMIND_UPDATE_GOLDEN") then
      local f = assert(io.open(GOLDEN, "wb")); f:write(svg); f:close()
    end
    assert.equal(H.read(GOLDEN), svg)
    -- each chart alone: accessible, and drawn (more ink than a blank page of its size)
    local charts = render.charts(r)
    assert.same({ "economy", "costs-CHF", "costs-EUR", "cost-per-distance" },
      { charts[1].name, charts[2].name, charts[3].name, charts[4].name })
    local blank = H.write_temp('<svg xmlns="http://www.w3.org/2000/svg" width="600" height="320">' ..
      '<rect width="600" height="320" fill="#ffffff"/></svg>')
    local blank_png = blank .. ".png"
    local drawn, ok = H.run(("rsvg-convert -o %s %s"):format(blank_png, blank))
    assert.is_true(ok, drawn)
    local blank_size = #H.read(blank_png)
    for _, c in ipairs(charts) do
      assert.matches('role="img" aria%-labelledby="[%w-]+%-title [%w-]+%-desc"', c.svg)
      assert.matches("<title id=", c.svg)
      local path = H.write_temp(c.svg)
      local out, ok = H.run(("rsvg-convert -o %s.png %s && head -c 24 %s.png | od -An -tu1"):format(path, path, path))
      assert.is_true(ok, out)
      -- PNG: 600 px wide (IHDR width at bytes 17-20)
      local b = {}
      for x in out:gmatch("%d+") do b[#b + 1] = tonumber(x) end
      assert.equal(600, ((b[17] * 256 + b[18]) * 256 + b[19]) * 256 + b[20])
      assert.is_true(#H.read(path .. ".png") > 3 * blank_size, c.name)
      os.remove(path); os.remove(path .. ".png")
    end
    os.remove(blank); os.remove(blank_png)
    -- HTML: self-contained (no scripts, nothing fetched), charts inline
    local html = render.html(r)
    assert.matches("^<!DOCTYPE html>", html)
    assert.is_nil(html:find("<script", 1, true))
    assert.is_nil(html:find("src=", 1, true))
    assert.is_nil(html:find("href=", 1, true))
    assert.is_nil(html:gsub('xmlns="http://www.w3.org/2000/svg"', ""):find("https?://"))
    local _, svgs = html:gsub("<svg ", "")
    assert.equal(4, svgs)
    assert.is_nil(select(1, render.render(r, "pdf")))
  end)

  it("runs as `motomind report`, writing a format to a file", function()
    fixed_car()
    local bin = H.lua .. " " .. H.root .. "/bin/motomind"
    local base = (" --schema %s --tenant %s --user %s"):format(db:schema(), tenant, owner)
    local out_file = os.tmpname()
    local out, ok = H.run(bin .. " report --vehicle Golf --from 2024-01-01 --to 2024-12-31 --format csv --out " ..
      out_file .. base)
    assert.is_true(ok, out)
    assert.matches("wrote " .. out_file, out, 1, true)
    assert.matches("## annual\r\nyear,currency,total,fuel,other,distance,cost_per_distance,cost_per_day\r\n2024,CHF,42.50",
      H.read(out_file))
    out, ok = H.run(bin .. " report --vehicle Golf --from 2024-01-01 --to 2024-12-31" .. base)
    assert.is_true(ok, out)
    assert.matches("Cost by category and month:", out)
    out, ok = H.run(bin .. " report --format pdf" .. base)
    assert.is_false(ok)
    assert.matches("%-%-format: expected one of text, json, csv, svg, html, got pdf", out)
    out, ok = H.run(bin .. " report --from yesterday" .. base)
    assert.is_false(ok)
    assert.matches("from: expected a date YYYY%-MM%-DD", out)
    os.remove(out_file)
  end)
end)
