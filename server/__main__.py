"""The `triad` command line. Parses arguments and calls `server.commands`; holds no logic."""

from __future__ import annotations

import argparse
import asyncio
import sys

from pydantic import ValidationError

from . import commands
from .api.schemas import MintTokenIn
from .auth.roles import Role
from .errors import ConfigError, TriadError
from .ops.checks import Status
from .ops.keys import RotationLimits, census_lines
from .settings import Settings


def _ttl(text: str) -> int:
    """The same bounds as the REST API's `ttl_seconds`."""
    try:
        seconds = MintTokenIn(ttl_seconds=int(text)).ttl_seconds
    except (ValueError, ValidationError):
        raise argparse.ArgumentTypeError("60 to 2592000 whole seconds") from None
    assert seconds is not None
    return seconds


def _parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="triad", description="Triad consult server")
    verbs = parser.add_subparsers(dest="verb", required=True)

    serve = verbs.add_parser("serve", help="run the server")
    serve.add_argument("--host", help="address to listen on (TRIAD_HOST)")
    serve.add_argument("--port", type=int, help="port to listen on (TRIAD_PORT)")
    serve.add_argument(
        "--workers",
        type=int,
        help="worker processes, on consecutive ports from --port (TRIAD_WORKERS)",
    )
    serve.add_argument(
        "--demo", action="store_true", help="create a demo consult and print its join links"
    )

    verbs.add_parser("migrate", help="bring the database schema to the newest migration")
    verbs.add_parser("demo", help="create a demo consult and print its three join links")
    verbs.add_parser("keygen", help="print a new TRIAD_ENCRYPTION_KEYS entry")

    apikey = verbs.add_parser("apikey", help="platform API keys")
    apikey_verbs = apikey.add_subparsers(dest="apikey_verb", required=True)
    create = apikey_verbs.add_parser("create", help="create a key (the secret is shown once)")
    create.add_argument("name", help="the platform's name; created on first use")
    revoke = apikey_verbs.add_parser("revoke", help="revoke a key")
    revoke.add_argument("key_id")

    check = verbs.add_parser(
        "check",
        help="check what the server depends on, one line each (exit 1 if any fails)",
        description="Alone: every check. `turn`: the TURN URLs only, one line each.",
    )
    check_verbs = check.add_subparsers(dest="check_verb")
    check_verbs.add_parser(
        "turn", help="allocate a relay at each TRIAD_TURN_URLS entry with our credentials"
    )

    verbs.add_parser(
        "prune", help="delete idempotency keys and audit events past their retention, now"
    )

    keys = verbs.add_parser("keys", help="the encryption keys of sealed values")
    keys_verbs = keys.add_subparsers(dest="keys_verb", required=True)
    keys_verbs.add_parser("status", help="count the sealed values under each key")
    rotate = keys_verbs.add_parser(
        "rotate", help="re-seal every value under the first key of TRIAD_ENCRYPTION_KEYS"
    )
    rotate.add_argument(
        "--batch-size", type=int, default=500, help="values per transaction (1 to 10000)"
    )
    rotate.add_argument(
        "--max-batches", type=int, help="stop after this many batches (a rerun continues)"
    )
    rotate.add_argument(
        "--pause", type=float, default=0.0, help="seconds between batches (spares a busy database)"
    )

    token = verbs.add_parser("token", help="mint a fresh join link for a participant")
    token.add_argument("consult_id")
    token.add_argument("role", choices=[r.value for r in Role])
    token.add_argument("--ttl", type=_ttl, help="seconds the token stays valid (60 to 2592000)")
    return parser


def _run(args: argparse.Namespace, settings: Settings) -> int:
    if args.verb == "serve":
        overrides = {
            k: v
            for k, v in (("host", args.host), ("port", args.port), ("workers", args.workers))
            if v is not None
        }
        if overrides:  # validated as the environment's values are
            settings = Settings.model_validate({**settings.model_dump(), **overrides})
        return commands.run_serve(settings, with_demo=args.demo)
    elif args.verb == "migrate":
        head = asyncio.run(commands.migrate(settings))
        print(f"database migrated to revision {head}")
    elif args.verb == "demo":
        commands.print_demo(asyncio.run(commands.demo(settings)))
    elif args.verb == "keygen":
        print(commands.keygen())
    elif args.verb == "apikey" and args.apikey_verb == "create":
        platform_id, key_id, secret = asyncio.run(commands.create_api_key(settings, args.name))
        print(f"platform  {platform_id}\nkey id    {key_id}\nsecret    {secret}")
        print("Store the secret now: it is not shown again.")
    elif args.verb == "apikey" and args.apikey_verb == "revoke":
        if not asyncio.run(commands.revoke_api_key(settings, args.key_id)):
            print(f"no live key {args.key_id}", file=sys.stderr)
            return 1
        print(f"revoked {args.key_id}")
    elif args.verb == "check" and args.check_verb is None:
        results = asyncio.run(commands.check_all(settings))
        for line in results:
            print(line.line(), flush=True)
        return 0 if all(r.status is not Status.FAIL for r in results) else 1
    elif args.verb == "check" and args.check_verb == "turn":
        checks = asyncio.run(commands.check_turn_server(settings))
        for result in checks:
            detail = f" ({result.detail})" if result.detail else ""
            print(f"{result.verdict.value:<12} {result.url}{detail}")
        return 0 if all(result.ok for result in checks) else 1
    elif args.verb == "prune":
        pruned = asyncio.run(commands.prune(settings))
        print(
            f"deleted {pruned.idempotency_keys} idempotency keys,"
            f" {pruned.webhook_events} webhook events",
            end="",
        )
        if settings.audit_retention_days is None:
            print("; audit events are kept (TRIAD_AUDIT_RETENTION_DAYS is not set)")
        else:
            print(f" and {pruned.audit_events} audit events past their retention")
    elif args.verb == "keys":
        return _keys(args, settings)
    elif args.verb == "token":
        print(
            asyncio.run(commands.mint_token(settings, args.consult_id, Role(args.role), args.ttl))
        )
    return 0


def _keys(args: argparse.Namespace, settings: Settings) -> int:
    """`triad keys status|rotate`: exit 0 only when no value is left under another key."""
    if args.keys_verb == "rotate":
        try:
            limits = RotationLimits(args.batch_size, args.max_batches, args.pause)
        except ValueError as exc:
            print(f"triad: {exc}", file=sys.stderr)
            return 2
        outcome = asyncio.run(
            commands.keys_rotate(settings, limits, lambda line: print(line, flush=True))
        )
        report = outcome.report
        assert report is not None
        print(
            f"re-sealed {report.resealed} values under {outcome.active_kid} in {report.batches} "
            f"batches ({report.changed_meanwhile} changed meanwhile, "
            f"{report.unopenable} did not open)"
            + ("; stopped at --max-batches, run it again" if report.stopped_early else "")
        )
    else:
        outcome = asyncio.run(commands.keys_status(settings))
    for line in census_lines(outcome.census, outcome.active_kid):
        print(line)
    return 0 if outcome.done else 1


def main(argv: list[str] | None = None) -> int:
    args = _parser().parse_args(argv)
    try:
        settings = Settings()
        return _run(args, settings)
    except ValidationError as exc:
        print("triad: invalid settings:", file=sys.stderr)
        for err in exc.errors(include_input=False, include_url=False):
            name = "TRIAD_" + "_".join(str(p) for p in err["loc"]).upper()
            print(f"  {name}: {err['msg']}", file=sys.stderr)
        return 2
    except ConfigError as exc:
        print(f"triad: {exc}", file=sys.stderr)
        return 2
    except TriadError as exc:
        print(f"triad: {exc.code}: {exc.message}", file=sys.stderr)
        return 1
    except KeyboardInterrupt:
        return 130


if __name__ == "__main__":
    sys.exit(main())
