-- GET /kv/get/<key>: a linearizable read of one existing key (clustermgr).
package.path = package.path .. ";" .. debug.getinfo(1, "S").source:match("@(.*/)") .. "?.lua"
local report = require("report")
function request() return wrk.format("GET", "/kv/get/bench-read-key") end
done = report.done
