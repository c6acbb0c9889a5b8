-- Keeps the main thread (plugin files load on it) and tries to resume or
-- close it, and pacer's own coroutines, from a step: all refused.
MAIN = coroutine.running()
return {
  description = "Coroutine tricks on threads that belong to pacer.",
  run = function()
    local function try(what, f, ...)
      local ok, e, e2 = pcall(f, ...)
      if ok and e == false then ok, e = false, e2 end -- coroutine.resume's failure
      print(what .. ": " .. (ok and "allowed" or tostring(e):gsub("^[^:]*:%d+: ", "")))
    end
    try("resume main", coroutine.resume, MAIN)
    try("close main", coroutine.close, MAIN)
    try("close self", coroutine.close, coroutine.running())
    try("resume self", coroutine.resume, coroutine.running())
    local inner
    local t = pacer.spawn(function() inner = coroutine.running() pacer.sleep(10) end)
    pacer.sleep(0)
    try("resume task", coroutine.resume, inner)
    try("close task", coroutine.close, inner)
    t:cancel()
    try("resume cancelled", coroutine.resume, inner)
    try("yield in wrap", coroutine.wrap(function() pacer.sleep(0) end))
    return "done"
  end,
}
