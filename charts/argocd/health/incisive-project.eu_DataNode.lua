-- DataNode (incisive-project.eu): health from the site operator's conditions.
-- Ready is the summary; enrolment problems a human must fix are Degraded too, but a
-- hub that is merely unreachable is not: the site keeps working on its own.
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
