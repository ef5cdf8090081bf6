"""Two of the legacy app's JSON routes (/health, /summary/<user>) ported
to Quart: the next step of the migration, not yet serving anyone.

Step 4 of docs/migration.md runs it as the legacy app's shadow: every GET
to those routes is replayed to it and its answers compared with Flask's.
The port has a bug that only some users' data shows, the kind of thing
shadow mode is for: `due` adds up every invoice, paid ones too.
"""
import datetime

from quart import Quart

import billing

app = Quart(__name__)


@app.get("/health")
async def health():
    return {"ok": True}


@app.get("/summary/<user>")
async def summary(user):
    invoices = billing.INVOICES.get(user, [])
    unpaid = [i for i in invoices if not i["paid"]]
    return {"user": user, "open_invoices": len(unpaid),
            "due": sum(i["amount"] for i in invoices),   # the deliberate bug: paid invoices counted too
            "currency": "EUR", "generated_at": datetime.datetime.now(datetime.timezone.utc).isoformat()}
