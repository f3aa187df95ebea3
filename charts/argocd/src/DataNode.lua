-- DataNode (incisive-project.eu): health from the site operator's conditions.
-- Ready is the summary; enrolment problems a human must fix are Degraded too, but a
-- hub that is merely unreachable is not: the site keeps working on its own.

local ready = condition("Ready")
if ready == nil then
  return result("Progressing", "waiting for the site operator to reconcile this DataNode")
end
if stale() then
  return result("Progressing", "the site operator has not handled the latest spec yet")
end
if ready.reason == "InvalidSpec" then
  return result("Degraded", text(ready))
end
local enrolled = condition("Enrolled")
local phase = obj.status.enrolment
if enrolled ~= nil and enrolled.status ~= "True" and
    (phase == "Denied" or phase == "Misconfigured" or enrolled.reason == "BootstrapRejected") then
  return result("Degraded", "enrolment: " .. text(enrolled))
end
if ready.status ~= "True" then
  return result("Progressing", text(ready))
end
local reachable = condition("HubReachable")
if reachable ~= nil and reachable.status == "False" then
  return result("Healthy", "appliance ready; hub unreachable, working locally (" .. text(reachable) .. ")")
end
if phase == "Pending" and enrolled ~= nil then
  return result("Healthy", "appliance ready; enrolment pending (" .. text(enrolled) .. ")")
end
return result("Healthy", text(ready))
