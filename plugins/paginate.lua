-- paginate: follows a paginated JSON API and collects the items of every
-- page. The next page comes from (first that applies) a JSON field holding
-- the next URL (`next`), a JSON field holding a cursor sent back as a query
-- parameter (`cursor` + `cursor_param`), or the Link header's rel="next".
-- Each request holds a permit of `pool` when one is named, so a crawl
-- shares the workflow's concurrency and rate limits.

-- Looks up "a.b.c" in a decoded JSON value; "" means the value itself.
local function dig(v, path)
  if path == nil or path == "" then
    return v
  end
  for key in path:gmatch("[^%.]+") do
    if type(v) ~= "table" then
      return nil
    end
    local n = tonumber(key)
    v = v[n or key]
  end
  return v
end

-- Resolves a possibly relative next link against the page it came from.
local function resolve(base, ref)
  if ref:match("^%a[%w+.-]*://") then
    return ref
  end
  local origin = base:match("^(%a[%w+.-]*://[^/?#]+)")
  if ref:sub(1, 1) == "/" then
    return origin .. ref
  end
  if ref:sub(1, 1) == "?" then
    return (base:gsub("[?#].*$", "")) .. ref
  end
  return (base:gsub("[?#].*$", ""):gsub("[^/]*$", "")) .. ref
end

local function link_next(headers)
  local link = headers and headers["link"]
  if type(link) ~= "string" then
    return nil
  end
  for part in link:gmatch("[^,]+") do
    local url, params = part:match("<([^>]*)>(.*)")
    if url and params:match('rel%s*=%s*"?next"?') then
      return url
    end
  end
  return nil
end

return {
  description = "Follow next-page links or cursors of a JSON API, collecting the items of every page.",
  inputs = {
    url = { type = "string", required = true, description = "the first page" },
    items = { type = "string", default = "items",
              description = "dotted path to the list of items in each page (\"\" if the page is the list)" },
    next = { type = "string", description = "dotted path to the next page's URL" },
    cursor = { type = "string", description = "dotted path to the next cursor" },
    cursor_param = { type = "string", default = "cursor", description = "query parameter for the cursor" },
    max_pages = { type = "integer", default = 100, description = "stop after this many pages" },
    max_items = { type = "integer", description = "stop once this many items are collected" },
    pool = { type = "string", description = "a workflow pool each request holds a permit of" },
    headers = { type = "map" },
    query = { type = "map", description = "query parameters of the first request" },
  },
  run = function(with, ctx)
    local pool = with.pool and pacer.pool(with.pool)
    local all, pages = {}, 0
    local url, query = with.url, with.query
    while url and pages < with.max_pages do
      local r
      do
        local permit <close> = pool and pool:acquire() or nil
        r = pacer.http.request({ method = "GET", url = url, headers = with.headers, query = query })
      end
      if r.status >= 400 then
        error(("paginate: GET %s answered %d"):format(url, r.status), 0)
      end
      pages = pages + 1
      local page = r.json
      local items = dig(page, with.items)
      if type(items) ~= "table" then
        error(("paginate: page %d has no list at `%s`"):format(pages, with.items), 0)
      end
      for _, it in ipairs(items) do
        all[#all + 1] = it
        if with.max_items and #all >= with.max_items then
          return { items = all, pages = pages }
        end
      end
      local nexturl
      if with.next then
        local n = dig(page, with.next)
        nexturl = type(n) == "string" and n ~= "" and resolve(url, n) or nil
        query = nil
      elseif with.cursor then
        local c = dig(page, with.cursor)
        if c ~= nil and c ~= pacer.null and c ~= "" then
          nexturl = with.url
          query = {}
          for k, v in pairs(with.query or {}) do query[k] = v end
          -- a cursor written 2.0 in the JSON is a float: send 2, not 2.0
          if type(c) == "number" and c == math.floor(c) then
            c = string.format("%d", c)
          end
          query[with.cursor_param] = tostring(c)
        end
      else
        local n = link_next(r.headers)
        nexturl = n and resolve(url, n) or nil
        query = nil
      end
      if #items == 0 then
        nexturl = nil
      end
      url = nexturl
    end
    return { items = all, pages = pages }
  end,
}
