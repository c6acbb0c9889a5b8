-- Raises, while loading, an object whose __tostring raises too.
error(setmetatable({}, {__tostring = function() error("while describing") end}))
