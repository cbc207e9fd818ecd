# motomind — see README.md. `make demo` and `make test` work on a fresh
# Debian 12 machine: they install what is missing (as root) and start a
# throwaway PostgreSQL under the project when no database is configured.

LUA ?= lua5.4
PKG_LUA := $(if $(filter luajit,$(LUA)),luajit,lua5.4)
BUILD ?= $(if $(LUA_INCDIR),build/rock$(subst /,-,$(LUA_INCDIR)),build/$(LUA))
CORE := $(BUILD)/motomind/core.so

CC ?= cc
CFLAGS ?= -O2 -g
WARN := -std=c99 -D_POSIX_C_SOURCE=200809L -Wall -Wextra -Werror -Wshadow \
        -Wstrict-prototypes -Wmissing-prototypes -Wno-unused-parameter
# LuaRocks passes LUA_INCDIR; otherwise pkg-config finds the headers.
LUA_CFLAGS ?= $(if $(LUA_INCDIR),-I$(LUA_INCDIR),$(shell pkg-config --cflags $(PKG_LUA) 2>/dev/null))
DEP_CFLAGS = $(shell pkg-config --cflags libpq libcjson libcrypto)
DEP_LIBS = $(shell pkg-config --libs libpq libcjson libcrypto)
SRCS := $(wildcard src/*.c)
HDRS := $(wildcard src/*.h)

# Installation directories (LuaRocks passes its own).
PREFIX ?= /usr/local
LUADIR ?= $(PREFIX)/share/lua/5.4
LIBDIR ?= $(PREFIX)/lib/lua/5.4

.PHONY: all build deps demo test bench bench-report bench-scale bench-captures bench-sealed bench-openresty check-memory fuzz payload-migration distribution-plan schema install install-pg pg-module clean pg-start pg-stop

all build: $(CORE)

$(CORE): $(SRCS) $(HDRS)
	@mkdir -p $(dir $@)
	$(CC) $(CFLAGS) $(WARN) -fPIC -shared $(LUA_CFLAGS) $(DEP_CFLAGS) \
	  -o $@ $(SRCS) $(DEP_LIBS)

deps:
	@tools/deps

demo: deps
	@$(MAKE) --no-print-directory build pg-module
	@tools/with-db $(LUA) bin/motomind demo --out build/demo-report.html

test: deps
	@$(MAKE) --no-print-directory build pg-module LUA=lua5.4
	@$(MAKE) --no-print-directory build LUA=luajit
	@tools/with-db tools/run-suite

# Figures measured in one run on generated data; N events (default 200000).
N ?= 200000
bench: deps
	@$(MAKE) --no-print-directory build pg-module LUA=lua5.4
	@tools/with-db env LUA_PATH="lua/?.lua;lua/?/init.lua;;" LUA_CPATH="build/lua5.4/?.so;;" \
	  MOTOMIND_SQL=$(CURDIR)/sql lua5.4 bench/run.lua $(N)

# The yearly report of a 1,000-vehicle tenant with REPORT_EVENTS (1M) events.
bench-report: deps
	@$(MAKE) --no-print-directory build LUA=lua5.4
	@tools/with-db env LUA_PATH="lua/?.lua;lua/?/init.lua;;" LUA_CPATH="build/lua5.4/?.so;;" \
	  MOTOMIND_SQL=$(CURDIR)/sql lua5.4 bench/report.lua

# A node at scale: SCALE_EVENTS (10M) events of 1,000 tenants, 20,000 vehicles.
bench-scale: deps
	@$(MAKE) --no-print-directory build pg-module LUA=lua5.4
	@tools/with-db env LUA_PATH="lua/?.lua;lua/?/init.lua;;" LUA_CPATH="build/lua5.4/?.so;;" \
	  MOTOMIND_SQL=$(CURDIR)/sql lua5.4 bench/scale.lua

# The capture analytics views of a 1,000-vehicle tenant with CAPTURES (100k) sessions.
bench-captures: deps
	@$(MAKE) --no-print-directory build LUA=lua5.4
	@tools/with-db env LUA_PATH="lua/?.lua;lua/?/init.lua;;" LUA_CPATH="build/lua5.4/?.so;;" \
	  MOTOMIND_SQL=$(CURDIR)/sql lua5.4 bench/captures.lua

# What sealing a tenant's fields costs, against the same calls on a plain tenant.
bench-sealed: deps
	@$(MAKE) --no-print-directory build LUA=lua5.4
	@tools/with-db env LUA_PATH="lua/?.lua;lua/?/init.lua;;" LUA_CPATH="build/lua5.4/?.so;;" \
	  MOTOMIND_SQL=$(CURDIR)/sql lua5.4 bench/sealed.lua

# motomind in nginx (blocking, thread pool) against pgmoon, under wrk.
bench-openresty: deps
	@tools/deps bench
	@$(MAKE) --no-print-directory build LUA=lua5.4
	@$(MAKE) --no-print-directory build LUA=luajit
	@tools/with-db env LUA_PATH="lua/?.lua;lua/?/init.lua;;" LUA_CPATH="build/lua5.4/?.so;;" \
	  MOTOMIND_SQL=$(CURDIR)/sql lua5.4 bench/openresty.lua

# The payload rules in C inside PostgreSQL (src/pg/motomind_pg.c, optional:
# migration 0038 uses them when PostgreSQL can load the library, else the
# generated SQL rules run). install-pg puts it in PostgreSQL's library
# directory; pg-module does so when that directory is writable (as root),
# and otherwise says the rules stay in SQL.
PG_CONFIG ?= pg_config
PG_MODULE := build/pg/motomind_pg.so
$(PG_MODULE): src/pg/motomind_pg.c src/pg/context.c src/pg/walk.c src/payload.c src/payload.h src/text.c src/text.h
	@mkdir -p $(dir $@)
	$(CC) $(CFLAGS) -std=gnu99 -Wall -Wextra -Werror -Wmissing-prototypes -Wno-unused-parameter -fPIC -shared \
	  -I$(shell $(PG_CONFIG) --includedir-server) $(shell pkg-config --cflags libcjson) \
	  -o $@ src/pg/motomind_pg.c src/pg/context.c src/pg/walk.c src/payload.c src/text.c $(shell pkg-config --libs libcjson)
install-pg: $(PG_MODULE)
	install -C -m 755 $(PG_MODULE) $(DESTDIR)$(shell $(PG_CONFIG) --pkglibdir)/
pg-module: $(PG_MODULE)
	@dir=$$($(PG_CONFIG) --pkglibdir); if [ -w "$$dir" ]; then $(MAKE) --no-print-directory install-pg; \
	  else echo "motomind: $$dir is not writable, so the payload rules stay in SQL (make install-pg as root)" >&2; fi

check-memory: deps
	@$(MAKE) --no-print-directory build LUA=lua5.4
	@tools/with-db tools/run-suite --memory-only

# libFuzzer + ASan + UBSan over the payload codec and over the CSV importer
# (reader, parsing, mapping); FUZZ_SECONDS=60 each by default.
FUZZ_SECONDS ?= 60
FUZZ_CFLAGS := -g -O1 -fsanitize=fuzzer,address,undefined -fno-sanitize-recover=all
FUZZER := build/fuzz/payload_fuzz
CSV_FUZZER := build/fuzz/csv_fuzz
$(FUZZER): fuzz/payload_fuzz.c fuzz/schemas.h src/payload.c src/payload.h src/text.c src/text.h src/event.c src/event.h
	@mkdir -p $(dir $@)
	clang $(FUZZ_CFLAGS) $(DEP_CFLAGS) -o $@ fuzz/payload_fuzz.c src/payload.c src/text.c src/event.c $(DEP_LIBS) -lm
$(CSV_FUZZER): fuzz/csv_fuzz.c fuzz/schemas.h src/csv.c src/csv_spec.c src/box.c src/payload.c src/text.c $(HDRS)
	@mkdir -p $(dir $@)
	clang $(FUZZ_CFLAGS) -D_POSIX_C_SOURCE=200809L $(shell pkg-config --cflags lua5.4) $(DEP_CFLAGS) \
	  -o $@ fuzz/csv_fuzz.c src/csv.c src/csv_spec.c src/box.c src/payload.c src/text.c $(DEP_LIBS) $(shell pkg-config --libs lua5.4)
fuzz: $(FUZZER) $(CSV_FUZZER)
	@mkdir -p build/fuzz/corpus build/fuzz/csv_corpus
	$(FUZZER) -max_total_time=$(FUZZ_SECONDS) -max_len=4096 -print_final_stats=1 \
	  build/fuzz/corpus fuzz/seeds
	$(CSV_FUZZER) -max_total_time=$(FUZZ_SECONDS) -max_len=8192 -print_final_stats=1 \
	  build/fuzz/csv_corpus fuzz/csv_seeds

# Writes a new migration when sql/payloads.json changed (see README).
payload-migration: build
	@tools/gen-payload-migration

# Rewrites docs/design.md's distribution plan from a migrated schema's catalog.
distribution-plan: build
	@tools/with-db env LUA_PATH="lua/?.lua;lua/?/init.lua;;" LUA_CPATH="build/lua5.4/?.so;;" \
	  MOTOMIND_SQL=$(CURDIR)/sql lua5.4 tools/distribution_plan.lua docs/design.md

# docs/schema.md: the schema after every migration (pg_dump of a migrated one).
schema: build
	@tools/with-db env LUA_PATH="lua/?.lua;lua/?/init.lua;;" LUA_CPATH="build/lua5.4/?.so;;" \
	  MOTOMIND_SQL=$(CURDIR)/sql lua5.4 tools/schema_dump.lua docs/schema.md

pg-start:
	@tools/pg-local start
pg-stop:
	@tools/pg-local stop

install: $(CORE)
	mkdir -p $(DESTDIR)$(LIBDIR)/motomind $(DESTDIR)$(LUADIR)/motomind/sql/migrations
	cp $(CORE) $(DESTDIR)$(LIBDIR)/motomind/core.so
	cp lua/motomind/*.lua $(DESTDIR)$(LUADIR)/motomind/
	cp sql/migrations/*.sql $(DESTDIR)$(LUADIR)/motomind/sql/migrations/
	cp sql/payloads.json $(DESTDIR)$(LUADIR)/motomind/sql/
	mkdir -p $(DESTDIR)$(LUADIR)/motomind/sql/supabase
	cp sql/supabase/*.sql $(DESTDIR)$(LUADIR)/motomind/sql/supabase/

clean:
	rm -rf build
