---@meta pacer
-- LuaLS annotations for pacer plugins and inline `lua:` steps. Point your
-- editor at this directory (.luarc.json: { "workspace.library": ["editor"] })
-- to get completion and type checks for the `pacer` module. See
-- docs/plugins.md.

---@class pacer
pacer = {}

---@class pacer.HttpTiming
---@field dns number seconds
---@field connect number
---@field tls number
---@field ttfb number
---@field total number

---@class pacer.HttpResult
---@field method string
---@field url string final URL (after redirects)
---@field status integer
---@field headers table<string, string> names lower-cased (read in any case); a repeated header's values joined with ", "
---@field header_values table<string, string[]> every value of each header, in order (read in any case)
---@field cookies table<string, string> the cookies the responses of the request (redirects included) set
---@field redirects {status: integer, url: string}[] the redirects followed, in order
---@field body string
---@field json any the body decoded as JSON on first use (raises if it is not JSON); integers are integers, null is pacer.null
---@field http_version string
---@field reused boolean the connection was reused
---@field timing pacer.HttpTiming

---@class pacer.HttpOptions
---@field method? string
---@field url? string
---@field headers? table<string, string>
---@field query? table<string, any>
---@field body? string
---@field json? any
---@field form? table<string, any>
---@field timeout? number seconds for the whole request (redirects included)
---@field connect_timeout? string|number
---@field follow_redirects? boolean follow 301/302/303/307/308, at most 10 (default true); 303 makes any method but HEAD a GET, 301/302 only POST; secret headers never go to another origin
---@field http_version? "auto"|"1.1"|"2"
---@field insecure? boolean
---@field ca_file? string
---@field max_response_bytes? integer default 64 MiB; not checked for HEAD
---@field save_to? string
---@field cookies? boolean|table<string, string> false: keep out of the run's cookie jar; a map: cookies sent besides the jar's (own origin only)
---@field auth? pacer.HttpAuth credentials, own origin only, redacted
---@field body_file? string a regular file sent as the body, streamed (application/octet-stream unless a header says)
---@field multipart? table<string, string|pacer.HttpPart> multipart/form-data parts, sent in name order
---@field cert? string client certificate (PEM file)
---@field key? string its private key (PEM file)
---@field key_password? string passphrase of an encrypted key (redacted)
---@field tls_version? "1.0"|"1.1"|"1.2"|"1.3" lowest TLS version accepted
---@field proxy? string proxy URL ("" for none; default: the environment's)
---@field resolve? table<string, string> HOST:PORT to an IP address, this request only (curl --resolve)
---@field connect_to? string[] HOST:PORT:CONNECT-HOST:CONNECT-PORT entries (curl --connect-to)
---@field unix_socket? string connect through this unix socket
---@field max_redirects? integer default 10
---@field compressed? boolean default true; false keeps the body as it came (no Accept-Encoding)

---@class pacer.HttpPart
---@field value? string text of the part (or file)
---@field file? string a regular file, streamed
---@field type? string Content-Type of the part
---@field filename? string filename sent (default: the file's base name)

---@class pacer.HttpAuth one of:
---@field basic? {user: string, password: string}
---@field digest? {user: string, password: string}
---@field bearer? string

---Encodings and digests (issue 15), as the expression helpers of the same names.
---@param s string
---@return string
function pacer.base64_encode(s) end
---@param s string
---@return string raises on invalid base64
function pacer.base64_decode(s) end
---@param s string
---@return string URL-safe alphabet, no padding
function pacer.base64url_encode(s) end
---@param s string
---@return string
function pacer.base64url_decode(s) end
---@param s string
---@return string 64 lowercase hex digits
function pacer.sha256(s) end
---@param key string
---@param message string
---@return string 64 lowercase hex digits
function pacer.hmac_sha256(key, message) end
---@param s string
---@return string %XX decoded
function pacer.urldecode(s) end
---@param url string
---@return {scheme: string, user?: string, password?: string, host: string, port: integer, path: string, query?: string, fragment?: string}
function pacer.parse_url(url) end

---@class pacer.http
pacer.http = {}

---Sends a request through the run's shared HTTP session and waits for the
---response. Raises on network errors, not on HTTP statuses.
---@param opts pacer.HttpOptions
---@return pacer.HttpResult
function pacer.http.request(opts) end

---@param url string
---@param opts? pacer.HttpOptions
---@return pacer.HttpResult
function pacer.http.get(url, opts) end
---@param url string
---@param opts? pacer.HttpOptions
---@return pacer.HttpResult
function pacer.http.head(url, opts) end
---@param url string
---@param opts? pacer.HttpOptions
---@return pacer.HttpResult
function pacer.http.delete(url, opts) end
---@param url string
---@param opts? pacer.HttpOptions
---@return pacer.HttpResult
function pacer.http.options(url, opts) end
---@param url string
---@param opts? pacer.HttpOptions
---@return pacer.HttpResult
function pacer.http.post(url, opts) end
---@param url string
---@param opts? pacer.HttpOptions
---@return pacer.HttpResult
function pacer.http.put(url, opts) end
---@param url string
---@param opts? pacer.HttpOptions
---@return pacer.HttpResult
function pacer.http.patch(url, opts) end

---Waits `seconds` (0 lets other tasks run) without blocking the loop.
---@param seconds number
function pacer.sleep(seconds) end

---@class pacer.GatherOptions
---@field concurrency? integer at most this many functions at a time (default: all)
---@field fail_fast? boolean default true: the first error cancels the others

---Runs functions concurrently, each in its own coroutine. Varargs form:
---returns the first result of each, in order. List form `gather(list, opts)`:
---returns a list. The first error cancels the siblings and is re-raised.
---@param first function|function[]
---@param ... function|pacer.GatherOptions
---@return ...
function pacer.gather(first, ...) end

---@class pacer.Task
local Task = {}
---Waits for the task and returns what its function returned (or raises its error).
---@return ...
function Task:wait() end
---Cancels the task: its <close> variables run, its operations stop.
function Task:cancel() end
---@return "running"|"ok"|"error"|"cancelled"
function Task:status() end

---Starts fn(...) as a task. A task never waited for is cancelled (with a
---warning) when the step ends.
---@param fn function
---@param ... any
---@return pacer.Task
function pacer.spawn(fn, ...) end

---@class pacer.Permit
local Permit = {}
---Gives the permit back (idempotent; also on `<close>` and garbage collection).
function Permit:release() end
---@return boolean
function Permit:held() end

---@class pacer.Semaphore
local Semaphore = {}
---Waits for a permit. Use `local p <close> = sem:acquire()`.
---@return pacer.Permit
function Semaphore:acquire() end
---@return integer
function Semaphore:available() end

---@param n integer
---@return pacer.Semaphore
function pacer.semaphore(n) end

---@class pacer.Pool
local Pool = {}
---Waits for a permit of the workflow pool (its concurrency and rate; with
---`shared:`, the rate budget held in Redis for every process naming its key).
---@return pacer.Permit
function Pool:acquire() end

---A workflow pool (from the file's `pools:`) by name.
---@param name string
---@return pacer.Pool
function pacer.pool(name) end

---Runs fn(...) with a deadline; raises "timed out after Ns" (fn's coroutine is closed).
---@param seconds number
---@param fn function
---@param ... any
---@return ...
function pacer.timeout(seconds, fn, ...) end

---@class pacer.ExecOptions
---@field env? table<string, string> added to pacer's environment
---@field cwd? string
---@field stdin? string
---@field log? boolean stream output lines to the log (default true)

---@class pacer.ExecResult
---@field exit_code integer|nil nil when killed by a signal
---@field signal string|nil e.g. "SIGKILL"
---@field stdout string
---@field stderr string
---@field stdout_truncated boolean stdout went over 1 MiB; the rest was dropped
---@field stderr_truncated boolean stderr went over 1 MiB; the rest was dropped
---@field truncated boolean either stream did

---Runs a program (no shell) and waits for it.
---@param argv string[]
---@param opts? pacer.ExecOptions
---@return pacer.ExecResult|nil result
---@return string? error when the program could not start
function pacer.exec(argv, opts) end

---@class pacer.log
pacer.log = {}
---@param ... any
function pacer.log.debug(...) end
---@param ... any
function pacer.log.info(...) end
---@param ... any
function pacer.log.warn(...) end
---@param ... any
function pacer.log.error(...) end

---@class pacer.json
pacer.json = {}
---Compact JSON, map keys sorted; integers without ".0", floats with the
---digits that read back the same; pacer.null as null; an empty table as
---[] unless marked with pacer.json.object.
---@param v any
---@return string
function pacer.json.encode(v) end
---Decodes JSON: integers as Lua integers (floats for fractions, exponents
---and numbers past 64 bits), null as pacer.null, {} as an empty table
---marked as an object. Raises "pacer.json.decode: invalid JSON: ...".
---@param s string
---@return any
function pacer.json.decode(s) end
---Marks a table as a JSON object: it encodes as {} even when empty. Its
---metatable is then protected (getmetatable(t) == "json object").
---@generic T: table
---@param t T
---@return T
function pacer.json.object(t) end
---JSON null in decoded values (a light userdata, truthy: test v == pacer.null).
---Read through the read-only views (ctx.steps, ctx.vars) it is nil.
pacer.json.null = nil

---Marks a value secret: it is redacted from all output from now on.
---@generic T
---@param v T
---@return T
function pacer.secret(v) end

---Wall-clock time in seconds since the epoch (millisecond resolution).
---@return number
function pacer.now() end

---JSON null (the same value as pacer.json.null).
pacer.null = nil

---@class pacer.PluginInput
---@field type? "string"|"number"|"integer"|"boolean"|"list"|"map"|"table"|"any"
---@field required? boolean
---@field default? any
---@field description? string

---@class pacer.StepResult
---@field outcome "ok"|"failed"|"error"|"timeout"|"cancelled"|"skipped"
---@field error string?
---@field attempts integer? leaves
---@field started_at string? ISO 8601 UTC
---@field duration_ms integer?
---@field queued_ms integer? leaves: time waiting for pool permits
---@field outputs table?
---@field items pacer.StepResult[]? a fan-out's results, in item order
---@field polls integer? a polled step (until:): polls run
---@field poll_stop "until"|"fail_if"|"within"|"failure"|nil a polled step: why polling stopped

---@class pacer.Ctx
---@field vars table read-only
---@field env table<string, string> read-only
---@field secrets table<string, string> read-only; values read are redacted
---@field steps table<string, pacer.StepResult> read-only results of earlier steps (a background step's is nil until it ends: give the step `wait: [ID]`)
---@field workflow {name: string, run_id: string, outcome: string?}
---@field item any the for_each item, if any
---@field index integer? 1-based for_each index
---@field step {id: string?, name: string?, attempt: integer}
---@field plugin {name: string, path: string}
---@field log pacer.log

---@class pacer.Plugin
---@field description? string
---@field inputs? table<string, pacer.PluginInput>
---@field run fun(with: table, ctx: pacer.Ctx): any

-- Names in scope in inline `lua:` code (all read-only).
---@type table
vars = {}
---@type table<string, string>
env = {}
---@type table<string, string>
secrets = {}
---@type table<string, pacer.StepResult>
steps = {}
---@type any
item = nil
---@type integer?
index = nil
---The inputs of a workflow file run as a step (`uses: ./FILE.yml`), in
---inline `lua:` code of that file; nil elsewhere.
---@type table?
inputs = nil
