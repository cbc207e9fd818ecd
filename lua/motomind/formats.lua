--- The CSV exports of other apps motomind imports: for each, the header
-- names it may use (case-insensitive, trimmed), how a row becomes an event,
-- and how to recognise it from its first line. The specs are compiled and
-- run in C (src/csv.c); see ../shared/research/anchors.md for the formats.
local M = {}

-- A yes/no column setting `path` (inverted: yes sets false).
local function flag(path, inverted)
  local map = {}
  for _, k in ipairs { "1", "true", "yes", "y", "x" } do map[k] = { [path] = not inverted } end
  for _, k in ipairs { "0", "false", "no", "n" } do map[k] = { [path] = inverted == true } end
  return map
end

local function extra(name, as)
  return { names = name, to = "payload.extra." .. name, as = as }
end

-- An event's tags from a column of items between separators (default ",").
local function tags(split)
  return { names = "tags", to = "tags", as = "list", split = split }
end

-- An event's position from latitude and longitude columns (names: each's):
-- two columns, so it ends a list of columns.
local function position(lat, lon)
  return { names = lat, to = "location.lat", as = "number" }, { names = lon, to = "location.lon", as = "number" }
end

-- The SQL of an exported event's tags joined by sep (tags kept under
-- payload.extra.tags by imports before migration 0027 as they were).
local function tags_text(sep)
  return ("coalesce((SELECT string_agg(t, '%s') FROM jsonb_array_elements_text(e.tags) t), e.payload->'extra'->>'tags')")
    :format(sep)
end

-- Options every format takes: unit (the volume unit: us_gal, uk_gal, l,
-- kwh), currency (ISO 4217), dates ("mdy" or "dmy" for 3/4/14-style dates).
-- `vehicle` is the vehicle row (its odometer unit picks the default unit).
local function default_unit(o, fallback)
  if o.unit then return o.unit end
  if fallback then return fallback end
  return o.vehicle and o.vehicle.odometer_unit == "km" and "l" or "us_gal"
end

-- The distance unit a header's fields declare: "mi" with a field named one
-- of mi, "km" with one of km (lower case, as the head).
local function header_unit(head, mi, km)
  local first = head:match("^[^\r\n]*")
  for field in (first .. ","):gmatch('%s*"?([^,"]-)"?%s*,') do
    for _, f in ipairs(mi) do if field == f then return "mi" end end
    for _, f in ipairs(km) do if field == f then return "km" end end
  end
end

M.fuelly = {
  description = "Fuelly fuel-ups CSV",
  detect = function(header) return header:find("fuelup_date", 1, true) end,
  -- its trip distance and economy columns say the unit: miles and mpg, or km and l/100km or km/l
  distance_unit = function(head) return header_unit(head, { "miles", "mpg" }, { "km", "l/100km", "km/l" }) end,
  spec = function(o)
    return {
      dates = o.dates or "mdy", type = "fuel",
      set = { ["payload.currency"] = o.currency or "USD", ["payload.full"] = true },
      columns = {
        { names = { "fuelup_date", "date" }, to = "occurred_at", as = "datetime", required = true },
        { names = "odometer", to = "mileage", as = "number" },
        { names = "gallons", to = "payload.volume", as = "number",
          set = { ["payload.unit"] = default_unit(o, "us_gal") } },
        { names = { "litres", "liters" }, to = "payload.volume", as = "number", set = { ["payload.unit"] = "l" } },
        { names = "price", to = "payload.price_per_unit", as = "number" },
        { names = "partial_fuelup", as = "map", map = flag("payload.full", true) },
        { names = "missed_fuelup", as = "map", map = flag("payload.missed") },
        { names = "brand", to = "payload.station" },
        { names = "notes", to = "notes" },
        tags(), extra("city_percentage", "number"), position("latitude", "longitude"),
      },
    }
  end,
}

-- Fuelly's fuel-up columns for export, in the vehicle's units (miles, US
-- gallons, mpg; or km, litres, L/100 km), from the events e, their vehicle v
-- and their fill f (fill_economy); electric charges are left out.
local function fuelly_columns(unit)
  local mi = unit == "mi"
  local volume = mi and [[CASE e.payload->>'unit' WHEN 'us_gal' THEN (e.payload->>'volume')::numeric
      ELSE round(volume_litres((e.payload->>'volume')::numeric, e.payload->>'unit') / 3.785411784, 3) END]]
    or [[CASE e.payload->>'unit' WHEN 'l' THEN (e.payload->>'volume')::numeric
      ELSE round(volume_litres((e.payload->>'volume')::numeric, e.payload->>'unit'), 3) END]]
  local native = mi and "us_gal" or "l"
  local function extra_column(k) return ("e.payload->'extra'->>'%s' AS %s"):format(k, k) end
  local function position_column(k, extra_name)
    return ("coalesce(e.location->>'%s', e.payload->'extra'->>'%s') AS %s"):format(k, extra_name, extra_name)
  end
  return table.concat({
    [[v.nickname AS car_name, v.model AS model]],
    ("CASE WHEN f.closes_interval AND NOT f.implausible THEN f.%s END AS %q"):format(mi and "mpg_us" or "l_per_100km",
      mi and "mpg" or "l/100km"),
    [[trim_scale(e.mileage) AS odometer]], ("trim_scale(f.distance) AS %s"):format(mi and "miles" or "km"),
    ("trim_scale(%s) AS %s"):format(volume, mi and "gallons" or "litres"),
    ("CASE WHEN e.payload->>'unit' = '%s' AND e.payload ? 'price_per_unit' THEN (e.payload->>'price_per_unit')::numeric "
      .. "ELSE round(f.cost / nullif(%s, 0), 3) END AS price"):format(native, volume),
    extra_column "city_percentage",
    [[to_char(e.occurred_at AT TIME ZONE v.timezone, 'YYYY-MM-DD HH24:MI') AS fuelup_date]], tags_text(",") .. " AS tags",
    [[e.notes AS notes]],
    [[CASE WHEN coalesce((e.payload->>'missed')::boolean, false) THEN 1 ELSE 0 END AS missed_fuelup]],
    [[CASE WHEN coalesce((e.payload->>'full')::boolean, true) THEN 0 ELSE 1 END AS partial_fuelup]],
    position_column("lat", "latitude"), position_column("lon", "longitude"), [[e.payload->>'station' AS brand]],
  }, ", ")
end
M.fuelly.export = { type = "fuel", fills = true, columns = fuelly_columns,
  where = "coalesce(e.payload->>'unit', '') <> 'kwh'" }

M["fuelly-services"] = {
  description = "Fuelly services CSV",
  detect = function(header) return header:find("service_date", 1, true) end,
  spec = function(o)
    return {
      dates = o.dates or "mdy", type = "maintenance",
      set = { ["payload.currency"] = o.currency or "USD" },
      columns = {
        { names = { "service_date", "date" }, to = "occurred_at", as = "datetime", required = true },
        { names = "odometer", to = "mileage", as = "number" },
        { names = "price", to = "payload.total", as = "number" },
        { names = "service_type", to = "payload.service_type" },
        { names = "notes", to = "notes" },
        extra "sub_service_types", tags(), position("latitude", "longitude"),
      },
    }
  end,
}

-- A LubeLogger spec: its Date, Notes and Tags columns around the type's own.
local function lubelogger(o, type, columns, set)
  set = set or {}
  if type ~= "odometer" then set["payload.currency"] = o.currency or "USD" end
  table.insert(columns, 1, { names = "date", to = "occurred_at", as = "datetime", required = true })
  columns[#columns + 1] = { names = "notes", to = "notes" }
  columns[#columns + 1] = tags(" ,") -- LubeLogger separates tags by spaces
  return { dates = o.dates or "mdy", type = type, set = set, columns = columns }
end

-- LubeLogger's CSV columns for export, from the vehicle's effective timeline
-- e joined to its vehicle v (dates in its timezone, as LubeLogger's en-US
-- MM/DD/YYYY; LubeLogger keeps no time).
local DATE = [[to_char(e.occurred_at AT TIME ZONE v.timezone, 'MM/DD/YYYY') AS "Date"]]
local TAGS = tags_text(" ") .. [[ AS "Tags"]]

M["lubelogger-fuel"] = {
  description = "LubeLogger fuel CSV",
  detect = function(header) return header:find("fuelconsumed", 1, true) or header:find("isfilltofull", 1, true) end,
  spec = function(o)
    return lubelogger(o, "fuel", {
      { names = "odometer", to = "mileage", as = "number" },
      { names = { "fuelconsumed", "gallons", "liters", "litres", "quantity" }, to = "payload.volume",
        as = "number", set = { ["payload.unit"] = default_unit(o) } },
      { names = "cost", to = "payload.total", as = "number" },
      { names = { "isfilltofull", "is_fill_to_full" }, as = "map", map = flag("payload.full") },
      { names = "partial_fuelup", as = "map", map = flag("payload.full", true) },
      { names = { "missedfuelup", "missed_fuelup" }, as = "map", map = flag("payload.missed") },
    }, { ["payload.full"] = true })
  end,
  export = { type = "fuel", fills = true, columns = DATE .. [[, trim_scale(e.mileage) AS "Odometer",
    e.payload->'volume' AS "FuelConsumed",
    coalesce((e.payload->>'total')::numeric,
             round((e.payload->>'volume')::numeric * (e.payload->>'price_per_unit')::numeric, 2)) AS "Cost",
    CASE WHEN f.closes_interval AND NOT f.implausible THEN CASE WHEN v.odometer_unit = 'km' THEN f.l_per_100km
      WHEN e.payload->>'unit' = 'uk_gal' THEN f.mpg_uk ELSE f.mpg_us END END AS "FuelEconomy",
    CASE WHEN coalesce((e.payload->>'full')::boolean, true) THEN 'True' ELSE 'False' END AS "IsFillToFull",
    CASE WHEN coalesce((e.payload->>'missed')::boolean, false) THEN 'True' ELSE 'False' END AS "MissedFuelUp",
    e.notes AS "Notes", ]] .. TAGS },
}

M["lubelogger-service"] = {
  description = "LubeLogger service, repair or upgrade CSV",
  detect = function(header) return header:find("description", 1, true) and header:find("cost", 1, true) end,
  spec = function(o)
    return lubelogger(o, "maintenance", {
      { names = "odometer", to = "mileage", as = "number" },
      { names = "description", to = "payload.service_type" },
      { names = "cost", to = "payload.total", as = "number" },
    })
  end,
  export = { type = "maintenance", columns = DATE .. [[, e.payload->>'service_type' AS "Description",
    (e.payload->>'total')::numeric AS "Cost", e.notes AS "Notes", trim_scale(e.mileage) AS "Odometer", ]] .. TAGS },
}

M["lubelogger-odometer"] = {
  description = "LubeLogger odometer CSV",
  detect = function(header) return header:find("initialodometer", 1, true) end,
  spec = function(o)
    return lubelogger(o, "odometer", {
      { names = "odometer", to = "mileage", as = "number", required = true },
    }, { ["payload.source"] = "manual" })
  end,
  export = { type = "odometer", columns = DATE .. [[,
    trim_scale(coalesce(lag(e.mileage) OVER (ORDER BY e.occurred_at, e.id), e.mileage)) AS "InitialOdometer",
    trim_scale(e.mileage) AS "Odometer", e.notes AS "Notes", ]] .. TAGS },
}

-- LubeLogger's reminders: records, not events (Metric says which due counts:
-- Date, Odometer or Both; Urgency is computed here, not imported).
M["lubelogger-reminders"] = {
  description = "LubeLogger reminders CSV",
  detect = function(header) return header:find("dueodometer", 1, true) or header:find("duedate", 1, true) end,
  spec = function(o)
    return {
      dates = o.dates or "mdy", record = "reminder",
      columns = {
        { names = "description", to = "title", required = true },
        { names = "notes", to = "description" },
        { names = "metric", to = "metric" },
        { names = "duedate", to = "first_due_on", as = "date" },
        { names = "dueodometer", to = "first_due_mileage", as = "number", empty = "0" },
      },
    }
  end,
}

local FULL, PARTIAL, RESET = { ["payload.full"] = true }, { ["payload.full"] = false },
  { ["payload.full"] = true, ["payload.missed"] = true }

M.spritmonitor = {
  description = "Spritmonitor CSV (; separated, decimal comma, DD.MM.YYYY)",
  detect = function(header) return header:find(";", 1, true) and (header:find("date", 1, true) or header:find("datum", 1, true)) end,
  spec = function(o)
    return {
      separator = ";", decimal_comma = true, dates = o.dates or "dmy", type = "fuel",
      set = { ["payload.currency"] = o.currency or "EUR", ["payload.full"] = true },
      columns = {
        { names = { "date", "datum" }, to = "occurred_at", as = "datetime", required = true },
        { names = { "odometer", "kilometerstand", "km-stand" }, to = "mileage", as = "number" },
        { names = { "quantity", "menge" }, to = "payload.volume", as = "number",
          set = { ["payload.unit"] = default_unit(o, "l") } },
        { names = { "total price", "gesamtpreis", "kosten" }, to = "payload.total", as = "number" },
        { names = { "currency", "währung" }, to = "payload.currency" },
        -- Spritmonitor's fill types: an invalid or first fill restarts the economy.
        { names = { "type", "tankart", "typ" }, as = "map", map = {
            full = FULL, voll = FULL, volltankung = FULL, ["1"] = FULL,
            partial = PARTIAL, teil = PARTIAL, teilbetankung = PARTIAL, ["2"] = PARTIAL,
            first = RESET, ["first fill-up"] = RESET, erstbetankung = RESET, ["3"] = RESET,
            invalid = RESET, ["ungültig"] = RESET, ["4"] = RESET } },
        { names = { "fuel", "kraftstoff", "sorte" }, to = "payload.grade" },
        { names = { "station", "tankstelle" }, to = "payload.station" },
        { names = { "note", "notes", "bemerkung" }, to = "notes" },
      },
    }
  end,
}

-- A cost category (payloads.json's maintenance.category) from the name a
-- source app gives its cost type, by the first keyword it contains (English,
-- German, Polish); "other" when none does.
local CATEGORY_WORDS = {
  { "tire", "tires" }, { "tyre", "tires" }, { "reifen", "tires" }, { "opon", "tires" },
  { "insur", "insurance" }, { "versicher", "insurance" }, { "ubezpiecz", "insurance" },
  { "tax", "tax" }, { "steuer", "tax" }, { "podat", "tax" },
  { "regist", "registration" }, { "zulassung", "registration" }, { "rejestr", "registration" },
  { "park", "parking_tolls" }, { "toll", "parking_tolls" }, { "maut", "parking_tolls" }, { "vignet", "parking_tolls" },
  { "fine", "fines" }, { "ticket", "fines" }, { "bußgeld", "fines" }, { "strafzettel", "fines" }, { "mandat", "fines" },
  { "wash", "cleaning" }, { "clean", "cleaning" }, { "care", "cleaning" }, { "pflege", "cleaning" },
  { "wäsche", "cleaning" }, { "myjnia", "cleaning" },
  { "accessor", "accessories" }, { "zubehör", "accessories" }, { "akcesor", "accessories" },
  { "tuning", "upgrade" }, { "upgrade", "upgrade" }, { "modif", "upgrade" },
  { "repair", "repair" }, { "reparatur", "repair" }, { "napraw", "repair" },
  { "service", "service" }, { "maint", "service" }, { "inspect", "service" }, { "wartung", "service" },
  { "inspektion", "service" }, { "untersuchung", "service" }, { "oil", "service" }, { "serwis", "service" },
  { "przegl", "service" },
}
function M.category_of(name)
  local lower = name:lower()
  for _, w in ipairs(CATEGORY_WORDS) do
    if lower:find(w[1], 1, true) then return w[2] end
  end
  return "other"
end

-- Spritmonitor's cost types (English and German, as its web export writes
-- them) -> the category and, when the row has no title, the service type.
local SPRITMONITOR_COST_TYPES = { "Service", "Wartung", "Inspection", "Inspektion", "Hauptuntersuchung",
  "Repair", "Reparatur", "Tires", "Change of tires", "Reifen", "Reifenwechsel", "Insurance", "Versicherung",
  "Tax", "Steuer", "Kfz-Steuer", "Registration", "Zulassung", "Parking", "Parken", "Parkgebühren", "Toll",
  "Maut", "Fine", "Bußgeld", "Strafzettel", "Care", "Pflege", "Car wash", "Autowäsche", "Accessories",
  "Zubehör", "Tuning", "Financing", "Finanzierung", "Other", "Sonstiges" }

M["spritmonitor-costs"] = {
  description = "Spritmonitor costs CSV (; separated, decimal comma, DD.MM.YYYY)",
  detect = function(header)
    return header:find(";", 1, true) and (header:find("cost type", 1, true) or header:find("kostenart", 1, true))
  end,
  spec = function(o)
    local types = { ["*"] = {} }
    for _, name in ipairs(SPRITMONITOR_COST_TYPES) do
      types[name:lower()] = { ["payload.category"] = o.category or M.category_of(name), ["payload.service_type"] = name }
    end
    return {
      separator = ";", decimal_comma = true, dates = o.dates or "dmy", type = "maintenance",
      set = { ["payload.currency"] = o.currency or "EUR" },
      columns = {
        { names = { "date", "datum" }, to = "occurred_at", as = "datetime", required = true },
        { names = { "odometer", "kilometerstand", "km-stand" }, to = "mileage", as = "number" },
        { names = { "cost type", "kostenart" }, as = "map", map = types },
        -- the title, when there is one, names the service better than its type
        { names = { "title", "bezeichnung", "description" }, to = "payload.service_type" },
        { names = { "costs", "kosten", "total price", "gesamtpreis", "betrag" }, to = "payload.total", as = "number" },
        { names = { "currency", "währung" }, to = "payload.currency" },
        { names = { "note", "notes", "bemerkung" }, to = "notes" },
      },
    }
  end,
}

-- Fuelio's cost types (its ## CostCategories section: CostTypeID, Name) as
-- a CostTypeID map setting the category; other IDs (or a file without the
-- section) set none. Fuelio quotes every field; a name holding a quote is
-- cut there (its first words still name the category).
local function fuelio_cost_types(path)
  local map = { ["*"] = {} }
  local f = path and io.open(path, "rb")
  if not f then return map end
  local inside, id, name = false, nil, nil
  for line in f:lines() do
    if line:find('^"?##') then
      if inside then break end
      inside = line:find("## CostCategories", 1, true) ~= nil
    elseif inside then
      local fields = {}
      for v in line:gmatch('"([^"]*)"') do fields[#fields + 1] = v end
      if not id then -- the section's header
        for i, h in ipairs(fields) do
          if h:lower() == "costtypeid" then id = i elseif h:lower() == "name" then name = i end
        end
        if not (id and name) then break end
      elseif fields[id] and fields[name] then
        map[fields[id]] = { ["payload.category"] = M.category_of(fields[name]) }
      end
    end
  end
  f:close()
  return map
end

M.fuelio = {
  description = "Fuelio backup CSV (## Log fill-ups and ## Costs)",
  detect = function(header) return header:find("^\"?##") end,
  distance_unit = function(head)
    return head:find('"odo (mi)"', 1, true) and "mi" or head:find('"odo (km)"', 1, true) and "km" or nil
  end,
  spec = function(o)
    local currency = o.currency or "EUR"
    return {
      dates = o.dates or "dmy",
      sections = {
        { name = "## Log", type = "fuel",
          set = { ["payload.currency"] = currency },
          columns = {
            { names = { "data", "date" }, to = "occurred_at", as = "datetime", required = true },
            { names = { "odo (km)", "odo (mi)", "odo" }, to = "mileage", as = "number" },
            { names = { "fuel (litres)", "fuel (gal)", "fuel" }, to = "payload.volume", as = "number",
              set = { ["payload.unit"] = default_unit(o, "l") } },
            { names = "full", as = "map", map = flag("payload.full") },
            { names = { "price (optional)", "price" }, to = "payload.total", as = "number" },
            { names = "volumeprice", to = "payload.price_per_unit", as = "number" },
            { names = "missed", as = "map", map = flag("payload.missed") },
            { names = { "notes (optional)", "notes" }, to = "notes" },
            { names = { "city (optional)", "city" }, to = "payload.extra.city" },
            position({ "latitude (optional)", "latitude" }, { "longitude (optional)", "longitude" }),
          } },
        { name = "## Costs", type = "maintenance",
          set = { ["payload.currency"] = currency },
          columns = {
            { names = "date", to = "occurred_at", as = "datetime", required = true },
            { names = "odo", to = "mileage", as = "number" },
            { names = "costtitle", to = "payload.service_type" },
            { names = "cost", to = "payload.total", as = "number" },
            { names = "notes", to = "notes" },
            -- its category, from the file's own cost types (unless the import names one)
            { names = "costtypeid", as = "map", map = o.category and { ["*"] = {} } or fuelio_cost_types(o.path) },
            -- A cost's reminder: the next one due (Fuelio writes 0 and 2011-01-01
            -- for none), and how it recurs.
            { names = "remindodo", to = "payload.next_service.mileage", as = "number", empty = "0" },
            { names = "reminddate", to = "payload.next_service.due_on", as = "date", empty = { "0", "2011-01-01" } },
            { names = "repeatodo", to = "payload.next_service.repeat_distance", as = "number", empty = "0" },
            { names = "repeatmonths", to = "payload.next_service.repeat_months", as = "number", empty = "0" },
            -- Templates are presets for new costs, not costs.
            { names = "istemplate", as = "map", map = { ["1"] = false, ["0"] = {} } },
          } },
      },
    }
  end,
}

-- The order formats are tried in when none is named (most specific first).
M.DETECT = { "fuelio", "fuelly", "fuelly-services", "spritmonitor-costs", "lubelogger-reminders", "lubelogger-fuel",
  "lubelogger-odometer", "lubelogger-service", "spritmonitor" }

-- The first 4 KiB of the file, lower-cased, without a byte-order mark |
-- nil, message.
local function read_head(path)
  local f, err = io.open(path, "rb")
  if not f then return nil, err end
  local head = f:read(4096) or ""
  f:close()
  return (head:gsub("^\239\187\191", ""):lower())
end

--- distance_unit(name, path) -> "mi" | "km" | nil: the distance unit the
-- file of that format declares in its header (Fuelly's miles or km columns,
-- Fuelio's "Odo (km)"), nil when it declares none.
function M.distance_unit(name, path)
  local f = M.get(name)
  local head = f and f.distance_unit and read_head(path)
  return head and f.distance_unit(head) or nil
end

--- The format of a file from its first line: "jsonl", "backup", a CSV
-- format's name, or nil, message.
function M.detect(path)
  local head, err = read_head(path)
  if not head then return nil, err end
  local first = head:match("^[^\r\n]*")
  if first:find("^%s*{") then
    return first:find('"record"%s*:%s*"backup"') and "backup" or "jsonl"
  end
  for _, name in ipairs(M.DETECT) do
    if M[name].detect(first) then return name end
  end
  return nil, path .. ": cannot tell its format from its first line; name it (--format " ..
    table.concat(M.names(), " | ") .. ")"
end

--- The CSV format of that name, or nil (never one of this module's own
-- functions or lists).
function M.get(name)
  local f = type(name) == "string" and rawget(M, name)
  return type(f) == "table" and type(f.spec) == "function" and f or nil
end

--- The names of the formats export() writes besides jsonl and backup.
function M.export_names()
  local names = {}
  for _, n in ipairs(M.DETECT) do
    if M[n].export then names[#names + 1] = n end
  end
  return names
end

--- describe() -> for each CSV format (in DETECT order): { name, description,
-- export = whether export() writes it, sections = {{ type, columns = {{
-- names = { header, ... }, required = bool }} }} }: the header names import
-- accepts, read from the specs themselves (with default options).
function M.describe()
  local out = {}
  for _, name in ipairs(M.DETECT) do
    local f = M[name]
    local spec = f.spec {}
    local sections = {}
    for _, s in ipairs(spec.sections or { spec }) do
      local columns = {}
      for _, c in ipairs(s.columns or {}) do
        columns[#columns + 1] = { names = type(c.names) == "table" and c.names or { c.names }, required = c.required == true }
      end
      sections[#sections + 1] = { type = s.type, columns = columns }
    end
    out[#out + 1] = { name = name, description = f.description, export = f.export ~= nil, sections = sections }
  end
  return out
end

--- Every format name import() takes.
function M.names()
  local names = { "jsonl", "backup" }
  for _, n in ipairs(M.DETECT) do names[#names + 1] = n end
  return names
end

return M
