-- wrk script of the load harness (bench/gateway.sh).
--
--   wrk -t T -c C -d D -s bench/wrk.lua URL -- EXPECT [TOKENS_FILE T]
--
-- EXPECT is the status every answer should have (200 for paid requests, 402 for challenges).
-- With TOKENS_FILE (one `L402 <macaroon>:<preimage>` per line) each request carries the next
-- token as its Authorization header: thread i of T takes lines i, i+T, i+2T, … so no token is
-- sent twice, unless a thread runs out, when it starts its lines again (counted as `reused`).
--
-- The requests are formatted once, in init, not per request: formatting a header in Lua for
-- each request costs the load generator several µs, on the same cores as the server under test,
-- and only the paid side would pay it. For the same reason, when EXPECT is 200 the script reads
-- no answers (wrk then skips handing each answer's headers to Lua) and counts as `other` what
-- wrk itself counts as non-2xx/3xx; other_status is then "-".
-- At the end it prints one line for the harness to read:
--   RESULT requests=… duration_us=… expected=… other=… other_status=… reused=… errors=… p50_us=… p90_us=… p99_us=… max_us=…

local threads = {}
local thread_count = 0

function setup(thread)
  thread:set("id", thread_count)
  thread_count = thread_count + 1
  table.insert(threads, thread)
end

function init(args)
  expect = tonumber(args[1]) or 200
  expected, other, other_status, reused = 0, 0, "", 0
  plain = wrk.format()
  tokens = nil
  -- Answers are read in Lua only when a status other than 200 is expected.
  reads_answers = expect ~= 200
  if not reads_answers then
    response = nil
  end
  if args[2] then
    -- Every thread counts the threads the same way: setup ran for all of them before init.
    local stride = tonumber(args[3]) or 1
    tokens = {}
    local i = 0
    for line in io.lines(args[2]) do
      if i % stride == id then
        tokens[#tokens + 1] = wrk.format(nil, nil, { ["Authorization"] = line })
      end
      i = i + 1
    end
    if #tokens == 0 then
      error("no tokens for thread " .. id .. " in " .. args[2])
    end
    next_token = 1
  end
end

function request()
  if not tokens then
    return plain
  end
  local token = tokens[next_token]
  next_token = next_token + 1
  if next_token > #tokens then
    next_token = 1
    reused = reused + 1
  end
  return token
end

function response(status, headers, body)
  if status == expect then
    expected = expected + 1
  else
    other = other + 1
    if other_status == "" then
      other_status = tostring(status) .. ":" .. (headers["x-l402-reason"] or headers["X-L402-Reason"] or "")
    end
  end
end

function done(summary, latency, requests)
  local ok, bad, first, wraps = 0, 0, "", 0
  for _, thread in ipairs(threads) do
    ok = ok + (thread:get("expected") or 0)
    bad = bad + (thread:get("other") or 0)
    wraps = wraps + (thread:get("reused") or 0)
    local s = thread:get("other_status") or ""
    if first == "" then
      first = s
    end
  end
  local e = summary.errors
  local errors = e.connect + e.read + e.write + e.timeout
  if not threads[1]:get("reads_answers") then
    -- wrk counted the answers that were not 2xx or 3xx.
    bad = e.status
    ok = summary.requests - bad
  end
  io.write(string.format(
    "RESULT requests=%d duration_us=%d expected=%d other=%d other_status=%s reused=%d errors=%d p50_us=%d p90_us=%d p99_us=%d max_us=%d\n",
    summary.requests, summary.duration, ok, bad, first == "" and "-" or first, wraps, errors,
    latency:percentile(50), latency:percentile(90), latency:percentile(99), latency.max))
end
