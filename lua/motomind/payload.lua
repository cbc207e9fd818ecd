--- Typed event payloads: decode, encode and check them against the schema of
-- their event type (sql/payloads.json), in C, with the same verdicts and
-- messages as the database's rules. Each Lua state loads the schemas once.
local core = require "motomind.core"

local M = {}

local codec

--- The codec of this Lua state (see src/codec.c).
function M.codec()
  if not codec then
    local path = require("motomind.migrate").sql_directory() .. "/payloads.json"
    local f = assert(io.open(path, "rb"))
    local text = f:read("*a")
    f:close()
    codec = assert(core.payload_codec(text))
  end
  return codec
end

--- decode(type, json_or_table) -> validated, normalized table | nil, message
function M.decode(type, payload) return M.codec():decode(type, payload) end

--- encode(type, table_or_json) -> canonical JSON text | nil, message
function M.encode(type, payload) return M.codec():encode(type, payload) end

--- check(type, json_or_table) -> true | nil, message
function M.check(type, payload) return M.codec():check(type, payload) end

--- The event types, sorted.
function M.types() return M.codec():types() end

return M
