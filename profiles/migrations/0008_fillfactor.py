from django.db import migrations

from pushapp.db import fillfactor_operation


class Migration(migrations.Migration):
    """Profiles and devices are updated by every ingestion batch (counters, last seen): room
    on each page for HOT updates (devices: always, as no indexed column changes; profiles:
    when their indexed last_seen_at does not move)."""

    dependencies = [
        ("profiles", "0007_timeline_and_list_indexes"),
    ]

    operations = [
        fillfactor_operation("profiles_profile", 85),
        fillfactor_operation("profiles_device", 85),
    ]
