-- wrk script for benches/proxy/run.sh: every connection waits PACE_MS
-- milliseconds (default 1) after each response before sending its next
-- request, so the offered load stays below saturation.
local pace = tonumber(os.getenv("PACE_MS") or "1")

function delay()
   return pace
end
