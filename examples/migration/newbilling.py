"""Step 5 of the migration guide: the billing service's endpoints, ported
to Quart and mounted at /billing in the same process, in place of the
proxy. Same URLs, same JSON, so clients do not notice."""
from quart import Quart, jsonify, request

from billing import INVOICES

app = Quart(__name__)


def invoices_for(user):
    """For in-process callers (the legacy app's report view, once ported)."""
    return INVOICES.get(user, [])


@app.get("/health")
async def health():
    return jsonify(ok=True, pid=None)


@app.get("/invoices")
async def invoices():
    user = request.args.get("user", "")
    seen = {h: request.headers.get(h) for h in ("X-Forwarded-For", "X-Forwarded-Proto", "X-Forwarded-Host")}
    return jsonify(user=user, invoices=invoices_for(user), forwarded=seen)
