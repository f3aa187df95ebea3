-- FederatedSite (incisive-project.eu, on the hub): health from the hub operator's
-- conditions. A refused certificate request or a silent site is Degraded; a site that
-- has not asked yet, or waits for a human's approval, is Progressing.
-- Argo CD reads this table back: status is Healthy, Progressing or Degraded.
local hs = {}

local function condition(type)
  if obj.status == nil or obj.status.conditions == nil then
    return nil
  end
  for _, c in ipairs(obj.status.conditions) do
    if c.type == type then
      return c
    end
  end
  return nil
end

-- The operator has not yet acted on the latest spec: what the conditions say is stale.
local function stale()
  local observed = obj.status and obj.status.observedGeneration
  local generation = obj.metadata and obj.metadata.generation
  return observed ~= nil and generation ~= nil and observed < generation
end

local function text(c)
  if c == nil then
    return ""
  end
  local message = c.message or ""
  if message == "" then
    return c.reason or ""
  end
  return (c.reason or "") .. ": " .. message
end

local function result(status, message)
  hs.status = status
  hs.message = message
  return hs
end

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
