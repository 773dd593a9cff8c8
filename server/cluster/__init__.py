"""Scale-out: the workers of a deployment, their registry in Redis, and where each consult
lives (docs/architecture.md, "Workers and placement").

Redis carries only what must cross between workers here: each worker's heartbeat (its entry,
with a TTL), each consult's placement, and short messages addressed to one worker
(`commands.py`). Media and notes never pass through it."""
