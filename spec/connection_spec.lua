local motomind = require "motomind"
local H = require "spec.helper"

describe("connection", function()
  local db
  before_each(function() db = H.connect() end)
  after_each(function() db:close() end)

  it("gives up on a server that never answers after connect_timeout", function()
    local silent = assert(require("socket").bind("127.0.0.1", 0)) -- listens, never speaks
    local _, port = silent:getsockname()
    local db, err, sqlstate = motomind.connect(("host=127.0.0.1 port=%d dbname=x"):format(port), { connect_timeout = 2 })
    silent:close()
    assert.is_nil(db)
    assert.matches("timeout expired", err)
    assert.equal("08006", sqlstate)
  end)

  it("begins a transaction with a statement in one round trip (begin_with); a failure leaves nothing open", function()
    local db = H.connect()
    assert.is_true(db:begin_with("SELECT set_config('motomind.spec', $1, true)", "on"))
    assert.equal("intrans", db:transaction_status())
    assert.equal("on", db:value("SELECT current_setting('motomind.spec')"))
    assert(db:exec("COMMIT"))
    local ok, err, sqlstate = db:begin_with("SELECT 1 / $1::int", 0)
    assert.same({ nil, "division by zero", "22012" }, { ok, err, sqlstate })
    assert.equal("idle", db:transaction_status())
    assert(db:exec("BEGIN"))
    assert.has_error(function() db:begin_with("SELECT 1") end, "begin_with: a transaction is already open")
    assert(db:exec("ROLLBACK"))
    -- the connection is usable as before (out of pipeline mode)
    assert.equal(3, db:value("SELECT $1::int + 1", 2))
    db:close()
  end)

  it("runs a prepared statement after a context statement in one implicit transaction (query_prepared_after)", function()
    local db = H.connect()
    assert(db:prepare("spec_after", "SELECT current_setting('motomind.spec', true) AS seen, $1::int * 2 AS twice"))
    local rows = assert(db:query_prepared_after("SELECT set_config('motomind.spec', $1, true)", { "on" }, "spec_after", 21))
    assert.same({ { seen = "on", twice = 42 } }, rows)
    -- the setting ended with the statement's transaction; nothing is open
    assert.equal("idle", db:transaction_status())
    assert.equal("", db:value("SELECT current_setting('motomind.spec', true)"))
    -- a failure of either statement: nil, message, sqlstate; still nothing open
    local ok, err, sqlstate = db:query_prepared_after("SELECT 1 / $1::int", { 0 }, "spec_after", 1)
    assert.same({ nil, "division by zero", "22012" }, { ok, err, sqlstate })
    assert.equal("idle", db:transaction_status())
    ok, err, sqlstate = db:query_prepared_after("SELECT set_config('motomind.spec', $1, true)", { "on" }, "spec_after", "x")
    assert.same({ nil, 'invalid input syntax for type integer: "x"', "22P02" }, { ok, err, sqlstate })
    ok, err, sqlstate = db:query_prepared_after("SELECT 1", {}, "spec_no_such_statement")
    assert.same({ nil, 'prepared statement "spec_no_such_statement" does not exist', "26000" }, { ok, err, sqlstate })
    assert.equal("idle", db:transaction_status())
    -- inside a transaction the setting would outlive the statement: misuse
    assert(db:exec("BEGIN"))
    assert.has_error(function() db:query_prepared_after("SELECT 1", {}, "spec_after", 1) end,
      "query_prepared_after: a transaction is open (its context would change)")
    assert(db:exec("ROLLBACK"))
    assert.equal(3, db:value("SELECT $1::int + 1", 2))
    db:close()
  end)

  it("sends a statement without waiting (send) and reads what it did later (result)", function()
    local db = H.connect()
    assert(db:exec("CREATE TEMP TABLE spec_sent (n int)"))
    local clock = require("socket").gettime -- (wall time: a client waiting uses no CPU)
    local t0 = clock()
    assert.is_true(db:send("INSERT INTO spec_sent SELECT g FROM generate_series(1, $1::int) g, pg_sleep(0.3) s", 3))
    assert.is_true(clock() - t0 < 0.2, "send waited for the statement")
    -- the connection takes nothing else until the result is read
    assert.has_error(function() db:exec("SELECT 1") end,
      "attempt to use a connection whose statement from db:send() is running (db:result() first)")
    assert.equal(3, db:result())
    assert.is_true(clock() - t0 >= 0.3, "result did not wait for the statement")
    assert.has_error(function() db:result() end, "db:result(): no statement was sent (db:send)")
    -- a refusal: nil, message, sqlstate, detail, the connection usable after
    assert.is_true(db:send("SELECT 1 / $1::int", 0))
    local ok, err, sqlstate = db:result()
    assert.same({ nil, "division by zero", "22012" }, { ok, err, sqlstate })
    assert.equal(3, db:value("SELECT count(*) FROM spec_sent"))
    -- closed with a statement running: nothing left to read
    assert.is_true(db:send("SELECT pg_sleep(0.1)"))
    db:close()
    assert.has_error(function() db:result() end, "attempt to use a closed connection")
  end)

  it("reads its socket for the spin budget before blocking: a slow answer costs the budget's CPU once", function()
    -- Client CPU time (os.clock) while the server sleeps 0.2 s: spinning
    -- for up to 0.1 s burns most of that; blocking at once burns almost none.
    local function cpu_during_sleep(d)
      local t0 = os.clock()
      assert(d:query("SELECT pg_sleep(0.2)"))
      return os.clock() - t0
    end
    assert.equal(1000, db:set_spin(100000)) -- the default on a machine of two CPUs or more
    assert.is_true(cpu_during_sleep(db) > 0.05)
    assert.equal(100000, db:set_spin(0))
    assert.is_true(cpu_during_sleep(db) < 0.03)
    local spun = H.connect({ spin = 100000 })
    assert.is_true(cpu_during_sleep(spun) > 0.05)
    spun:close()
    assert.has_error(function() db:set_spin(-1) end, "bad argument #1 to 'set_spin' (expected 0 to 1000000 microseconds)")
    assert.has_error(function() motomind.connect(nil, { spin = 1.5 }) end,
      "connect: spin must be a whole number of microseconds from 0 to 1000000")
  end)

  it("answers the same with and without the spin: statements, prepared ones, pipelines, scripts, COPY, errors", function()
    local function run(d)
      local out = {}
      out[1] = d:query("SELECT $1::int + 1 AS n", 41)[1].n
      out[2] = d:exec("CREATE TEMP TABLE IF NOT EXISTS spin_t (n int)")
      assert(d:prepare("spin_p", "SELECT $1::text || 'x' AS s"))
      out[3] = d:query_prepared("spin_p", "a")[1].s
      out[4] = d:query_prepared_after("SELECT set_config('motomind.spec', $1, true)", { "pipelined" },
        "spin_p", "b")[1].s
      out[5] = d:script("SELECT 1; SELECT 2 AS two")[1].two
      out[6] = d:copy_in("COPY spin_t FROM STDIN", coroutine.wrap(function() coroutine.yield("1\n2\n") end))
      out[7] = select(3, d:query("SELECT 1 / $1::int", 0))
      out[8] = d:value("SELECT count(*) FROM spin_t")
      return out
    end
    db:set_spin(0)
    local blocking = run(db)
    local spinning = H.connect()
    assert.same(blocking, run(spinning))
    spinning:close()
    assert.same({ 42, 0, "ax", "bx", 2, 2, "22012", 2 }, blocking)
  end)

  it("keeps the server's notices for db:notices(), oldest first, then forgets them", function()
    local db = H.connect()
    assert(db:exec("DO $$ BEGIN RAISE NOTICE 'hello %', 1; RAISE WARNING 'careful'; END $$"))
    assert.same({ "NOTICE:  hello 1", "WARNING:  careful" }, db:notices())
    assert.same({}, db:notices())
    -- past 64 KiB: counted, not kept
    assert(db:exec("DO $$ BEGIN FOR i IN 1..1000 LOOP RAISE NOTICE '%', repeat('x', 100); END LOOP; END $$"))
    local kept = db:notices()
    assert.is_true(#kept > 500 and #kept < 1000)
    assert.matches("^%(%d+ more notices not kept%)$", kept[#kept])
    db:close()
    assert.same({}, db:notices())
  end)

  it("connects from DATABASE_URL and reports failures as nil, message, sqlstate", function()
    assert.equal("ok", db:status())
    assert.is_true(db:server_version() >= 150000)
    local bad, err, sqlstate = motomind.connect("postgresql://nobody@127.0.0.1:1/none")
    assert.is_nil(bad)
    assert.matches("127.0.0.1", err)
    assert.equal("08006", sqlstate)
  end)

  it("closes once, however often close is called", function()
    assert.is_true(db:close())
    assert.is_true(db:close())
    assert.equal("closed", db:status())
    assert.has_error(function() db:query("SELECT 1") end, "attempt to use a closed connection")
  end)

  -- Whether the server session pid has ended (waiting up to 2.5 s for it).
  local function session_ended(pid)
    local probe = H.connect()
    local alive
    for _ = 1, 50 do
      alive = probe:value("SELECT count(*) FROM pg_stat_activity WHERE pid = $1", pid)
      if alive == 0 then break end
      os.execute("sleep 0.05")
    end
    probe:close()
    return alive == 0
  end

  it("closes on garbage collection, ending the server session", function()
    local pid = H.connect():backend_pid() -- unreferenced at once
    collectgarbage() collectgarbage()
    assert.is_true(session_ended(pid))
  end)

  if _VERSION >= "Lua 5.4" then
    it("closes a to-be-closed variable at the end of its scope", function()
      local f = assert(load([[
        local motomind, H = ...
        local inner
        do
          local c <close> = H.connect()
          inner = c
        end
        return inner:status()
      ]]))
      assert.equal("closed", f(motomind, H))
    end)
  end

  it("converts results by type", function()
    local r = db:row([[SELECT 7::int2 AS a, 2147483647::int4 AS b, 9007199254740993::int8 AS c,
      12345.678901234567890::numeric AS d, true AS e, false AS f, 1.5::float8 AS g,
      'NaN'::float8 AS h, '{"x":[1,{"y":[]}],"z":null}'::jsonb AS i, '[]'::json AS j,
      DATE '2025-01-20' AS k, TIMESTAMPTZ '2025-01-20 10:00:00+00' AS l,
      TIMESTAMP '2025-01-20 10:00:00.5' AS m, 'text'::text AS n, NULL::int AS o,
      '5f0c8a3c-16bb-4d38-9a5b-2f1b0b5f3a10'::uuid AS p]])
    assert.equal(7, r.a)
    assert.equal(2147483647, r.b)
    if math.type then
      assert.equal(9007199254740993, r.c)
      assert.equal("integer", math.type(r.c))
    else
      assert.equal("9007199254740993", r.c) -- beyond 2^53 stays exact, as text
    end
    assert.equal("12345.678901234567890", r.d)
    assert.is_true(r.e)
    assert.is_false(r.f)
    assert.equal(1.5, r.g)
    assert.is_true(r.h ~= r.h)
    assert.same({ 1, { y = {} } }, r.i.x)
    assert.equal(motomind.null, r.i.z)
    assert.equal('{"x":[1,{"y":[]}],"z":null}', motomind.json.encode(r.i))
    assert.equal("[]", motomind.json.encode(r.j))
    assert.equal("2025-01-20", r.k)
    assert.matches("^2025%-01%-20T%d%d:00:00[+-]%d%d:%d%d$", r.l)
    assert.equal("2025-01-20T10:00:00.5", r.m)
    assert.equal("text", r.n)
    assert.equal(motomind.null, r.o)
    assert.equal("5f0c8a3c-16bb-4d38-9a5b-2f1b0b5f3a10", r.p)
  end)

  it("writes timestamptz as ISO 8601 with a full offset in any session time zone", function()
    db:exec("SET TimeZone = 'Asia/Kolkata'")
    assert.equal("2025-01-20T15:30:00+05:30",
      db:value("SELECT TIMESTAMPTZ '2025-01-20 10:00:00+00'"))
    db:exec("SET TimeZone = 'UTC'")
    assert.equal("2025-01-20T10:00:00+00:00",
      db:value("SELECT TIMESTAMPTZ '2025-01-20 10:00:00+00'"))
  end)

  it("binds every value as a parameter, never as SQL", function()
    local evil = "x'); DROP TABLE pg_class; --"
    assert.equal(evil, db:value("SELECT $1::text", evil))
    local r = db:row("SELECT $1::int AS a, $2::float8 AS b, $3::bool AS c, $4::text AS d, " ..
      "$5::jsonb AS e, $6::numeric AS f, $7::int AS g",
      42, 0.1, true, motomind.null, { k = { 1, 2 } }, 74.33, nil)
    assert.equal(42, r.a)
    assert.equal(0.1, r.b)
    assert.is_true(r.c)
    assert.equal(motomind.null, r.d)
    assert.same({ k = { 1, 2 } }, r.e)
    assert.equal("74.33", r.f)
    assert.equal(motomind.null, r.g)
    assert.equal("Infinity", db:value("SELECT $1::float8::text", math.huge))
  end)

  it("returns server errors as nil, message, sqlstate, detail", function()
    db:exec("CREATE TEMP TABLE t (id int PRIMARY KEY, n int CHECK (n > 0))")
    assert.equal(1, db:exec("INSERT INTO t VALUES (1, 1)"))
    local ok, msg, sqlstate, detail = db:exec("INSERT INTO t VALUES (1, 2)")
    assert.is_nil(ok)
    assert.equal('duplicate key value violates unique constraint "t_pkey"', msg)
    assert.equal("23505", sqlstate)
    assert.equal("t_pkey", detail.constraint)
    assert.equal("t", detail.table)
    assert.equal("Key (id)=(1) already exists.", detail.detail)
    ok, msg, sqlstate = db:query("SELEC 1")
    assert.is_nil(ok)
    assert.equal("42601", sqlstate)
    assert.matches("syntax error", msg)
    -- The connection stays usable after an error.
    assert.equal(1, db:value("SELECT 1"))
  end)

  it("raises on misuse, naming the argument", function()
    assert.has_error(function() db:query(nil) end)
    assert.error_matches(function() db:query("SELECT $1", function() end) end,
      "cannot bind a function as parameter %$1")
    assert.error_matches(function() db:query("SELECT $1::jsonb", { f = print }) end,
      "parameter %$1%.f: cannot encode a function")
    assert.error_matches(function() db:query("SELECT $1", "a\0b") end, "NUL byte")
    assert.error_matches(function() motomind.connect(42) end, "bad argument #1 to 'connect'")
    -- the context's misuse is blamed on the line that called (as liolib does)
    for _, call in ipairs {
      { function() db:as(42, print) end, "bad argument #1 to 'as' %(table expected, got number%)" },
      { function() db:as({}, 42) end, "bad argument #2 to 'as' %(function expected, got number%)" },
      { function() db:read_as_generic(nil, print) end, "bad argument #1 to 'read_as_generic'" },
      { function() db:read_prepared_as(42, "spec_q", "SELECT 1") end, "bad argument #1 to 'read_prepared_as'" },
    } do
      local ok, err = pcall(call[1])
      assert.is_false(ok)
      assert.matches("^[^:]*connection_spec%.lua:%d+: " .. call[2], err)
    end
  end)

  it("refuses COPY through query() and stays usable", function()
    db:exec("CREATE TEMP TABLE c (x int)")
    local ok, msg, sqlstate = db:query("COPY c FROM STDIN")
    assert.is_nil(ok)
    assert.matches("copy API", msg)
    assert.equal("0A000", sqlstate)
    assert.equal(0, db:value("SELECT count(*) FROM c"))
  end)

  it("prepares statements once and runs them with bound values", function()
    assert.is_true(db:prepare("twice", "SELECT $1::int * 2 AS n"))
    assert.equal(42, db:query_prepared("twice", 21)[1].n)
    assert.equal(motomind.null, db:query_prepared("twice", nil)[1].n)
    local ok, _, sqlstate = db:query_prepared("missing", 1)
    assert.is_nil(ok)
    assert.equal("26000", sqlstate)
    ok, _, sqlstate = db:prepare("twice", "SELECT 1")
    assert.is_nil(ok)
    assert.equal("42P05", sqlstate)
  end)

  it("quotes identifiers with libpq", function()
    assert.equal('"we""ird name"', db:escape_identifier('we"ird name'))
  end)

  it("runs multi-statement scripts", function()
    assert.is_true(db:script("CREATE TEMP TABLE s (x int); INSERT INTO s VALUES (1), (2);"))
    assert.equal(2, db:value("SELECT count(*) FROM s"))
    local ok, _, sqlstate = db:script("INSERT INTO s VALUES (3); SELECT 1/0;")
    assert.is_nil(ok)
    assert.equal("22012", sqlstate)
    assert.same({ { n = 2 } }, db:script("INSERT INTO s VALUES (4); SELECT count(*)::int AS n FROM s WHERE x > 1"))
  end)

  it("owns the reader it is given: closing it (or collecting it) closes the reader", function()
    assert.is_nil(db:get_reader())
    local r = H.connect()
    db:set_reader(r)
    assert.equal(r, db:get_reader())
    local spare = H.connect()
    assert.has_error(function() r:set_reader(spare) end, "set_reader: this connection is another one's reader")
    assert.has_error(function() spare:set_reader(r) end,
      "bad argument #1 to 'set_reader' (already another connection's reader)")
    assert.has_error(function() db:set_reader(db) end, "bad argument #1 to 'set_reader' (a connection cannot be its own reader)")
    local spares = H.connect()
    spare:set_reader(spares)
    assert.has_error(function() db:set_reader(spare) end, "bad argument #1 to 'set_reader' (a reader cannot have a reader)")
    spare:close()
    assert.equal("closed", spares:status())
    local second = H.connect()
    db:set_reader(second) -- the first one is closed
    assert.equal("closed", r:status())
    db:close()
    assert.equal("closed", second:status())
    assert.is_nil(db:get_reader())
    -- a connection collected with its reader open: the reader ends too
    local pid
    do
      local c = H.connect()
      local reader = H.connect()
      pid = reader:backend_pid()
      c:set_reader(reader)
    end
    collectgarbage() collectgarbage()
    assert.is_true(session_ended(pid))
  end)
end)

describe("transactions", function()
  local db
  before_each(function()
    db = H.connect()
    db:exec("CREATE TEMP TABLE tx (x int)")
  end)
  after_each(function() db:close() end)

  local function count() return db:value("SELECT count(*) FROM tx") end

  it("commits and returns the function's results", function()
    local a, b = db:transaction(function(d, n)
      d:exec("INSERT INTO tx VALUES ($1)", n)
      return "done", n
    end, 5)
    assert.equal("done", a)
    assert.equal(5, b)
    assert.equal(1, count())
    assert.equal("idle", db:transaction_status())
  end)

  it("rolls back and re-raises the original error", function()
    local boom = setmetatable({}, { __tostring = function() return "boom" end })
    local ok, err = pcall(db.transaction, db, function(d)
      d:exec("INSERT INTO tx VALUES (1)")
      error(boom)
    end)
    assert.is_false(ok)
    assert.equal(boom, err)
    assert.equal(0, count())
    assert.equal("idle", db:transaction_status())
  end)

  it("nests with savepoints: an inner failure undoes only the inner work", function()
    db:transaction(function(d)
      d:exec("INSERT INTO tx VALUES (1)")
      local ok = pcall(d.transaction, d, function(inner)
        inner:exec("INSERT INTO tx VALUES (2)")
        error("inner fails")
      end)
      assert.is_false(ok)
      d:transaction(function(inner) inner:exec("INSERT INTO tx VALUES (3)") end)
    end)
    assert.same({ { x = 1 }, { x = 3 } }, db:query("SELECT x FROM tx ORDER BY x"))
  end)

  it("does not commit work after a failed statement that the function ignored", function()
    local ok, err = pcall(db.transaction, db, function(d)
      d:exec("INSERT INTO tx VALUES (1)")
      d:exec("SELECT 1/0") -- returns nil, error: ignored by the caller
    end)
    assert.is_false(ok)
    assert.equal("25P02", err.sqlstate)
    assert.equal(0, count())
  end)

  it("returns the failure, without calling fn, when the server has gone away", function()
    for _, call in ipairs {
      function(d, fn) return d:transaction(fn) end,
      function(d, fn) return d:as({ tenant = "00000000-0000-4000-8000-000000000000" }, fn) end,
    } do
      local victim = H.connect()
      assert(db:exec("SELECT pg_terminate_backend($1, 5000)", victim:backend_pid())) -- (waits until it ended)
      local called = false
      local ok, msg, sqlstate = call(victim, function() called = true end)
      assert.is_nil(ok)
      assert.is_false(called)
      assert.is_string(msg)
      assert.is_truthy(sqlstate == "57P01" or sqlstate:match("^08"), sqlstate)
      victim:close()
    end
  end)

  it("raises motomind.Error objects through motomind.assert", function()
    local ok, err = pcall(function() motomind.assert(db:exec("SELECT 1/0")) end)
    assert.is_false(ok)
    assert.equal("22012", err.sqlstate)
    assert.equal("division by zero (SQLSTATE 22012)", tostring(err))
  end)
end)
