local motomind = require "motomind"
local H = require "spec.helper"

describe("Supabase mode", function()
  local owner, t, other_tenant

  setup(function()
    owner = H.connect { schema = H.schema_name("supa") }
    local f = assert(io.open(H.root .. "/spec/fixtures/supabase_standin.sql"))
    -- Two suites may create the stand-in at once: serialize on a lock.
    assert(owner:query("SELECT pg_advisory_lock(hashtext('motomind.spec.supabase'))"))
    assert(owner:script(f:read("*a")))
    f:close()
    assert(owner:query("SELECT pg_advisory_unlock(hashtext('motomind.spec.supabase'))"))
    owner:migrate { supabase = true }
  end)
  teardown(function() H.drop(owner) end)

  it("creates a profile on signup and keeps its email in sync", function()
    local uid = owner:value("INSERT INTO auth.users (email, raw_user_meta_data) " ..
      "VALUES ('ada@x.example', '{\"full_name\": \"Ada\"}') RETURNING id")
    local profile = owner:row("SELECT email, display_name FROM users WHERE id = $1", uid)
    assert.same({ email = "ada@x.example", display_name = "Ada" }, profile)
    assert(owner:exec("UPDATE auth.users SET email = 'ada@y.example' WHERE id = $1", uid))
    assert.equal("ada@y.example", owner:value("SELECT email FROM users WHERE id = $1", uid))
    assert(owner:exec("DELETE FROM auth.users WHERE id = $1", uid))
    assert.equal(0, owner:value("SELECT count(*) FROM users WHERE id = $1", uid))
  end)

  it("reads the identity from the JWT claims, as the authenticated role", function()
    local uid = owner:value("INSERT INTO auth.users (email) VALUES ('fleet-' || gen_random_uuid() || '@x.example') RETURNING id")
    t = owner:value("INSERT INTO tenants (name) VALUES ('Mine') RETURNING id")
    other_tenant = owner:value("INSERT INTO tenants (name) VALUES ('Theirs') RETURNING id")
    assert(owner:exec("INSERT INTO memberships (tenant_id, user_id, role) VALUES ($1, $2, 'manager')", t, uid))
    for _, tenant in ipairs { t, other_tenant } do
      assert(owner:exec("INSERT INTO vehicles (tenant_id, nickname) VALUES ($1, 'car')", tenant))
    end
    local function as_jwt(claims, fn)
      assert(owner:exec("BEGIN"))
      assert(owner:exec("SET LOCAL ROLE authenticated"))
      assert(owner:query("SELECT set_config('request.jwt.claims', $1, true), " ..
        "set_config('motomind.maintenance', 'off', true)", claims))
      local ok, a, b = pcall(fn, owner)
      owner:exec("ROLLBACK")
      assert(ok, a)
      return a, b
    end
    local claims = motomind.json.encode { sub = uid, role = "authenticated", tenant_id = t }
    as_jwt(claims, function(db)
      assert.is_false(db:value("SELECT rolsuper OR rolbypassrls FROM pg_roles WHERE rolname = current_user"))
      assert.equal(uid, db:value("SELECT current_user_id()"))
      assert.equal(1, db:value("SELECT count(*) FROM vehicles"))
      assert.equal(t, db:value("SELECT tenant_id FROM vehicles"))
      assert.equal(1, db:exec("INSERT INTO vehicles (tenant_id, nickname) VALUES ($1, 'new')", t))
    end)
    -- app_metadata.tenant_id works too; a tenant the user is not in shows nothing
    as_jwt(motomind.json.encode { sub = uid, app_metadata = { tenant_id = t } }, function(db)
      assert.equal(1, db:value("SELECT count(*) FROM vehicles"))
    end)
    as_jwt(motomind.json.encode { sub = uid, tenant_id = other_tenant }, function(db)
      assert.equal(0, db:value("SELECT count(*) FROM vehicles"))
      assert.is_nil((db:exec("INSERT INTO vehicles (tenant_id) VALUES ($1)", other_tenant)))
    end)
    as_jwt("", function(db) assert.equal(0, db:value("SELECT count(*) FROM vehicles")) end)
    -- claims changed inside one transaction: the next statement reads under
    -- them (the context's lookups, kept per statement by motomind_pg, are
    -- keyed by the JWT's claims too)
    as_jwt(claims, function(db)
      local seen = { db:value("SELECT count(*) FROM vehicles") }
      assert(db:query("SELECT set_config('request.jwt.claims', $1, true)",
        motomind.json.encode { sub = uid, tenant_id = other_tenant }))
      seen[2] = db:value("SELECT count(*) FROM vehicles")
      assert(db:query("SELECT set_config('request.jwt.claims', $1, true)", claims))
      seen[3] = db:value("SELECT count(*) FROM vehicles")
      assert.same({ 1, 0, 1 }, seen)
    end)
  end)

  it("trusts the verified JWT over motomind.user_id, keeps email Supabase's, and takes sign-ups without one", function()
    local uid = owner:value("INSERT INTO auth.users (email) VALUES ('jwt-' || gen_random_uuid() || '@x.example') RETURNING id")
    local mallory = owner:value("INSERT INTO auth.users (email) VALUES ('m-' || gen_random_uuid() || '@x.example') RETURNING id")
    local phone = owner:value("INSERT INTO auth.users (email) VALUES (NULL) RETURNING id")
    assert.equal(1, owner:value("SELECT count(*) FROM users WHERE id = $1 AND email IS NULL", phone))
    assert(owner:exec("BEGIN"))
    assert(owner:exec("SET LOCAL ROLE authenticated"))
    assert(owner:query("SELECT set_config('request.jwt.claims', $1, true), set_config('motomind.user_id', $2, true), " ..
      "set_config('motomind.maintenance', 'off', true)", motomind.json.encode { sub = uid }, mallory))
    local who = owner:value("SELECT current_user_id()")
    local _, _, sqlstate = owner:exec("UPDATE users SET email = 'victim@x.example' WHERE id = $1", uid)
    owner:exec("ROLLBACK")
    assert.equal(uid, who)
    assert.equal("42501", sqlstate)
  end)

  it("rolls back to motomind's own context", function()
    owner:migrate { to = 5, supabase = true }
    assert.equal(motomind.null, owner:value("SELECT to_regprocedure($1)::text", owner:schema() .. ".sync_auth_user()"))
    assert.equal(0, owner:value("SELECT count(*) FROM pg_trigger WHERE tgname = $1", owner:schema() .. "_profile"))
  end)
end)
