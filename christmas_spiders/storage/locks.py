"""The storage's PostgreSQL advisory lock keys (pg_advisory_xact_lock), in one place so that no
two uses pick the same key by chance."""

# Schema upgrades (storage.database.upgrade) take it exclusive, market refreshes
# (storage.market) shared: a refresh never runs while the schema or the API role's grants
# change ("xmas" in ASCII).
SCHEMA = 0x786D6173
# One market refresh at a time ("mkt" in ASCII).
MARKET_REFRESH = 0x6D6B74
