"""``sdze serve``: run the REST job service (SQLite store by default, local Ray unless told otherwise)."""

from __future__ import annotations

import argparse
import sys


def cmd_serve(args: argparse.Namespace) -> int:
    import logging

    import uvicorn

    from .app import create_app
    from .settings import Settings

    try:
        settings = Settings.from_env(
            host=args.host,
            port=args.port,
            data_dir=args.data_dir,
            database_url=args.database_url,
            artifacts_dir=args.artifacts_dir,
            max_concurrent_jobs=args.max_concurrent_jobs,
            tokens=args.token or None,
            ray_address=args.ray_address,
        )
        app = create_app(settings)
    except ValueError as e:
        sys.exit(f"error: {e}")
    logging.basicConfig(level=logging.INFO, format="%(asctime)s %(levelname)s %(name)s: %(message)s")
    print(
        f"sdze service on http://{settings.host}:{settings.port}/  (API docs /docs; data in "
        f"{settings.data_dir.resolve()})",
        flush=True,
    )
    uvicorn.run(app, host=settings.host, port=settings.port, log_level=args.log_level, timeout_graceful_shutdown=10)
    return 0


def register(sub: argparse._SubParsersAction) -> None:
    """Add the ``serve`` verb to the ``sdze`` parser."""
    s = sub.add_parser("serve", help="run the REST job service (SQLite store, local Ray by default)")
    s.add_argument("--host", default=None, help="bind address (default 127.0.0.1; non-loopback needs --token)")
    s.add_argument("--port", type=int, default=None, help="port (default 8000)")
    s.add_argument("--data-dir", default=None, help="store and artifacts folder (default ./sdze-data)")
    s.add_argument("--database-url", default=None, help="SQLAlchemy URL (default SQLite in the data dir)")
    s.add_argument("--artifacts-dir", default=None, help="artifacts root every Ray node reaches")
    s.add_argument("--max-concurrent-jobs", type=int, default=None)
    s.add_argument("--token", action="append", help="accepted bearer token (repeat; or SDZE_TOKENS=a,b)")
    s.add_argument("--ray-address", default=None, help="attach to a Ray cluster (default RAY_ADDRESS or local)")
    s.add_argument("--log-level", default="info")
    s.set_defaults(func=cmd_serve)
