-- A minimal plugin: inputs with a type, a default and a required one.
local util = require("lib.util")
return {
  description = "Greets someone, politely and after a short wait.",
  inputs = {
    name = { type = "string", required = true, description = "who to greet" },
    times = { type = "integer", default = 1, description = "how many times" },
    punct = { type = "string", default = "!" },
  },
  run = function(with, ctx)
    pacer.sleep(0.01)
    local parts = {}
    for i = 1, with.times do
      parts[i] = util.hello(with.name) .. with.punct
    end
    return { text = table.concat(parts, " "), step = ctx.step.id, item = ctx.item }
  end,
}
