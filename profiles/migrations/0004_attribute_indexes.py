"""Indexes for filtering profiles by attribute (PostgreSQL only; the embedded SQLite mode has
no use for them):

- a GIN index (jsonb_path_ops) on ``attributes`` for equality (``attributes @> {...}``);
- an expression index per configured number/date/date-time key (one per key and kind, shared
  by the apps that configure it; not partial, so ANALYZE's statistics on the expression
  reach the planner). The standard fields
  ``created_at`` and ``birthday`` get theirs here; later ones are built by
  ``profiles.services.attribute_indexes_sync`` when a field is configured.

Built CONCURRENTLY (this migration is not atomic), so a deploy does not block ingestion.
The SQL is spelled out here on purpose: a migration must not change when the code does.
"""

import hashlib

from django.db import migrations


def _literal(key):
    return "'" + key.replace("'", "''") + "'"


def _expression_index(key, kind):
    digest = hashlib.sha1(key.encode(), usedforsecurity=False).hexdigest()[:24]
    literal = _literal(key)
    if kind == "num":
        expression = (
            f"(CASE WHEN jsonb_typeof(attributes -> {literal}) = 'number' "
            f"THEN (attributes ->> {literal})::numeric END)"
        )
    elif kind == "dt":
        expression = f"(rpad(rtrim(attributes ->> {literal}, 'Z'), 26, '.000000') COLLATE \"C\")"
    else:
        expression = f'((attributes ->> {literal}) COLLATE "C")'
    return (
        f"CREATE INDEX CONCURRENTLY IF NOT EXISTS profattr_{kind}_{digest} "
        f"ON profiles_profile (app_id, {expression})"
    )


KINDS = {"number": "num", "date": "date", "datetime": "dt"}


def create_indexes(apps, schema_editor):
    if schema_editor.connection.vendor != "postgresql":
        return
    ProfileField = apps.get_model("profiles", "ProfileField")
    wanted = {("created_at", "dt"), ("birthday", "date")}
    for key, field_type in ProfileField.objects.filter(field_type__in=list(KINDS)).values_list(
        "key", "field_type"
    ):
        wanted.add((key, KINDS[field_type]))
    # A plain cursor without parameters: keys may contain "%".
    with schema_editor.connection.cursor() as cursor:
        cursor.execute(
            "CREATE INDEX CONCURRENTLY IF NOT EXISTS profile_attributes_gin "
            "ON profiles_profile USING gin (attributes jsonb_path_ops)"
        )
        for key, kind in sorted(wanted):
            cursor.execute(_expression_index(key, kind))


def drop_indexes(apps, schema_editor):
    if schema_editor.connection.vendor != "postgresql":
        return
    with schema_editor.connection.cursor() as cursor:
        cursor.execute(
            "SELECT indexname FROM pg_indexes WHERE tablename = 'profiles_profile' "
            "AND (indexname LIKE %s OR indexname = 'profile_attributes_gin')",
            ["profattr\\_%"],
        )
        for (name,) in cursor.fetchall():
            cursor.execute(f'DROP INDEX CONCURRENTLY IF EXISTS "{name}"')


class Migration(migrations.Migration):
    atomic = False

    dependencies = [
        ("profiles", "0003_fields_quarantine_suppression"),
    ]

    operations = [migrations.RunPython(create_indexes, drop_indexes)]
