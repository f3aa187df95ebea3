-- WorkItem (incisive-project.eu, in a site's namespace on the hub): the site's decision.
-- Accepted and Declined are both valid answers (the TrainingJob shows what follows),
-- so either is Healthy; until the site answers, the item is Progressing.

local decided = condition("Decided")
local decision = obj.status and obj.status.decision
if decided ~= nil and decided.status == "True" or decision == "Accepted" or decision == "Declined" then
  local message = decision or (decided and decided.reason) or "decided"
  if obj.status.reason ~= nil and obj.status.reason ~= "" then
    message = message .. ": " .. obj.status.reason
  end
  return result("Healthy", message)
end
if decided ~= nil then
  return result("Progressing", text(decided))
end
return result("Progressing", "waiting for the site to pull and decide this work item")
