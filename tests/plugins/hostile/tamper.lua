-- Tries to change what every plugin shares.
return {
  description = "Tampering with shared tables.",
  run = function(with, ctx)
    local function try(what, f, ...)
      local ok, e = pcall(f, ...)
      print(what .. ": " .. (ok and "allowed" or tostring(e):gsub("^[^:]*:%d+: ", "")))
    end
    try("_ENV metatable", function() return assert(getmetatable(_ENV)) end)
    try("setmetatable _ENV", setmetatable, _ENV, {})
    try("string.upper", function() string.upper = nil end)
    try("setmetatable string", setmetatable, string, {})
    try("ctx.log.info", function() ctx.log.info = nil end)
    try("pacer.sleep", function() pacer.sleep = nil end)
    try("rawset pacer", rawset, pacer, "sleep", 1)
    try("ctx.vars", function() ctx.vars.x = 1 end)
    try("setmetatable vars", setmetatable, ctx.vars, {})
    try("string metatable", function() return assert(getmetatable("")) end)
    return "tampered"
  end,
}
