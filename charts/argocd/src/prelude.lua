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
