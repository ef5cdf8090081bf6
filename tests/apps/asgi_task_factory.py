"""ASGI app for test_asgi.py: which asyncio Task runs each request.

GET /install sets a task factory on the running loop; requests after it
must run in tasks that factory made.
"""
import asyncio

made = []


def factory(loop, coro, context=None):
    # uvloop passes context= to a task factory even when it is None.
    task = asyncio.Task(coro, loop=loop, context=context)
    task.set_name("from-factory-%d" % len(made))
    made.append(task)
    return task


async def app(scope, receive, send):
    if scope["type"] != "http":
        return
    if scope["path"] == "/install":
        asyncio.get_running_loop().set_task_factory(factory)
    task = asyncio.current_task()
    body = ("%s %s %d" % (type(task).__name__, task.get_name(), len(made))).encode()
    await send({"type": "http.response.start", "status": 200, "headers": [(b"content-type", b"text/plain")]})
    await send({"type": "http.response.body", "body": body})
