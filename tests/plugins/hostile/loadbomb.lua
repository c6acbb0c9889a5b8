-- Tries to take all the memory while loading.
local t = {}
for i = 1, 100 do t[i] = string.rep("x", 1e6) .. i end
return { run = function() return #t end }
