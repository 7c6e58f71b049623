-- POST /kv/set with a distinct key per request (keys cycle over 100000 per thread) and a
-- 96-byte value (128 characters of base64).
package.path = package.path .. ";" .. debug.getinfo(1, "S").source:match("@(.*/)") .. "?.lua"
local report = require("report")
local counter = 0
local tid = 0
local threads = {}
local value = string.rep("QmVuY2ht", 16)

function setup(thread)
  thread:set("tid", #threads + 1)
  table.insert(threads, thread)
end

function request()
  counter = counter + 1
  local body = string.format('{"key":"bench/%d/%d","value":"%s"}', tid, counter % 100000, value)
  return wrk.format("POST", "/kv/set", {["Content-Type"] = "application/json"}, body)
end

done = report.done
