"""chaos: the chaos proxy of loadcaller.

Library entry points (the `chaos-proxy` command wraps the same):

- `chaos.config.load_config(path)` / `parse_config(data, source)`: validated config
- `chaos.proxy.ChaosProxy(config, seed=..., clock=...)`: start/stop, `listeners`,
  `active_faults()`, `injected_counts()`, `registry`
- `chaos.packet.build_impairment(spec, rng)`: packet models for any media path

docs/faults.md documents every fault.
"""
