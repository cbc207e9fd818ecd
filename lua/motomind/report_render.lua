--- A report (motomind.reports) as text, JSON, CSV, SVG charts or a
-- self-contained HTML page (inline SVG, no scripts, no external requests).
-- Same report, same bytes.
local motomind = require "motomind"
local charts = require "motomind.charts"

local M = {}

M.FORMATS = { "text", "json", "csv", "svg", "html" }

local null = motomind.null

local function cell(v)
  if v == nil or v == null then return "" end
  if v == true then return "yes" elseif v == false then return "no" end
  if type(v) == "number" and v == math.floor(v) and math.abs(v) < 2 ^ 53 then return ("%d"):format(v) end
  if type(v) == "number" then return (("%.3f"):format(v):gsub("0+$", "")) end
  return tostring(v)
end

local function heading(r)
  return ("%s: %s to %s (%d vehicle%s; distances in %s, economy in %s)"):format(r.title, r.from, r.to, r.vehicles,
    r.vehicles == 1 and "" or "s", r.distance_unit, r.economy_label)
end

--- text(report) -> aligned tables under their titles.
function M.text(r)
  local out = { heading(r) }
  for _, name in ipairs(r.order) do
    local t = r.tables[name]
    local width = {}
    for i, c in ipairs(t.columns) do
      width[i] = #c
      for _, row in ipairs(t.rows) do width[i] = math.max(width[i], #cell(row[c])) end
    end
    local function line(values)
      local parts = {}
      for i, v in ipairs(values) do parts[i] = ("%" .. width[i] .. "s"):format(v) end
      return "  " .. table.concat(parts, "  ")
    end
    out[#out + 1] = ""
    out[#out + 1] = t.title .. ":"
    if #t.rows == 0 then
      out[#out + 1] = "  (none)"
    else
      out[#out + 1] = line(t.columns)
      for _, row in ipairs(t.rows) do
        local vals = {}
        for i, c in ipairs(t.columns) do vals[i] = cell(row[c]) end
        out[#out + 1] = line(vals)
      end
    end
  end
  return table.concat(out, "\n") .. "\n"
end

--- json(report) -> one JSON object.
function M.json(r) return motomind.json.encode(r) .. "\n" end

local function csv_field(s)
  if s:find('[",\r\n]') then return '"' .. s:gsub('"', '""') .. '"' end
  return s
end

--- csv(report) -> each table as a "## name" line, its header and rows.
function M.csv(r)
  local out = {}
  for _, name in ipairs(r.order) do
    local t = r.tables[name]
    out[#out + 1] = "## " .. name
    out[#out + 1] = table.concat(t.columns, ",")
    for _, row in ipairs(t.rows) do
      local vals = {}
      for i, c in ipairs(t.columns) do vals[i] = csv_field(cell(row[c])) end
      out[#out + 1] = table.concat(vals, ",")
    end
  end
  return table.concat(out, "\r\n") .. "\r\n"
end

-- The months from the report's first to its last, as YYYY-MM.
local function months_of(r)
  local y, m = r.from:match("^(%d+)-(%d+)")
  y, m = tonumber(y), tonumber(m)
  local last, out = r.to:sub(1, 7), {}
  repeat
    out[#out + 1] = ("%04d-%02d"):format(y, m)
    m = m + 1
    if m > 12 then y, m = y + 1, 1 end
  until out[#out] >= last
  return out
end

-- The mean of the last k values up to i (false when none).
local function rolling(values, k)
  local out = {}
  for i = 1, #values do
    local sum, count = 0, 0
    for j = math.max(1, i - k + 1), i do
      if values[j] then sum, count = sum + values[j], count + 1 end
    end
    out[i] = count > 0 and sum / count or false
  end
  return out
end

local function currencies(rows)
  local seen, list = {}, {}
  for _, row in ipairs(rows) do
    if not seen[row.currency] then seen[row.currency] = true; list[#list + 1] = row.currency end
  end
  table.sort(list)
  return list
end

--- charts(report) -> list of { name, svg }: economy (each fill with a
-- rolling average of 5; months for a fleet), cost per month stacked by
-- category (one chart per currency), cost per distance per month.
function M.charts(r)
  local out = {}
  local unit = r.economy_label
  local labels, values = {}, {}
  if r.tables.fills then
    for _, f in ipairs(r.tables.fills.rows) do
      if f.economy ~= null then labels[#labels + 1] = f.day; values[#values + 1] = f.economy end
    end
  else
    for _, m in ipairs(r.tables.months.rows) do labels[#labels + 1] = m.month; values[#values + 1] = m.economy ~= null and m.economy end
  end
  local per = r.tables.fills and "fill" or "month"
  out[#out + 1] = { name = "economy", svg = charts.line {
    id = "economy", title = ("Fuel economy per %s (%s)"):format(per, unit),
    description = ("%s of %s from %s to %s, with a rolling average of %d %ss"):format(unit, r.title, r.from, r.to,
      per == "fill" and 5 or 3, per),
    x_label = per == "fill" and "fill date" or "month", y_label = unit, labels = labels,
    series = { { name = "each " .. per, values = values },
      { name = "rolling average", values = rolling(values, per == "fill" and 5 or 3), dashed = true } } } }
  local months = months_of(r)
  local index = {}
  for i, m in ipairs(months) do index[m] = i end
  local cost_rows = r.tables.costs_by_month.rows
  local per_distance = {}
  for _, cur in ipairs(currencies(cost_rows)) do
    local cats, by_cat, total = {}, {}, {}
    for _, row in ipairs(cost_rows) do
      if row.currency == cur and index[row.month] then
        if not by_cat[row.category] then by_cat[row.category] = {}; cats[#cats + 1] = row.category end
        by_cat[row.category][index[row.month]] = tonumber(row.amount)
        total[index[row.month]] = (total[index[row.month]] or 0) + tonumber(row.amount)
      end
    end
    table.sort(cats, function(a, b) return a == "fuel" or (b ~= "fuel" and a < b) end)
    local series = {}
    for _, c in ipairs(cats) do series[#series + 1] = { name = c, values = by_cat[c] } end
    out[#out + 1] = { name = "costs-" .. cur, svg = charts.bars {
      id = "costs-" .. cur, title = ("Cost per month by category (%s)"):format(cur),
      description = ("What %s spent in %s each month from %s to %s, stacked by category"):format(r.title, cur, r.from, r.to),
      x_label = "month", y_label = cur, labels = months, series = series } }
    local distance = {}
    for _, m in ipairs(r.tables.months.rows) do distance[index[m.month]] = m.distance end
    local vals = {}
    for i = 1, #months do
      vals[i] = total[i] and distance[i] and distance[i] > 0 and total[i] / distance[i] or false
    end
    per_distance[#per_distance + 1] = { name = cur, values = vals }
  end
  out[#out + 1] = { name = "cost-per-distance", svg = charts.line {
    id = "cost-per-distance", title = ("Cost per %s by month"):format(r.distance_unit),
    description = ("What each %s driven cost %s, month by month, per currency"):format(r.distance_unit, r.title),
    x_label = "month", y_label = "cost per " .. r.distance_unit, labels = months, series = per_distance, legend_at = 300 } }
  return out
end

--- svg(report) -> one SVG document with the charts one under another.
function M.svg(r)
  local parts, y = {}, 0
  for _, c in ipairs(M.charts(r)) do
    local h = tonumber(c.svg:match('height="(%d+)"'))
    parts[#parts + 1] = c.svg:gsub("^<svg ", ('<svg y="%d" '):format(y), 1)
    y = y + h
  end
  return ('<svg xmlns="http://www.w3.org/2000/svg" width="600" height="%d" viewBox="0 0 600 %d">\n'):format(y, y) ..
    table.concat(parts) .. "</svg>\n"
end

--- html(report) -> a self-contained page: heading, charts, tables.
function M.html(r)
  local esc = charts.escape
  local out = { '<!DOCTYPE html>', '<html lang="en">', '<head>', '<meta charset="utf-8">',
    '<meta name="viewport" content="width=device-width, initial-scale=1">',
    "<title>" .. esc(r.title) .. " \226\128\148 motomind report</title>",
    "<style>body{font-family:sans-serif;max-width:640px;margin:1em auto;padding:0 .5em;color:#222}" ..
      "table{border-collapse:collapse;margin:.5em 0 1.5em;font-size:13px}" ..
      "th,td{border-bottom:1px solid #ddd;padding:2px 8px;text-align:right}th{background:#f3f3f3}" ..
      "figure{margin:1em 0}svg{max-width:100%;height:auto}</style>", "</head>", "<body>",
    "<h1>" .. esc(r.title) .. "</h1>", "<p>" .. esc(heading(r)) .. "</p>" }
  for _, c in ipairs(M.charts(r)) do out[#out + 1] = "<figure>\n" .. c.svg .. "</figure>" end
  for _, name in ipairs(r.order) do
    local t = r.tables[name]
    out[#out + 1] = "<h2>" .. esc(t.title) .. "</h2>"
    if #t.rows == 0 then
      out[#out + 1] = "<p>(none)</p>"
    else
      local rows = { "<table>", "<tr><th>" .. table.concat(t.columns, "</th><th>") .. "</th></tr>" }
      for _, row in ipairs(t.rows) do
        local vals = {}
        for i, c in ipairs(t.columns) do vals[i] = esc(cell(row[c])) end
        rows[#rows + 1] = "<tr><td>" .. table.concat(vals, "</td><td>") .. "</td></tr>"
      end
      rows[#rows + 1] = "</table>"
      out[#out + 1] = table.concat(rows, "\n")
    end
  end
  out[#out + 1] = "</body>\n</html>"
  return table.concat(out, "\n") .. "\n"
end

--- check(format) -> true | nil, message: whether format is one of FORMATS.
function M.check(format)
  for _, f in ipairs(M.FORMATS) do
    if f == format then return true end
  end
  return nil, ("format: expected one of %s, got %s"):format(table.concat(M.FORMATS, ", "), tostring(format))
end

--- render(report, format) -> text | nil, message.
function M.render(r, format)
  local ok, err = M.check(format)
  if not ok then return nil, err end
  return M[format](r)
end

return M
