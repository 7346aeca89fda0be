-- wrk -t1 -c8 -d5s -s post.lua <url> -- <body file> [content type] ["Name: value" ...]
-- POSTs the file's bytes on every request (with the extra headers given, e.g. Triton's
-- Inference-Header-Content-Length) and prints one machine-readable summary line.

function init(args)
   local f = assert(io.open(args[1], "rb"))
   wrk.body = f:read("*a")
   f:close()
   wrk.method = "POST"
   wrk.headers["Content-Type"] = args[2] or "application/json"
   for i = 3, #args do
      local name, value = string.match(args[i], "^([^:]+):%s*(.*)$")
      if name then
         wrk.headers[name] = value
      end
   end
end

function done(summary, latency, requests)
   local e = summary.errors
   io.write(string.format(
      'WRK_JSON {"requests": %d, "duration_us": %d, "bytes": %d, "p50_us": %d, "p90_us": %d, ' ..
      '"p99_us": %d, "max_us": %d, "mean_us": %.1f, "err_connect": %d, "err_read": %d, ' ..
      '"err_write": %d, "err_status": %d, "err_timeout": %d}\n',
      summary.requests, summary.duration, summary.bytes,
      latency:percentile(50), latency:percentile(90), latency:percentile(99), latency.max,
      latency.mean, e.connect, e.read, e.write, e.status, e.timeout))
end
