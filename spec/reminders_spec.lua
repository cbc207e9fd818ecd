-- Reminders (issue #13): what is due, computed by the database; the chain of
-- occurrences rebuilt by whatever writes events; notifications once.
local motomind = require "motomind"
local H = require "spec.helper"
local reminders = require "motomind.reminders"
local timeline = require "motomind.timeline"
local notifications = require "motomind.notifications"

local null = motomind.null

local function day(offset) return os.date("!%Y-%m-%d", os.time() + offset * 86400) end
local function at(offset) return day(offset) .. "T12:00:00Z" end

describe("reminders", function()
  local db, t, car, u, ctx

  before_each(function()
    db, t, car, u = H.fresh_tenant()
    ctx = { tenant = t, user = u }
  end)
  after_each(function() H.drop(db) end)

  local function reading(offset, mileage)
    return motomind.assert(timeline.append(db, ctx, { vehicle_id = car, type = "odometer", occurred_at = at(offset),
      mileage = mileage, payload = { source = "manual" } }))
  end
  local function service(offset, mileage, kind, extra)
    local payload = { service_type = kind or "oil_change" }
    for k, v in pairs(extra or {}) do payload[k] = v end
    return motomind.assert(timeline.append(db, ctx, { vehicle_id = car, type = "maintenance", occurred_at = at(offset),
      mileage = mileage, payload = payload }))
  end
  local function add(fields)
    fields.vehicle_id = fields.vehicle_id or car
    fields.title = fields.title or "Oil change"
    return motomind.assert(reminders.add(db, ctx, fields))
  end
  local function due_of(id)
    for _, r in ipairs(motomind.assert(reminders.due(db, ctx))) do
      if r.reminder_id == id then return r end
    end
  end
  local function row(id)
    local r = db:row("SELECT * FROM reminders WHERE id = $1", id)
    for k, v in pairs(r) do if k:match("mileage") and type(v) == "string" then r[k] = tonumber(v) end end
    return r
  end

  describe("status", function()
    it("is overdue by distance when the vehicle is past the due mileage (1,200 due, at 1,500)", function()
      reading(-30, 1000)
      reading(-1, 1500)
      local r = due_of(add({ due_mileage = 1200 }).id)
      assert.equal("overdue", r.status)
      assert.equal(-300, r.distance_left)
      assert.equal(1500, r.current_mileage)
    end)

    it("by date: overdue, due soon within the tenant's 30 days, upcoming beyond; today is not overdue", function()
      assert.equal("overdue", due_of(add({ due_on = day(-1) }).id).status)
      assert.equal("due_soon", due_of(add({ due_on = day(0) }).id).status)
      assert.equal("due_soon", due_of(add({ due_on = day(30) }).id).status)
      local later = due_of(add({ due_on = day(31) }).id)
      assert.equal("upcoming", later.status)
      assert.equal(31, later.days_left)
      -- a per-reminder threshold, and the tenant's default
      assert.equal("due_soon", due_of(add({ due_on = day(31), due_soon_days = 40 }).id).status)
      assert(db:exec("UPDATE tenants SET due_soon_days = 7 WHERE id = $1", t))
      assert.equal("upcoming", due_of(add({ due_on = day(10) }).id).status)
    end)

    it("whichever comes first: a far date with a near mileage is due soon, and overdue past either", function()
      reading(-1, 9700)
      local r = add({ due_on = day(300), due_mileage = 10000 })
      assert.equal("due_soon", due_of(r.id).status) -- 300 left, within the tenant's 500
      reading(0, 10001)
      assert.equal("overdue", due_of(r.id).status)
      assert.equal("overdue", due_of(add({ due_on = day(-3), due_mileage = 50000 }).id).status)
    end)

    it("sorts the due list by urgency, and filters it by vehicle and by what falls within", function()
      reading(-1, 100)
      local a = add({ title = "later", due_on = day(200) }).id
      local b = add({ title = "late", due_on = day(-5) }).id
      local c = add({ title = "soon", due_on = day(5) }).id
      local list = motomind.assert(reminders.due(db, ctx))
      assert.same({ b, c, a }, { list[1].reminder_id, list[2].reminder_id, list[3].reminder_id })
      local within = motomind.assert(reminders.due(db, ctx, { within_days = 30 }))
      assert.equal(2, #within)
      local _, other = H.tenant_with_vehicle(db, { nickname = "other" })
      assert.equal(0, #motomind.assert(reminders.due(db, ctx, { vehicle = other })))
      assert.equal(3, #motomind.assert(reminders.due(db, ctx, { vehicle = car })))
      -- paged: the most urgent first, then the rest in the same order
      local first = motomind.assert(reminders.due(db, ctx, { limit = 2 }))
      assert.same({ b, c }, { first[1].reminder_id, first[2].reminder_id, #first == 2 and nil })
      local rest = motomind.assert(reminders.due(db, ctx, { limit = 2, offset = 2 }))
      assert.same({ a }, { rest[1].reminder_id, #rest == 1 and nil })
      local none, err, code = reminders.due(db, ctx, { limit = -1 })
      assert.same({ nil, "limit: expected a whole number, 0 or more", "22023" }, { none, err, code })
    end)
  end)

  describe("projected due date", function()
    -- index_fetches(fn) -> the index tuples fn's statements fetched from the
    -- events' partitions (in one transaction), fn's result.
    local function index_fetches(fn)
      local fetched = [[SELECT coalesce(sum(idx_tup_fetch), 0)::bigint FROM pg_stat_xact_user_tables
        WHERE relid IN (SELECT inhrelid FROM pg_inherits WHERE inhparent = 'vehicle_events'::regclass)]]
      local r = motomind.assert(db:transaction(function()
        local before = motomind.assert(db:value(fetched))
        local result = fn()
        return { n = motomind.assert(db:value(fetched)) - before, result = result }
      end))
      return r.n, r.result
    end

    it("follows a steady driving rate from the latest reading", function()
      for i = 0, 9 do reading(-90 + i * 10, 1000 + i * 500) end -- 50 a day, latest 5,500 on day -0
      local r = due_of(add({ due_mileage = 8000 }).id)
      assert.equal(day(50), r.projected_on) -- 2,500 left at 50 a day
      assert.equal("upcoming", r.status)
      local soon = due_of(add({ due_mileage = 6400 }).id)
      assert.equal(day(18), soon.projected_on)
      assert.equal("due_soon", soon.status) -- 900 left (beyond 500), but due within 30 days by projection
      assert.equal(day(18), soon.effective_due_on)
    end)

    it("uses the last 90 days of an irregular history", function()
      reading(-400, 0)
      reading(-200, 1000)    -- slow long ago
      reading(-80, 2000)
      reading(-40, 2200)
      reading(0, 6000)       -- 4,000 over the last 80 days: 50 a day
      local r = due_of(add({ due_mileage = 7000 }).id)
      assert.equal(day(20), r.projected_on)
    end)

    it("reads the last 90 days of a long history, not the whole of it", function()
      -- 1,000 daily readings, 10 a day, one statement (not analyzed yet); the
      -- latest time twice: the highest reading at it is the odometer
      motomind.assert(db:exec([[INSERT INTO vehicle_events (tenant_id, vehicle_id, type, occurred_at, mileage, payload)
        SELECT $1, $2, 'odometer', date_trunc('hour', now()) - (1000 - least(i, 1000)) * interval '1 day',
               i * 10 - (i / 1001) * 5, '{"source": "manual"}'
          FROM generate_series(1, 1001) i]], t, car))
      local fetched, odo = index_fetches(function()
        return motomind.assert(db:row("SELECT mileage, distance_per_day FROM vehicle_odometer($1, $2)", t, car))
      end)
      assert.equal(10005, tonumber(odo.mileage))
      assert.near((10005 - 9100) / 90, tonumber(odo.distance_per_day), 1e-9) -- from the reading 90 days before
      assert.is_true(fetched < 150, ("%d index tuples fetched"):format(fetched))
    end)

    it("reads each vehicle's own readings when a statement writes a fleet's", function()
      -- 6,000 vehicles, three readings each at the same three times, one
      -- statement (the tables not analyzed yet): a plan that looked a time up
      -- and then the readings at it read them through the tenant's index,
      -- every vehicle's readings at that time for each vehicle (108M fetched)
      for y = 2025, 2027 do
        motomind.assert(db:query("SELECT create_event_partition($1, $2)", y .. "-01-01T00:00:00Z", (y + 1) .. "-01-01T00:00:00Z"))
      end
      motomind.assert(db:exec("INSERT INTO vehicles (tenant_id, id) SELECT $1, gen_random_uuid() FROM generate_series(1, 6000)", t))
      local n = index_fetches(function()
        return motomind.assert(db:exec([[INSERT INTO vehicle_events (tenant_id, vehicle_id, type, occurred_at, mileage, payload)
          SELECT $1, v.id, 'odometer', now() - make_interval(days => 90 - 40 * k), 1000 + k * 500, '{"source": "manual"}'
            FROM vehicles v, generate_series(0, 2) k WHERE v.tenant_id = $1 AND v.id <> $2]], t, car))
      end)
      assert.is_true(n < 40 * 18000, ("%d index tuples fetched for 18,000 readings"):format(n))
      assert.equal(12.5, tonumber(db:value("SELECT distance_per_day FROM vehicle_event_heads WHERE tenant_id = $1 " ..
        "AND vehicle_id = (SELECT id FROM vehicles WHERE tenant_id = $1 AND id <> $2 LIMIT 1)", t, car)))
    end)

    it("has none with a single reading or none, and stays sane", function()
      local r = add({ due_mileage = 5000 })
      assert.equal(null, due_of(r.id).projected_on)
      assert.equal("upcoming", due_of(r.id).status)
      reading(-1, 100)
      assert.equal(null, due_of(r.id).projected_on)
      assert.equal(100, due_of(r.id).current_mileage)
    end)
  end)

  describe("the kept days (reminder_alerts)", function()
    local function vehicle(nickname)
      return motomind.assert(db:value("INSERT INTO vehicles (tenant_id, nickname) VALUES ($1, $2) RETURNING id", t, nickname))
    end
    -- live reminders whose kept days and days computed now from the inputs differ
    local function drift()
      return db:value([[WITH kept AS (
          SELECT a.reminder_id, a.projected_on, a.overdue_from, a.soon_from, a.due_key FROM reminder_alerts a
            JOIN reminders r ON r.tenant_id = a.tenant_id AND r.id = a.reminder_id WHERE r.deleted_at IS NULL),
        live AS (
          SELECT l.reminder_id, l.projected_on, l.overdue_from, l.soon_from, l.due_key FROM reminder_alerts_live l
            JOIN reminders r ON r.tenant_id = l.tenant_id AND r.id = l.reminder_id WHERE r.deleted_at IS NULL)
        SELECT count(*) FROM ((TABLE kept EXCEPT TABLE live) UNION ALL (TABLE live EXCEPT TABLE kept)) x]])
    end

    it("follow every input: readings, voids, thresholds, timezones, the reminder itself", function()
      local other = vehicle("second")
      local r1 = add({ due_mileage = 3000 })
      local r2 = add({ due_on = day(40), due_mileage = 2600, vehicle_id = other })
      local r3 = add({ service_type = "tire_rotation", due_on = day(20), repeat_months = 6, starts_on = day(-10) })
      assert.equal(0, drift())
      reading(-60, 1000)
      local last = reading(-1, 2500)                           -- 25 a day: r1 due on day 19
      assert.equal(day(19), due_of(r1.id).projected_on)
      assert.equal("due_soon", due_of(r1.id).status)           -- within 500 by distance
      assert.equal(0, drift())
      motomind.assert(timeline.void(db, ctx, { id = last.id, occurred_at = last.occurred_at }, "typo"))
      assert.equal(1000, due_of(r1.id).current_mileage)
      assert.equal("upcoming", due_of(r1.id).status)
      assert.equal(0, drift())
      assert(db:exec("UPDATE tenants SET due_soon_days = 45, due_soon_distance = 2500 WHERE id = $1", t))
      assert.equal("due_soon", due_of(r1.id).status)           -- 2,000 left, now within 2,500
      assert.equal("due_soon", due_of(r2.id).status)           -- 40 days left, now within 45
      assert.equal(0, drift())
      assert(db:exec("UPDATE vehicles SET timezone = 'Pacific/Kiritimati' WHERE id = $1", other))
      assert.equal(0, drift())
      motomind.assert(reminders.snooze(db, ctx, r2.id, { until_on = day(5) }))
      assert.equal("snoozed", due_of(r2.id).status)
      service(-2, 1100, "tire_rotation")                       -- completes r3: next due in 6 months
      assert.equal("upcoming", due_of(r3.id).status)
      assert(db:exec("UPDATE reminders SET due_soon_days = 365 WHERE id = $1", r3.id))
      assert.equal("due_soon", due_of(r3.id).status)
      assert.equal(0, drift())
      assert(db:exec("DELETE FROM reminder_completions WHERE tenant_id = $1", t))
      assert(db:exec("DELETE FROM reminders WHERE id = $1", r1.id))
      assert.equal(0, drift())
      assert.equal(0, db:value("SELECT count(*) FROM reminder_alerts WHERE reminder_id = $1", r1.id))
    end)

    it("page the list: every page is the same slice of the whole list, across statuses, ties and filters", function()
      local group = db:value("INSERT INTO fleet_groups (tenant_id, name) VALUES ($1, 'North') RETURNING id", t)
      local cars = { car }
      for i = 1, 3 do cars[#cars + 1] = vehicle("v" .. i) end
      assert(db:exec("UPDATE vehicles SET group_id = $2 WHERE id = $1", cars[2], group))
      for i, v in ipairs(cars) do
        motomind.assert(timeline.append(db, ctx, { vehicle_id = v, type = "odometer", occurred_at = at(-30),
          mileage = 1000 * i, payload = { source = "manual" } }))
        motomind.assert(timeline.append(db, ctx, { vehicle_id = v, type = "odometer", occurred_at = at(-1),
          mileage = 1000 * i + 600, payload = { source = "manual" } }))
      end
      -- overdue, due soon, upcoming and snoozed, by date and by distance, many on the same days
      for k = 1, 48 do
        local v = cars[k % #cars + 1]
        local fields = { vehicle_id = v, title = "r" .. k % 5 }
        if k % 3 == 0 then fields.due_mileage = 1000 * (k % #cars + 1) + 100 * (k % 13) else fields.due_on = day(k % 11 * 9 - 20) end
        local r = add(fields)
        if k % 7 == 0 then motomind.assert(reminders.snooze(db, ctx, r.id, { until_on = day(4) })) end
      end
      for _, filter in ipairs { {}, { within_days = 30 }, { group = group }, { within_distance = 200 } } do
        local whole = motomind.assert(reminders.due(db, ctx, filter))
        local statuses = {}
        for _, r in ipairs(whole) do statuses[r.status] = true end
        if not filter.group then
          assert.is_true(statuses.overdue and statuses.due_soon and (filter.within_days or filter.within_distance
            or statuses.upcoming and statuses.snoozed) and true)
        end
        for _, limit in ipairs { 1, 3, 7, 50 } do
          for _, offset in ipairs { 0, 2, 5, 13, 40 } do
            local opts = { limit = limit, offset = offset }
            for k, v in pairs(filter) do opts[k] = v end
            local page = motomind.assert(reminders.due(db, ctx, opts))
            local want, got = {}, {}
            for i = offset + 1, math.min(offset + limit, #whole) do want[#want + 1] = whole[i].reminder_id end
            for _, r in ipairs(page) do got[#got + 1] = r.reminder_id end
            assert.same(want, got)
          end
        end
      end
    end)

    it("page a small group of a large fleet from the whole status once the candidates run past 2,000", function()
      local group = db:value("INSERT INTO fleet_groups (tenant_id, name) VALUES ($1, 'South') RETURNING id", t)
      local small = vehicle("small")
      assert(db:exec("UPDATE vehicles SET group_id = $2 WHERE id = $1", small, group))
      assert(db:exec([[INSERT INTO reminders (tenant_id, vehicle_id, title, due_on)
        SELECT $1, $2, 'fleet ' || g, current_date - 40 + g % 30 FROM generate_series(1, 2500) g]], t, car))
      local mine = { add({ vehicle_id = small, due_on = day(-3) }).id, add({ vehicle_id = small, due_on = day(-2) }).id }
      local page = motomind.assert(reminders.due(db, ctx, { group = group, limit = 2 }))
      assert.same(mine, { page[1].reminder_id, page[2].reminder_id })
      local last = motomind.assert(reminders.due(db, ctx, { limit = 1, offset = 2501 }))
      assert.equal(mine[2], last[1].reminder_id)                 -- the last overdue of all
    end)

    it("have no projection more than 100 years away (a slow vehicle's due list failed)", function()
      reading(-90, 1000)
      reading(0, 1001)                                         -- 1 in 90 days
      local far = add({ due_mileage = 99999999 })
      local r = due_of(far.id)
      assert.equal(null, r.projected_on)
      assert.equal("upcoming", r.status)
    end)
  end)

  describe("the chain of occurrences", function()
    it("recurs by months and by distance from each matching service, whichever comes first", function()
      reading(-400, 1000)
      local r = add({ due_mileage = 5000, due_on = day(-100), repeat_months = 6, repeat_distance = 5000,
                      service_type = "Oil_Change", starts_on = day(-400) })
      service(-200, 4000)                      -- done early, case of the service type aside
      local x = row(r.id)
      assert.equal(9000, x.due_mileage)
      assert.equal(os.date("!%Y-%m-%d", os.time{ year = tonumber(day(-200):sub(1, 4)), month = tonumber(day(-200):sub(6, 7)) + 6,
        day = tonumber(day(-200):sub(9, 10)), hour = 12 }), x.due_on)
      service(-10, 8000, "tire_rotation")      -- another service type: nothing
      assert.equal(9000, row(r.id).due_mileage)
      local h = motomind.assert(reminders.history(db, ctx, r.id))
      assert.equal(2, #h)
      assert.equal(5000, h[1].due_mileage)
      assert.equal(day(-200), h[1].completed_on)
      assert.equal(4000, h[1].completed_mileage)
      assert.equal(null, h[2].completed_on)
    end)

    -- 0021: 50,000 reminders in one statement took over nine minutes: each
    -- row rebuilt its chain, planned on the statistics of an empty table.
    it("chains the reminders of one statement in one pass, with statistics of what it wrote", function()
      reading(-60, 1000)
      service(-5, 4800, "brakes")
      local n = 1200
      motomind.assert(db:exec("BEGIN"))
      motomind.assert(db:exec("SET LOCAL track_functions = 'all'"))
      motomind.assert(db:exec([[INSERT INTO reminders (tenant_id, vehicle_id, title, due_mileage, service_type, status, starts_on)
        SELECT $1, $2, 'r' || k, 5000 + k, CASE WHEN k % 100 = 0 THEN 'brakes' END,
               CASE WHEN k % 100 = 1 THEN 'dismissed' ELSE 'active' END, $3::date
          FROM generate_series(1, $4) k]], t, car, day(-30), n))
      local rebuilt = tonumber(db:value([[SELECT coalesce(sum(calls), 0) FROM pg_stat_xact_user_functions
        WHERE funcid = 'rebuild_reminder(uuid, uuid)'::regprocedure]]))
      local known = tonumber(db:value("SELECT reltuples FROM pg_class WHERE oid = 'reminders'::regclass"))
      motomind.assert(db:exec("COMMIT"))
      assert.equal(12, rebuilt)                       -- the tied ones alone
      assert.is_true(known >= n, ("the planner knows of %d reminders"):format(known))
      local by = {}
      for _, x in ipairs(db:query([[SELECT r.title, r.status, r.due_mileage::float8 AS due, count(o.seq) AS occurrences,
          count(o.completed_on) AS completed FROM reminders r LEFT JOIN reminder_occurrences o ON o.reminder_id = r.id
         WHERE r.title LIKE 'r%' GROUP BY 1, 2, 3]])) do by[x.title] = x end
      assert.same({ status = "active", due = 5002, occurrences = 1, completed = 0 },
        { status = by.r2.status, due = by.r2.due, occurrences = by.r2.occurrences, completed = by.r2.completed })
      assert.equal("dismissed", by.r101.status)       -- untied, inserted dismissed: its chain, and still dismissed
      assert.equal(1, by.r101.occurrences)
      assert.equal("completed", by.r100.status)       -- tied: the brakes service done since it started completes it
      assert.equal(1, by.r100.completed)
      local due = motomind.assert(reminders.due(db, ctx))
      assert.equal(n - 12 - 12, #due)                 -- the dismissed and the completed are not due
    end)

    it("completes a one-off reminder, and un-completes it when the service is voided", function()
      local r = add({ due_mileage = 5000, service_type = "brakes", starts_on = day(-30) })
      local s = service(-5, 4800, "brakes")
      assert.equal("completed", row(r.id).status)
      assert.equal(0, #motomind.assert(reminders.due(db, ctx)))
      motomind.assert(timeline.void(db, ctx, s, "wrong car"))
      assert.equal("active", row(r.id).status)
      assert.equal(5000, row(r.id).due_mileage)
      local h = motomind.assert(reminders.history(db, ctx, r.id))
      assert.equal(1, #h)
      assert.equal(null, h[1].completed_on)
    end)

    it("re-evaluates a back-dated service: no double completion, no lost occurrence", function()
      local r = add({ due_mileage = 5000, repeat_distance = 5000, service_type = "oil_change", starts_on = day(-400) })
      service(-100, 4900)                      -- occurrence 1 done, next at 9,900
      assert.equal(9900, row(r.id).due_mileage)
      service(-200, 4000)                      -- back-dated before it: it did occurrence 1
      local h = motomind.assert(reminders.history(db, ctx, r.id))
      assert.equal(3, #h)
      assert.same({ 5000, 9000, 9900 }, { h[1].due_mileage, h[2].due_mileage, h[3].due_mileage })
      assert.same({ 4000, 4900 }, { h[1].completed_mileage, h[2].completed_mileage })
      assert.equal(9900, row(r.id).due_mileage)
    end)

    it("follows an amended service's new mileage", function()
      local r = add({ due_mileage = 5000, repeat_distance = 5000, service_type = "oil_change", starts_on = day(-400) })
      local s = service(-100, 4900)
      motomind.assert(timeline.correct(db, ctx, s, { mileage = 5100 }))
      assert.equal(10100, row(r.id).due_mileage)
      assert.equal(2, #motomind.assert(reminders.history(db, ctx, r.id)))
    end)

    it("is reset by a service written through an import and through plain SQL", function()
      local r = add({ due_mileage = 5000, repeat_distance = 5000, service_type = "oil_change", starts_on = day(-400) })
      local path = H.write_temp(motomind.json.encode({ vehicle_id = car, type = "maintenance", occurred_at = at(-50),
        mileage = 5050, payload = { service_type = "oil_change" } }) .. "\n")
      local report = motomind.assert(db:import(path, { tenant = t, user = u, format = "jsonl" }))
      os.remove(path)
      assert.equal(1, report.inserted)
      assert.equal(10050, row(r.id).due_mileage)
      assert(db:exec("INSERT INTO vehicle_events (tenant_id, vehicle_id, type, occurred_at, mileage, payload) " ..
        "VALUES ($1, $2, 'maintenance', $3, 10000, '{\"service_type\": \"oil_change\"}')", t, car, at(-1)))
      assert.equal(15000, row(r.id).due_mileage)
      assert.equal(3, #motomind.assert(reminders.history(db, ctx, r.id)))
    end)

    it("is completed by hand, and a soft-deleted completion undoes it", function()
      reading(-20, 700)
      local r = add({ title = "Wash", due_on = day(-2), repeat_months = 3 })
      local c = motomind.assert(reminders.complete(db, ctx, r.id, { on = day(-1) }))
      local h = motomind.assert(reminders.history(db, ctx, r.id))
      assert.equal(2, #h)
      assert.equal(c.id, h[1].completion_id)
      assert.equal(700, h[1].completed_mileage) -- the odometer that day
      assert.equal("upcoming", due_of(r.id).status)
      assert.is_true(motomind.assert(db:as(ctx, function()
        return require("motomind.records").soft_delete(db, "reminder_completions", c.id) end)))
      assert.equal("overdue", due_of(r.id).status)
    end)

    it("refuses to reschedule a reminder that has completions, and reschedules one that has none", function()
      local r = add({ title = "Wash", due_on = day(5), repeat_months = 1 })
      assert(db:exec("UPDATE reminders SET due_on = $2 WHERE id = $1", r.id, day(9)))
      assert.equal(day(9), row(r.id).first_due_on)
      motomind.assert(reminders.complete(db, ctx, r.id, { on = day(0) }))
      local ok, err, sqlstate = db:exec("UPDATE reminders SET due_on = $2 WHERE id = $1", r.id, day(90))
      assert.is_nil(ok)
      assert.equal("23514", sqlstate)
      assert.matches("due_on: this reminder has completed occurrences", err, 1, true)
    end)
  end)

  describe("made from what users log", function()
    it("creates a reminder from next_service and moves it with the next service", function()
      service(-30, 1000, "oil_change", { next_service = { mileage = 6000, due_on = day(150) } })
      local list = db:query("SELECT id, source, title, due_on, due_mileage::float8 FROM reminders WHERE tenant_id = $1", t)
      assert.equal(1, #list)
      assert.equal("next_service", list[1].source)
      assert.equal("Oil Change", list[1].title)
      assert.equal(6000, list[1].due_mileage)
      assert.equal(day(150), list[1].due_on)
      service(-1, 5800, "oil_change", { next_service = { mileage = 11000 } })
      assert.equal(1, db:value("SELECT count(*) FROM reminders WHERE tenant_id = $1", t))
      local r = row(list[1].id)
      assert.equal(11000, r.due_mileage)
      assert.equal(null, r.due_on)
      local h = motomind.assert(reminders.history(db, ctx, r.id))
      assert.equal(2, #h) -- 6,000 done at 5,800; 11,000 open
      assert.equal(5800, h[1].completed_mileage)
    end)

    it("makes a recurring reminder from next_service's repeat_months / repeat_distance, due from that service", function()
      service(-10, 2000, "tire_rotation", { next_service = { repeat_months = 6, repeat_distance = 8000 } })
      local r = db:row("SELECT id, repeat_months, repeat_distance::float8, due_on, due_mileage::float8 FROM reminders " ..
        "WHERE tenant_id = $1", t)
      assert.same({ 6, 8000, 10000 }, { r.repeat_months, r.repeat_distance, r.due_mileage })
      assert.equal(db:value("SELECT ($1::date + interval '6 months')::date::text", day(-10)), r.due_on)
      -- the next rotation completes it and schedules the one after
      service(-1, 9000, "tire_rotation")
      assert.equal(17000, row(r.id).due_mileage)
      -- a next_service with neither a due nor a recurrence is refused by the payload rules
      local ok, err = db:exec("INSERT INTO vehicle_events (tenant_id, vehicle_id, type, occurred_at, mileage, payload) " ..
        "VALUES ($1, $2, 'maintenance', now(), 9100, '{\"service_type\": \"x\", \"next_service\": {}}')", t, car)
      assert.is_nil(ok)
      assert.matches("next_service", err)
    end)

    it("moves an existing reminder of that service type instead of making a second", function()
      local r = add({ due_mileage = 5000, service_type = "oil_change", starts_on = day(-100) })
      service(-1, 4990, "oil_change", { next_service = { mileage = 9990 } })
      assert.equal(1, db:value("SELECT count(*) FROM reminders WHERE tenant_id = $1", t))
      assert.equal(9990, row(r.id).due_mileage)
      assert.equal("active", row(r.id).status)
    end)

    it("creates an expiry reminder from an inspection's expires_on, due soon 30 days before", function()
      assert(timeline.append(db, ctx, { vehicle_id = car, type = "inspection", occurred_at = at(-300),
        payload = { result = "pass", kind = "MOT", expires_on = day(20) } }))
      local r = db:row("SELECT * FROM reminders WHERE tenant_id = $1", t)
      assert.equal("expiry", r.source)
      assert.equal("inspection", r.expiry_of)
      assert.equal("MOT", r.expiry_kind)
      assert.equal(day(20), r.due_on)
      assert.equal("due_soon", due_of(r.id).status)
      -- the next inspection renews it
      assert(timeline.append(db, ctx, { vehicle_id = car, type = "inspection", occurred_at = at(-1),
        payload = { result = "pass", kind = "MOT", expires_on = day(364) } }))
      assert.equal(day(364), row(r.id).due_on)
      assert.equal("upcoming", due_of(r.id).status)
      assert.equal(1, db:value("SELECT count(*) FROM reminders WHERE tenant_id = $1", t))
    end)
  end)

  describe("snooze and dismiss", function()
    it("quiets a reminder until a date or a mileage, and dismissal ends it; both audited", function()
      reading(-1, 2000)
      local r = add({ due_mileage = 1500 })
      assert.equal("overdue", due_of(r.id).status)
      motomind.assert(reminders.snooze(db, ctx, r.id, { until_on = day(3) }))
      assert.equal("snoozed", due_of(r.id).status)
      motomind.assert(reminders.snooze(db, ctx, r.id, { until_mileage = 2100 }))
      assert.equal("snoozed", due_of(r.id).status)
      reading(0, 2101)
      assert.equal("overdue", due_of(r.id).status)
      motomind.assert(reminders.dismiss(db, ctx, r.id))
      assert.is_nil(due_of(r.id))
      local ops = db:query("SELECT actor FROM audit_log WHERE table_name = 'reminders' AND record_id = $1 " ..
        "AND operation = 'update'", r.id)
      assert.is_true(#ops >= 3)
      for _, o in ipairs(ops) do assert.equal(u, o.actor) end
      local _, err, sqlstate = reminders.dismiss(db, ctx, "00000000-0000-0000-0000-000000000000")
      assert.equal("42704", sqlstate)
      assert.matches("no such live reminder", err, 1, true)
    end)

    it("names the field of a bad definition", function()
      local cases = {
        { { title = "x" }, "due_on: give due_on or due_mileage" },
        { { due_on = "tomorrow" }, "due_on: expected a date" },
        { { due_on = day(1), repeat_months = 0 }, "repeat_months: expected a whole number above 0" },
        { { due_on = day(1), expiry_of = "tyres" }, "expiry_of: expected inspection or document" },
        { { due_on = day(1), colour = "red" }, "colour: unknown field" },
      }
      for _, c in ipairs(cases) do
        c[1].vehicle_id = car
        c[1].title = c[1].title or "t"
        local r, err, sqlstate = reminders.add(db, ctx, c[1])
        assert.is_nil(r)
        assert.equal("22023", sqlstate)
        assert.matches(c[2], err, 1, true)
      end
    end)
  end)

  describe("row-level security", function()
    it("lets viewers read the due list, and only writers of the vehicle change reminders", function()
      local app = H.app_connect(db)
      local viewer = H.user(db, t, "viewer")
      local group = db:value("INSERT INTO fleet_groups (tenant_id, name) VALUES ($1, 'North') RETURNING id", t)
      assert(db:exec("UPDATE vehicles SET group_id = $2 WHERE id = $1", car, group))
      local reader = H.user(db, t, "manager")
      assert(db:exec("INSERT INTO group_permissions (tenant_id, group_id, user_id, level) VALUES ($1, $2, $3, 'read')",
        t, group, reader))
      local r = add({ due_on = day(3) })
      local vctx, rctx = { tenant = t, user = viewer }, { tenant = t, user = reader }
      assert.equal(1, #motomind.assert(reminders.due(app, vctx)))
      assert.equal(1, #motomind.assert(reminders.due(app, rctx, { group = group })))
      for _, c in ipairs { vctx, rctx } do
        local ok, _, sqlstate = reminders.add(app, c, { vehicle_id = car, title = "x", due_on = day(1) })
        assert.is_nil(ok)
        assert.equal("42501", sqlstate)
        assert.is_nil((reminders.snooze(app, c, r.id, { until_on = day(9) })))
        assert.is_nil((reminders.complete(app, c, r.id, {})))
      end
      assert.equal(null, row(r.id).snoozed_until)
      assert.equal(0, db:value("SELECT count(*) FROM reminder_completions"))
      -- the owner, through the application role
      motomind.assert(reminders.complete(app, ctx, r.id, {}))
      assert.equal("completed", row(r.id).status)
      app:close()
    end)
  end)

  describe("notifications", function()
    it("are written once per transition, by the change that caused it or by maintain() when a day passes", function()
      reading(-1, 1000)
      local r = add({ due_mileage = 1600 })                   -- upcoming: nothing
      assert.equal(0, db:value("SELECT count(*) FROM notifications"))
      reading(0, 1200)                                         -- 400 left: due soon
      assert.same({ "due_soon" }, { db:value("SELECT string_agg(kind, ',') FROM notifications WHERE reminder_id = $1", r.id) })
      reading(0, 1300)                                         -- still due soon: nothing new
      assert.equal(1, db:value("SELECT count(*) FROM notifications"))
      reading(0, 1700)                                         -- overdue
      assert.equal("due_soon,overdue", db:value("SELECT string_agg(kind, ',' ORDER BY id) FROM notifications"))
      local n = db:row("SELECT payload FROM notifications WHERE kind = 'overdue'")
      assert.equal(r.id, n.payload.reminder_id)
      assert.equal(-100, n.payload.distance_left)
      -- a date-driven reminder that is already due when maintain() runs
      local d = add({ title = "Tax", due_on = day(10) })
      assert.equal(1, db:value("SELECT count(*) FROM notifications WHERE reminder_id = $1", d.id))
      assert(db:exec("DELETE FROM notifications WHERE reminder_id = $1", d.id)) -- as if written before it was due
      local report = motomind.assert(db:maintain { ahead = 1 })
      assert.equal(1, report.notifications)
      assert.equal(0, motomind.assert(db:maintain { ahead = 1 }).notifications)
    end)

    it("are produced once by concurrent writers and a concurrent maintain()", function()
      reading(-1, 1000)
      for i = 1, 20 do add({ title = "r" .. i, due_on = day(i) }) end
      assert(db:exec("DELETE FROM notifications"))
      -- three sessions evaluate the same transitions at once, each holding
      -- its transaction open a while: the later ones wait, then write nothing
      local function session(call)
        local sql = ("SET search_path TO %s; SET motomind.maintenance = on; BEGIN; SELECT %s; SELECT pg_sleep(0.5); COMMIT;")
          :format(db:escape_identifier(db:schema()), call)
        return ("psql -X -q -v ON_ERROR_STOP=1 %s -c %s"):format(H.shell_quote(os.getenv("DATABASE_URL") or ""),
          H.shell_quote(sql))
      end
      local out, ok = H.run(session("emit_reminder_notifications()") .. " & " .. session("emit_reminder_notifications()") ..
        " & " .. session("maintain(1)") .. " & wait")
      assert(ok, out)
      assert.equal(20, db:value("SELECT count(*) FROM notifications"))
      assert.equal(20, db:value("SELECT count(DISTINCT reminder_id) FROM notifications"))
    end)

    it("are delivered by a sink, retried after a crash or a failure, and acknowledged once", function()
      reading(-1, 1000)
      add({ title = "A", due_on = day(1) })
      add({ title = "B", due_on = day(2) })
      -- a consumer claims everything and crashes: nothing is delivered until the lease ends
      local claimed = motomind.assert(notifications.claim(db, "crashed", { lease = 1 }))
      assert.equal(2, #claimed)
      assert.equal(0, #motomind.assert(notifications.claim(db, "other")))
      os.execute("sleep 1.2")
      local got = {}
      local out = motomind.assert(notifications.deliver(db, function(n)
        got[#got + 1] = n.payload.title
        if n.payload.title == "B" then return nil, "receiver down" end
        return true
      end, { consumer = "second", retry_base = 0.5 }))
      assert.same({ delivered = 1, failed = 1, lost = 0 }, out)
      table.sort(got)
      assert.same({ "A", "B" }, got)
      local b = db:row("SELECT * FROM notifications WHERE payload->>'title' = 'B'")
      assert.equal("receiver down", b.last_error)
      assert.equal(2, b.attempts)
      -- the crashed consumer's late acknowledgement does not count
      assert.is_false((notifications.ack(db, claimed[1], "crashed")))
      os.execute("sleep 1.1") -- retry_base * 2^(attempts - 1) = 1 s
      out = motomind.assert(notifications.deliver(db, function() return true end, { consumer = "third" }))
      assert.same({ delivered = 1, failed = 0, lost = 0 }, out)
      assert.equal(0, db:value("SELECT count(*) FROM notifications WHERE delivered_at IS NULL"))
      assert.same({ delivered = 0, failed = 0, lost = 0 },
        motomind.assert(notifications.deliver(db, function() return true end)))
    end)

    it("posts to a webhook with the tenant's HMAC-SHA256 signature, and records a receiver that is down", function()
      reading(-1, 1000)
      add({ title = "Insurance", due_on = day(3) })
      -- a one-shot HTTP receiver on 127.0.0.1 (LuaSocket), in its own process
      local portfile, got = os.tmpname(), os.tmpname()
      local receiver = ([[
        local socket = require "socket"
        local server = assert(socket.bind("127.0.0.1", 0))
        local _, port = server:getsockname()
        local f = io.open(%q, "w") f:write(port) f:close()
        server:settimeout(10)
        local c = assert(server:accept())
        c:settimeout(5)
        local headers = {}
        c:receive("*l")
        while true do
          local l = assert(c:receive("*l"))
          if l == "" then break end
          local k, v = l:match("^([^:]+):%%s*(.*)$")
          headers[k:lower()] = v
        end
        local body = c:receive(tonumber(headers["content-length"]))
        -- written before the answer: the spec reads it as soon as deliver returns
        local out = io.open(%q, "w")
        out:write(headers["x-motomind-signature"], "\n", headers["x-motomind-delivery"], "\n", body)
        out:close()
        c:send("HTTP/1.1 204 No Content\r\nConnection: close\r\n\r\n")
        c:close()
      ]]):format(portfile, got)
      os.remove(portfile)
      os.execute(H.lua_command(receiver) .. " >/dev/null 2>&1 &")
      local port
      for _ = 1, 100 do
        local f = io.open(portfile)
        if f then port = f:read("*n") f:close() end
        if port then break end
        os.execute("sleep 0.05")
      end
      assert(port, "the receiver did not start")
      local url = ("http://127.0.0.1:%d/hooks"):format(port)
      local out = motomind.assert(notifications.deliver(db, notifications.webhook(db, url)))
      assert.same({ delivered = 1, failed = 0, lost = 0 }, out)
      local text = H.read(got)
      os.remove(got)
      os.remove(portfile)
      local signature, delivery, body = text:match("^(.-)\n(.-)\n(.*)$")
      local secret = db:value("SELECT webhook_secret FROM tenant_secrets WHERE tenant_id = $1", t)
      assert.equal("sha256=" .. require("motomind.core").hmac_sha256(secret, body), signature)
      assert.not_equal("sha256=" .. require("motomind.core").hmac_sha256(secret, body .. " "), signature)
      local n = db:row("SELECT id, tenant_id FROM notifications")
      assert.equal(n.tenant_id .. ":" .. n.id, delivery)
      local sent = motomind.json.decode(body)
      assert.equal("due_soon", sent.kind)
      assert.equal("Insurance", sent.reminder.title)
      -- nobody listens there any more: a failure, recorded and retried later
      add({ title = "Tax", due_on = day(4) })
      out = motomind.assert(notifications.deliver(db, notifications.webhook(db, url, { timeout = 2 })))
      assert.same({ delivered = 0, failed = 1, lost = 0 }, out)
      local failed = db:row("SELECT last_error, next_attempt_at > now() AS later FROM notifications WHERE delivered_at IS NULL")
      assert.matches("POST " .. url, failed.last_error, 1, true)
      assert.is_true(failed.later)
    end)

    it("wake a listening consumer", function()
      reading(-1, 1000)
      local listener = H.connect { schema = db:schema() }
      motomind.assert(notifications.listen(listener))
      assert.is_false((notifications.wait(listener, 0.05)))
      add({ due_on = day(1) })
      assert.is_true(motomind.assert(notifications.wait(listener, 5)))
      listener:close()
    end)
  end)
end)
