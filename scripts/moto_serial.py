"""moto's server, handling one request at a time.

moto's TransactWriteItems deep-copies every table it touches and, when a transaction is cancelled,
puts the copy back: with two requests in flight, a cancelled transaction silently undoes writes that
another request committed meanwhile (a lost increment under 50 concurrent deliveries). Real DynamoDB
serialises transactions per item and never does that. Running moto's own app behind one lock keeps
each request atomic while the clients still race as they would in production.

Usage: moto_serial.py HOST PORT
"""

import sys
import threading

from moto.moto_server.werkzeug_app import (
    DomainDispatcherApplication,
    MotoRequestHandler,
    create_backend_app,
)
from werkzeug.serving import run_simple


def serialised(app):
    lock = threading.Lock()

    def wrapper(environ, start_response):
        with lock:
            # Consume the whole response under the lock: WSGI apps may do work lazily.
            return list(app(environ, start_response))

    return wrapper


def main():
    host, port = sys.argv[1], int(sys.argv[2])
    app = DomainDispatcherApplication(create_backend_app)
    run_simple(host, port, serialised(app), threaded=True, request_handler=MotoRequestHandler)


if __name__ == "__main__":
    main()
