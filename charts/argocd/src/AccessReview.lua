-- AccessReview (incisive-project.eu, in a site's namespace on the hub): the site's answer
-- to a DataAccessRequest. Approved and Declined are both valid answers (the request shows
-- what follows, and is Degraded when a site declines), so either is Healthy; until the
-- site answers, or while a local person has still to approve, the review is Progressing.

local decided = condition("Decided")
local decision = obj.status and obj.status.decision
if decision == "Approved" or decision == "Declined" or decided ~= nil and decided.status == "True" then
  local message = decision or decided.reason or "decided"
  local reason = obj.status.reason
  if reason ~= nil and reason ~= "" then
    message = message .. ": " .. reason
  end
  if obj.status.message ~= nil and obj.status.message ~= "" then
    message = message .. ": " .. obj.status.message
  end
  return result("Healthy", message)
end
if decided ~= nil then
  return result("Progressing", text(decided))
end
if decision == "Pending" and obj.status.reason ~= nil then
  return result("Progressing", obj.status.reason .. ": " .. (obj.status.message or ""))
end
return result("Progressing", "waiting for the site to pull and review this access request")
