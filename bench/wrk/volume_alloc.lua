-- POST /volume/alloc: lease COUNT volumes (default 1) of CODE_MODE (default 11, EC3P3).
package.path = package.path .. ";" .. debug.getinfo(1, "S").source:match("@(.*/)") .. "?.lua"
local report = require("report")
local body = string.format('{"code_mode":%d,"count":%d}', tonumber(os.getenv("CODE_MODE") or "11"),
                           tonumber(os.getenv("COUNT") or "1"))

function request()
  return wrk.format("POST", "/volume/alloc", {["Content-Type"] = "application/json"}, body)
end

done = report.done
