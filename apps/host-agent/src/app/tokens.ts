// Injection tokens of the agent's Nest application: the configuration parsed
// once at boot, the pino logger, and fleet mode's settings.
export const AGENT_CONFIG = Symbol('AGENT_CONFIG');
export const AGENT_LOGGER = Symbol('AGENT_LOGGER');
export const FLEET_SETTINGS = Symbol('FLEET_SETTINGS');
