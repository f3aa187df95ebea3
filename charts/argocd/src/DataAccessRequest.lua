-- DataAccessRequest (incisive-project.eu, on the hub): a researcher's signed request,
-- checked in order SignatureValid, PolicyAllowed, SitesApproved, then Granted until it
-- Expires. A refusal at any step is final and Degraded, with the step and its reason.
-- Expiry is the planned end of a grant, not a fault: an expired request is Healthy and
-- says "expired". Checks running or sites still to answer are Progressing.

local steps = { "SignatureValid", "PolicyAllowed", "SitesApproved" }
local ready = condition("Ready")
if ready == nil and condition("SignatureValid") == nil then
  return result("Progressing", "waiting for the hub operator to check this request")
end
local expired = condition("Expired")
if expired ~= nil and expired.status == "True" then
  return result("Healthy", "expired, access revoked: " .. text(expired))
end
for _, step in ipairs(steps) do
  local c = condition(step)
  if c ~= nil and c.status == "False" then
    return result("Degraded", "refused at " .. step .. ": " .. text(c))
  end
end
if stale() then
  return result("Progressing", "the hub operator has not handled the latest spec yet")
end
local granted = condition("Granted")
if granted ~= nil and granted.status == "True" then
  return result("Healthy", text(granted))
end
-- The operator writes Ready False only with a refusal or an expiry, both handled above; a
-- reason added later is still a stop, not progress.
if ready ~= nil and ready.status == "False" then
  return result("Degraded", text(ready))
end
local sites = condition("SitesApproved")
if sites ~= nil then
  return result("Progressing", text(sites))
end
return result("Progressing", text(ready))
