-- Calls an async function while loading: refused.
pacer.sleep(1)
return { run = function() end }
