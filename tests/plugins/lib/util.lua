-- A sibling module loaded with require("lib.util").
local M = {}
function M.hello(name) return "hello " .. name end
return M
