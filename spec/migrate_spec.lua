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
end)
