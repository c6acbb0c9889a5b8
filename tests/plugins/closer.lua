-- Holds a to-be-closed variable and a semaphore permit while it waits, so
-- cancellation can be seen to close them.
local sem = pacer.semaphore(1)
return {
  description = "Waits while holding resources.",
  inputs = { seconds = { type = "number", default = 10 } },
  run = function(with, ctx)
    local permit <close> = sem:acquire()
    local guard <close> = setmetatable({}, { __close = function() print("closed " .. ctx.step.id) end })
    pacer.sleep(with.seconds)
    return "slept"
  end,
}
