--- Reports of a vehicle, a fleet group (its whole subtree) or a tenant over a
-- period, as the context user (inside db:as(ctx)), read from the SQL views:
-- costs by category and month (per currency: never added across), annual
-- totals, cost per distance and per day, total cost of ownership, distance
-- and economy per month, each fill's economy, the fuel price. A report is
-- plain tables of rows (render them with motomind.report_render).
local motomind = require "motomind"

local M = {}

local KM_PER_MI, L_PER_US_GAL, L_PER_UK_GAL = 1.609344, 3.785411784, 4.54609

-- Economy units: how to turn a distance in km and an amount (litres of
-- liquid fuel, or kWh of charging: `electric`) into the figure.
M.ECONOMY = {
  mpg_us = { label = "US mpg", f = function(km, l) return km / KM_PER_MI / (l / L_PER_US_GAL) end, higher = true },
  mpg_uk = { label = "UK mpg", f = function(km, l) return km / KM_PER_MI / (l / L_PER_UK_GAL) end, higher = true },
  l_per_100km = { label = "L/100 km", f = function(km, l) return l * 100 / km end, higher = false },
  km_per_l = { label = "km/L", f = function(km, l) return km / l end, higher = true },
  kwh_per_100km = { label = "kWh/100 km", f = function(km, kwh) return kwh * 100 / km end, higher = false,
    electric = true },
  mi_per_kwh = { label = "mi/kWh", f = function(km, kwh) return km / KM_PER_MI / kwh end, higher = true, electric = true },
}

--- economy_units() -> the names of M.ECONOMY, sorted.
function M.economy_units()
  local names = {}
  for k in pairs(M.ECONOMY) do names[#names + 1] = k end
  table.sort(names)
  return names
end

-- The unit a report shows when not told: kWh for a scope whose economy is
-- all charging, else liquid fuel; miles or km by the distance unit.
local function default_economy(distance_unit, history)
  local litres, kwh = 0, 0
  for _, r in ipairs(history) do litres, kwh = litres + r.economy_litres, kwh + r.economy_kwh end
  local electric = kwh > 0 and litres == 0
  if distance_unit == "mi" then return electric and "mi_per_kwh" or "mpg_us" end
  return electric and "kwh_per_100km" or "l_per_100km"
end

-- The distance in km and the amount of a month's (or the summary's)
-- economy intervals in unit: its charging intervals for an electric unit.
local function interval(unit, r)
  if M.ECONOMY[unit].electric then return r.economy_kwh_km, r.economy_kwh end
  return r.economy_km, r.economy_litres
end

local function round(x, digits)
  if x == nil then return nil end
  local m = 10 ^ (digits or 2)
  return math.floor(x * m + 0.5) / m
end

-- The economy of km and litres in unit (nil without both).
local function economy(unit, km, litres)
  if not km or not litres or km <= 0 or litres <= 0 then return nil end
  return round(M.ECONOMY[unit].f(km, litres), 2)
end

-- The vehicles of the report (params $1 tenant, $2 vehicle, $3 group and
-- its subgroups), the first CTE of every query; {name} is a table of the
-- schema. (Queries name $2 again on their own table, so one vehicle's rows
-- are read by its key.)
local SCOPE = [[WITH scope AS (
    SELECT v.id, v.timezone, CASE v.odometer_unit WHEN 'mi' THEN 1.609344 ELSE 1 END AS km FROM {vehicles} v
     WHERE v.tenant_id = $1 AND v.deleted_at IS NULL AND ($2::uuid IS NULL OR v.id = $2::uuid)
       AND ($3::uuid IS NULL OR v.group_id IN (SELECT t.member_id FROM {group_subtree} t
                                                WHERE t.tenant_id = $1 AND t.group_id = $3::uuid)))
]]

-- Params: $4 the first day of the period's first month, $5 its last day,
-- $6 km per report distance unit.
local QUERIES = {
  -- the scope itself: its title and its vehicles' units
  head = [[SELECT count(*)::integer AS vehicles, count(DISTINCT v.odometer_unit)::integer AS units,
      min(v.odometer_unit) AS unit, min(coalesce(v.nickname, v.make || ' ' || v.model, v.id::text)) AS name,
      (SELECT name FROM {fleet_groups} WHERE tenant_id = $1 AND id = $3::uuid) AS group_name,
      (SELECT name FROM {tenants} WHERE id = $1) AS tenant_name
    FROM scope s JOIN {vehicles} v ON v.tenant_id = $1 AND v.id = s.id]],
  -- money per month, currency and category (exact amounts as text); for fuel, the price per litre of the
  -- fills that say their volume and per kWh of the charges that say theirs
  costs = [[SELECT to_char(c.month, 'YYYY-MM') AS month, c.currency, c.category, sum(c.amount)::text AS amount,
      sum(c.entries)::integer AS entries,
      (sum(c.litres_amount) / nullif(sum(c.litres), 0))::float8 AS per_litre,
      (sum(c.kwh_amount) / nullif(sum(c.energy_kwh), 0))::float8 AS per_kwh
    FROM {vehicle_costs_monthly} c JOIN scope s ON s.id = c.vehicle_id
   WHERE c.tenant_id = $1 AND ($2::uuid IS NULL OR c.vehicle_id = $2::uuid) AND c.month BETWEEN $4::date AND $5::date
   GROUP BY c.month, 2, 3 ORDER BY c.month, 2, 3]],
  -- distance and economy intervals per month (distance in the report's unit); summed per month and unit
  -- first, so the unit's factor multiplies a few sums, not every row (a fifth less time for a fleet)
  months = [[, per_unit AS (
      SELECT m.month, s.km, sum(m.distance) AS distance, sum(m.economy_distance) AS economy_distance,
             sum(m.economy_litres) AS economy_litres, sum(m.economy_kwh_distance) AS economy_kwh_distance,
             sum(m.economy_kwh) AS economy_kwh, sum(m.fills) AS fills, sum(m.events) AS events
        FROM {vehicle_metrics_monthly} m JOIN scope s ON s.id = m.vehicle_id
       WHERE m.tenant_id = $1 AND ($2::uuid IS NULL OR m.vehicle_id = $2::uuid) AND m.month BETWEEN $4::date AND $5::date
       GROUP BY m.month, s.km)
    SELECT to_char(month, 'YYYY-MM') AS month, round(sum(distance * km / $6), 1)::float8 AS distance,
           sum(economy_distance * km)::float8 AS economy_km, sum(economy_litres)::float8 AS economy_litres,
           sum(economy_kwh_distance * km)::float8 AS economy_kwh_km, sum(economy_kwh)::float8 AS economy_kwh,
           sum(fills)::integer AS fills, sum(events)::integer AS events
      FROM per_unit GROUP BY month ORDER BY month]],
  -- per year and currency: totals, per distance driven that year, per day of the period's part of it
  annual = [[, costs AS (
      SELECT extract(year FROM c.month)::integer AS year, c.currency, sum(c.amount) AS total,
             coalesce(sum(c.amount) FILTER (WHERE c.category = 'fuel'), 0) AS fuel
        FROM {vehicle_costs_monthly} c JOIN scope s ON s.id = c.vehicle_id
       WHERE c.tenant_id = $1 AND ($2::uuid IS NULL OR c.vehicle_id = $2::uuid) AND c.month BETWEEN $4::date AND $5::date GROUP BY 1, 2),
    dist AS (
      SELECT extract(year FROM m.month)::integer AS year, sum(m.distance * s.km / $6) AS distance
        FROM {vehicle_metrics_monthly} m JOIN scope s ON s.id = m.vehicle_id
       WHERE m.tenant_id = $1 AND ($2::uuid IS NULL OR m.vehicle_id = $2::uuid) AND m.month BETWEEN $4::date AND $5::date GROUP BY 1)
    SELECT c.year, c.currency, c.total::text AS total, c.fuel::text AS fuel, (c.total - c.fuel)::text AS other,
           round(coalesce(d.distance, 0), 1)::float8 AS distance,
           round(c.total / nullif(d.distance, 0), 4)::text AS cost_per_distance,
           round(c.total / (least($5::date, make_date(c.year, 12, 31)) - greatest($4::date, make_date(c.year, 1, 1)) + 1), 2)::text
             AS cost_per_day
      FROM costs c LEFT JOIN dist d ON d.year = c.year ORDER BY 1, 2]],
  -- every fill of the vehicle (the economy figures need the whole history)
  fills = [[SELECT to_char(f.occurred_at AT TIME ZONE s.timezone, 'YYYY-MM-DD') AS day, f.mileage::float8 AS mileage,
      f.distance::float8 AS distance, f.volume::float8 AS volume, f.unit, f.cost::text AS cost, f.currency, f.full,
      f.missed, f.closes_interval, f.implausible, (f.interval_distance * s.km)::float8 AS interval_km,
      (f.interval_volume)::float8 AS interval_volume, f.price_per_unit::float8 AS price_per_unit
    FROM {vehicle_fills} f JOIN scope s ON s.id = f.vehicle_id
   WHERE f.tenant_id = $1 AND f.vehicle_id = $2::uuid
   ORDER BY f.occurred_at, f.mileage, f.event_id]],
  -- the vehicle's whole ownership in its currency
  ownership = [[, run AS (
      SELECT sum(c.amount) AS running FROM {vehicle_costs_monthly} c JOIN {vehicles} v ON v.id = c.vehicle_id
       WHERE c.tenant_id = $1 AND c.vehicle_id = $2::uuid AND c.currency = v.currency AND v.tenant_id = $1
         AND c.month >= coalesce(date_trunc('month', v.purchased_on)::date, '-infinity')
         AND c.month <= coalesce(v.sold_on, 'infinity'))
    SELECT v.currency, v.purchased_on::text AS purchased_on, v.purchase_price::text AS purchase_price,
           v.sold_on::text AS sold_on, v.sale_price::text AS sale_price, coalesce(r.running, 0)::text AS running_costs,
           (coalesce(v.purchase_price, 0) + coalesce(r.running, 0) - coalesce(v.sale_price, 0))::text AS total,
           coalesce(v.sold_on, current_date) - v.purchased_on AS days,
           round((coalesce(v.purchase_price, 0) + coalesce(r.running, 0) - coalesce(v.sale_price, 0))
                 / nullif(coalesce(v.sold_on, current_date) - v.purchased_on, 0), 2)::text AS per_day,
           (coalesce(v.sale_mileage, h.mileage) - v.purchase_mileage)::float8 AS distance,
           round((coalesce(v.purchase_price, 0) + coalesce(r.running, 0) - coalesce(v.sale_price, 0))
                 / nullif(coalesce(v.sale_mileage, h.mileage) - v.purchase_mileage, 0), 4)::text AS per_distance
      FROM {vehicles} v CROSS JOIN run r
      LEFT JOIN {vehicle_event_heads} h ON h.tenant_id = v.tenant_id AND h.vehicle_id = v.id
     WHERE v.tenant_id = $1 AND v.id = $2::uuid]],
}

-- The rows of a query: as many params as its text uses (the server
-- refuses more).
local function run(db, name, params)
  local sql = (SCOPE .. QUERIES[name]):gsub("{([%w_]+)}", function(t) return db:qualify(t) end)
  local n = 0
  for i in sql:gmatch("%$(%d+)") do n = math.max(n, tonumber(i)) end
  return motomind.assert(db:query(sql, (table.unpack or unpack)(params, 1, n)))
end

-- The first day of the month n months before the month of day (YYYY-MM-DD).
local function months_before(day, n)
  local y, m = day:match("^(%d+)-(%d+)")
  local k = tonumber(y) * 12 + tonumber(m) - 1 - n
  return ("%04d-%02d-01"):format(math.floor(k / 12), k % 12 + 1)
end

-- The economy summary (lifetime, last 12 months, each year; best and worst
-- fill when fills are given) from the monthly rows up to the period's end.
local function summary(months, fills, unit, last_month)
  local rows, by_year = {}, {}
  local function add(key, km, l)
    local r = by_year[key]
    if not r then r = { period = key, km = 0, litres = 0 }; by_year[key] = r end
    r.km, r.litres = r.km + km, r.litres + l
  end
  local cut = months_before(last_month .. "-01", 11):sub(1, 7)
  for _, r in ipairs(months) do
    local km, amount = interval(unit, r)
    add("lifetime", km, amount)
    if r.month >= cut then add("last 12 months", km, amount) end
    add(r.month:sub(1, 4), km, amount)
  end
  local keys = { "lifetime", "last 12 months" }
  local years = {}
  for k in pairs(by_year) do if k:match("^%d+$") then years[#years + 1] = k end end
  table.sort(years)
  for _, k in ipairs(years) do keys[#keys + 1] = k end
  for _, k in ipairs(keys) do
    local r = by_year[k]
    if r then rows[#rows + 1] = { period = k, economy = economy(unit, r.km, r.litres) or motomind.null } end
  end
  if fills then
    local best, worst
    local higher = M.ECONOMY[unit].higher
    for _, f in ipairs(fills) do
      if f.economy ~= motomind.null then
        if not best or (higher and f.economy > best.economy) or (not higher and f.economy < best.economy) then best = f end
        if not worst or (higher and f.economy < worst.economy) or (not higher and f.economy > worst.economy) then worst = f end
      end
    end
    if best then
      rows[#rows + 1] = { period = "best fill " .. best.day, economy = best.economy }
      rows[#rows + 1] = { period = "worst fill " .. worst.day, economy = worst.economy }
    end
  end
  return rows
end


local DAY = "^%d%d%d%d%-%d%d%-%d%d$"

--- build(db, ctx, opts) -> report | nil, message, sqlstate.
-- opts: vehicle (id) or group (id) or neither (the tenant); from, to
-- (YYYY-MM-DD, inclusive; default the 12 months up to today); economy (a
-- key of M.ECONOMY; default US mpg for miles, L/100 km for km, and mi/kWh
-- or kWh/100 km when the scope's economy is all charging).
-- The report: { title, scope, from, to, distance_unit, economy_unit,
-- volume_unit, tables = { name = { title, columns, rows } }, order = {...} }.
function M.build(db, ctx, opts)
  motomind.check_ctx(ctx, "reports")
  opts = opts or {}
  for _, k in ipairs { "from", "to" } do
    if opts[k] ~= nil and (type(opts[k]) ~= "string" or not opts[k]:match(DAY)) then
      return nil, k .. ": expected a date YYYY-MM-DD", "22007"
    end
  end
  if opts.vehicle and opts.group then return nil, "vehicle, group: give one of them", "22023" end
  if opts.economy and not M.ECONOMY[opts.economy] then
    return nil, "economy: expected one of " .. table.concat(M.economy_units(), ", "), "22023"
  end
  return db:read_as(ctx, function(db) -- db: the reader
    local to = opts.to or motomind.assert(db:value("SELECT current_date::text"))
    local from = opts.from or months_before(to, 11)
    if from > to then return nil, "from: is after to", "22023" end
    local head = run(db, "head", { ctx.tenant, opts.vehicle, opts.group })[1]
    if opts.vehicle and head.vehicles == 0 then return nil, "vehicle: no such vehicle in this tenant", "23503" end
    if opts.group and head.group_name == motomind.null then return nil, "group: no such group in this tenant", "23503" end
    local unit = (head.units == 1 and head.unit) or "km"
    local km_per_unit = unit == "mi" and KM_PER_MI or 1
    -- every month up to the period's end (the lifetime figures need them); the period's are its last
    local history = run(db, "months", { ctx.tenant, opts.vehicle, opts.group, "-infinity", to, km_per_unit })
    local econ = opts.economy or default_economy(unit, history)
    local electric = M.ECONOMY[econ].electric or false
    local params = { ctx.tenant, opts.vehicle, opts.group, from:sub(1, 8) .. "01", to, km_per_unit }
    local report = {
      scope = opts.vehicle and "vehicle" or opts.group and "group" or "tenant",
      title = opts.vehicle and head.name or opts.group and "Group " .. head.group_name or "Fleet of " .. head.tenant_name,
      from = from, to = to, vehicles = head.vehicles, distance_unit = unit, economy_unit = econ,
      economy_label = M.ECONOMY[econ].label, volume_unit = unit == "mi" and "us_gal" or "l", tables = {}, order = {},
    }
    local function add(name, title, columns, rows)
      report.tables[name] = { title = title, columns = columns, rows = rows }
      report.order[#report.order + 1] = name
    end
    local months, first = {}, from:sub(1, 7)
    for _, r in ipairs(history) do
      if r.month >= first then
        r.economy = economy(econ, interval(econ, r)) or motomind.null
        months[#months + 1] = r
      end
    end
    local costs, prices, charging = run(db, "costs", params), {}, {}
    local per_volume = report.volume_unit == "us_gal" and L_PER_US_GAL or 1
    for _, r in ipairs(costs) do
      if r.per_litre ~= motomind.null then
        prices[#prices + 1] = { month = r.month, currency = r.currency, price = round(r.per_litre * per_volume, 3) }
      end
      if r.per_kwh ~= motomind.null then
        charging[#charging + 1] = { month = r.month, currency = r.currency, price = round(r.per_kwh, 3) }
      end
      r.per_litre, r.per_kwh = nil, nil
    end
    add("costs_by_month", "Cost by category and month", { "month", "currency", "category", "amount", "entries" }, costs)
    add("annual", "Annual totals", { "year", "currency", "total", "fuel", "other", "distance", "cost_per_distance",
      "cost_per_day" }, run(db, "annual", params))
    add("months", "Distance and economy per month", { "month", "distance", "economy", "fills", "events" }, months)
    add("fuel_prices", "Fuel price per " .. (per_volume == 1 and "litre" or "US gallon"), { "month", "currency", "price" },
      prices)
    if #charging > 0 then add("charging_prices", "Charging price per kWh", { "month", "currency", "price" }, charging) end
    local fills
    if opts.vehicle then
      fills = {}
      for _, f in ipairs(run(db, "fills", params)) do
        f.economy = (f.closes_interval and not f.implausible and economy(econ, f.interval_km, f.interval_volume and
          f.interval_volume)) or motomind.null
        -- (the fills of the report's energy: charges for a kWh unit)
        if f.day >= from and f.day <= to and (f.unit == "kwh") == electric then fills[#fills + 1] = f end
      end
      add("fills", "Each fill", { "day", "mileage", "distance", "volume", "unit", "cost", "currency", "full", "missed",
        "implausible", "economy" }, fills)
      add("ownership", "Total cost of ownership (in the vehicle's currency)", { "currency", "purchased_on",
        "purchase_price", "sold_on", "sale_price", "running_costs", "total", "days", "per_day", "distance",
        "per_distance" }, run(db, "ownership", params))
    end
    add("economy", "Economy (" .. report.economy_label .. ")", { "period", "economy" },
      summary(history, fills, econ, to:sub(1, 7)))
    return report
  end)
end

return M
