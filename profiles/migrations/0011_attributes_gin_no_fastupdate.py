"""The attributes GIN index without its pending list (``fastupdate = off``).

Every ingested event updates its profile's counters and last seen, and such an update is not
HOT (``last_seen_at`` is indexed), so it adds the attributes' GIN entries again. With the
default pending list, those entries pile up until one request merges 4 MB of them into the
index and waits for it: stalls of 40 to 300 ms in `/v1/track` (docs/benchmarks.md). Without
it each update inserts its few entries itself, a steady cost instead of a stall. Equality
filters read the index as before.
"""

from django.db import migrations


def forward(apps, schema_editor):
    if schema_editor.connection.vendor == "postgresql":
        schema_editor.execute("ALTER INDEX IF EXISTS profile_attributes_gin SET (fastupdate = off)")


def backward(apps, schema_editor):
    if schema_editor.connection.vendor == "postgresql":
        schema_editor.execute("ALTER INDEX IF EXISTS profile_attributes_gin RESET (fastupdate)")


class Migration(migrations.Migration):
    dependencies = [("profiles", "0010_merge_events_moved")]

    operations = [migrations.RunPython(forward, backward)]
