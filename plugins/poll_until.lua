-- poll_until: requests a URL every `interval` seconds until the `until`
-- expression holds for the response, or fails once `deadline` seconds have
-- passed. The expression sees `result` (the response, as the http action
-- returns it: status, headers, body, json), `status`, `vars` and `steps`.
-- Network errors and expressions that raise (a body that is not JSON yet)
-- count as "not yet".

local function compile(expr, env)
  local fn, err = load("return (" .. expr .. "\n)", "=until", "t", env)
  if not fn then
    error("poll_until: the `until` expression does not compile: " .. err, 0)
  end
  return fn
end

return {
  description = "Poll a URL until an expression about the response holds (interval + deadline).",
  inputs = {
    url = { type = "string", required = true, description = "the URL to poll" },
    ["until"] = { type = "string", default = "status == 200",
                  description = "Lua expression over result/status (e.g. result.json.state == 'done')" },
    interval = { type = "number", default = 1, description = "seconds between requests" },
    deadline = { type = "number", default = 60, description = "give up after this many seconds" },
    method = { type = "string", default = "GET" },
    headers = { type = "map", description = "request headers" },
    request_timeout = { type = "number", default = 10, description = "seconds per request" },
  },
  run = function(with, ctx)
    local env = setmetatable({ vars = ctx.vars, steps = ctx.steps }, { __index = _G })
    local cond = compile(with["until"], env)
    local started = pacer.now()
    local polls, last = 0, nil
    while true do
      polls = polls + 1
      local ok, r = pcall(pacer.http.request, {
        method = with.method, url = with.url, headers = with.headers,
        timeout = with.request_timeout,
      })
      if ok then
        last = r
        env.result, env.status = r, r.status
        local cok, holds = pcall(cond)
        if cok and holds then
          return { status = r.status, body = r.body, polls = polls,
                   waited = pacer.now() - started }
        end
        pacer.log.debug(("poll %d: status %d, not yet%s"):format(polls, r.status,
                        cok and "" or " (" .. tostring(holds) .. ")"))
      else
        pacer.log.debug(("poll %d: %s"):format(polls, tostring(r)))
      end
      local left = with.deadline - (pacer.now() - started)
      if left <= 0 then
        error(("poll_until: `%s` did not hold within %gs (%d polls, last %s)"):format(
          with["until"], with.deadline, polls,
          last and ("status " .. last.status) or "request failed"), 0)
      end
      pacer.sleep(math.min(with.interval, left))
    end
  end,
}
