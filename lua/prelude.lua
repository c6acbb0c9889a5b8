-- prelude.lua: the Lua half of pacer's expression sandbox, embedded in the
-- binary. It returns a table of functions the C host (host.c, expr.c, value.c) calls:
-- read-only proxies, scopes, the helpers of SPEC section 4 and the text and
-- JSON formatting used by interpolation.
--
-- Called with: json (runner/script/json.c: decode, null, object, is_object),
-- getenv_secret(name), mark_secret(text), now_seconds(), make_ro(proxy_of,
-- target_of, mt) (the read-only proxies' ro and __index, in C), codec
-- (runner/script/mod_codec.c: base64, sha256, hmac_sha256, urldecode,
-- parse_url), jview (runner/script/jsonview.c: to_table, is_view, type).
local json, getenv_secret, mark_secret, now_seconds, make_ro, codec, jview = ...
local P = {}

-- JSON null (a light userdata NULL). It stays in data, so lists keep their
-- length and maps their keys (and encode back as null), but every read
-- through a read-only view gives nil: JSON null is falsy in `if:`, and
-- indexing it fails like indexing a missing field.
local null = json.null
local is_object = json.is_object
local type, pairs, next, setmetatable, getmetatable, rawget, rawset, tostring, error, select =
  type, pairs, next, setmetatable, getmetatable, rawget, rawset, tostring, error, select
local floor, huge, mtype = math.floor, math.huge, math.type
local sformat, sbyte, schar, concat, sort = string.format, string.byte, string.char, table.concat, table.sort

---------------------------------------------------------------- read-only proxies

-- target -> proxy (weak both ways: a proxy is a cache entry, rebuilt when
-- needed, so it does not live as long as a retained result) and proxy ->
-- target (weak-keyed: an ephemeron). Every proxy shares one metatable, so a
-- proxy costs one empty table: reading `result.json.id` for each of 20 000
-- responses must not build closures per response.
local proxy_of = setmetatable({}, { __mode = "kv" })
local target_of = setmetatable({}, { __mode = "k" })

local function readonly_error()
  error("attempt to modify a read-only value", 2)
end

local ro, ro_index
local ro_mt = {
  -- __index: make_ro's (host.c, in C: the hot path of every expression),
  -- which reads target_of[p][k], gives nil for JSON null and ro(value).
  __newindex = readonly_error,
  __len = function(p) return #target_of[p] end,
  __pairs = function(p)
    -- pairs, not next: the target's own __index/__pairs (an HTTP result's
    -- lazy fields) is honoured through the proxy too.
    local f, s, init = pairs(target_of[p])
    return function(_, k)
      local nk, nv = f(s, k)
      if nv == null then
        return nk, nil
      end
      return nk, ro(nv)
    end, p, init
  end,
  __metatable = "read-only",
}

-- ro(v): v itself unless a table; the table's proxy (made once, cached in
-- proxy_of while it lives) otherwise. Also make_ro's.
ro, ro_index = make_ro(proxy_of, target_of, ro_mt)
ro_mt.__index = ro_index
P.ro = ro

-- Read-only views of library tables (the pacer module): like ro, but values
-- are handed out as they are, so pacer.null is pacer.null and not nil.
local lib_proxy_of = setmetatable({}, { __mode = "kv" })
local ro_lib
local ro_lib_mt = {
  __index = function(p, k) return ro_lib(target_of[p][k]) end,
  __newindex = readonly_error,
  __len = function(p) return #target_of[p] end,
  __pairs = function(p)
    local f, s, init = pairs(target_of[p])
    return function(_, k)
      local nk, nv = f(s, k)
      return nk, ro_lib(nv)
    end, p, init
  end,
  __metatable = "read-only",
}

ro_lib = function(v)
  if type(v) ~= "table" or target_of[v] then
    return v
  end
  local p = lib_proxy_of[v]
  if p then
    return p
  end
  p = setmetatable({}, ro_lib_mt)
  lib_proxy_of[v] = p
  target_of[p] = v
  return p
end
P.ro_lib = ro_lib

-- The `outputs` of every result that has none (issue 16: an empty table
-- per kept result was ~56 bytes each): one table for the whole run, read-only
-- by construction. Writing to it raises as writing through a proxy does;
-- it is its own target, so ro() hands it out as it is, is_ro() is true
-- (the plugins' rawset refuses it; expressions have no rawset) and unwrap()
-- gives it back; the JSON encoders see an empty list, as before.
local empty_ro = setmetatable({}, {
  __newindex = readonly_error,
  __metatable = "read-only",
  __json = "array",
})
target_of[empty_ro] = empty_ro
P.empty_ro = empty_ro

-- The view `result` is bound as while expect.that, until and fail_if are
-- evaluated (expr.c, pc_lua_scope_bind_view): one proxy for the whole run,
-- pointed at the result being checked for the time of the evaluation and
-- at an empty table after it. Those expressions give a truth value, so
-- nothing can keep the view past the evaluation (once a plugin step has
-- returned a value, whose functions could, expr.c binds proxies again),
-- and a result costs no
-- proxy of its own to be checked (issue 16: ~2 000 instructions a
-- response). outputs, whose values are kept, see a proxy of their own.
local result_view = setmetatable({}, ro_mt)
local no_target = {}
target_of[result_view] = no_target
P.result_view, P.no_target, P.target_of = result_view, no_target, target_of

-- The JSON views that `result.json` gives while expect.that, until and
-- fail_if are evaluated (jsonview.c): read-only by construction, read like
-- proxies; unwrap() gives the tables they stand for.
local is_view, view_table = jview.is_view, jview.to_table

local function unwrap(v)
  local t = target_of[v]
  if t then
    return t
  end
  if type(v) == "userdata" then
    return view_table(v)
  end
  return v
end
P.unwrap = unwrap

-- True for a read-only proxy or view (pacer.lua's rawset refuses to write
-- to one).
function P.is_ro(v)
  return target_of[v] ~= nil or is_view(v)
end

---------------------------------------------------------------- text and JSON

local function is_array(t)
  local n = #t
  if n == 0 then
    return next(t) == nil
  end
  local count = 0
  for k in pairs(t) do
    if mtype(k) ~= "integer" or k < 1 or k > n then
      return false
    end
    count = count + 1
  end
  return count == n
end

-- Numbers as text, exactly: integers as integers; a whole float with all
-- its digits, never in scientific notation (1732700000123456, not
-- 1.7327000001235e+15, whose "+" would also reach a URL unencoded) and
-- without a needless ".0"; any other float with the fewest digits that
-- read back as the same number (0.1, not 0.10000000000000001).
local tonumber = tonumber
local function number_text(n)
  if mtype(n) == "integer" then
    return sformat("%d", n)
  end
  if n ~= n then
    return "nan"
  end
  if n == huge then
    return "inf"
  elseif n == -huge then
    return "-inf"
  end
  if n == floor(n) then
    return sformat("%.0f", n)
  end
  local s = sformat("%.15g", n)
  if tonumber(s) ~= n then
    s = sformat("%.16g", n)
    if tonumber(s) ~= n then
      s = sformat("%.17g", n)
    end
  end
  return s
end
P.number_text = number_text

local escapes = { ['"'] = '\\"', ["\\"] = "\\\\", ["\b"] = "\\b", ["\f"] = "\\f",
                  ["\n"] = "\\n", ["\r"] = "\\r", ["\t"] = "\\t" }
local function json_string(s)
  return '"' .. s:gsub('[%c"\\]', function(c)
    return escapes[c] or sformat("\\u%04x", sbyte(c))
  end) .. '"'
end

-- Encodes any value; proxies are read through, cycles are an error. A
-- table is a JSON object when it carries the object mark (an empty map
-- from YAML or JSON, or pacer.json.object(t)) or has keys other than
-- 1..n; otherwise a list, so an unmarked empty table is []. Map keys are
-- sorted so the text is stable. Numbers as number_text; NaN and the
-- infinities, which JSON lacks, as null.
local function encode(v, out, seen)
  local t = type(v)
  if t == "userdata" and is_view(v) then
    v = view_table(v)
    t = "table"
  end
  if v == nil or v == null then
    out[#out + 1] = "null"
  elseif t == "boolean" then
    out[#out + 1] = v and "true" or "false"
  elseif t == "number" then
    if v ~= v or v == huge or v == -huge then
      out[#out + 1] = "null"
    else
      out[#out + 1] = number_text(v)
    end
  elseif t == "string" then
    out[#out + 1] = json_string(v)
  elseif t == "table" then
    local raw = unwrap(v)
    if seen[raw] then
      error("cannot encode a table that contains itself", 0)
    end
    seen[raw] = true
    if not is_object(raw) and is_array(raw) then
      out[#out + 1] = "["
      for i = 1, #raw do
        if i > 1 then out[#out + 1] = "," end
        encode(raw[i], out, seen)
      end
      out[#out + 1] = "]"
    else
      local keys = {}
      for k in pairs(raw) do
        keys[#keys + 1] = k
      end
      sort(keys, function(a, b) return tostring(a) < tostring(b) end)
      out[#out + 1] = "{"
      for i, k in ipairs(keys) do
        if i > 1 then out[#out + 1] = "," end
        out[#out + 1] = json_string(tostring(k))
        out[#out + 1] = ":"
        encode(raw[k], out, seen)
      end
      out[#out + 1] = "}"
    end
    seen[raw] = nil
  else
    out[#out + 1] = json_string(tostring(v))
  end
end

function P.to_json(v)
  local out = {}
  encode(v, out, {})
  return concat(out)
end

-- Interpolation text: strings as is, numbers without a needless ".0",
-- tables as JSON, nil as "null".
function P.to_text(v)
  local t = type(v)
  if t == "string" then
    return v
  elseif t == "number" then
    return number_text(v)
  elseif t == "boolean" then
    return v and "true" or "false"
  elseif t == "table" or v == nil or v == null or is_view(v) then
    return P.to_json(v)
  end
  return tostring(v)
end

---------------------------------------------------------------- helpers (SPEC section 4)

local H = {}

local function count(v)
  local raw = unwrap(v)
  if type(raw) == "string" then
    return #raw
  elseif type(raw) == "table" then
    if #raw > 0 then
      return #raw
    end
    local n = 0
    for _ in pairs(raw) do
      n = n + 1
    end
    return n
  elseif v == nil or v == null then
    return 0
  end
  error("len() expects a string or a table, got " .. type(v), 2)
end
H.len = count

function H.keys(t)
  local raw = unwrap(t)
  if type(raw) ~= "table" then
    error("keys() expects a table, got " .. type(t), 2)
  end
  local r = {}
  for k in pairs(raw) do
    r[#r + 1] = k
  end
  sort(r, function(a, b)
    if type(a) == type(b) and (type(a) == "number" or type(a) == "string") then
      return a < b
    end
    return tostring(a) < tostring(b)
  end)
  return r
end

function H.slice(list, i, j)
  local raw = unwrap(list)
  if type(raw) ~= "table" then
    error("slice() expects a list, got " .. type(list), 2)
  end
  local n = #raw
  i = i or 1
  j = j or n
  if i < 1 then i = 1 end
  if j > n then j = n end
  local r = {}
  for k = i, j do
    r[#r + 1] = raw[k]
  end
  return r
end

function H.range(first, last)
  if mtype(first) ~= "integer" and (type(first) ~= "number" or first ~= floor(first)) then
    error("range() expects whole numbers", 2)
  end
  local r = {}
  for k = floor(first), floor(last) do
    r[#r + 1] = k
  end
  return r
end

function H.join(list, sep)
  local raw = unwrap(list)
  if type(raw) ~= "table" then
    error("join() expects a list, got " .. type(list), 2)
  end
  local parts = {}
  for k = 1, #raw do
    parts[k] = P.to_text(raw[k])
  end
  return concat(parts, sep == nil and "," or P.to_text(sep))
end

function H.contains(hay, needle)
  local raw = unwrap(hay)
  if type(raw) == "string" then
    return raw:find(P.to_text(needle), 1, true) ~= nil
  elseif type(raw) == "table" then
    local want = unwrap(needle)
    for _, v in pairs(raw) do
      if unwrap(v) == want then
        return true
      end
    end
    return false
  elseif hay == nil or hay == null then
    return false
  end
  error("contains() expects a list or a string, got " .. type(hay), 2)
end

function H.json(v)
  return P.to_json(v)
end

-- Decodes JSON text for `who` (a name for messages); errors are raised at
-- `level` so they point at the caller's code.
function P.decode_json(text, who, level)
  if type(text) ~= "string" then
    error(who .. " expects a string, got " .. type(text), level)
  end
  local ok, v = pcall(json.decode, text)
  if not ok then
    error(who .. ": " .. tostring(v), level)
  end
  return v
end

-- In expressions the decoded value is read like every other: through a
-- read-only view (so JSON null reads as nil), and null itself is nil.
function H.from_json(text)
  local v = P.decode_json(text, "from_json()", 3)
  if v == null then
    return nil
  end
  return ro(v)
end

function H.urlencode(s)
  s = P.to_text(s)
  return (s:gsub("[^%w%-%._~]", function(c) return sformat("%%%02X", sbyte(c)) end))
end

-- issue 15: encodings and digests (nettle), urldecode and parse_url
-- (libcurl); every value is read as text first (a number as it prints).
for _, name in ipairs({ "base64_encode", "base64_decode", "base64url_encode", "base64url_decode",
                        "sha256", "urldecode" }) do
  local f = codec[name]
  H[name] = function(s) return f(P.to_text(s)) end
end
function H.hmac_sha256(key, message)
  return codec.hmac_sha256(P.to_text(key), P.to_text(message))
end
function H.parse_url(url)
  return ro(codec.parse_url(P.to_text(url)))
end

function H.default(v, fallback)
  if v == nil or v == null then
    return fallback
  end
  return v
end

function H.secret(v)
  if v ~= nil and v ~= null then
    mark_secret(P.to_text(v))
  end
  return v
end

H.now = now_seconds
-- There is no `null` helper: JSON null reads as nil, so `x == null` (an
-- undefined name, nil) compares as `x == nil` does.

---------------------------------------------------------------- scopes

-- Every scope's metatable records its parent and, for scopes that have
-- their own, the plain steps table the engine writes results into.
local function scope_newindex()
  error("expressions cannot assign variables", 2)
end

local safe_globals = {
  "assert", "error", "ipairs", "next", "pairs", "pcall", "select", "tonumber", "tostring",
  "type", "xpcall", "rawequal", "rawlen",
}

-- base: the read-only library part shared by every root scope.
local base = {}
for _, name in ipairs(safe_globals) do
  base[name] = _G[name]
end
base.type = jview.type -- a JSON view is a table to expressions
base.string = ro(string)
base.table = ro(table)
base.math = ro(math)
base.utf8 = ro(utf8)
base.unpack = table.unpack
for k, f in pairs(H) do
  base[k] = f
end
P.helpers = H

local secrets_proxy = setmetatable({}, {
  __index = function(_, name)
    if type(name) ~= "string" then
      return nil
    end
    return getenv_secret(name)
  end,
  __newindex = readonly_error,
  __metatable = "read-only",
})

-- Root scope: vars (plain table), env (plain table), workflow (plain table).
function P.root_scope(vars, env, workflow)
  local steps = {}
  local scope = {
    vars = ro(vars),
    env = ro(env),
    secrets = secrets_proxy,
    steps = ro(steps),
    workflow = ro(workflow),
  }
  return setmetatable(scope, {
    __index = base,
    __newindex = scope_newindex,
    steps_raw = steps,
    workflow_raw = workflow,
  })
end

-- The metatable shared by the scopes of a fan-out's items when the body is
-- a leaf (no steps of its own): the engine builds each item's scope in C.
function P.instance_mt(parent)
  return { __index = parent, __newindex = scope_newindex, parent = parent }
end

-- The scope of a fan-out item whose body is a group: its own steps table,
-- whose misses fall back to the parent's.
function P.child_scope(parent)
  local mt = P.instance_mt(parent)
  local steps = setmetatable({}, { __index = P.steps_table(parent) })
  mt.steps_raw = steps
  return setmetatable({ steps = ro(steps) }, mt)
end

-- The nearest plain steps table of a scope.
function P.steps_table(scope)
  local s = scope
  while s do
    local mt = getmetatable(s)
    if mt.steps_raw then
      return mt.steps_raw
    end
    s = mt.parent
  end
  error("scope without steps")
end

function P.set_step(scope, id, value)
  rawset(P.steps_table(scope), id, value)
end

function P.get_step(scope, id)
  return P.steps_table(scope)[id]
end

function P.set_workflow_field(root, field, value)
  getmetatable(root).workflow_raw[field] = value
end

return P
