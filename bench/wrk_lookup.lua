-- wrk script for bench/server.py: POST /v1/hlr/sync with ten numbers, or GET /healthz.
--
-- Usage (bench/server.py runs it for you):
--   BENCH_AUTHORIZATION='Basic <base64 user:password>' \
--     wrk -t2 -c64 -d10s --timeout 30s -s bench/wrk_lookup.lua http://127.0.0.1:8080/v1/hlr/sync -- lookup
--   wrk -t2 -c64 -d10s --timeout 30s -s bench/wrk_lookup.lua http://127.0.0.1:8080/healthz -- healthz
--
-- The Authorization header comes from the environment rather than the command line
-- so the password does not show up in the process list.
--
-- Every response that is not a 200 is counted, and done() prints one line
--   WRK_RESULT {"mode": ..., "requests": ..., "duration_us": ..., "latency_us": {...}, ...}
-- that bench/server.py parses instead of wrk's human-readable report.

-- Ten distinct valid mobile numbers from ten countries. bench/server.py reads this
-- list (one quoted E.164 number per line) and checks it with phonenumbers before
-- it starts, so keep that shape when editing it.
local NUMBERS = {
  "+37251000001",   -- EE, Telia
  "+358401234567",  -- FI, Telia
  "+4915112345678", -- DE, T-Mobile
  "+447912345678",  -- GB, O2
  "+2348031234567", -- NG, MTN
  "+254712345678",  -- KE, Safaricom
  "+27821234567",   -- ZA, Vodacom
  "+33612345678",   -- FR, SFR
  "+46701234567",   -- SE
  "+48501234567",   -- PL, Orange
}

local threads = {}

-- Runs in the main Lua state once per wrk thread; done() reads the counters back.
function setup(thread)
  table.insert(threads, thread)
end

-- Per-thread counters: globals, so thread:get() can read them in done().
mode = "lookup"
responses = 0
ok = 0
non200 = 0

local function json_body(numbers)
  local quoted = {}
  for i, n in ipairs(numbers) do
    quoted[i] = '"' .. n .. '"'
  end
  -- Same bytes as Python's json.dumps({"numbers": [...]}, separators=(",", ":")).
  return '{"numbers":[' .. table.concat(quoted, ",") .. ']}'
end

function init(args)
  mode = args[1] or "lookup"
  if mode == "lookup" then
    local authorization = os.getenv("BENCH_AUTHORIZATION")
    if authorization == nil or authorization == "" then
      io.stderr:write("wrk_lookup.lua: set BENCH_AUTHORIZATION to the Authorization header value\n")
      os.exit(2)
    end
    wrk.method = "POST"
    wrk.body = json_body(NUMBERS)
    wrk.headers["Content-Type"] = "application/json"
    wrk.headers["Accept"] = "application/json"
    wrk.headers["Authorization"] = authorization
  elseif mode == "healthz" then
    wrk.method = "GET"
    wrk.body = nil
  else
    io.stderr:write("wrk_lookup.lua: mode must be lookup or healthz, not " .. mode .. "\n")
    os.exit(2)
  end
end

function response(status, headers, body)
  responses = responses + 1
  if status == 200 then
    ok = ok + 1
  else
    non200 = non200 + 1
  end
end

function done(summary, latency, requests)
  local total_responses, total_ok, total_non200 = 0, 0, 0
  local thread_mode = mode
  for _, thread in ipairs(threads) do
    total_responses = total_responses + thread:get("responses")
    total_ok = total_ok + thread:get("ok")
    total_non200 = total_non200 + thread:get("non200")
    thread_mode = thread:get("mode")
  end
  local e = summary.errors
  local line = string.format(
    '{"mode":"%s","requests":%d,"duration_us":%d,"bytes":%d,'
      .. '"responses":%d,"ok":%d,"non200":%d,'
      .. '"errors":{"connect":%d,"read":%d,"write":%d,"status":%d,"timeout":%d},'
      .. '"latency_us":{"min":%d,"mean":%.1f,"max":%d,"p50":%d,"p90":%d,"p99":%d}}',
    thread_mode, summary.requests, summary.duration, summary.bytes,
    total_responses, total_ok, total_non200,
    e.connect, e.read, e.write, e.status, e.timeout,
    latency.min, latency.mean, latency.max,
    latency:percentile(50), latency:percentile(90), latency:percentile(99)
  )
  io.write("WRK_RESULT " .. line .. "\n")
end
