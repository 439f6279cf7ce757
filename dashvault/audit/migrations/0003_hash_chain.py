"""The audit hash chains: number, link and MAC every existing entry in append order, then
keep the table append-only on PostgreSQL."""

import datetime as dt

from django.conf import settings
from django.db import migrations, models
from django.utils import timezone

from dashvault.lib import hashchain

TRIGGER = """
CREATE OR REPLACE FUNCTION dashvault_audit_append_only() RETURNS trigger AS $$
BEGIN
    -- Archiving (moving verified old entries to encrypted files) may delete, and only it:
    -- it sets this for its own transaction.
    IF TG_OP = 'DELETE' AND current_setting('dashvault.audit_archive', true) = 'on' THEN
        RETURN OLD;
    END IF;
    RAISE EXCEPTION 'the audit log is append-only: % refused', TG_OP;
END
$$ LANGUAGE plpgsql;
CREATE TRIGGER dashvault_audit_append_only BEFORE UPDATE OR DELETE ON audit_auditentry
    FOR EACH ROW EXECUTE FUNCTION dashvault_audit_append_only();
"""
UNTRIGGER = """
DROP TRIGGER IF EXISTS dashvault_audit_append_only ON audit_auditentry;
DROP FUNCTION IF EXISTS dashvault_audit_append_only();
"""


def chain_existing_entries(apps, schema_editor):
    entry_model = apps.get_model("audit", "AuditEntry")
    head_model = apps.get_model("audit", "AuditChainHead")
    key = str(settings.AUDIT_KEY).encode()
    heads = {}
    for entry in entry_model.objects.order_by("id").iterator():
        chain = "platform" if entry.org_id is None else str(entry.org_id)
        seq, prev = heads.get(chain, (0, hashchain.GENESIS))
        entry.chain, entry.seq, entry.prev = chain, seq + 1, prev
        entry.mac = hashchain.mac(
            key,
            {
                "chain": entry.chain,
                "seq": entry.seq,
                "prev": entry.prev,
                "at": entry.at.astimezone(dt.UTC).isoformat(timespec="microseconds"),
                "action": entry.action,
                "actor_kind": entry.actor_kind,
                "actor_id": str(entry.actor_id) if entry.actor_id else None,
                "target_type": entry.target_type,
                "target_id": entry.target_id,
                "ip": entry.ip,
                "detail": entry.detail,
            },
        )
        entry.save(update_fields=["chain", "seq", "prev", "mac"])
        heads[chain] = (entry.seq, entry.mac)
    for chain, (seq, mac) in heads.items():
        head_model.objects.create(chain=chain, seq=seq, mac=mac)


def add_trigger(apps, schema_editor):
    if schema_editor.connection.vendor == "postgresql":
        schema_editor.execute(TRIGGER, params=None)


def drop_trigger(apps, schema_editor):
    if schema_editor.connection.vendor == "postgresql":
        schema_editor.execute(UNTRIGGER, params=None)


class Migration(migrations.Migration):

    dependencies = [
        ('audit', '0002_initial'),
        ('orgs', '0003_group_sso_default_organization_break_glass_and_more'),
    ]

    operations = [
        # Was auto_now_add, which replaced on save the time the entry's MAC covers.
        migrations.AlterField(
            model_name='auditentry',
            name='at',
            field=models.DateTimeField(db_index=True, default=timezone.now, editable=False),
        ),
        migrations.CreateModel(
            name='AuditChainHead',
            fields=[
                ('chain', models.CharField(max_length=36, primary_key=True, serialize=False)),
                ('seq', models.BigIntegerField(default=0)),
                ('mac', models.CharField(default='', max_length=64)),
            ],
        ),
        migrations.AddField(
            model_name='auditentry',
            name='chain',
            field=models.CharField(default='platform', max_length=36),
        ),
        migrations.AddField(
            model_name='auditentry',
            name='mac',
            field=models.CharField(default='', max_length=64),
        ),
        migrations.AddField(
            model_name='auditentry',
            name='prev',
            field=models.CharField(default='', max_length=64),
        ),
        migrations.AddField(
            model_name='auditentry',
            name='seq',
            field=models.BigIntegerField(default=0),
        ),
        migrations.RunPython(chain_existing_entries, migrations.RunPython.noop),
        migrations.AddConstraint(
            model_name='auditentry',
            constraint=models.UniqueConstraint(fields=('chain', 'seq'), name='audit_chain_seq'),
        ),
        migrations.RunPython(add_trigger, drop_trigger),
    ]
