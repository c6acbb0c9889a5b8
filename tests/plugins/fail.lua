-- Fails inside a helper, to check tracebacks name this file and line.
local function helper(x)
  pacer.sleep(0.01)
  error("bad value " .. tostring(x))
end

return {
  description = "Always fails.",
  inputs = { x = { type = "any" } },
  run = function(with, ctx)
    helper(with.x)
  end,
}
