-- POST /config/set with a distinct key per request (keys cycle over KEYS per thread).
package.path = package.path .. ";" .. debug.getinfo(1, "S").source:match("@(.*/)") .. "?.lua"
local report = require("report")
local counter = 0
local tid = 0
local threads = {}

function setup(thread)
  thread:set("tid", #threads + 1)
  table.insert(threads, thread)
end

function request()
  counter = counter + 1
  local body = string.format('{"key":"bench-%d-%d","value":"value-%d"}', tid, counter % 10000, counter)
  return wrk.format("POST", "/config/set", {["Content-Type"] = "application/json"}, body)
end

done = report.done
