-- POST /volume/retain: renew one lease per request, going round the tokens of TOKENS_FILE (one
-- token a line); every wrk thread starts at another place of the list.
package.path = package.path .. ";" .. debug.getinfo(1, "S").source:match("@(.*/)") .. "?.lua"
local report = require("report")
local tokens = {}
for line in io.lines(os.getenv("TOKENS_FILE")) do
  tokens[#tokens + 1] = line
end
local i = 0
local threads = 0

function setup(thread)
  threads = threads + 1
  thread:set("start", threads * 7919)
end

function init(args)
  i = start or 0
end

function request()
  i = i % #tokens + 1
  return wrk.format("POST", "/volume/retain", {["Content-Type"] = "application/json"},
                    '{"tokens":["' .. tokens[i] .. '"]}')
end

done = report.done
