--- Rows named the way people name them (a nickname, a plate, a path): the
-- one rule every resolver shares for "none" and "more than one".
local M = {}

--- pick(rows, kind, name, by, label) -> the id of the one row | nil,
-- message, sqlstate. rows: the candidates matching name; by: what a name may
-- be ("id or name"); label(row): a candidate as an ambiguity lists it.
-- None is 23503 (pointing at `motomind KIND list`), several 21000.
function M.pick(rows, kind, name, by, label)
  if #rows == 1 then return rows[1].id end
  if #rows == 0 then
    return nil, ("%s %q: no %s of this tenant has that %s (see `motomind %s list`)"):format(kind, name, kind, by, kind),
      "23503"
  end
  local names = {}
  for i, r in ipairs(rows) do names[i] = label(r) end
  return nil, ("%s %q is ambiguous: %s"):format(kind, name, table.concat(names, "; ")), "21000"
end

return M
