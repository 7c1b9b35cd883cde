"""moto's server with one request at a time.

moto's DynamoDB backend has no locks and its server runs a thread per connection, so a conditional
write or a TransactWriteItems is checked and applied without isolation: two concurrent
transactions on one item can both pass their conditions, and an update is lost. DynamoDB does not
do that, and the tests assert what DynamoDB guarantees (exactly-once counting under concurrency,
one refresh lease, one winning connect). Serialising requests restores it; each takes a few
milliseconds, so the tests lose nothing measurable. Arguments are moto_server's.
"""

import sys
import threading

from moto import server

_lock = threading.Lock()


class _Serialised(server.DomainDispatcherApplication):
    def __call__(self, environ, start_response):
        with _lock:
            return super().__call__(environ, start_response)


server.DomainDispatcherApplication = _Serialised
sys.exit(server.main())
