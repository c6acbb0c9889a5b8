-- notify_webhook: posts a summary of the run (workflow name, outcome, and
-- one line per step with its outcome and duration) to a Slack- or
-- Discord-compatible incoming webhook. Put it in `finally` so it reports
-- failures too; keep the URL in `secrets`.

local icons = { ok = "✅", failed = "❌", error = "💥", timeout = "⏱", cancelled = "🚫", skipped = "⏭" }

local function summary(ctx, with)
  local wf = ctx.workflow
  local outcome = wf.outcome or "running"
  local lines = { ("%s workflow *%s*: %s"):format(icons[outcome] or "•", wf.name, outcome) }
  if with.include_steps then
    local list = {}
    for id, s in pairs(ctx.steps) do
      if type(s) == "table" and s.outcome then
        list[#list + 1] = { id = id, s = s }
      end
    end
    table.sort(list, function(a, b)
      return (a.s.started_at or "") < (b.s.started_at or "") or
             ((a.s.started_at or "") == (b.s.started_at or "") and a.id < b.id)
    end)
    for _, e in ipairs(list) do
      local line = ("%s %s: %s"):format(icons[e.s.outcome] or "•", e.id, e.s.outcome)
      if e.s.duration_ms then
        line = line .. (" (%d ms)"):format(e.s.duration_ms)
      end
      if e.s.error and e.s.outcome ~= "ok" then
        line = line .. " — " .. tostring(e.s.error):gsub("\n.*", "")
      end
      lines[#lines + 1] = line
    end
  end
  return table.concat(lines, "\n")
end

return {
  description = "Post a run summary to a Slack- or Discord-compatible webhook.",
  inputs = {
    url = { type = "string", required = true, description = "the incoming webhook URL (keep it in secrets)" },
    text = { type = "string", description = "the message; default: a summary of the run" },
    format = { type = "string", default = "auto", description = "slack, discord, or auto (from the URL)" },
    include_steps = { type = "boolean", default = true, description = "one line per step with an id" },
    username = { type = "string", description = "the poster's display name" },
  },
  run = function(with, ctx)
    local text = with.text or summary(ctx, with)
    local format = with.format
    if format == "auto" then
      format = with.url:find("discord", 1, true) and "discord" or "slack"
    end
    local body
    if format == "discord" then
      if #text > 1990 then text = text:sub(1, 1987) .. "..." end
      body = { content = text, username = with.username }
    elseif format == "slack" then
      if #text > 39000 then text = text:sub(1, 38997) .. "..." end
      body = { text = text, username = with.username }
    else
      error("notify_webhook: format must be slack, discord or auto, got " .. tostring(format), 0)
    end
    local r = pacer.http.post(with.url, { json = body })
    if r.status >= 300 then
      error(("notify_webhook: the webhook answered %d: %s"):format(r.status, (r.body or ""):sub(1, 200)), 0)
    end
    return { status = r.status, text = text }
  end,
}
