-- POST /v3/kv/put on etcd's JSON gateway: same key space and value size as kv_set.lua.
package.path = package.path .. ";" .. debug.getinfo(1, "S").source:match("@(.*/)") .. "?.lua"
local report = require("report")
local b64 = require("b64")
local counter, tid, threads = 0, 0, {}
local value = b64.encode(string.rep("v", 64))
function setup(thread) thread:set("tid", #threads + 1); table.insert(threads, thread) end
function request()
  counter = counter + 1
  local key = b64.encode(string.format("bench/%d/%d", tid, counter % 10000))
  local body = string.format('{"key":"%s","value":"%s"}', key, value)
  return wrk.format("POST", "/v3/kv/put", {["Content-Type"] = "application/json"}, body)
end
done = report.done
