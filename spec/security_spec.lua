local motomind = require "motomind"
local H = require "spec.helper"
local samples = require "spec.samples"

local null = motomind.null
local ACTORS = { "owner", "manager", "viewer", "other", "nonmember", "none" }

-- Who may do what to tenant A's rows, from tenant A's context: by the
-- table's kind, which the database records (tenant_table_kinds), so a new
-- table is in the matrix without being listed here. The tables whose
-- policies are their own (no kind) are listed. Nobody may touch tenant B's rows.
local MEMBERS, WRITERS = { owner = 1, manager = 1, viewer = 1 }, { owner = 1, manager = 1 }
local APPEND = { select = MEMBERS, insert = WRITERS, update = {}, delete = {} }
local BY_KIND = {
  mutable = { select = MEMBERS, insert = WRITERS, update = WRITERS, delete = {} },
  derived = { select = MEMBERS, insert = {}, update = {}, delete = {} },
  events = APPEND, append_only = APPEND,
  audit = { select = WRITERS, insert = {}, update = {}, delete = {} },
}
local OWN = {
  tenants = { select = MEMBERS, insert = {}, update = { owner = 1 }, delete = {} },
  users = { select = MEMBERS, insert = {}, update = { owner = 1 }, delete = {},
            -- a user always sees and edits themselves (B's seed user is "other")
            b_select = { other = 1 }, b_update = { other = 1 } },
  memberships = { select = MEMBERS, insert = { owner = 1 }, update = { owner = 1 }, delete = {} },
  fleet_groups = { select = MEMBERS, insert = { owner = 1 }, update = { owner = 1 }, delete = {} },
  -- grants are revoked by DELETE (owners, and managers with an admin grant above)
  group_permissions = { select = MEMBERS, insert = { owner = 1 }, update = { owner = 1 }, delete = { owner = 1 } },
  -- signing secrets are the owner role's (consumers), never the application's
  tenant_secrets = { select = {}, insert = {}, update = {}, delete = {} },
}
local NOT_TENANT_DATA = { schema_migrations = true, settings = true, mv_refreshes = true, maintenance_failures = true,
  trigger_foreign_keys = true }

describe("tenant isolation", function()
  local owner, app, ids, kinds

  local function seed_tenant(name, users)
    local t = owner:value("INSERT INTO tenants (name, kind) VALUES ($1, 'org') RETURNING id", name)
    local out = { tenant = t, users = {} }
    for role, email in pairs(users) do
      local u = owner:value("INSERT INTO users (email) VALUES ($1) RETURNING id", email)
      assert(owner:exec("INSERT INTO memberships (tenant_id, user_id, role) VALUES ($1, $2, $3)", t, u, role))
      out.users[role] = u
    end
    out.garage = owner:value("INSERT INTO garages (tenant_id, name) VALUES ($1, 'Depot') RETURNING id", t)
    out.vehicle = owner:value("INSERT INTO vehicles (tenant_id, garage_id, vin) VALUES ($1, $2, '1HGCM82633A004352') RETURNING id", t, out.garage)
    out.image = owner:value("INSERT INTO vehicle_images (tenant_id, vehicle_id, storage_url) VALUES ($1, $2, 's3://b/1') RETURNING id", t, out.vehicle)
    out.reminder = owner:value("INSERT INTO reminders (tenant_id, vehicle_id, title, due_mileage) VALUES ($1, $2, 'oil', 5000) RETURNING id", t, out.vehicle)
    assert(owner:exec("INSERT INTO reminder_completions (tenant_id, reminder_id, completed_on) VALUES ($1, $2, '2024-12-01')",
      t, owner:value("INSERT INTO reminders (tenant_id, vehicle_id, title, due_on) VALUES ($1, $2, 'wash', '2024-12-01') RETURNING id",
        t, out.vehicle)))
    assert(owner:exec("INSERT INTO tenant_secrets (tenant_id) VALUES ($1)", t))
    local first = owner:row("INSERT INTO vehicle_events (tenant_id, vehicle_id, type, occurred_at, mileage, payload) " ..
      "VALUES ($1, $2, 'odometer', '2025-01-01T00:00:00Z', 100, '{\"source\": \"manual\"}') RETURNING id, occurred_at", t, out.vehicle)
    assert(owner:exec("INSERT INTO vehicle_events (tenant_id, vehicle_id, type, occurred_at, mileage, payload) " ..
      "VALUES ($1, $2, 'odometer', '2025-01-02T00:00:00Z', 90000, '{\"source\": \"manual\"}')", t, out.vehicle)) -- flagged
    assert(owner:exec("INSERT INTO vehicle_events (tenant_id, vehicle_id, type, occurred_at, payload, correction, " ..
      "corrects_id, corrects_occurred_at) VALUES ($1, $2, 'odometer', $4, '{}', 'void', $3, $4)", t, out.vehicle,
      first.id, first.occurred_at)) -- a supersession
    out.event = first.id
    assert(owner:exec("INSERT INTO vehicle_events (tenant_id, vehicle_id, type, occurred_at, payload) VALUES ($1, $2, " ..
      "'maintenance', '2025-01-03T00:00:00Z', '{\"service_type\": \"wash\", \"total\": 9, \"currency\": \"EUR\"}')", t, out.vehicle))
    assert.equal(1, owner:value("SELECT advance_metrics()")) -- a metrics row and a costs row
    out.group = owner:value("INSERT INTO fleet_groups (tenant_id, name) VALUES ($1, 'North') RETURNING id", t)
    local anyone = out.users.viewer or out.users.owner
    assert(owner:exec("INSERT INTO group_permissions (tenant_id, group_id, user_id, level) VALUES ($1, $2, $3, 'read')",
      t, out.group, anyone))
    return out
  end

  setup(function()
    owner = H.fresh()
    -- A table added after this spec was written: the matrix, audit and
    -- purge must pick it up from the catalog alone.
    assert(owner:exec([[CREATE TABLE probe_notes (
      tenant_id uuid NOT NULL REFERENCES tenants, id uuid NOT NULL DEFAULT gen_random_uuid(),
      vehicle_id uuid NOT NULL, body text NOT NULL,
      created_at timestamptz NOT NULL DEFAULT now(), created_by uuid, updated_at timestamptz NOT NULL DEFAULT now(),
      updated_by uuid, deleted_at timestamptz, deleted_by uuid,
      PRIMARY KEY (tenant_id, id), FOREIGN KEY (tenant_id, vehicle_id) REFERENCES vehicles (tenant_id, id))]]))
    assert(owner:exec("SELECT protect_tenant_table('probe_notes', 'mutable')"))
    kinds = {}
    for _, r in ipairs(assert(owner:query("SELECT table_name, kind FROM tenant_table_kinds WHERE kind IS NOT NULL"))) do
      kinds[r.table_name] = r.kind
    end
    local stamp = tostring(os.time()) .. math.random(1e6)
    ids = {
      A = seed_tenant("A", { owner = "a-owner" .. stamp .. "@x.example", manager = "a-manager" .. stamp .. "@x.example",
                             viewer = "a-viewer" .. stamp .. "@x.example" }),
      B = seed_tenant("B", { owner = "b-owner" .. stamp .. "@x.example" }),
    }
    ids.nonmember = owner:value("INSERT INTO users (email) VALUES ($1) RETURNING id", "none" .. stamp .. "@x.example")
    for _, X in ipairs { "A", "B" } do samples.seed(owner, ids[X].tenant, ids[X].users.owner) end
    app = H.app_connect(owner)
    assert.is_false(app:value("SELECT rolsuper OR rolbypassrls FROM pg_roles WHERE rolname = current_user"))
  end)
  teardown(function() app:close() H.drop(owner) end)

  local function context(actor)
    local A = ids.A
    return ({ owner = { tenant = A.tenant, user = A.users.owner },
              manager = { tenant = A.tenant, user = A.users.manager },
              viewer = { tenant = A.tenant, user = A.users.viewer },
              other = { tenant = A.tenant, user = ids.B.users.owner },
              nonmember = { tenant = A.tenant, user = ids.nonmember },
              none = {} })[actor]
  end

  -- Runs fn as actor in a transaction that is always rolled back.
  local function as(actor, fn)
    local ctx = context(actor)
    assert(app:exec("BEGIN"))
    assert(app:query("SELECT set_config('motomind.tenant_id', $1, true), set_config('motomind.user_id', $2, true)",
      ctx.tenant or "", ctx.user or ""))
    local ok, a, b = pcall(fn, app)
    app:exec("ROLLBACK")
    assert(ok, a)
    return a, b
  end

  local function generic_insert(tbl, X)
    return samples.insert(owner, tbl, ids[X].tenant, ids[X].users.owner)
  end

  -- The statement of each operation on a table, aimed at tenant X's rows:
  -- the SQL and its parameters. Rows are made from the catalog unless a
  -- table's rules need more than that (an INSERTS entry).
  local function statement(tbl, op, X)
    local x = ids[X]
    local key, arg = "tenant_id = $1", x.tenant
    if tbl == "tenants" then key = "id = $1" end
    if tbl == "users" then key, arg = "id = $1", x.users.owner end
    if op == "select" then return ("SELECT count(*) AS n FROM %s WHERE %s"):format(tbl, key), { arg } end
    if op == "delete" then return ("DELETE FROM %s WHERE %s"):format(tbl, key), { arg } end
    if op == "update" then -- a column set to itself
      local column
      for _, c in ipairs((samples.catalog(owner, tbl))) do
        if not (c.key or c.generated or c.name == "tenant_id") then column = column or c.name end
      end
      return ("UPDATE %s SET %s = %s WHERE %s"):format(tbl, column, column, key), { arg }
    end
    local v = x.vehicle
    local inserts = {
      tenants = { "INSERT INTO tenants (name) VALUES ('new')" },
      users = { "INSERT INTO users (email) VALUES ('new-' || gen_random_uuid() || '@x.example')" },
      memberships = { "INSERT INTO memberships (tenant_id, user_id, role) VALUES ($1, $2, 'viewer')", x.tenant, ids.nonmember },
      vehicles = { "INSERT INTO vehicles (tenant_id, nickname) VALUES ($1, 'new')", x.tenant }, -- currency: the tenant's
      reminders = { "INSERT INTO reminders (tenant_id, vehicle_id, title, due_mileage) VALUES ($1, $2, 'tyres', 9000)", x.tenant, v },
      vehicle_events = { "INSERT INTO vehicle_events (tenant_id, vehicle_id, type, occurred_at, mileage, payload) " ..
        "VALUES ($1, $2, 'odometer', '2030-01-01T00:00:00Z', 95000, '{\"source\": \"manual\"}')", x.tenant, v },
      vehicle_event_flags = { "INSERT INTO vehicle_event_flags (tenant_id, event_id, occurred_at, vehicle_id, flag, detail) " ..
        "VALUES ($1, gen_random_uuid(), now(), $2, 'implausible_jump', '{}')", x.tenant, v },
      audit_log = { "INSERT INTO audit_log (tenant_id, table_name, record_id, operation) VALUES ($1, 'x', gen_random_uuid(), 'insert')", x.tenant },
      fleet_groups = { "INSERT INTO fleet_groups (tenant_id, parent_id, name) VALUES ($1, $2, 'Hub')", x.tenant, x.group },
      vehicle_metrics_monthly = { "INSERT INTO vehicle_metrics_monthly VALUES ($1, $2, '1999-01-01', 0, 0, 0, 0, 0, 0, 0)",
        x.tenant, v },
      vehicle_costs_monthly = { "INSERT INTO vehicle_costs_monthly VALUES ($1, $2, '1999-01-01', 'EUR', 'fuel', 1, 1, 0, 0)",
        x.tenant, v },
      reminder_occurrences = { "INSERT INTO reminder_occurrences (tenant_id, reminder_id, seq) VALUES ($1, $2, 99)", x.tenant, x.reminder },
      notifications = { "INSERT INTO notifications (tenant_id, kind, payload) VALUES ($1, 'overdue', '{}')", x.tenant },
      group_permissions = { "INSERT INTO group_permissions (tenant_id, group_id, user_id, level) VALUES ($1, $2, $3, 'write')",
        x.tenant, x.group, x.users.owner },
    }
    local i = inserts[tbl]
    if not i then return generic_insert(tbl, X) end
    return i[1], { select(2, (table.unpack or unpack)(i)) }
  end

  -- true when the operation took effect (a row seen, written or removed).
  local function outcome(tbl, op, X, actor)
    return as(actor, function(db)
      local sql, args = statement(tbl, op, X)
      local unpack = table.unpack or unpack
      if op == "select" then
        local r, err, sqlstate = db:row(sql, unpack(args, 1, #args))
        if sqlstate == "42501" then return false end -- no grant at all
        assert(r, err)
        return r.n > 0
      end
      local affected, _, sqlstate = db:exec(sql, unpack(args, 1, #args))
      -- a row the policies let in but that duplicates the seeded one: the
      -- unique check comes after row-level security and every CHECK
      if op == "insert" and sqlstate == "23505" then return true end
      return affected ~= nil and affected > 0
    end)
  end

  local function tables()
    local rows = assert(owner:query("SELECT c.relname FROM pg_class c WHERE c.relnamespace = $1::regnamespace " ..
      "AND c.relkind IN ('r', 'p') AND NOT c.relispartition ORDER BY 1", owner:schema()))
    local out = {}
    for _, r in ipairs(rows) do if not NOT_TENANT_DATA[r.relname] then out[#out + 1] = r.relname end end
    return out
  end

  it("knows every table of the schema", function()
    for _, t in ipairs(tables()) do
      local kind = kinds[t]
      assert.is_true((OWN[t] == nil) ~= (kind == nil), t .. ": a kind recorded by protect_tenant_table, or an OWN row")
      if kind then assert.is_table(BY_KIND[kind], t .. ": unknown kind " .. kind) end
    end
  end)

  it("picks up a table added later from the catalog: matrix, audit and purge", function()
    assert.equal("mutable", kinds.probe_notes)
    local listed = false
    for _, t in ipairs(tables()) do listed = listed or t == "probe_notes" end
    assert.is_true(listed)
    local t = owner:value("INSERT INTO tenants (name) VALUES ('Probe') RETURNING id")
    local boss = H.user(owner, t, "owner")
    local v = owner:value("INSERT INTO vehicles (tenant_id) VALUES ($1) RETURNING id", t)
    local note = app:as({ tenant = t, user = boss }, function(db)
      return motomind.assert(db:value("INSERT INTO probe_notes (tenant_id, vehicle_id, body, created_by) " ..
        "VALUES ($1, $2, 'hello', gen_random_uuid()) RETURNING id", t, v))
    end)
    assert.equal(boss, owner:value("SELECT created_by FROM probe_notes WHERE id = $1", note))
    assert.equal(1, owner:value("SELECT count(*) FROM audit_log WHERE table_name = 'probe_notes' AND record_id = $1 " ..
      "AND operation = 'insert' AND actor = $2", note, boss))
    assert.is_true(app:as({ tenant = t, user = boss }, function(db) return db:value("SELECT delete_tenant()") end))
    motomind.assert(owner:value("SELECT purge_tenant($1)", t))
    assert.equal(0, owner:value("SELECT count(*) FROM probe_notes WHERE tenant_id = $1", t))
  end)

  it("forces row-level security on every table and partition", function()
    local rows = assert(owner:query("SELECT c.relname, c.relrowsecurity AND c.relforcerowsecurity AS forced " ..
      "FROM pg_class c WHERE c.relnamespace = $1::regnamespace AND c.relkind IN ('r', 'p')", owner:schema()))
    for _, r in ipairs(rows) do
      if not NOT_TENANT_DATA[r.relname] then assert.is_true(r.forced, r.relname) end
    end
  end)

  -- Policies call the context functions once per statement; a SQL function
  -- that cannot be inlined (SECURITY DEFINER, SET) plans its query on every
  -- call (0.2-0.55 ms each: most of a page read by the application role).
  it("calls only functions that keep their plans or are inlined from its policies", function()
    -- (the functions policies name, from pg_depend; and every SECURITY
    -- DEFINER SQL function, as the ones they call are not recorded there)
    local rows = assert(owner:query([[
      SELECT p.oid::regprocedure::text AS fn FROM pg_depend d
        JOIN pg_policy y ON d.classid = 'pg_policy'::regclass AND d.objid = y.oid
        JOIN pg_proc p ON d.refclassid = 'pg_proc'::regclass AND p.oid = d.refobjid
       WHERE p.pronamespace = $1::regnamespace AND p.prolang = (SELECT oid FROM pg_language WHERE lanname = 'sql')
         AND (p.prosecdef OR p.proconfig IS NOT NULL)
      UNION
      SELECT p.oid::regprocedure::text FROM pg_proc p
       WHERE p.pronamespace = $1::regnamespace AND p.prosecdef AND NOT p.proretset
         AND p.prolang = (SELECT oid FROM pg_language WHERE lanname = 'sql')]], owner:schema()))
    local names = {}
    for _, r in ipairs(rows) do names[#names + 1] = r.fn end
    assert.same({}, names)
  end)

  -- An event's created_by is stamped by its column default for every row a
  -- COPY writes: a function call there (PL/pgSQL, a GUC level saved and
  -- restored) cost a fifth of the rules' time per imported row (0026).
  it("stamps an event's author by a default PostgreSQL inlines (no function call per row)", function()
    local plan = {}
    for _, r in ipairs(assert(owner:query("EXPLAIN (VERBOSE, COSTS OFF) INSERT INTO vehicle_events " ..
        "(tenant_id, vehicle_id, type, occurred_at, payload) VALUES ($1, $2, 'odometer', now(), '{}')",
        ids.A.tenant, ids.A.vehicle))) do plan[#plan + 1] = r["QUERY PLAN"] end
    plan = table.concat(plan, "\n")
    assert.matches("current_setting%('motomind.user_id'::text, true%)", plan)
    assert.not_matches("current_user_id", plan)
    local id = app:as({ tenant = ids.A.tenant, user = ids.A.users.manager }, function()
      return motomind.assert(app:value("INSERT INTO vehicle_events (tenant_id, vehicle_id, type, occurred_at, payload) " ..
        "VALUES ($1, $2, 'odometer', '2025-03-01T00:00:00Z', '{\"source\": \"manual\"}') RETURNING id",
        ids.A.tenant, ids.A.vehicle))
    end)
    assert.equal(ids.A.users.manager, owner:value("SELECT created_by FROM vehicle_events WHERE id = $1", id))
  end)

  it("gives exactly the allowed outcome in every cell (tables x operations x actors)", function()
    local wrong, cells = {}, 0
    for _, tbl in ipairs(tables()) do
      local e = OWN[tbl] or BY_KIND[kinds[tbl]]
      for _, op in ipairs { "select", "insert", "update", "delete" } do
        for _, actor in ipairs(ACTORS) do
          for _, X in ipairs { "A", "B" } do
            local allowed
            if X == "A" then allowed = e[op][actor] ~= nil else allowed = (e["b_" .. op] or {})[actor] ~= nil end
            local got = outcome(tbl, op, X, actor)
            cells = cells + 1
            if got ~= allowed then
              wrong[#wrong + 1] = ("%s %s on tenant %s's rows as %s: %s, expected %s"):format(
                op, tbl, X, actor, got and "allowed" or "refused", allowed and "allowed" or "refused")
            end
          end
        end
      end
    end
    assert.equal(0, #wrong, table.concat(wrong, "\n"))
    assert.equal(#tables() * 4 * #ACTORS * 2, cells)
  end)

  it("refuses direct access to partitions, and schema changes", function()
    owner:ensure_partitions { ahead = 1 }
    -- partitions made after the migrations are protected like the others
    local unprotected = owner:value("SELECT count(*) FROM pg_inherits i JOIN pg_class c ON c.oid = i.inhrelid " ..
      "WHERE i.inhparent = 'vehicle_events'::regclass AND NOT (c.relrowsecurity AND c.relforcerowsecurity " ..
      "AND EXISTS (SELECT 1 FROM pg_policy p WHERE p.polrelid = c.oid AND p.polname = 'writer_insert'))")
    assert.equal(0, unprotected)
    assert.is_true(owner:value("SELECT count(*) FROM pg_inherits WHERE inhparent = 'vehicle_events'::regclass") >= 3)
    local part = owner:value("SELECT partition FROM partition_coverage WHERE kind = 'partition' LIMIT 1")
    for _, sql in ipairs { "SELECT count(*) FROM " .. app:escape_identifier(part), "CREATE TABLE sneaky (x int)",
                           "UPDATE vehicle_events SET notes = 'x'", "TRUNCATE vehicle_events" } do
      as("owner", function(db)
        local ok, _, sqlstate = db:exec(sql)
        assert.is_nil(ok, sql)
        assert.equal("42501", sqlstate, sql)
      end)
    end
  end)

  it("shows nothing for a made-up tenant id, even with a real user", function()
    assert(app:exec("BEGIN"))
    app:query("SELECT set_config('motomind.tenant_id', gen_random_uuid()::text, true), " ..
      "set_config('motomind.user_id', $1, true)", ids.A.users.owner)
    assert.equal(0, app:value("SELECT count(*) FROM vehicles"))
    assert.is_nil((app:exec("INSERT INTO garages (tenant_id, name) VALUES ($1, 'x')", ids.A.tenant)))
    app:exec("ROLLBACK")
  end)

  describe("audit trail and soft deletes", function()
    it("stamp the actor from the context, record old and new values, and hide soft-deleted rows", function()
      local A = ids.A
      local manager = { tenant = A.tenant, user = A.users.manager, request_id = "req-42" }
      local v = app:as(manager, function(db)
        local id = motomind.assert(db:value("INSERT INTO vehicles (tenant_id, nickname, created_by) " ..
          "VALUES ($1, 'audited', gen_random_uuid()) RETURNING id", A.tenant))
        assert(db:exec("UPDATE vehicles SET color = 'red' WHERE id = $1", id))
        assert.is_true(motomind.assert(db:value("SELECT set_deleted('vehicles', $1, true)", id)))
        return id
      end)
      assert.equal(A.users.manager, owner:value("SELECT created_by FROM vehicles WHERE id = $1", v))
      assert.equal(A.users.manager, owner:value("SELECT deleted_by FROM vehicles WHERE id = $1", v))
      -- invisible to the tenant once soft-deleted
      assert.equal(0, app:as({ tenant = A.tenant, user = A.users.viewer }, function(db)
        return db:value("SELECT count(*) FROM vehicles WHERE id = $1", v) end))
      -- managers restore; only owners purge
      assert.is_true(app:as(manager, function(db) return db:value("SELECT set_deleted('vehicles', $1, false)", v) end))
      assert.equal(1, app:as({ tenant = A.tenant, user = A.users.viewer }, function(db)
        return db:value("SELECT count(*) FROM vehicles WHERE id = $1", v) end))
      local history = app:as({ tenant = A.tenant, user = A.users.owner }, function(db)
        return motomind.assert(db:query("SELECT operation, actor, request_id, old_values, new_values " ..
          "FROM audit_log WHERE table_name = 'vehicles' AND record_id = $1 ORDER BY id", v))
      end)
      local ops = {}
      for i, h in ipairs(history) do ops[i] = h.operation end
      assert.same({ "insert", "update", "soft_delete", "restore" }, ops)
      assert.equal(motomind.null, history[2].old_values.color)
      assert.equal("red", history[2].new_values.color)
      for i = 1, 3 do
        assert.equal(A.users.manager, history[i].actor)
        assert.equal("req-42", history[i].request_id)
      end
      -- purge: owners only, soft-deleted rows only
      app:as(manager, function(db) assert(db:value("SELECT set_deleted('vehicles', $1, true)", v)) end)
      local ok, err = pcall(app.as, app, manager, function(db)
        return motomind.assert(db:value("SELECT purge_deleted('vehicles')")) end)
      assert.is_false(ok)
      assert.matches("owners only", tostring(err))
      local purged = app:as({ tenant = A.tenant, user = A.users.owner }, function(db)
        return motomind.assert(db:value("SELECT purge_deleted('vehicles')")) end)
      assert.equal(1, purged)
      assert.equal(0, owner:value("SELECT count(*) FROM vehicles WHERE id = $1", v))
    end)

    it("are offered to Lua as motomind.records", function()
      local records = require "motomind.records"
      local A = ids.A
      local manager = { tenant = A.tenant, user = A.users.manager }
      local r = app:as(manager, function(db)
        local id = motomind.assert(db:value("INSERT INTO reminders (tenant_id, vehicle_id, title, due_on) " ..
          "VALUES ($1, $2, 'MOT', '2026-03-01') RETURNING id", A.tenant, A.vehicle))
        assert.is_true(motomind.assert(records.soft_delete(db, "reminders", id)))
        assert.is_false(records.soft_delete(db, "reminders", id)) -- already gone
        assert.is_true(motomind.assert(records.restore(db, "reminders", id)))
        return id
      end)
      local history = app:as(manager, function(db) return motomind.assert(records.history(db, "reminders", r)) end)
      assert.equal(3, #history)
      assert.equal("restore", history[3].operation)
      -- a capture session (a table added after vehicle_history) is in it too
      local session = motomind.assert(require("motomind.captures").start(app, manager,
        { vehicle_id = A.vehicle, flow = "fuel" }))
      local all = app:as(manager, function(db) return motomind.assert(records.vehicle_history(db, A.vehicle)) end)
      local mine, captured = 0, 0
      for _, h in ipairs(all) do
        if h.record_id == r then mine = mine + 1 end
        if h.record_id == session.id then captured = captured + 1 end
      end
      assert.equal(3, mine)
      assert.equal(1, captured)
      local ok, err = pcall(app.as, app, { tenant = A.tenant, user = A.users.viewer }, function(db)
        return motomind.assert(records.soft_delete(db, "reminders", r)) end)
      assert.is_false(ok)
      assert.equal("42501", err.sqlstate)
    end)

    it("delete a whole tenant: its owner closes it, then the owner role purges every row", function()
      local t = owner:value("INSERT INTO tenants (name) VALUES ('Leaving') RETURNING id")
      local boss, helper = H.user(owner, t, "owner"), H.user(owner, t, "manager")
      local v = owner:value("INSERT INTO vehicles (tenant_id) VALUES ($1) RETURNING id", t)
      assert(owner:exec("INSERT INTO vehicle_events (tenant_id, vehicle_id, type, occurred_at, payload) " ..
        "VALUES ($1, $2, 'odometer', now(), '{\"source\": \"manual\"}')", t, v))
      local ok, err = pcall(app.as, app, { tenant = t, user = helper }, function(db)
        return motomind.assert(db:value("SELECT delete_tenant()")) end)
      assert.is_false(ok)
      assert.equal("42501", err.sqlstate)
      local _, msg = owner:value("SELECT purge_tenant($1)", t)
      assert.matches("is not deleted", msg)
      assert.is_true(app:as({ tenant = t, user = boss }, function(db) return db:value("SELECT delete_tenant()") end))
      assert.equal(0, app:as({ tenant = t, user = boss }, function(db) return db:value("SELECT count(*) FROM vehicles") end))
      local removed = motomind.assert(owner:value("SELECT purge_tenant($1)", t))
      assert.is_true(removed >= 6)
      for _, tbl in ipairs { "vehicles", "vehicle_events", "memberships", "audit_log" } do
        assert.equal(0, owner:value("SELECT count(*) FROM " .. tbl .. " WHERE tenant_id = $1", t), tbl)
      end
      assert.equal(0, owner:value("SELECT count(*) FROM tenants WHERE id = $1", t))
      -- and the immutability of other tenants' events is intact
      assert.is_nil((owner:exec("DELETE FROM vehicle_events WHERE tenant_id = $1", ids.A.tenant)))
    end)

    it("keeps the audit log append-only", function()
      local ok = owner:exec("UPDATE audit_log SET request_id = 'x'")
      assert.is_nil(ok)
    end)
  end)
end)

-- Migration 0042: with the motomind_pg library, the context's lookups
-- (the membership check current_tenant_role(), the deleted vehicles) run
-- once per statement, not once per policy, and their answers follow the
-- statement's snapshot: a membership revoked or a vehicle deleted by a
-- commit elsewhere, or by the transaction itself, is seen by the next
-- statement, as when they ran per policy.
describe("the tenant context", function()
  local owner, other, t, car, user, app_role
  setup(function()
    owner = H.fresh()
    other = H.connect { schema = owner:schema() }
    t, car = H.tenant_with_vehicle(owner)
    user = H.user(owner, t, "viewer")
    assert(owner:exec("INSERT INTO vehicle_events (tenant_id, vehicle_id, type, occurred_at, payload) " ..
      "VALUES ($1, $2, 'odometer', '2025-01-01T00:00:00Z', '{\"source\": \"manual\"}')", t, car))
    app_role = owner:value("SELECT value FROM settings WHERE key = 'app_role'")
  end)
  teardown(function() other:close() H.drop(owner) end)

  local function cached()
    return owner:value("SELECT l.lanname = 'c' FROM pg_proc p JOIN pg_language l ON l.oid = p.prolang " ..
      "WHERE p.oid = 'current_tenant_id()'::regprocedure")
  end

  -- fn(count) inside one transaction as the application role in t's
  -- context; count() is how many times the lookups have run in it.
  local function as_app(fn)
    return owner:transaction(function()
      assert(owner:exec("SET LOCAL track_functions = 'pl'"))
      assert(owner:exec("SET LOCAL ROLE " .. owner:escape_identifier(app_role)))
      assert(owner:query("SELECT set_config('motomind.tenant_id', $1, true), set_config('motomind.user_id', $2, true)", t, user))
      return fn(function()
        return owner:value("SELECT sum(coalesce(pg_stat_get_xact_function_calls(to_regprocedure(f)), 0))::int FROM " ..
          "unnest(ARRAY['current_tenant_role()', 'deleted_vehicle_ids_lookup()', 'deleted_vehicle_ids()']) f")
      end)
    end)
  end

  -- events, supersessions, vehicles and flags: four policies on the tenant,
  -- two on deleted vehicles
  local PAGE = "SELECT count(*) FROM vehicle_events_effective e JOIN vehicles v ON v.id = e.vehicle_id " ..
    "LEFT JOIN vehicle_event_flags f ON f.event_id = e.id"

  it("is looked up once per statement when the library is installed, per policy otherwise", function()
    assert.equal(H.pg_library_installed(), cached(), "current_tenant_id() in C iff motomind_pg is installed")
    local calls, seen = as_app(function(count)
      local before = count()
      local n = owner:value(PAGE)
      return count() - before, n
    end)
    assert.equal(1, seen)
    if cached() then assert.equal(2, calls) else assert.is_true(calls > 4, calls) end
  end)

  it("keeps its answers for the next transaction while nothing commits in between, and no longer", function()
    if not cached() then return pending(H.NO_LIBRARY) end
    local function page_calls()
      return as_app(function(count)
        local before = count()
        assert.equal(1, owner:value(PAGE))
        return count() - before
      end)
    end
    -- (another session's commit, autovacuum's say, may come between two
    -- pages: then both look up; a few tries see two pages in a row)
    local kept = false
    for _ = 1, 10 do
      local first, second = page_calls(), page_calls()
      if second == 0 then
        assert.is_true(first <= 2, first)
        kept = true
        break
      end
    end
    assert.is_true(kept, "the next transaction's page looked its context up again with nothing committed")
    -- a commit elsewhere (a later snapshot): looked up again
    assert(other:exec("UPDATE tenants SET name = name WHERE id = $1", t))
    assert.equal(2, page_calls())
    -- a transaction that wrote sees its own writes: it looks up for itself
    local calls = as_app(function(count)
      assert(owner:exec("RESET ROLE"))
      assert(owner:exec("UPDATE tenants SET name = name WHERE id = $1", t))
      assert(owner:exec("SET LOCAL ROLE " .. owner:escape_identifier(app_role)))
      local before = count()
      assert.equal(1, owner:value(PAGE))
      return count() - before
    end)
    assert.equal(2, calls)
  end)

  it("follows the statement's snapshot: a revoked membership is seen by the next statement", function()
    local function revoke(db, at)
      assert(db:exec("UPDATE memberships SET deleted_at = " .. at .. " WHERE tenant_id = $1 AND user_id = $2", t, user))
    end
    local before, after = as_app(function()
      local n = owner:value(PAGE)
      revoke(other, "now()") -- committed elsewhere, read committed
      return n, owner:value(PAGE)
    end)
    assert.same({ 1, 0 }, { before, after })
    revoke(other, "NULL")
    before, after = as_app(function()
      local n = owner:value(PAGE)
      assert(owner:exec("RESET ROLE"))
      revoke(owner, "now()") -- by this transaction itself
      assert(owner:exec("SET LOCAL ROLE " .. owner:escape_identifier(app_role)))
      return n, owner:value(PAGE)
    end)
    assert.same({ 1, 0 }, { before, after })
    revoke(other, "NULL")
    -- revoked in a subtransaction rolled back: back again, though the next
    -- statement's snapshot is the same (a later transaction completed
    -- first, so the rollback moves no bound) and so is the command id
    local seen = as_app(function()
      local out = { owner:value(PAGE) }
      assert(owner:exec("SAVEPOINT s"))
      assert(owner:exec("RESET ROLE"))
      revoke(owner, "now()")
      assert(owner:exec("SET LOCAL ROLE " .. owner:escape_identifier(app_role)))
      assert(other:exec("UPDATE tenants SET name = name WHERE id = $1", t)) -- a later xid, committed
      out[2] = owner:value(PAGE)
      assert(owner:exec("ROLLBACK TO SAVEPOINT s"))
      out[3] = owner:value(PAGE)
      return out
    end)
    assert.same({ 1, 0, 1 }, seen)
  end)

  it("follows the statement's snapshot: a deleted vehicle's events leave the next statement", function()
    local before, after = as_app(function()
      local n = owner:value(PAGE)
      assert(other:exec("UPDATE vehicles SET deleted_at = now() WHERE id = $1", car))
      return n, owner:value("SELECT count(*) FROM vehicle_events")
    end)
    assert(other:exec("UPDATE vehicles SET deleted_at = NULL WHERE id = $1", car))
    assert.same({ 1, 0 }, { before, after })
  end)

  -- 0042 moves the two functions' bodies to their lookups from the catalog,
  -- and its down script moves them back: the same definitions as before.
  it("goes back to the functions 0041 left when rolled back", function()
    if not cached() then return pending(H.NO_LIBRARY) end
    local db = H.fresh { migrate = false }
    local function defs()
      return db:query("SELECT pg_get_functiondef(to_regprocedure(f)) AS def FROM " ..
        "unnest(ARRAY['current_tenant_id()', 'deleted_vehicle_ids()', 'current_tenant_id_lookup()']) f " ..
        "WHERE to_regprocedure(f) IS NOT NULL ORDER BY f")
    end
    assert(db:migrate { to = 41 })
    local before = defs()
    assert(db:migrate())
    assert.equal(3, #defs())
    assert.matches("LANGUAGE c", defs()[1].def, 1, true)
    assert(db:migrate { to = 41 })
    assert.same(before, defs())
    H.drop(db)
  end)

  it("runs nothing its caller could not run, and only its own lookup", function()
    if not cached() then return pending(H.NO_LIBRARY) end
    local ok, msg, sqlstate = owner:transaction(function()
      assert(owner:exec("REVOKE EXECUTE ON FUNCTION deleted_vehicle_ids_lookup() FROM PUBLIC"))
      assert(owner:exec("SET LOCAL ROLE " .. owner:escape_identifier(app_role)))
      assert(owner:query("SELECT set_config('motomind.tenant_id', $1, true), set_config('motomind.user_id', $2, true)", t, user))
      local got, m, code = owner:value("SELECT deleted_vehicle_ids()")
      return got, m, code
    end)
    assert.is_nil(ok)
    assert.equal("42501", sqlstate, msg)
    assert.matches("deleted_vehicle_ids_lookup", msg, 1, true)
    -- declared over the same C with no lookup beside it: refused by name
    assert(owner:exec("CREATE FUNCTION probe() RETURNS text LANGUAGE C STABLE AS 'motomind_pg', 'motomind_cached'"))
    ok, msg, sqlstate = owner:value("SELECT probe()")
    assert.is_nil(ok)
    assert.equal("42883", sqlstate)
    assert.matches("probe: no function .*probe_lookup%(%) returning text to run", msg)
    assert(owner:exec("CREATE FUNCTION probe_lookup() RETURNS integer LANGUAGE sql AS 'SELECT 1'"))
    ok, msg = owner:value("SELECT probe()")
    assert.is_nil(ok)
    assert.matches("returning text", msg, 1, true)
  end)
end)
