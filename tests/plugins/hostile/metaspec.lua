-- A plugin table, inputs and defaults that are all tables with hostile
-- metatables. pacer reads them once, under its guards, into plain data:
-- validate, `pacer plugins` and the step never run these metamethods again.
local function loop() while true do end end
local hostile = { __len = loop, __pairs = loop, __tostring = loop, __eq = loop }
local default = setmetatable({ 1, 2 }, hostile)
local inputs = setmetatable({ n = { type = "list", default = default } }, { __index = loop })
local spec = { description = "Metatables everywhere.", inputs = inputs }
function spec.run(with) return #with.n end
return setmetatable(spec, { __len = loop, __tostring = loop, __newindex = loop })
