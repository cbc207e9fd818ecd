--- SVG charts, written as text: a line chart and a stacked bar chart, 600
-- px wide by default, with a title and description for screen readers, axis
-- labels with units, and the same bytes for the same data (numbers printed
-- with one decimal, colours by series position).
local M = {}

M.PALETTE = { "#1b6ca8", "#d95f02", "#1b9e77", "#7570b3", "#e7298a", "#66a61e", "#a6761d", "#666666",
  "#e6ab02", "#386cb0", "#f0027f", "#bf5b17", "#984ea3" }

local function esc(s)
  return (tostring(s):gsub("[&<>\"]", { ["&"] = "&amp;", ["<"] = "&lt;", [">"] = "&gt;", ['"'] = "&quot;" }))
end
M.escape = esc

-- A number with at most one decimal, no "-0", no trailing ".0".
local function n(x)
  local s = ("%.1f"):format(x):gsub("%.0$", "")
  return s == "-0" and "0" or s
end

-- A tick label: whole numbers plainly, others with up to two decimals.
local function label(x)
  if x == math.floor(x) then return ("%d"):format(x) end
  return (("%.2f"):format(x):gsub("0+$", ""))
end

-- Ticks from 0 (or below) to at least max, at 1, 2 or 5 x 10^k steps.
local function ticks(lo, hi)
  if hi <= lo then hi = lo + 1 end
  local raw = (hi - lo) / 5
  local mag = 10 ^ math.floor(math.log(raw) / math.log(10) + 1e-9)
  local step = 10 * mag
  for _, m in ipairs { 1, 2, 5 } do
    if m * mag >= raw then step = m * mag break end
  end
  local first, out = math.floor(lo / step) * step, {}
  repeat out[#out + 1] = first + #out * step until out[#out] >= hi - step * 1e-9
  return out
end

-- The frame every chart shares: the svg element, title, description, grid,
-- axes and labels; returns the parts and the plot geometry.
local function frame(o, ymin, ymax, labels)
  local W, H = o.width or 600, o.height or 320
  local L, R, T, B = 64, 16, 44, 64
  local ys = ticks(ymin, ymax)
  local g = { x = L, y = T, w = W - L - R, h = H - T - B, lo = ys[1], hi = ys[#ys] }
  g.py = function(v) return g.y + g.h - (v - g.lo) / (g.hi - g.lo) * g.h end
  local id = o.id or "chart"
  local out = {
    ('<svg xmlns="http://www.w3.org/2000/svg" width="%d" height="%d" viewBox="0 0 %d %d" role="img" ' ..
      'aria-labelledby="%s-title %s-desc" font-family="sans-serif" font-size="12">'):format(W, H, W, H, id, id),
    ('<title id="%s-title">%s</title>'):format(id, esc(o.title)),
    ('<desc id="%s-desc">%s</desc>'):format(id, esc(o.description or o.title)),
    ('<rect width="%d" height="%d" fill="#ffffff"/>'):format(W, H),
    ('<text x="%d" y="24" font-size="15" font-weight="bold">%s</text>'):format(L, esc(o.title)),
  }
  for _, v in ipairs(ys) do
    local y = n(g.py(v))
    out[#out + 1] = ('<line x1="%d" x2="%d" y1="%s" y2="%s" stroke="#dddddd"/>'):format(L, L + g.w, y, y)
    out[#out + 1] = ('<text x="%d" y="%s" text-anchor="end" dominant-baseline="middle">%s</text>'):format(L - 6, y, label(v))
  end
  out[#out + 1] = ('<line x1="%d" x2="%d" y1="%d" y2="%d" stroke="#333333"/>'):format(L, L + g.w, T + g.h, T + g.h)
  out[#out + 1] = ('<line x1="%d" x2="%d" y1="%d" y2="%d" stroke="#333333"/>'):format(L, L, T, T + g.h)
  -- at most 8 labels along x, evenly picked
  local every = math.max(1, math.ceil(#labels / 8))
  g.px = function(i) return g.x + (i - 0.5) / #labels * g.w end
  for i, s in ipairs(labels) do
    if (i - 1) % every == 0 then
      out[#out + 1] = ('<text x="%s" y="%d" text-anchor="middle">%s</text>'):format(n(g.px(i)), T + g.h + 18, esc(s))
    end
  end
  out[#out + 1] = ('<text x="%s" y="%d" text-anchor="middle">%s</text>'):format(n(L + g.w / 2), H - 10, esc(o.x_label))
  out[#out + 1] = ('<text transform="translate(16 %s) rotate(-90)" text-anchor="middle">%s</text>'):format(
    n(T + g.h / 2), esc(o.y_label))
  return out, g
end

-- The legend: one swatch and name per series, in a row under the title.
local function legend(out, series, x)
  for i, s in ipairs(series) do
    local c = s.color or M.PALETTE[(i - 1) % #M.PALETTE + 1]
    out[#out + 1] = ('<rect x="%d" y="30" width="10" height="10" fill="%s"/><text x="%d" y="39">%s</text>'):format(
      x, c, x + 14, esc(s.name))
    x = x + 24 + 7 * #s.name
  end
end

local function range(series, stacked)
  local lo, hi = 0, 0
  for _, s in ipairs(series) do
    for _, v in pairs(s.values) do
      if v then lo, hi = math.min(lo, v), math.max(hi, v) end
    end
  end
  if stacked then
    hi = 0
    for i = 1, stacked do
      local sum = 0
      for _, s in ipairs(series) do sum = sum + (s.values[i] or 0) end
      hi = math.max(hi, sum)
    end
  end
  return lo, hi
end

--- line{ title, description, x_label, y_label, labels = {...},
-- series = { { name, values = { v or false, ... }, dashed } } } -> SVG text.
-- Missing values (false) break the line; lone points are drawn as dots.
function M.line(o)
  local lo, hi = range(o.series)
  local out, g = frame(o, lo, hi, o.labels)
  legend(out, o.series, 64 + (o.legend_at or 260))
  for i, s in ipairs(o.series) do
    local c = s.color or M.PALETTE[(i - 1) % #M.PALETTE + 1]
    local run = {}
    local function flush()
      if #run > 1 then
        out[#out + 1] = ('<polyline fill="none" stroke="%s" stroke-width="2"%s points="%s"/>'):format(c,
          s.dashed and ' stroke-dasharray="6 4"' or "", table.concat(run, " "))
      end
      run = {}
    end
    for j = 1, #o.labels do
      local v = s.values[j]
      if v then
        run[#run + 1] = n(g.px(j)) .. "," .. n(g.py(v))
        if not s.dashed then
          out[#out + 1] = ('<circle cx="%s" cy="%s" r="2.5" fill="%s"/>'):format(n(g.px(j)), n(g.py(v)), c)
        end
      else
        flush()
      end
    end
    flush()
  end
  out[#out + 1] = "</svg>"
  return table.concat(out, "\n") .. "\n"
end

--- bars{ title, description, x_label, y_label, labels = {...},
-- series = { { name, values = { v, ... } } } } -> SVG text: one bar per
-- label, its series stacked in order.
function M.bars(o)
  local lo, hi = range(o.series, #o.labels)
  local out, g = frame(o, lo, hi, o.labels)
  legend(out, o.series, 64)
  local bw = g.w / #o.labels * 0.7
  for j = 1, #o.labels do
    local base = 0
    for i, s in ipairs(o.series) do
      local v = s.values[j] or 0
      if v > 0 then
        local c = s.color or M.PALETTE[(i - 1) % #M.PALETTE + 1]
        out[#out + 1] = ('<rect x="%s" y="%s" width="%s" height="%s" fill="%s"><title>%s %s: %s</title></rect>'):format(
          n(g.px(j) - bw / 2), n(g.py(base + v)), n(bw), n(g.py(base) - g.py(base + v)), c, esc(o.labels[j]),
          esc(s.name), label(math.floor(v * 100 + 0.5) / 100))
        base = base + v
      end
    end
  end
  out[#out + 1] = "</svg>"
  return table.concat(out, "\n") .. "\n"
end

return M
