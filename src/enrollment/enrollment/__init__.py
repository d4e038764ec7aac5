"""Contract enrollment (seed 000): the immediate workflow and its fulfillment path."""
