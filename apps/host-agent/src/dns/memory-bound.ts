/**
 * The documented bound on the agent's resident memory (main process), whatever
 * the clients of its DNS proxy do, when the agent runs with its launch
 * settings (agent/agent-launch.ts: `--max-semi-space-size=2`,
 * `MALLOC_ARENA_MAX=2`, applied by `cgfence agent` itself wherever it starts).
 * With them the agent rests at about 120 MiB and the five flood cases of
 * dns-load.e2e peaked at 129-231 MiB over three runs on this shared 2-core
 * machine (node's defaults: rest 145-150, peaks 161-247 in the same runs, and
 * up to 321 in an earlier clean-clone run). 288 MiB leaves a quarter above the
 * highest peak seen. With the UDP forwarding core (issue 19, the default since)
 * the agent-memory benchmark measured rest 125 MiB and peaks 135-236 MiB. docs/operations.md, "Agent memory", gives the
 * breakdown; the dns-load end-to-end test, the dns-flood and agent-memory
 * benchmarks check it.
 */
export const AGENT_MEMORY_BOUND_BYTES = 288 * 2 ** 20;
