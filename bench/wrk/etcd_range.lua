-- POST /v3/kv/range on etcd's JSON gateway: a linearizable read of one key (the default).
package.path = package.path .. ";" .. debug.getinfo(1, "S").source:match("@(.*/)") .. "?.lua"
local report = require("report")
local b64 = require("b64")
local body = string.format('{"key":"%s"}', b64.encode("bench-read-key"))
function request()
  return wrk.format("POST", "/v3/kv/range", {["Content-Type"] = "application/json"}, body)
end
done = report.done
