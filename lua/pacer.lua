-- pacer.lua: the Lua half of the `pacer` module and of the plugin sandbox,
-- embedded in the binary. pacermod.c runs it once per Lua state with the C
-- primitives (`core`: sleep, spawn, child, next_done, cancel, semaphore,
-- pool, exec, log, ...) and the expression prelude's table; it returns the
-- table M below, whose functions the C side calls: new_env, load_plugin,
-- check_input, prepare_with, make_ctx, inline_args.
--
-- What is built here rather than in C: everything that only combines
-- primitives (gather, timeout, log, json), the plugin environment (the
-- standard library minus what blocks the loop or escapes it: see
-- docs/plugins.md for the exact list) and the checking of plugin inputs.
local core, P, json = ...
local M = {}

local ro, unwrap, is_ro, H = P.ro, P.unwrap, P.is_ro, P.helpers
local type, pairs, ipairs, select, error, tostring, setmetatable, rawset, load, pcall, xpcall =
  type, pairs, ipairs, select, error, tostring, setmetatable, rawset, load, pcall, xpcall
local pack, unpack, concat = table.pack, table.unpack, table.concat
local mtype, floor = math.type, math.floor
local sformat = string.format

---------------------------------------------------------------- the pacer module

local pacer = {}
M.module = pacer

pacer.sleep = core.sleep
pacer.spawn = core.spawn
pacer.semaphore = core.semaphore
pacer.pool = core.pool
pacer.exec = core.exec
pacer.secret = H.secret
pacer.now = H.now
-- issue 15: the encoding helpers of expressions (parse_url gives a plain table here)
pacer.base64_encode, pacer.base64_decode = H.base64_encode, H.base64_decode
pacer.base64url_encode, pacer.base64url_decode = H.base64url_encode, H.base64url_decode
pacer.sha256, pacer.hmac_sha256, pacer.urldecode = H.sha256, H.hmac_sha256, H.urldecode
pacer.parse_url = function(url) return unwrap(H.parse_url(url)) end
pacer.null = json.null

local function callable(f)
  if type(f) == "function" then
    return true
  end
  local mt = getmetatable(f)
  return type(mt) == "table" and mt.__call ~= nil
end

-- pacer.gather(fn, ...) -> r1, r2, ...       (first result of each function)
-- pacer.gather(list, {concurrency=, fail_fast=}) -> {r1, r2, ...}
-- Each function runs in its own coroutine (a child of the caller: closing
-- the caller closes them). The first error cancels the running siblings
-- (fail_fast, the default) and is re-raised as it was raised; with
-- fail_fast = false every function runs and the first error is raised at
-- the end.
function pacer.gather(first, ...)
  local fns, n, opts, list_form
  if type(first) == "table" and not callable(first) then
    list_form, fns = true, first
    n = #first
    opts = (...) or {}
    if type(opts) ~= "table" then
      error("pacer.gather(list, opts): opts must be a table, got " .. type(opts), 2)
    end
  else
    fns = pack(first, ...)
    n = fns.n
    opts = {}
  end
  for i = 1, n do
    if not callable(fns[i]) then
      error(sformat("pacer.gather: argument %d is a %s, not a function", i, type(fns[i])), 2)
    end
  end
  local limit = opts.concurrency or n
  if mtype(limit) ~= "integer" and not (type(limit) == "number" and limit == floor(limit)) then
    error("pacer.gather: concurrency must be a whole number", 2)
  end
  if limit < 1 then
    limit = 1
  end
  local fail_fast = opts.fail_fast ~= false

  local results, index_of, live = {}, {}, {}
  local running, nexti, first_err, failed = 0, 1, nil, false
  while true do
    while nexti <= n and running < limit and not (failed and fail_fast) do
      local h = core.child(fns[nexti])
      index_of[h], live[h] = nexti, true
      running, nexti = running + 1, nexti + 1
    end
    if running == 0 then
      break
    end
    local h, ok, payload = core.next_done()
    live[h], running = nil, running - 1
    if ok then
      results[index_of[h]] = payload[1]
    elseif not failed then
      failed, first_err = true, payload
      if fail_fast then
        for other in pairs(live) do
          core.cancel(other)
        end
        live, running = {}, 0
      end
    end
  end
  if failed then
    error(first_err, 0)
  end
  if list_form then
    return results
  end
  return unpack(results, 1, n)
end

-- pacer.timeout(seconds, fn, ...): runs fn(...) in a child coroutine with a
-- deadline; returns what fn returns, or raises "timed out after Ns" (the
-- child is closed: its <close> variables run, its operations are cancelled).
function pacer.timeout(seconds, fn, ...)
  if type(seconds) ~= "number" or seconds ~= seconds or seconds < 0 then
    error("pacer.timeout(seconds, fn): seconds must be a number >= 0", 2)
  end
  if not callable(fn) then
    error("pacer.timeout(seconds, fn): fn must be a function", 2)
  end
  local args = pack(...)
  local work = core.child(function() return fn(unpack(args, 1, args.n)) end)
  local timer = core.child(core.sleep, seconds)
  local h, ok, payload = core.next_done()
  if h == work then
    core.cancel(timer)
    if ok then
      return unpack(payload, 1, payload.n)
    end
    error(payload, 0)
  end
  core.cancel(work)
  error(sformat("timed out after %ss (pacer.timeout)", P.to_text(seconds)), 2)
end

local function log_text(...)
  local n = select("#", ...)
  local parts = {}
  for i = 1, n do
    parts[i] = P.to_text((select(i, ...)))
  end
  return concat(parts, " ")
end

pacer.log = {}
for _, level in ipairs({ "debug", "info", "warn", "error" }) do
  pacer.log[level] = function(...)
    core.log(level, log_text(...))
  end
end

pacer.json = {
  encode = function(v)
    local ok, r = pcall(P.to_json, v)
    if not ok then
      error("pacer.json.encode: " .. tostring(r), 2)
    end
    return r
  end,
  decode = function(s)
    return P.decode_json(s, "pacer.json.decode", 3)
  end,
  null = json.null,
  -- object(t): t encodes as a JSON object even when empty ({}, not []).
  object = function(t)
    if type(t) ~= "table" then
      error("pacer.json.object expects a table, got " .. type(t), 2)
    end
    return json.object(t)
  end,
}

---------------------------------------------------------------- pacer.http

-- Present only when the binary has the HTTP module: core.http_request then
-- takes one table of options and yields until the response is complete.
if core.http_request then
  local http = {}
  function http.request(opts)
    if type(opts) ~= "table" then
      error("pacer.http.request expects a table of options", 2)
    end
    return core.http_request(opts)
  end
  for _, m in ipairs({ "get", "head", "delete", "options", "post", "put", "patch" }) do
    http[m] = function(url, opts)
      local o = {}
      for k, v in pairs(opts or {}) do o[k] = v end
      o.method, o.url = m:upper(), url
      return core.http_request(o)
    end
  end
  pacer.http = http
end

-- A library view: values as they are (pacer.null is not read as nil).
local pacer_ro = P.ro_lib(pacer)
local pacer_log_ro = pacer_ro.log -- ctx.log: read-only, as every plugin shares it

---------------------------------------------------------------- the sandbox

-- The standard library a plugin sees. Removed, because they block the loop
-- or reach outside pacer: io, os (except time, clock, date), package,
-- require (replaced by a sibling-module require), debug (except traceback),
-- dofile, loadfile, load of binary chunks, collectgarbage options that stop
-- or retune the collector. Library tables are read-only views shared by
-- every plugin, so one plugin cannot change another's `string`.
local base = {}
for _, name in ipairs({ "assert", "error", "ipairs", "next", "pairs", "pcall", "select",
                        "tonumber", "tostring", "type", "rawequal", "rawlen",
                        "rawget", "getmetatable", "_VERSION" }) do
  base[name] = _G[name]
end
-- setmetatable keeps __gc finalizers under pacer's guards (gc.c).
base.setmetatable = core.setmetatable

-- xpcall: once the guard has stopped the code (past its deadline), the
-- message handler is not called -- Lua would run it with hooks off, where
-- nothing could stop it again (luahost.h, "How a tripped guard stops code").
local guard_tripped = core.guard_tripped
function base.xpcall(f, msgh, ...)
  if type(msgh) ~= "function" then
    return xpcall(f, msgh, ...) -- Lua's own error for a bad handler
  end
  return xpcall(f, function(e)
    if guard_tripped() then
      return e
    end
    return msgh(e)
  end, ...)
end
base.string = ro(string)
base.table = ro(table)
base.math = ro(math)
base.utf8 = ro(utf8)
base.os = ro({ time = core.os_time, clock = core.os_clock, date = core.os_date })
base.debug = ro({ traceback = core.traceback })
base.pacer = pacer_ro

function base.rawset(t, k, v)
  if is_ro(t) then
    error("attempt to modify a read-only value", 2)
  end
  return rawset(t, k, v)
end

function base.print(...)
  local n = select("#", ...)
  local parts = {}
  for i = 1, n do
    parts[i] = tostring((select(i, ...)))
  end
  core.out(concat(parts, "\t"))
end

local gc_allowed = { count = true, collect = true, step = true, isrunning = true }
function base.collectgarbage(opt, arg)
  opt = opt or "collect"
  if not gc_allowed[opt] then
    error("collectgarbage(\"" .. tostring(opt) .. "\") is not available to plugins", 2)
  end
  return collectgarbage(opt, arg)
end

-- Coroutines: user coroutines work as usual, but pacer's own (a step's, or
-- one made by pacer.spawn/gather) cannot be resumed, closed or yielded by
-- hand: the event loop owns them.
local co = coroutine
local function not_managed(c, what)
  if core.is_managed(c) then
    error(what .. ": this coroutine belongs to pacer (a step or a pacer.spawn/gather task)", 3)
  end
end
base.coroutine = ro({
  create = co.create,
  wrap = co.wrap,
  status = co.status,
  running = co.running,
  isyieldable = co.isyieldable,
  resume = function(c, ...)
    not_managed(c, "coroutine.resume")
    return co.resume(c, ...)
  end,
  close = function(c)
    not_managed(c, "coroutine.close")
    return co.close(c)
  end,
  yield = function(...)
    if core.is_managed(co.running()) then
      error("coroutine.yield outside coroutine.create/wrap would suspend pacer's own coroutine "
            .. "(a step's, a task's or a __gc finalizer's); use pacer.sleep(0) to let other "
            .. "tasks run", 2)
    end
    return co.yield(...)
  end,
})

local new_env

-- load(chunk [, name [, mode [, env]]]): text chunks only; without env, the
-- chunk gets a fresh sandbox environment (never the real globals).
function base.load(chunk, name, mode, env)
  if mode ~= nil and mode ~= "t" then
    error("load: only text chunks (mode \"t\") are allowed in plugins", 2)
  end
  return load(chunk, name, "t", env or new_env())
end

-- require(NAME) loads NAME.lua (dots become slashes) from the directory of
-- the plugin that asks, once; names are letters, digits, _ and -.
local modules = {} -- path -> value
local function make_require(dir)
  return function(name)
    if type(name) ~= "string" or not name:match("^[%w_%-]+$") and
       not name:match("^[%w_%-]+[%w_%-%.]*[%w_%-]$") or name:find("..", 1, true) then
      error("require: invalid module name " .. tostring(name) ..
            " (letters, digits, _, - and dots, resolved beside the plugin)", 2)
    end
    local path = dir .. "/" .. name:gsub("%.", "/") .. ".lua"
    local v = modules[path]
    if v ~= nil then
      return v
    end
    local text, err = core.read_file(path)
    if not text then
      error("require \"" .. name .. "\": " .. err, 2)
    end
    local fn, lerr = load(text, "@" .. path, "t", new_env(dir))
    if not fn then
      error(lerr, 0)
    end
    v = fn(name)
    if v == nil then
      v = true
    end
    modules[path] = v
    return v
  end
end

-- The environment's metatable is protected: through it, one plugin could
-- reach `base`, which every plugin shares.
local env_mt = { __index = base, __metatable = false }
new_env = function(dir)
  local env = setmetatable({}, env_mt)
  env._G = env
  if dir then
    env.require = make_require(dir)
  end
  return env
end
M.new_env = new_env

---------------------------------------------------------------- plugins

local input_types = { string = true, number = true, integer = true, boolean = true,
                      list = true, map = true, table = true, any = true }

local function value_type_ok(want, v)
  local t = type(v)
  if want == "any" then
    return true
  elseif want == "integer" then
    return mtype(v) == "integer" or (t == "number" and v == floor(v))
  elseif want == "list" then
    if t ~= "table" then return false end
    local raw = unwrap(v)
    local n = #raw
    for k in pairs(raw) do
      if mtype(k) ~= "integer" or k < 1 or k > n then return false end
    end
    return true
  elseif want == "map" then
    if t ~= "table" then return false end
    local raw = unwrap(v)
    return #raw == 0
  elseif want == "table" then
    return t == "table"
  end
  return t == want
end

local function type_name(v)
  if v == json.null then
    return "null"
  end
  local t = type(v)
  if t == "number" then
    return mtype(v) == "integer" and "integer" or "number"
  end
  return t
end

-- A copy of a default value made of plain tables (read with next, no
-- metatables): the C side reads defaults outside any guard.
local function plain_copy(v, seen)
  if type(v) ~= "table" then
    return v
  end
  if seen[v] then
    return seen[v]
  end
  local r = {}
  seen[v] = r
  local k, x = next(v)
  while k ~= nil do
    rawset(r, plain_copy(k, seen), plain_copy(x, seen))
    k, x = next(v, k)
  end
  return r
end

-- Loads a plugin file's text (run by plugin.c under a CPU and memory
-- guard, outside any coroutine: plugins cannot do I/O while loading) and
-- checks the table it returns. What it returns is a new table of plain
-- data ({description, inputs = {name = {type, required, default,
-- description}}, run}): the host reads it from C, where a metamethod of
-- the plugin's own table would run unguarded.
function M.load_plugin(path, text)
  local dir = path:match("^(.*)/[^/]*$") or "."
  local fn, err = load(text, "@" .. path, "t", new_env(dir))
  if not fn then
    error(err, 0)
  end
  local spec = fn()
  local where = path .. ": "
  if type(spec) ~= "table" then
    error(where .. "a plugin must return a table {description = ..., inputs = {...}, run = "
          .. "function(with, ctx) ... end}, got " .. type(spec), 0)
  end
  local run, description, inputs = spec.run, spec.description, spec.inputs
  if type(run) ~= "function" then
    error(where .. "the plugin table needs run = function(with, ctx)", 0)
  end
  if description ~= nil and type(description) ~= "string" then
    error(where .. "description must be a string", 0)
  end
  if inputs == nil then
    inputs = {}
  end
  if type(inputs) ~= "table" then
    error(where .. "inputs must be a table of name = {type =, required =, default =, description =}", 0)
  end
  local checked = {}
  for name, def in pairs(inputs) do
    if type(name) ~= "string" then
      error(where .. "input names must be strings", 0)
    end
    if type(def) ~= "table" then
      error(where .. "input \"" .. name .. "\" must be a table {type =, ...}", 0)
    end
    local d = { type = def.type or "any", required = def.required and true or false,
                default = plain_copy(def.default, {}), description = def.description }
    if not input_types[d.type] then
      error(where .. "input \"" .. name .. "\": unknown type \"" .. tostring(d.type) ..
            "\" (string, number, integer, boolean, list, map, table, any)", 0)
    end
    if d.description ~= nil and type(d.description) ~= "string" then
      error(where .. "input \"" .. name .. "\": description must be a string", 0)
    end
    if d.default ~= nil and not value_type_ok(d.type, d.default) then
      error(where .. "input \"" .. name .. "\": the default is a " .. type_name(d.default) ..
            ", not a " .. d.type, 0)
    end
    checked[name] = d
  end
  return { run = run, description = description, inputs = checked }
end

-- Returns nil if `v` suits input `def`, else a message.
function M.check_input(name, def, v)
  if v == nil or v == json.null then
    if def.required and def.default == nil then
      return "input \"" .. name .. "\" is required"
    end
    return nil
  end
  if not value_type_ok(def.type, v) then
    return sformat("input \"%s\": expected %s, got %s", name, def.type, type_name(v))
  end
  return nil
end

local function deep_copy(v)
  if type(v) ~= "table" then
    return v
  end
  local r = {}
  for k, x in pairs(v) do
    r[k] = deep_copy(x)
  end
  return r
end

-- Completes `with` (a fresh table) with defaults and checks every value, as
-- evaluated. Returns with, or nil and a message.
function M.prepare_with(spec, with)
  with = with or {}
  for name, def in pairs(spec.inputs) do
    local v = with[name]
    local msg = M.check_input(name, def, v)
    if msg then
      return nil, msg
    end
    if v == json.null then
      -- `name: null` in the file means "not given", as leaving it out does
      v = nil
      with[name] = nil
    end
    if v == nil and def.default ~= nil then
      with[name] = deep_copy(def.default)
    end
  end
  for name in pairs(with) do
    if spec.inputs[name] == nil then
      return nil, "unknown input \"" .. tostring(name) .. "\""
    end
  end
  return with
end

-- The `ctx` argument of run(with, ctx).
function M.make_ctx(scope, step, plugin_name, plugin_path)
  return {
    vars = scope.vars,
    env = scope.env,
    secrets = scope.secrets,
    steps = scope.steps,
    workflow = scope.workflow,
    item = scope.item,
    index = scope.index,
    step = step,
    plugin = { name = plugin_name, path = plugin_path },
    log = pacer_log_ro,
  }
end

-- The arguments of an inline `lua:` chunk, in the order its prologue names
-- them: vars, env, secrets, steps, item, index, pacer.
function M.inline_args(scope)
  return scope.vars, scope.env, scope.secrets, scope.steps, scope.item, scope.index, pacer_ro,
    scope.inputs
end

-- Everything a `uses` step needs before its root coroutine starts: the
-- function, the completed inputs and ctx; or nil and a message.
function M.prepare_run(spec, with, scope, step, name, path)
  local w, msg = M.prepare_with(spec, with)
  if not w then
    return nil, msg
  end
  return spec.run, w, M.make_ctx(scope, step, name, path)
end

M.inline_prologue = "local vars, env, secrets, steps, item, index, pacer, inputs = ...; "

M.unwrap = unwrap

return M
