"""Mock payment workflow (seed 001): an order moves created -> hold -> paid."""
