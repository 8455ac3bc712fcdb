"""mkimg example: convert a UTC time to a time zone, as the image's user.

Uses the standard library only: zoneinfo (tzdata's files), json, pwd (the
image's /etc/passwd through NSS), hashlib (OpenSSL-free builtin).
"""
import hashlib
import json
import os
import pwd
import sys
from datetime import datetime, timezone
from zoneinfo import ZoneInfo


def convert(utc: str, zone: str) -> str:
    t = datetime.fromisoformat(utc).replace(tzinfo=timezone.utc)
    return t.astimezone(ZoneInfo(zone)).isoformat()


def self_test() -> None:
    assert convert("2024-07-01T00:00:00", "Asia/Tokyo") == "2024-07-01T09:00:00+09:00"
    assert json.loads(json.dumps({"a": [1, 2]})) == {"a": [1, 2]}
    assert hashlib.sha256(b"").hexdigest().startswith("e3b0c442")
    assert pwd.getpwuid(os.getuid()).pw_name == "nonroot"
    print("self-test ok")


def main(argv: list[str]) -> int:
    if argv[1:] == ["--self-test"]:
        self_test()
        return 0
    if len(argv) != 3:
        print("usage: main.py UTC-ISO-TIME ZONE | --self-test", file=sys.stderr)
        return 2
    user = pwd.getpwuid(os.getuid()).pw_name
    print(f"{convert(argv[1], argv[2])} in {argv[2]}, as user {user}")
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv))
