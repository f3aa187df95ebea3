-- HPCWorkload (incisive-project.eu): a bounded batch run. Succeeded is the summary
-- (Unknown until the end); Failed carries the reason (DeadlineExceeded, InputsNotDonated,
-- ExceedsTenantQuota, ...). Queued and running workloads are Progressing.

local succeeded = condition("Succeeded")
local failed = condition("Failed")
if succeeded == nil and failed == nil then
  return result("Progressing", "waiting for the hub operator to reconcile this job")
end
if failed ~= nil and failed.status == "True" then
  return result("Degraded", text(failed))
end
if succeeded ~= nil and succeeded.status == "False" then
  return result("Degraded", text(succeeded))
end
if succeeded ~= nil and succeeded.status == "True" then
  return result("Healthy", text(succeeded))
end
if stale() then
  return result("Progressing", "the hub operator has not handled the latest spec yet")
end
local running = condition("Running")
if running ~= nil and running.status == "True" then
  return result("Progressing", "running: " .. text(running))
end
local queued = condition("Queued")
if queued ~= nil and queued.status == "True" then
  local position = obj.status.queuePosition
  if position ~= nil then
    return result("Progressing", "queued at position " .. tostring(position) .. ": " .. text(queued))
  end
  return result("Progressing", "queued: " .. text(queued))
end
return result("Progressing", text(succeeded))
