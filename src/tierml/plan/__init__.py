"""Pure planning layer: cost models and the placement optimizer. No I/O, no clock."""
