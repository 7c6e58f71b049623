-- GET /kv/get/<key> of one existing key: a linearizable read (set the key first).
package.path = package.path .. ";" .. debug.getinfo(1, "S").source:match("@(.*/)") .. "?.lua"
local report = require("report")
function request()
  return wrk.format("GET", "/kv/get/bench-read")
end
done = report.done
