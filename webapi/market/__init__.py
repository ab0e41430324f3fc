"""The market view (issue #21): figures over the offers of ornaments at the shops, computed in
SQL over `products`, `product_changes` and the ornament links (docs/market.md)."""
