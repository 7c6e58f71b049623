-- GET /config/get of a task switch: a linearizable read.
package.path = package.path .. ";" .. debug.getinfo(1, "S").source:match("@(.*/)") .. "?.lua"
local report = require("report")
function request()
  return wrk.format("GET", "/config/get?key=balance")
end
done = report.done
