-- What the benches share: a wall clock, timing, and their sections of
-- bench/RESULTS.md.
local M = {}

function M.now()
  local f = io.popen("date +%s.%N")
  local t = tonumber(f:read("*a"))
  f:close()
  return t
end

--- timed(fn) -> seconds, fn's results.
function M.timed(fn)
  local t0 = M.now()
  local a, b, c, d = fn()
  return M.now() - t0, a, b, c, d
end

--- p50(fn) -> the median of 11 runs of fn, in ms.
function M.p50(fn)
  local lat = {}
  for i = 1, 11 do lat[i] = M.timed(fn) * 1000 end
  table.sort(lat)
  return lat[6]
end

--- Puts text (which starts and ends with the <!-- name --> markers) in
-- bench/RESULTS.md under root, in place of the previous one or at the end.
function M.write_section(root, name, text)
  local path = root .. "/bench/RESULTS.md"
  local fh = io.open(path, "rb")
  local old = fh and fh:read("*a") or ""
  if fh then fh:close() end
  local new = old:find("<!-- " .. name .. " -->", 1, true)
    and old:gsub("<!%-%- " .. name .. " %-%->.-<!%-%- /" .. name .. " %-%->", function() return text end)
    or old .. "\n" .. text .. "\n"
  fh = assert(io.open(path, "wb"))
  fh:write(new)
  fh:close()
end

return M
