--- The notifications outbox (migration 0010), for consumers: claim a batch
-- (FOR UPDATE SKIP LOCKED, with a lease), deliver each, acknowledge it or
-- record the failure (retried with backoff); wait on LISTEN between batches.
-- The database writes one notification per reminder transition; a consumer
-- that crashes loses its claim when the lease ends and another delivers it.
-- Consumers serve every tenant, so they connect as the owner role.
local motomind = require "motomind"
local core = require "motomind.core"

local M = {}

M.CHANNEL = "motomind_notifications"

--- claim(db, consumer, { max = 100, lease = 300 }) -> rows | nil, message, sqlstate.
function M.claim(db, consumer, opts)
  opts = opts or {}
  return db:query(("SELECT * FROM %s($1, $2, make_interval(secs => $3))"):format(db:qualify("claim_notifications")),
    consumer, opts.max or 100, opts.lease or 300)
end

--- ack(db, n, consumer) -> true | false (the claim was lost) | nil, message, sqlstate.
function M.ack(db, n, consumer)
  return db:value(("SELECT %s($1, $2, $3)"):format(db:qualify("ack_notification")), n.tenant_id, n.id, consumer)
end

--- fail(db, n, consumer, message, retry_in_seconds) -> true | false | nil, message, sqlstate.
function M.fail(db, n, consumer, message, retry_in)
  return db:value(("SELECT %s($1, $2, $3, $4, make_interval(secs => $5))"):format(db:qualify("fail_notification")),
    n.tenant_id, n.id, consumer, message, retry_in)
end

--- deliver(db, sink, { consumer =, max =, lease =, retry_base = 30 }) ->
-- { delivered =, failed =, lost = } | nil, message, sqlstate.
-- sink(n) is called with each claimed row (tenant_id, id, kind, payload,
-- attempts, ...) and returns true when delivered, or nil, reason (or
-- raises): the row is then retried after retry_base * 2^(attempts - 1)
-- seconds (at most an hour), and given up after 10 attempts.
function M.deliver(db, sink, opts)
  opts = opts or {}
  local consumer = opts.consumer or ("motomind-%d"):format(db:backend_pid())
  local rows, err, sqlstate = M.claim(db, consumer, opts)
  if not rows then return nil, err, sqlstate end
  local out = { delivered = 0, failed = 0, lost = 0 }
  for _, n in ipairs(rows) do
    local ok, done, why = pcall(sink, n)
    if ok and done then
      local acked, e2, s2 = M.ack(db, n, consumer)
      if acked == nil then return nil, e2, s2 end
      if acked then out.delivered = out.delivered + 1 else out.lost = out.lost + 1 end
    else
      local reason = ok and tostring(why or "the sink returned false") or tostring(done)
      local retry = math.min((opts.retry_base or 30) * 2 ^ (n.attempts - 1), 3600)
      local failed, e2, s2 = M.fail(db, n, consumer, reason, retry)
      if failed == nil then return nil, e2, s2 end
      out.failed = out.failed + 1
    end
  end
  return out
end

--- secret(db, tenant) -> the tenant's webhook signing secret (made on first use).
function M.secret(db, tenant)
  local ok, err, sqlstate = db:exec(("INSERT INTO %s (tenant_id) VALUES ($1) ON CONFLICT DO NOTHING")
    :format(db:qualify("tenant_secrets")), tenant)
  if not ok then return nil, err, sqlstate end
  return db:value(("SELECT webhook_secret FROM %s WHERE tenant_id = $1"):format(db:qualify("tenant_secrets")), tenant)
end

--- The JSON body a webhook receives for n.
function M.body(n)
  return motomind.json.encode { id = n.id, tenant_id = n.tenant_id, kind = n.kind, created_at = n.created_at,
                                reminder = n.payload }
end

--- webhook(db, url, { timeout = 10 }) -> a sink for deliver() that POSTs
-- M.body(n) as JSON with the headers X-Motomind-Delivery (tenant:id, the
-- same on every retry: receivers drop duplicates by it) and
-- X-Motomind-Signature: sha256=<HMAC-SHA256 of the body with the tenant's
-- secret, hex>. A 2xx answer is a delivery.
function M.webhook(db, url, opts)
  opts = opts or {}
  local http = require "socket.http"
  local ltn12 = require "ltn12"
  local socket = require "socket"
  return function(n)
    local secret = motomind.assert(M.secret(db, n.tenant_id))
    local body = M.body(n)
    local answer = {}
    local ok, code = http.request {
      url = url, method = "POST", source = ltn12.source.string(body), sink = ltn12.sink.table(answer),
      headers = { ["content-type"] = "application/json", ["content-length"] = tostring(#body),
                  ["x-motomind-delivery"] = n.tenant_id .. ":" .. n.id,
                  ["x-motomind-signature"] = "sha256=" .. core.hmac_sha256(secret, body) },
      create = function()
        local s = socket.tcp()
        s:settimeout(opts.timeout or 10)
        return s
      end,
    }
    if not ok then return nil, "POST " .. url .. ": " .. tostring(code) end
    if type(code) ~= "number" or code < 200 or code > 299 then
      return nil, ("POST %s: HTTP %s %s"):format(url, tostring(code), table.concat(answer):sub(1, 200))
    end
    return true
  end
end

--- listen(db) subscribes the connection to the outbox's wake-ups;
-- wait(db, timeout) -> true when woken, false on timeout | nil, message, sqlstate.
function M.listen(db)
  return db:exec("LISTEN " .. db:escape_identifier(M.CHANNEL))
end

function M.wait(db, timeout)
  local channel, payload, sqlstate = db:wait_notification(timeout)
  if channel then return true end
  if payload == "timeout" then return false end
  return nil, payload, sqlstate
end

return M
