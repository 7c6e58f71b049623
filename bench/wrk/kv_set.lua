-- POST /kv/set: a 64-byte value under one of 10,000 keys per thread (clustermgr).
package.path = package.path .. ";" .. debug.getinfo(1, "S").source:match("@(.*/)") .. "?.lua"
local report = require("report")
local b64 = require("b64")
local counter, tid, threads = 0, 0, {}
local value = b64.encode(string.rep("v", 64))
function setup(thread) thread:set("tid", #threads + 1); table.insert(threads, thread) end
function request()
  counter = counter + 1
  local body = string.format('{"key":"bench/%d/%d","value":"%s"}', tid, counter % 10000, value)
  return wrk.format("POST", "/kv/set", {["Content-Type"] = "application/json"}, body)
end
done = report.done
