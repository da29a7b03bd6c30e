"""Pure rules on inputs and names: image checks, request resolution, manifests, derived keys. No I/O."""
