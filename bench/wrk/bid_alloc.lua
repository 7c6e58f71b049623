-- POST /bid/alloc: allocate a range of COUNT blob ids per request (default 1; set BID_COUNT).
package.path = package.path .. ";" .. debug.getinfo(1, "S").source:match("@(.*/)") .. "?.lua"
local report = require("report")
local body = string.format('{"count":%d}', tonumber(os.getenv("BID_COUNT") or "1"))

function request()
  return wrk.format("POST", "/bid/alloc", {["Content-Type"] = "application/json"}, body)
end

done = report.done
