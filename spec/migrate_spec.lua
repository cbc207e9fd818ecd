local motomind = require "motomind"
local migrate = require "motomind.migrate"
local H = require "spec.helper"

-- A private copy of the migration files, to change without touching the real ones.
local function copy_migrations()
  local dir = os.tmpname()
  os.remove(dir)
  assert(os.execute("mkdir -p " .. dir .. " && cp " .. migrate.directory() .. "/*.sql " .. dir))
  return dir
end

-- The versions of the real migration files.
local function all_versions()
  local out = {}
  for i, m in ipairs(migrate.load()) do out[i] = m.version end
  return out
end

local function versions(db)
  local rows = motomind.assert(db:query("SELECT version FROM " .. db:qualify("schema_migrations") ..
    " ORDER BY version"))
  local out = {}
  for i, r in ipairs(rows) do out[i] = r.version end
  return out
end

describe("migrations", function()
  local db
  before_each(function() db = H.fresh { migrate = false } end)
  after_each(function() H.drop(db) end)

  it("apply into their own schema, recording version, name, checksum and who", function()
    local done = db:migrate()
    assert.is_true(#done >= 1)
    assert.same({ version = 1, name = "core_tables", direction = "up" }, done[1])
    local r = db:row("SELECT * FROM " .. db:qualify("schema_migrations") .. " WHERE version = 1")
    assert.equal("core_tables", r.name)
    assert.matches("^%x+$", r.checksum)
    assert.equal(64, #r.checksum)
    assert.equal(db:value("SELECT current_user"), r.applied_by)
    assert.matches("^%d%d%d%d%-", r.applied_at)
    assert.equal(db:schema(), db:value("SELECT relnamespace::regnamespace::text FROM pg_class " ..
      "WHERE oid = to_regclass($1)", db:qualify("vehicles")))
    assert.equal(motomind.null, db:value("SELECT to_regclass('public.vehicles')::text"))
  end)

  it("apply nothing the second time", function()
    db:migrate()
    assert.same({}, db:migrate())
  end)

  it("list applied and pending migrations", function()
    local before = db:migration_status()
    assert.equal("pending", before[1].state)
    db:migrate()
    local after = db:migration_status()
    assert.equal("applied", after[1].state)
    assert.is_string(after[1].applied_at)
  end)

  it("roll back through the down scripts and forward again", function()
    db:migrate()
    local down = db:migrate { to = 0 }
    assert.equal("down", down[#down].direction)
    assert.same({}, versions(db))
    assert.equal(motomind.null, db:value("SELECT to_regclass($1)::text", db:schema() .. ".vehicles"))
    db:migrate { to = 1 }
    assert.same({ 1 }, versions(db))
  end)

  -- Every object of a schema (and its private one) as text: triggers,
  -- policies, functions, constraints, relations with their grants.
  local function catalog_of(conn, schema)
    local rows = motomind.assert(conn:query([[
      WITH ns AS (SELECT oid FROM pg_namespace WHERE nspname IN ($1::text, $1::text || '_private'))
      SELECT 'trigger ' || pg_get_triggerdef(t.oid) AS what FROM pg_trigger t JOIN pg_class c ON c.oid = t.tgrelid
       WHERE c.relnamespace IN (SELECT oid FROM ns) AND NOT t.tgisinternal
      UNION ALL
      SELECT format('policy %s %s %s %s', p.polrelid::regclass, p.polname, pg_get_expr(p.polqual, p.polrelid),
                    pg_get_expr(p.polwithcheck, p.polrelid))
        FROM pg_policy p JOIN pg_class c ON c.oid = p.polrelid WHERE c.relnamespace IN (SELECT oid FROM ns)
      UNION ALL
      SELECT format('function %s %s %s', p.oid::regprocedure, md5(p.prosrc), p.proconfig)
        FROM pg_proc p WHERE p.pronamespace IN (SELECT oid FROM ns)
      UNION ALL
      SELECT format('constraint %s %s %s', k.conrelid::regclass, k.conname, pg_get_constraintdef(k.oid))
        FROM pg_constraint k WHERE k.connamespace IN (SELECT oid FROM ns)
      UNION ALL
      SELECT format('relation %s %s %s %s %s', c.oid::regclass, c.relkind, c.relrowsecurity, c.relforcerowsecurity, c.relacl)
        FROM pg_class c WHERE c.relnamespace IN (SELECT oid FROM ns)
      ORDER BY 1]], schema))
    local out = {}
    for i, r in ipairs(rows) do out[i] = r.what end
    return out
  end

  -- Schemas share a database (one per install, per spec): a down script
  -- must find what it undoes in its own schema only.
  it("roll back one schema without touching another's", function()
    local neighbour = H.fresh()
    local ok, err = pcall(function()
      local before = catalog_of(neighbour, neighbour:schema())
      assert.is_true(#before > 100)
      db:migrate()
      db:migrate { to = 0 }
      assert.same(before, catalog_of(neighbour, neighbour:schema()))
    end)
    H.drop(neighbour)
    assert(ok, err)
  end)

  it("refuse an applied migration whose file changed", function()
    local dir = copy_migrations()
    db:migrate { dir = dir }
    local f = assert(io.open(dir .. "/0001_core_tables.up.sql", "a"))
    f:write("\n-- edited after it was applied\n")
    f:close()
    local ok, err = pcall(db.migrate, db, { dir = dir })
    assert.is_false(ok)
    assert.matches("migration 0001_core_tables: checksum mismatch", err)
    assert.equal("changed", db:migration_status { dir = dir }[1].state)
    os.execute("rm -rf " .. dir)
  end)

  it("roll back a migration that fails, leaving no trace of it", function()
    local dir = copy_migrations()
    local f = assert(io.open(dir .. "/0099_broken.up.sql", "w"))
    f:write("CREATE TABLE half_done (x int);\nSELECT no_such_function();\n")
    f:close()
    f = assert(io.open(dir .. "/0099_broken.down.sql", "w"))
    f:write("DROP TABLE half_done;\n")
    f:close()
    local ok, err = pcall(db.migrate, db, { dir = dir })
    assert.is_false(ok)
    assert.matches("migration 0099_broken %(up%): function no_such_function%(%) does not exist", err.message)
    assert.equal("42883", err.sqlstate)
    assert.same(all_versions(), versions(db)) -- the good ones landed, each in its own transaction
    assert.equal(motomind.null, db:value("SELECT to_regclass($1)::text", db:schema() .. ".half_done"))
    os.execute("rm -rf " .. dir)
  end)

  -- db:transaction returns nil, message, ... (it does not raise) when BEGIN
  -- itself fails, as when the server went away between two migrations:
  -- migrate used to count the migration as applied and go on.
  it("stop, saying which migration, when its transaction cannot begin", function()
    db:migrate { to = 2 }
    local third = migrate.load()[3]
    local methods = getmetatable(db).__index
    local exec = methods.exec
    methods.exec = function(self, sql, ...) -- the server's refusal of BEGIN, as libpq reports a lost server
      if sql == "BEGIN" then return nil, "server closed the connection unexpectedly", "08006" end
      return exec(self, sql, ...)
    end
    local ok, err = pcall(db.migrate, db, {})
    methods.exec = exec
    assert.is_false(ok)
    assert.equal(("migration %04d_%s (up): server closed the connection unexpectedly"):format(third.version, third.name),
      err.message)
    assert.equal("08006", err.sqlstate)
    assert.same({ 1, 2 }, versions(db))
  end)

  it("reject malformed file sets", function()
    local dir = copy_migrations()
    os.remove(dir .. "/0001_core_tables.down.sql")
    assert.error_matches(function() migrate.load(dir) end, "both .up.sql and .down.sql are required")
    local f = assert(io.open(dir .. "/2_bad.sql", "w"))
    f:close()
    assert.error_matches(function() migrate.load(dir) end, "expected NNNN_name.up.sql")
    os.execute("rm -rf " .. dir)
  end)

  it("apply each migration once when two migrators start together", function()
    local cmd = ("%s %s/bin/motomind migrate --schema %s"):format(H.lua, H.root, db:schema())
    local out, ok = H.run(("(%s > %s.a 2>&1 & %s > %s.b 2>&1 & wait); cat %s.a %s.b; rm -f %s.a %s.b")
      :format(cmd, "$$", cmd, "$$", "$$", "$$", "$$", "$$"))
    assert.is_true(ok, out)
    local _, applied = out:gsub("applied +0001_core_tables", "")
    local _, uptodate = out:gsub("is up to date", "")
    local _, lines = out:gsub("applied +%d%d%d%d_", "")
    assert.equal(1, applied, out)
    assert.equal(1, uptodate, out)
    assert.equal(#all_versions(), lines, out)
    assert.same(all_versions(), versions(db))
  end)

  -- The cycle the suite once met between a down script's DDL and another
  -- session, made on purpose: the other session holds b and then waits for
  -- a, which the migration holds while it waits for b. The migration's
  -- backend detects the deadlock first (its deadlock_timeout is the
  -- shorter), is rolled back, and runs again once the other has committed.
  it("run a migration again when a deadlock rolled it back", function()
    local schema = db:escape_identifier(db:schema())
    assert(db:script(("CREATE SCHEMA %s; CREATE TABLE %s.a (); CREATE TABLE %s.b ()"):format(schema, schema, schema)))
    local dir = os.tmpname()
    os.remove(dir)
    assert(os.execute("mkdir -p " .. dir))
    for name, text in pairs { ["0001_deadlocked.up.sql"] = "LOCK TABLE a; LOCK TABLE b; CREATE TABLE migrated (x int);",
                              ["0001_deadlocked.down.sql"] = "DROP TABLE migrated;" } do
      local f = assert(io.open(dir .. "/" .. name, "w"))
      f:write(text)
      f:close()
    end
    local other = ("SET deadlock_timeout = '60s'; BEGIN; LOCK TABLE %s.b; SELECT pg_sleep(1); LOCK TABLE %s.a; COMMIT;")
      :format(schema, schema)
    local log = os.tmpname()
    assert(os.execute(("psql -X -q %s -c %s > /dev/null 2> %s &"):format(H.shell_quote(H.conninfo(db)),
      H.shell_quote(other), log)))
    local waited = 0 -- until the other session holds b
    while db:value("SELECT count(*)::int FROM pg_locks WHERE relation = $1::regclass AND granted AND pid <> " ..
        "pg_backend_pid()", db:schema() .. ".b") == 0 do
      assert(waited < 100, "the other session never locked b")
      db:value("SELECT pg_sleep(0.05)")
      waited = waited + 1
    end
    local before = db:value("SELECT deadlocks FROM pg_stat_database WHERE datname = current_database()")
    assert(db:exec("SET deadlock_timeout = '3s'")) -- checked once the other waits for a, after its 1 s sleep
    local done = db:migrate { dir = dir }
    assert(db:exec("RESET deadlock_timeout"))
    assert.same({ { version = 1, name = "deadlocked", direction = "up" } }, done)
    assert.same({ 1 }, versions(db))
    assert.is_true(db:value("SELECT to_regclass($1) IS NOT NULL", db:schema() .. ".migrated"))
    db:value("SELECT pg_stat_force_next_flush()") -- this backend's count of deadlocks, flushed when it goes idle
    db:value("SELECT pg_stat_clear_snapshot()")
    assert.is_true(db:value("SELECT deadlocks FROM pg_stat_database WHERE datname = current_database()") > before)
    os.execute("sleep 0.5")
    assert.equal("", H.read(log)) -- the other session committed (no error on its stderr)
    os.remove(log)
    os.execute("rm -rf " .. dir)
  end)

  -- A down migration restores what its up replaced by copying the earlier
  -- definitions (applied migrations never change, and each file stands
  -- alone): the one repetition the duplicate finder reports in sql/, kept
  -- deliberate by saying in the opening comment where the copy comes from.
  it("say in a down script's opening comment which migrations its restored definitions come from", function()
    local DEFINES = { "CREATE OR REPLACE FUNCTION", "CREATE FUNCTION", "CREATE OR REPLACE VIEW", "CREATE VIEW",
      "CREATE MATERIALIZED VIEW", "CREATE TRIGGER", "CREATE POLICY" }
    local unsaid = {}
    for _, m in ipairs(migrate.load()) do
      local f = assert(io.open(m.down))
      local text = f:read("*a")
      f:close()
      local opening = {}
      for line in text:gmatch("([^\n]*)\n") do
        if not line:match("^%-%-") then break end
        opening[#opening + 1] = line
      end
      opening = table.concat(opening, "\n")
      local upper, defines = text:upper(), false
      for _, d in ipairs(DEFINES) do defines = defines or upper:find(d, 1, true) ~= nil end
      local cites = false
      for n in opening:gmatch("%f[%d](%d%d%d%d)%f[%D]") do cites = cites or tonumber(n) < m.version end
      local generated = opening:find("GENERATED from sql/payloads.json", 1, true) ~= nil
      if defines and not cites and not generated then unsaid[#unsaid + 1] = m.down:match("[^/]*$") end
    end
    assert.same({}, unsaid)
  end)
end)
