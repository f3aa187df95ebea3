-- TrainingJob (incisive-project.eu): a bounded run. Succeeded is the summary
-- (Unknown while it runs); a failure is Degraded and stays so, as the job is finished.

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
  local round = obj.status.currentRound
  if round ~= nil then
    return result("Progressing", "round " .. tostring(round) .. " of " .. tostring(obj.spec.rounds))
  end
  return result("Progressing", text(running))
end
return result("Progressing", text(succeeded))
