-- FederatedSite (incisive-project.eu, on the hub): health from the hub operator's
-- conditions. A refused certificate request or a silent site is Degraded; a site that
-- has not asked yet, or waits for a human's approval, is Progressing.

local waiting = { AwaitingRequest = true, AwaitingApproval = true, UnknownSite = true }
local ready = condition("Ready")
local joined = condition("Joined")
if ready == nil and joined == nil then
  return result("Progressing", "waiting for the hub operator to reconcile this site")
end
if stale() then
  return result("Progressing", "the hub operator has not handled the latest spec yet")
end
if joined ~= nil and joined.status == "False" and not waiting[joined.reason] then
  return result("Degraded", "enrolment refused: " .. text(joined))
end
if ready ~= nil and ready.status == "True" then
  return result("Healthy", text(ready))
end
if ready ~= nil and ready.status == "Unknown" then
  return result("Degraded", text(ready))
end
if joined ~= nil and joined.status ~= "True" then
  return result("Progressing", text(joined))
end
return result("Progressing", text(ready))
