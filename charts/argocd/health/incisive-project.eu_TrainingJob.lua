-- TrainingJob (incisive-project.eu): a bounded run. Succeeded is the summary
-- (Unknown while it runs); a failure is Degraded and stays so, as the job is finished.
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
