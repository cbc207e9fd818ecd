--- AI conversations, as the context user in db:as(ctx): threads (about a
-- vehicle, or the whole tenant) and their messages, append-only, numbered
-- by the database, with the model's token counts, cost and latency.
local motomind = require "motomind"
local rows = require "motomind.rows"

local M = {}

--- start(db, ctx, [fields]) -> the thread row. fields: vehicle_id, title.
function M.start(db, ctx, fields)
  motomind.check_ctx(ctx, "conversations")
  return rows.insert(db, ctx, "conversation_threads", fields or {})
end

--- say(db, ctx, thread_id, fields) -> the message row (seq: its place in
-- the thread). fields: role (user, assistant, system, tool), content
-- (required); model (required for the assistant), tokens_in, tokens_out,
-- cost and currency, latency_ms, event_ids and image_ids (referenced
-- events and photos of the tenant).
function M.say(db, ctx, thread_id, fields)
  motomind.check_ctx(ctx, "conversations")
  if type(fields) ~= "table" then error("conversations.say: fields must be a table", 2) end
  local own = { thread_id = thread_id }
  for k, v in pairs(fields) do
    if k == "thread_id" then error("conversations.say: the thread is the second argument", 2) end
    own[k] = v
  end
  return rows.insert(db, ctx, "conversation_messages", own)
end

--- messages(db, ctx, thread_id) -> the thread's messages in order.
function M.messages(db, ctx, thread_id)
  motomind.check_ctx(ctx, "conversations")
  return rows.list(db, ctx, "conversation_messages", { thread_id = thread_id }, "seq")
end

--- threads(db, ctx, [vehicle_id]) -> the live threads (of a vehicle), newest first.
function M.threads(db, ctx, vehicle_id)
  motomind.check_ctx(ctx, "conversations")
  return rows.list(db, ctx, "conversation_threads", { vehicle_id = vehicle_id }, "created_at DESC, id")
end

--- usage(db, ctx, [where]) -> AI usage per month, source (conversation,
-- vision), model and currency: calls, tokens_in, tokens_out, cost.
function M.usage(db, ctx, where)
  motomind.check_ctx(ctx, "conversations")
  return rows.list(db, ctx, "ai_usage_monthly", where, "month, source, model, currency")
end

return M
