"""Names of the domain that storage, configuration and the API all use (a leaf: imports nothing).

Defined once here, so the configuration can check against them without importing the storage.
"""

# The kinds of rows in `product_changes`: a product first seen, a field changed, a product no
# longer listed, and listed again.
CHANGE_KINDS = ("listed", "changed", "delisted", "relisted")

# Columns of `products` whose changes the history trigger can record.
AUDITABLE_FIELDS = (
    "price",
    "regular_price",
    "availability",
    "availability_text",
    "name",
    "sku",
    "link",
    "image_url",
    "release_year",
    "series",
    "series_number",
    "artist",
    "brand",
    "currency",
)
